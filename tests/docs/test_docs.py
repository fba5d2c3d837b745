"""The README, the changelog, the project URLs and the docs site's sources keep their promises.

The site itself is built, with warnings as errors, by the test command's docs step; its checks
(docs/_ext/octopods_checks.py) are exercised here on the real package and examples, without Sphinx.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

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
    assert "## [Unreleased]" in changelog
    assert re.search(rf"^## \[{re.escape(__version__)}\] - ", changelog, flags=re.M)
    assert "### Added" in changelog


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


def test_every_public_name_has_a_docstring_and_its_parameters_are_documented() -> None:
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
