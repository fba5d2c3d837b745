"""Parse time or run time? Templated parameters are checked once their value is known.

A templated field may hold a literal, a Jinja string, an ``XComArg`` (``task()``, ``op.output``,
``op.output["key"]``), a list mixing them, or a mapped value. Only a plain literal can be checked
when the DAG file is parsed; everything else is checked at execute time, after rendering, with
the same errors.

A templated field may also hold data (the batch's recipient rows): a list of rows is the data itself,
never a template, whatever its strings look like; only a template, a path or a reference that
produces the data is rendered, once (:func:`produces_data`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from airflow_provider_octopods.api.errors import OctopodsValidationError
from airflow_provider_octopods.api.validation import shown, validate_body

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
        elif is_reference(item):
            return False
    return True


def is_reference(value: object) -> bool:
    """Whether Airflow resolves ``value`` at run time: an ``XComArg``, ``PlainXComArg``, ``MappedArgument``..."""
    return hasattr(value, "resolve") and hasattr(value, "iter_references")


def produces_data(value: object) -> bool:
    """Whether ``value``, held by a templated field whose content is data, produces that data.

    True for a string (a Jinja template such as ``"{{ ti.xcom_pull('extract') }}"``, a CSV path such
    as ``"/data/{{ ds }}.csv"``), a path object, or a reference (``XComArg``): Airflow renders or
    resolves it once, as any templated field, and what comes out is data, never rendered again.
    False for anything else (a list of rows written in the DAG, loaded from a file at parse time or
    given to ``expand``): the value is the data itself and no string inside it is ever rendered.
    """
    return isinstance(value, str) or is_reference(value) or (hasattr(value, "open") and hasattr(value, "suffix"))


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


def body_template(body: object, *, field: str = "body") -> str:
    """``body`` if it is a Jinja template that parses; checked as an SMS text when it holds no template."""
    if not isinstance(body, str) or not body.strip():
        raise OctopodsValidationError(field, f"must be a non-empty text template, got {shown(body)}")
    from jinja2 import Environment, TemplateSyntaxError

    try:
        Environment(autoescape=False).parse(body)  # noqa: S701  # SMS text, not HTML; only parsed
    except TemplateSyntaxError as err:
        raise OctopodsValidationError(
            field, f"is not a valid Jinja template: {err.message} (line {err.lineno})"
        ) from None
    if known_at_parse(body):
        validate_body(body, field=field)
    return body
