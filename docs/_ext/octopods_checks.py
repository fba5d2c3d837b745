"""Checks that fail the docs build (under ``-W``) when the site stops telling the truth.

1. Every ``literalinclude`` points into ``example_dags/``, at a file the test suite runs: its file
   name or one of its DAG ids appears in a test under ``tests/`` (outside ``tests/docs``).
2. Every public name of the provider has a docstring, and is documented in the API reference.
3. Every ``__init__`` parameter of every public class is listed in the rendered reference (a
   "Parameters" or "Variables" entry of that class's description).

Public names: the names in a public module's ``__all__``, or else the classes and functions it
defines without a leading underscore; plus the few names :data:`PUBLIC_NAMES` lists one by one.
"""

from __future__ import annotations

import enum
import importlib
import inspect
import re
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "example_dags"
TESTS = ROOT / "tests"

#: Modules whose every public name is part of the provider's API.
PUBLIC_MODULES = (
    "airflow_provider_octopods.hooks.octopods",
    "airflow_provider_octopods.operators.octopods",
    "airflow_provider_octopods.batch.operator",
    "airflow_provider_octopods.sensors.octopods",
    "airflow_provider_octopods.triggers.octopods",
    "airflow_provider_octopods.notifications.octopods",
    "airflow_provider_octopods.api.errors",
    "airflow_provider_octopods.sandbox",
    "airflow_provider_octopods.sandbox.pytest_plugin",
)
#: Public names of modules that also hold internals: what the hook returns.
PUBLIC_NAMES = {
    "airflow_provider_octopods.api.models": ("SendResult", "MessageStatus", "DeliveryStatus"),
}
#: The page(s) holding the API reference.
REFERENCE_PREFIX = "reference"


def public_objects() -> dict[str, Any]:
    """``{"module.name": object}`` for every public class and function of the provider."""
    found: dict[str, Any] = {}
    for modname in PUBLIC_MODULES:
        module = importlib.import_module(modname)
        names = getattr(module, "__all__", None)
        if names is None:
            names = [
                name
                for name, obj in vars(module).items()
                if not name.startswith("_") and getattr(obj, "__module__", None) == modname and _is_api(obj)
            ]
        for name in names:
            found[f"{modname}.{name}"] = getattr(module, name)
    for modname, names in PUBLIC_NAMES.items():
        module = importlib.import_module(modname)
        for name in names:
            found[f"{modname}.{name}"] = getattr(module, name)
    return {name: obj for name, obj in found.items() if _is_api(obj)}


def _is_api(obj: Any) -> bool:
    return inspect.isclass(obj) or inspect.isfunction(obj) or _is_fixture(obj)


def _is_fixture(obj: Any) -> bool:
    return type(obj).__name__ == "FixtureFunctionDefinition"


def init_parameters(cls: type) -> list[str]:
    """The names a user passes to ``cls(...)``: ``__init__``'s, without ``self``, ``*args``, ``**kwargs``."""
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return []
    return [
        p.name
        for p in signature.parameters.values()
        if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]


def init_owner(cls: type) -> type:
    """The class of ``cls``'s MRO whose ``__init__`` ``cls`` uses, if it is one of the provider's."""
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            return klass if klass.__module__.startswith("airflow_provider_octopods") else cls
    return cls


def tested_examples() -> set[str]:
    """File names of ``example_dags/`` that a test runs: named by a test, by file or DAG id."""
    tests_text = "\n".join(
        path.read_text(encoding="utf-8")
        for path in TESTS.rglob("*.py")
        if "docs" not in path.relative_to(TESTS).parts[:1]
    )
    tested = set()
    for example in EXAMPLES.glob("*.py"):
        dag_ids = re.findall(r"dag_id=\"([^\"]+)\"", example.read_text(encoding="utf-8")) or [example.stem]
        if example.name in tests_text or any(re.search(rf"\b{re.escape(d)}\b", tests_text) for d in dag_ids):
            tested.add(example.name)
    return tested


