"""Parse time or run time? Templated parameters are checked once their value is known.

A templated field may hold a literal, a Jinja string, an ``XComArg`` (``task()``, ``op.output``,
``op.output["key"]``), a list mixing them, or a mapped value. Only a plain literal can be checked
when the DAG file is parsed; everything else is checked at execute time, after rendering, with
the same errors.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from airflow_provider_octopods.api.errors import OctopodsValidationError

_JINJA_MARKERS = ("{{", "{%", "{#")


def known_at_parse(value: object) -> bool:
    """Whether ``value`` is a plain literal: no Jinja, no XComArg or mapped value anywhere in it."""
    if isinstance(value, str):
        return not any(marker in value for marker in _JINJA_MARKERS)
    if isinstance(value, (list, tuple, set, frozenset)):
        return all(known_at_parse(item) for item in value)
    if isinstance(value, Mapping):
        return all(known_at_parse(item) for item in value.values())
    # XComArg, PlainXComArg, MappedArgument... are resolved by Airflow at run time.
    return not (hasattr(value, "resolve") and hasattr(value, "iter_references"))


def check_literal(value: object, check: Callable[[object], object]) -> None:
    """Run ``check`` on ``value`` now if no rendering can change it; otherwise leave it for execute."""
    if known_at_parse(value):
        check(value)


@contextmanager
def refused_at_parse(owner: str) -> Iterator[None]:
    """Turn a validation error raised while building ``owner`` into the ``ValueError`` a DAG import shows."""
    try:
        yield
    except OctopodsValidationError as err:
        raise ValueError(f"{owner} {err}") from None


def rendered_list(text: str) -> list[Any] | None:
    """The list a template rendered to text (``"[1, 2]"``: JSON or a Python list's repr, as Jinja
    renders an XCom list), or None if ``text`` is not one."""
    stripped = text.strip()
    if not stripped.startswith("["):
        return None
    try:
        value = json.loads(stripped)
    except ValueError:
        try:
            value = ast.literal_eval(stripped)
        except (ValueError, SyntaxError):
            return None
    return value if isinstance(value, list) else None
