"""The README, the changelog, the project URLs and the docs site's sources keep their promises.

The site itself is built, with warnings as errors, by the test command's docs step; its checks
(docs/_ext/octopods_checks.py) are exercised here on the real package and examples, without Sphinx.
"""

from __future__ import annotations

import ast
import importlib.util
import io
import re
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from airflow_provider_octopods import __version__
from airflow_provider_octopods.api import errors

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: pytest depends on tomli there
    import tomli as tomllib  # type: ignore[import-not-found]

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = (ROOT / "README.md").read_text(encoding="utf-8")
SEND_AND_TRACK = ROOT / "example_dags" / "example_octopods_send_and_track.py"


def checks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("octopods_checks", DOCS / "_ext" / "octopods_checks.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def included_examples() -> set[str]:
    names = set()
    for page in DOCS.glob("*.rst"):
        names.update(re.findall(r"literalinclude:: \.\./example_dags/(\S+\.py)", page.read_text(encoding="utf-8")))
    return names


def test_the_readme_is_short() -> None:
    assert len(README.splitlines()) <= 200


def test_the_readme_keeps_the_two_commands_of_a_clone() -> None:
    assert "python3 tools/dev.py demo" in README
    assert "python3 tools/dev.py test" in README


def test_the_readme_dag_is_the_example_the_tests_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert SEND_AND_TRACK.read_text(encoding="utf-8") in blocks
    assert "octopods-sandbox run -- airflow dags test example_octopods_send_and_track" in README
    assert "pip install" in README
    assert "AIRFLOW_CONN_OCTOPODS_DEFAULT" in README


def test_the_readme_states_the_supported_versions_pyproject_declares() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pythons = [c.rsplit(" :: ", 1)[1] for c in project["classifiers"] if re.fullmatch(r".*Python :: 3\.\d+", c)]
    assert f"Python {pythons[0]} to {pythons[-1]}" in README
    assert project["requires-python"].startswith(f">={pythons[0]}")
    assert "Airflow 2.11 and 3.x" in README


def test_the_readme_links_point_at_files_that_exist() -> None:
    targets = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", README)
    assert targets
    for target in targets:
        assert (ROOT / target).exists(), target


@pytest.mark.parametrize("name", ["Homepage", "Documentation", "Changelog", "Source", "Issues"])
def test_the_package_metadata_has_project_urls(name: str) -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    urls = tomllib.loads(text)["project"]["urls"]
    assert urls[name].startswith("https://")
    if ".invalid" in urls[name]:  # a placeholder must say so
        assert "PLACEHOLDER" in text


def test_the_changelog_has_this_version_in_keep_a_changelog_form() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert changelog.startswith("# Changelog\n")
    assert "[Keep a Changelog](https://keepachangelog.com/" in changelog
    assert "### Added" in changelog
    headings = re.findall(r"^## (.*)$", changelog, flags=re.M)
    assert headings[0] == "[Unreleased]"
    for heading in headings[1:]:  # a released version: its number and its date, nothing else
        assert re.fullmatch(r"\[\d+\.\d+\.\d+\] - \d{4}-\d{2}-\d{2}", heading), heading
    released = f"[{__version__}] - " in changelog
    unreleased = changelog.split("\n## ", 2)[1]
    assert released or f"released as {__version__}" in unreleased
    # Every heading's name is a link defined at the bottom, and every link there names a heading.
    names = [re.match(r"\[([^\]]+)\]", heading).group(1) for heading in headings]  # type: ignore[union-attr]
    links = re.findall(r"^\[([^\]]+)\]: https://\S+$", changelog, flags=re.M)
    assert names == links


def test_every_example_dag_is_in_the_docs_and_run_by_a_test() -> None:
    examples = {path.name for path in (ROOT / "example_dags").glob("*.py")}
    assert included_examples() == examples
    assert checks().tested_examples() == examples


def test_every_error_the_provider_raises_is_on_the_troubleshooting_page() -> None:
    page = (DOCS / "troubleshooting.rst").read_text(encoding="utf-8")
    names = [n for n, obj in vars(errors).items() if isinstance(obj, type) and issubclass(obj, errors.OctopodsError)]
    assert len(names) > 10
    for name in names:
        assert f"api.errors.{name}`" in page, name


def test_every_public_name_has_a_docstring() -> None:
    """The docstrings only: that every parameter reaches the rendered reference is checked by the docs
    build (``check_reference``), whose check the two tests below keep hooked up."""
    module = checks()
    public = module.public_objects()
    assert "airflow_provider_octopods.operators.octopods.OctopodsSendBatchOperator" in public
    assert "airflow_provider_octopods.sandbox.pytest_plugin.octopods_sandbox" in public
    for name, obj in public.items():
        assert (module.inspect.getdoc(obj) or "").strip(), name


@pytest.mark.parametrize("page", ["home", "batch", "troubleshooting"])
def test_the_screenshots_for_review_are_kept(page: str) -> None:
    shot = DOCS / "_screenshots" / f"{page}.png"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- failures that are not OctopodsError ----------------------------------------------------------

PACKAGE = ROOT / "airflow_provider_octopods"
#: A stable phrase of each task failure that is not an OctopodsError, and the file raising it.
NON_OCTOPODS_FAILURES = [
    ("Nothing was sent: ", "batch/report.py"),  # plan_refusal: too many invalid rows
    ("Nothing to send: ", "batch/report.py"),  # plan_refusal: no row left to send
    ("Dry run: ", "batch/rounds.py"),  # the refusal of a dry run
    ("Batch failed its policy: ", "batch/report.py"),
    ("A retry sends only the rows not accepted yet.", "batch/report.py"),
    ("Batch stopped by Airflow before its end; a retry sends the rest.", "batch/rounds.py"),
    ("SMS delivery ", "task_outcomes.py"),
    ("delivery tracking stopped: ", "triggers/octopods.py"),
    ("AirflowSensorTimeout", "sensors/octopods.py"),
    ("ValueError", "templating.py"),  # refused_at_parse: a literal no rendering can fix
    (" (task ", "operators/octopods.py"),  # ... which names the task
]


@pytest.mark.parametrize(("phrase", "source"), NON_OCTOPODS_FAILURES, ids=[p for p, _ in NON_OCTOPODS_FAILURES])
def test_every_failure_that_is_not_an_octopods_error_is_on_the_troubleshooting_page(phrase: str, source: str) -> None:
    assert phrase in (PACKAGE / source).read_text(encoding="utf-8"), f"{source} no longer says {phrase!r}"
    page = (DOCS / "troubleshooting.rst").read_text(encoding="utf-8")
    section = page.split(".. _troubleshooting-task-failures:", 1)[1].split("\nWho retries what\n", 1)[0]
    assert phrase in " ".join(section.split()), phrase  # reST wraps lines: compare words


def test_every_delivery_outcome_a_task_fails_with_is_on_the_troubleshooting_page() -> None:
    from airflow_provider_octopods.api.delivery import Outcome

    page = (DOCS / "troubleshooting.rst").read_text(encoding="utf-8")
    failing = [o for o in Outcome if o not in (Outcome.PENDING, Outcome.SUCCESS)]
    assert failing
    for outcome in failing:  # task_outcomes.delivery_result: "SMS delivery {outcome}: ..."
        assert f"SMS delivery {outcome.value}: " in page, outcome


def test_the_troubleshooting_page_does_not_say_every_error_is_an_octopods_error() -> None:
    page = " ".join((DOCS / "troubleshooting.rst").read_text(encoding="utf-8").split())
    assert "Every error the provider raises is a subclass" not in page


# --- the extension's reference check stays hooked up ----------------------------------------------


class StubWithTwoParameters:
    """A class whose docstring lists ``documented`` but not ``forgotten``.

    :param documented: listed.
    """

    def __init__(self, documented: int, forgotten: int) -> None:
        self.documented = documented
        self.forgotten = forgotten


def test_conf_py_registers_the_checks_extension() -> None:
    tree = ast.parse((DOCS / "conf.py").read_text(encoding="utf-8"))
    assigned = {
        target.id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    assert "octopods_checks" in ast.literal_eval(assigned["extensions"])
    assert ast.literal_eval(assigned["nitpicky"]) is True
    assert (DOCS / "_ext" / "octopods_checks.py").exists()


def test_check_reference_reports_a_parameter_missing_from_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    module = checks()
    warnings: list[str] = []
    monkeypatch.setattr(module.logger, "warning", lambda msg, *args, **kw: warnings.append(msg % args))
    name = f"{__name__}.{StubWithTwoParameters.__name__}"
    monkeypatch.setattr(module, "public_objects", lambda: {name: StubWithTwoParameters})
    env = SimpleNamespace(octopods_documented={id(StubWithTwoParameters)}, octopods_listed={name: {"documented"}})
    module.check_reference(None, env)
    assert len(warnings) == 1
    assert warnings[0].startswith(f"{name}: parameters missing from the API reference")
    assert warnings[0].endswith(": forgotten")
    warnings.clear()
    env.octopods_listed[name].add("forgotten")
    module.check_reference(None, env)
    assert warnings == []


def test_a_docs_build_reports_a_parameter_missing_from_the_rendered_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end through Sphinx: autodoc renders the stub, the extension's hooks collect its
    Parameters field and warn about the one missing; a build with ``-W`` fails on that warning."""
    from sphinx.application import Sphinx

    (tmp_path / "stub_reference_module.py").write_text(
        "class Stub:\n"
        '    """A stub.\n\n    :param documented: listed.\n    """\n\n'
        "    def __init__(self, documented: int, forgotten: int) -> None:\n"
        "        pass\n",
        encoding="utf-8",
    )
    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text('extensions = ["sphinx.ext.autodoc", "octopods_checks"]\n', encoding="utf-8")
    (src / "index.rst").write_text("Index\n=====\n\n.. toctree::\n\n   reference\n", encoding="utf-8")
    (src / "reference.rst").write_text(
        "Reference\n=========\n\n.. autoclass:: stub_reference_module.Stub\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(DOCS / "_ext"))
    monkeypatch.delitem(sys.modules, "octopods_checks", raising=False)
    octopods_checks = importlib.import_module("octopods_checks")  # as Sphinx loads it: by name, from docs/_ext

    stub = importlib.import_module("stub_reference_module")
    monkeypatch.setattr(octopods_checks, "public_objects", lambda: {"stub_reference_module.Stub": stub.Stub})
    warning = io.StringIO()
    app: Any = Sphinx(
        str(src),
        str(src),
        str(tmp_path / "html"),
        str(tmp_path / "doctrees"),
        "html",
        status=None,
        warning=warning,
        freshenv=True,
    )
    app.build()
    text = warning.getvalue()
    assert "stub_reference_module.Stub: parameters missing from the API reference" in text, text
    assert text.count("forgotten") == 1, text
    assert "documented" not in text.replace("forgotten", ""), text
