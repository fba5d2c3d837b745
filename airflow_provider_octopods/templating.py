"""Parse time or run time? Templated parameters are checked once their value is known.

A templated field may hold a literal, a Jinja string, an ``XComArg`` (``task()``, ``op.output``,
``op.output["key"]``), a list mixing them, or a mapped value. Only a plain literal can be checked
when the DAG file is parsed; everything else is checked at execute time, after rendering, with
the same errors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from airflow_provider_octopods.api.errors import OctopodsValidationError

_JINJA_MARKERS = ("{{", "{%", "{#")


def known_at_parse(value: object) -> bool:
    """Whether ``value`` is a plain literal: no Jinja, no XComArg or mapped value anywhere in it."""
    pending = [value]  # a loop, not recursion: a list nested 10,000 deep is still an answer
    seen: set[int] = set()
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if any(marker in item for marker in _JINJA_MARKERS):
                return False
        elif isinstance(item, (list, tuple, set, frozenset, Mapping)):
            if id(item) not in seen:
                seen.add(id(item))
                pending.extend(item.values() if isinstance(item, Mapping) else item)
        elif hasattr(item, "resolve") and hasattr(item, "iter_references"):
            return False  # XComArg, PlainXComArg, MappedArgument...: resolved by Airflow at run time
    return True


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