# --- 1. includes -------------------------------------------------------------------------------


def check_includes(app: Sphinx, doctree: nodes.document) -> None:
    tested = app.env.octopods_tested_examples  # type: ignore[attr-defined]
    for block in doctree.findall(nodes.literal_block):
        source = block.get("source")
        if not source or source == doctree.get("source"):
            continue  # a code block written in the page, not an include
        path = Path(source).resolve()
        where = (doctree.get("source"), block.line)
        if path.parent != EXAMPLES:
            logger.warning("literalinclude of %s: examples come from example_dags/ only", source, location=where)
        elif not path.exists():
            logger.warning("literalinclude of a missing file: %s", source, location=where)
        elif path.name not in tested:
            logger.warning(
                "literalinclude of %s: no test under tests/ runs it (name its file or DAG id in one)",
                path.name,
                location=where,
            )


# --- 2 and 3. the reference --------------------------------------------------------------------


def record_documented(app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    if app.env.docname.startswith(REFERENCE_PREFIX):
        app.env.octopods_documented.add(id(obj))  # type: ignore[attr-defined]


def collect_parameters(app: Sphinx, doctree: nodes.document) -> None:
    """For each class described in the reference, the names its Parameters/Variables fields list."""
    if not app.env.docname.startswith(REFERENCE_PREFIX):
        return
    listed: dict[str, set[str]] = app.env.octopods_listed  # type: ignore[attr-defined]
    for desc in doctree.findall(addnodes.desc):
        if desc.get("objtype") not in ("class", "exception", "function"):
            continue
        signature = next(iter(desc.findall(addnodes.desc_signature)), None)
        content = next((c for c in desc.children if isinstance(c, addnodes.desc_content)), None)
        if signature is None or content is None:
            continue
        fullname = f"{signature.get('module')}.{signature.get('fullname')}"
        names = listed.setdefault(fullname, set())
        for field_list in content.children:  # the class's own fields, not its methods'
            if not isinstance(field_list, nodes.field_list):
                continue
            for field in field_list.children:
                title = field[0].astext().strip()
                if title in ("Parameters", "Variables"):
                    names.update(strong.astext() for strong in field[1].findall(addnodes.literal_strong))


def check_reference(app: Sphinx, env: Any) -> None:
    documented: set[int] = env.octopods_documented
    listed: dict[str, set[str]] = env.octopods_listed
    by_id: dict[int, set[str]] = {}
    for fullname, names in listed.items():
        module, _, attr = fullname.rpartition(".")
        try:
            obj = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            continue
        by_id.setdefault(id(obj), set()).update(names)
    for name, obj in public_objects().items():
        if not (inspect.getdoc(obj) or "").strip():
            logger.warning("public name without a docstring: %s", name)
        if id(obj) not in documented:
            logger.warning("public name missing from the API reference: %s", name)
            continue
        if inspect.isclass(obj) and not issubclass(obj, enum.Enum):  # an Enum's members are not built by users
            owner = init_owner(obj)  # parameters are listed where __init__ is defined
            missing = [p for p in init_parameters(obj) if p not in by_id.get(id(owner), set())]
            if missing:
                logger.warning(
                    "%s: parameters missing from the API reference (add ':param x:' to the docstring): %s",
                    name,
                    ", ".join(missing),
                )


def init_env(app: Sphinx) -> None:
    env = app.env
    env.octopods_documented = set()  # type: ignore[attr-defined]
    env.octopods_listed = {}  # type: ignore[attr-defined]
    env.octopods_tested_examples = tested_examples()  # type: ignore[attr-defined]


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("builder-inited", init_env)
    app.connect("autodoc-process-docstring", record_documented)
    app.connect("doctree-read", check_includes)
    app.connect("doctree-read", collect_parameters)
    app.connect("env-check-consistency", check_reference)
    return {"version": "1", "parallel_read_safe": False, "env_version": 1}
