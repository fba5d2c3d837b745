"""Declared dependencies: floors above every known advisory, and every import declared.

``security/advisories.toml`` lists the advisories; an online audit of the locked versions is
documented in docs/guarantees.rst ("Proof 3: a security audit").
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: pytest depends on tomli there
    import tomli as tomllib  # type: ignore[import-not-found]

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "airflow_provider_octopods"

# The distribution that must be declared in pyproject.toml for each third-party import of the
# package, by the longest matching module prefix. Modules that come with a declared distribution
# map to it: certifi is a requirement of requests; jinja2, sqlalchemy, asgiref and
# the Flask form libraries (the connection form on Airflow 2) come with apache-airflow. pytest
# is imported only by the sandbox's pytest plugin, which pytest itself loads. An import that is
# not in this table fails the test: declare its distribution, then add it here.
DISTRIBUTION_OF_IMPORT: dict[str, str | None] = {
    "airflow": "apache-airflow",
    "airflow.providers.common.compat": "apache-airflow-providers-common-compat",
    "phonenumbers": "phonenumbers",
    "requests": "requests",
    "urllib3": "urllib3",
    "certifi": "requests",
    "aiohttp": "aiohttp",
    "jinja2": "apache-airflow",
    "sqlalchemy": "apache-airflow",
    "asgiref": "apache-airflow",
    "flask_appbuilder": "apache-airflow",
    "flask_babel": "apache-airflow",
    "wtforms": "apache-airflow",
    "pytest": None,
}
# Every other Airflow provider is a distribution of its own, never part of apache-airflow.
PROVIDERS = "airflow.providers"
NEVER_IMPORTED = ("httpx",)


def pyproject() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as source:
        return tomllib.load(source)


def advisories() -> list[dict[str, Any]]:
    with (ROOT / "security" / "advisories.toml").open("rb") as source:
        return list(tomllib.load(source)["advisory"])


def declared_requirements() -> list[Requirement]:
    project = pyproject()["project"]
    listed = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        listed.extend(extra)
    return [Requirement(text) for text in listed]


def floor(requirement: Requirement) -> Version | None:
    """The lowest version a requirement admits, as far as its specifiers bound it from below."""
    bounds = [Version(s.version) for s in requirement.specifier if s.operator in (">=", "==", "~=", "===")]
    bounds += [Version(s.version) for s in requirement.specifier if s.operator == ">"]
    return max(bounds, default=None)


def imported_modules() -> Iterator[tuple[str, Path]]:
    """Every absolute import in the package, including ``importlib.import_module("name")``."""
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                yield from ((alias.name, path) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                yield node.module, path
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, (ast.Attribute, ast.Name))
                and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) == "import_module"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                yield node.args[0].value, path


def third_party(module: str) -> bool:
    top = module.split(".")[0]
    return top not in sys.stdlib_module_names and top != PACKAGE.name


def distribution_of(module: str) -> str | None:
    """The distribution to declare for ``module``; KeyError when the table does not know it."""
    known = [prefix for prefix in DISTRIBUTION_OF_IMPORT if module == prefix or module.startswith(f"{prefix}.")]
    if not known:
        raise KeyError(module)
    prefix = max(known, key=len)
    if module.startswith(f"{PROVIDERS}.") and not prefix.startswith(f"{PROVIDERS}."):
        raise KeyError(module)
    return DISTRIBUTION_OF_IMPORT[prefix]


def test_every_advisory_names_a_package_ids_and_a_fixed_version() -> None:
    for advisory in advisories():
        assert advisory["package"], advisory
        assert advisory["ids"], advisory
        Version(advisory["fixed"])


@pytest.mark.parametrize("package", ["requests", "aiohttp"])
def test_the_known_advisories_are_listed(package: str) -> None:
    fixed = max(Version(a["fixed"]) for a in advisories() if a["package"] == package)
    assert fixed >= {"requests": Version("2.33.0"), "aiohttp": Version("3.14.4")}[package]


def test_every_declared_floor_is_at_or_above_every_fixed_version() -> None:
    requirements = declared_requirements()
    problems = []
    for advisory in advisories():
        package = canonicalize_name(advisory["package"])
        fixed = Version(advisory["fixed"])
        matching = [r for r in requirements if canonicalize_name(r.name) == package]
        if not matching:
            problems.append(f"{package} has advisories but is not declared (check advisories.toml)")
        for requirement in matching:
            lowest = floor(requirement)
            if lowest is None or lowest < fixed:
                problems.append(f"{requirement} admits versions before {fixed} ({', '.join(advisory['ids'])})")
    assert not problems, "\n".join(problems)


def test_every_third_party_import_of_the_package_is_declared() -> None:
    declared = {canonicalize_name(r.name) for r in declared_requirements()}
    problems = []
    for module, path in imported_modules():
        if not third_party(module):
            continue
        where = path.relative_to(ROOT)
        try:
            distribution = distribution_of(module)
        except KeyError:
            problems.append(f"{where}: imports {module}, which is not in DISTRIBUTION_OF_IMPORT")
            continue
        if distribution is not None and canonicalize_name(distribution) not in declared:
            problems.append(f"{where}: imports {module}, but {distribution} is not declared in pyproject.toml")
    assert not problems, "\n".join(problems)


def test_the_package_never_imports_httpx() -> None:
    found = [
        f"{path.relative_to(ROOT)}: {module}"
        for module, path in imported_modules()
        if module.split(".")[0] in NEVER_IMPORTED
    ]
    assert not found, found


@pytest.mark.parametrize(
    ("module", "distribution"),
    [
        ("airflow.models.variable", "apache-airflow"),
        ("airflow.providers.common.compat.sdk", "apache-airflow-providers-common-compat"),
        ("urllib3.exceptions", "urllib3"),
    ],
)
def test_the_import_table_maps_by_module_prefix(module: str, distribution: str) -> None:
    assert distribution_of(module) == distribution


@pytest.mark.parametrize("module", ["airflow.providers.http.hooks.http", "httpx", "yaml"])
def test_an_import_the_table_does_not_know_is_refused(module: str) -> None:
    with pytest.raises(KeyError):
        distribution_of(module)
