"""The batch's input: recipient rows and the opt-out list, loaded as data, never rendered."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from airflow_provider_octopods.api.batch import opt_out_list
from airflow_provider_octopods.api.errors import OctopodsValidationError
from airflow_provider_octopods.api.masking import mask_phone
from airflow_provider_octopods.api.validation import rendered_list, shown

SAMPLES = 3


def load_rows(source: Any) -> list[Any]:
    """The recipient rows of ``recipients``, as data: a list, a JSON list (or a list's repr, as Jinja
    renders an XCom), or a CSV file's path. Nothing loaded is rendered; text that starts like a list
    but is not one is refused without being echoed (it would hold the rows)."""
    if isinstance(source, (list, tuple)):
        return list(source)
    opener = getattr(source, "open", None)
    listed = rendered_list(source) if isinstance(source, str) else None
    if listed is not None:
        return listed
    if isinstance(source, str) and source.lstrip().startswith("["):  # rows, not a path: not echoed
        raise OctopodsValidationError("recipients", "rendered to text that starts like a list but is not one")
    if isinstance(source, str) or (callable(opener) and hasattr(source, "suffix")):
        return _csv_rows(source)
    if isinstance(source, Iterable) and not isinstance(source, (str, bytes, Mapping)):
        return list(source)
    raise OctopodsValidationError("recipients", f"must be a list of rows or a CSV path, got {type(source).__name__}")


def _csv_rows(source: Any) -> list[dict[str, str]]:
    import csv
    import io

    try:
        if isinstance(source, str):
            with open(source, newline="", encoding="utf-8-sig") as handle:
                return list(csv.DictReader(handle))
        with source.open("r") as handle:  # an ObjectStoragePath; Airflow 2.11's handle cannot be iterated
            return list(csv.DictReader(io.StringIO(handle.read().removeprefix("\ufeff"), newline="")))
    except OSError as err:
        raise OctopodsValidationError("recipients", f"cannot read the CSV file {source}: {err.strerror}") from None
    except (ValueError, UnicodeError) as err:  # a NUL or a lone surrogate in the path, a file not in UTF-8
        raise OctopodsValidationError("recipients", f"cannot read the CSV file {shown(source)}: {err}") from None


def describe_source(source: Any) -> str:
    """How the rendered-fields table names where rows came from (never the rows)."""
    if isinstance(source, str) and not source.lstrip().startswith("["):
        return f"CSV {source}"
    if hasattr(source, "suffix") and hasattr(source, "open"):
        return f"CSV {source}"
    return "list"


def object_storage_path(url: str) -> Any:
    """``s3://...``, ``gs://...``: Airflow's ObjectStoragePath (3.x: airflow.sdk; 2.11: airflow.io)."""
    import importlib

    try:
        return importlib.import_module("airflow.sdk").ObjectStoragePath(url)
    except (ImportError, AttributeError):
        return importlib.import_module("airflow.io.path").ObjectStoragePath(url)


def check_recipients(value: object, *, allow_empty: bool = False) -> None:
    """Refuse, when the DAG is parsed, a literal ``recipients`` that no rendering can make usable
    (an empty list, unless the batch may be empty)."""
    if isinstance(value, (list, tuple)) and not value and not allow_empty:
        raise OctopodsValidationError("recipients", "is an empty list")
    if not isinstance(value, (list, tuple, str)) and not (hasattr(value, "open") and hasattr(value, "suffix")):
        raise OctopodsValidationError("recipients", f"must be a list of rows or a CSV path, got {type(value).__name__}")


def _variable_list(name: str) -> list[str]:
    from airflow_provider_octopods.runtime import variables

    raw = variables().get(name, None)
    if raw is None:
        raise OctopodsValidationError("opt_out", f"names the Variable {shown(name)}, which does not exist")
    try:
        value = json.loads(raw)
    except ValueError:
        value = [part for line in str(raw).splitlines() for part in line.split(",")]
    if isinstance(value, (int, str)) and not isinstance(value, bool):  # one number alone
        value = [value]
    if not isinstance(value, list):
        raise OctopodsValidationError("opt_out", f"Variable {shown(name)} must hold a list of numbers")
    return [str(v).strip() for v in value if str(v).strip()]


def opt_out_check(value: Any, *, default_region: str | None) -> Callable[[str], bool] | None:
    """The check that skips opted-out numbers: from a list, a callable taking the E.164 number, or
    the name of an Airflow Variable holding a JSON list or a comma- or line-separated list."""
    if value is None:
        return None
    if callable(value):
        check = value
        return lambda phone: bool(check(phone))
    if isinstance(value, str):
        value = _variable_list(value)
    if not isinstance(value, Iterable):
        raise OctopodsValidationError("opt_out", f"must be a list, a callable or a Variable name, got {shown(value)}")
    return opt_out_list(value, default_region=default_region)


def body_renderer(
    env: Any, template_text: str, context: Mapping[str, Any], phone_field: str
) -> tuple[Callable[[Mapping[str, Any]], str], list[dict[str, str]]]:
    """A function rendering the body template for one row, with the task ``context`` plus the row as
    ``recipient`` (its values are data: never rendered themselves), and the first ``SAMPLES``
    rendered texts with masked phones, which it fills as it renders."""
    template = env.from_string(template_text)
    # One set of variables for every row, only ``recipient`` changing: Template.render would copy
    # the globals and the whole task context into a new dict for each row.
    variables = {**template.globals, **context}
    samples: list[dict[str, str]] = []

    def render(row: Mapping[str, Any]) -> str:
        variables["recipient"] = row
        # Joined as text whatever the environment: a DAG rendering templates as native objects
        # would otherwise turn a row's "123456" or "True" into a number or a bool.
        text = "".join(map(str, template.root_render_func(template.new_context(variables, shared=True))))
        if len(samples) < SAMPLES:
            samples.append({"phone": mask_phone(row.get(phone_field)), "body": text})
        return text

    return render, samples
