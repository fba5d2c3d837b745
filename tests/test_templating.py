"""Parse time or run time: which templated values are checked when the DAG is parsed, and how."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_provider_octopods.api.errors import OctopodsValidationError
from airflow_provider_octopods.templating import (
    body_template,
    check_literal,
    is_reference,
    known_at_parse,
    produces_data,
    refused_at_parse,
)


def references() -> dict[str, Any]:
    """What Airflow resolves at run time, made as a DAG file makes them."""
    from airflow.providers.common.compat.sdk import DAG, task, task_group

    made: dict[str, Any] = {}
    with DAG(dag_id="templating", schedule=None):

        @task
        def extract() -> list[str]:
            return []

        @task
        def use(value: Any) -> None:
            return None

        @task_group
        def per_value(value: Any) -> None:
            made["mapped argument"] = value
            use(value)

        per_value.expand(value=["a", "b"])
        output = extract()
        made |= {"XComArg": output, "XComArg key": output["key"], "mapped XComArg": output.map(str)}
    return made


REFERENCES = references()


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("+15551234567", id="text"),
        pytest.param("50% off {tomorrow}", id="text with single braces"),
        pytest.param(None, id="None"),
        pytest.param(42, id="number"),
        pytest.param(["+15551234567", ("a", {"k": {"b"}})], id="nested containers"),
        pytest.param({"{{ key }}": "value"}, id="a template in a key (Airflow renders values only)"),
    ],
)
def test_plain_literals_are_known_at_parse(value: object) -> None:
    assert known_at_parse(value)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("{{ ds }}", id="expression"),
        pytest.param("{% if params.x %}x{% endif %}", id="statement"),
        pytest.param("Hi {# comment #}", id="comment"),
        pytest.param(["+15551234567", ["{{ params.phone }}"]], id="a template deep in a list"),
        pytest.param({"k": ("a", "{{ ds }}")}, id="a template in a mapping's value"),
        *(pytest.param(ref, id=name) for name, ref in REFERENCES.items()),
        pytest.param(["+15551234567", REFERENCES["XComArg"]], id="a list holding an XComArg"),
    ],
)
def test_templates_and_references_anywhere_are_not_known_at_parse(value: object) -> None:
    assert not known_at_parse(value)


def test_known_at_parse_answers_for_deep_and_self_referencing_values() -> None:
    deep: list[Any] = ["+15551234567"]
    for _ in range(10_000):
        deep = [deep]
    assert known_at_parse(deep)
    deep[0][0][0].append("{{ ds }}")
    assert not known_at_parse(deep)
    looped: list[Any] = ["+15551234567"]
    looped.append(looped)
    assert known_at_parse(looped)


def test_references_are_what_airflow_resolves_at_run_time() -> None:
    assert all(is_reference(ref) for ref in REFERENCES.values())

    class ResolveOnly:
        def resolve(self) -> None: ...

    for value in ("{{ ds }}", ["{{ ds }}"], ResolveOnly(), None):
        assert not is_reference(value)


def test_templates_paths_and_references_produce_data_and_rows_are_data() -> None:
    for producer in (
        "{{ ti.xcom_pull('extract') }}",
        "/data/{{ ds }}.csv",
        Path("/data/rows.csv"),
        *REFERENCES.values(),
    ):
        assert produces_data(producer)
    for data in ([{"phone": "{{ ds }}"}], ({"phone": "+15551234567"},), {"phone": "+15551234567"}, None, 42):
        assert not produces_data(data)


def test_check_literal_checks_now_only_what_no_rendering_can_change() -> None:
    checked: list[object] = []
    check_literal(["+15551234567"], checked.append)
    assert checked == [["+15551234567"]]
    for pending in ("{{ params.phone }}", ["+15551234567", "{{ params.phone }}"], REFERENCES["XComArg"]):
        check_literal(pending, checked.append)
    assert checked == [["+15551234567"]]

    def refuse(value: object) -> None:
        raise OctopodsValidationError("phone", "is too short")

    with pytest.raises(OctopodsValidationError, match="phone: is too short"):
        check_literal("123", refuse)


def test_refused_at_parse_turns_a_validation_error_into_the_value_error_a_dag_import_shows() -> None:
    owner = "OctopodsSendSmsOperator (task 'alert')"
    message = r"^OctopodsSendSmsOperator \(task 'alert'\) phone: is too short$"
    with pytest.raises(ValueError, match=message) as err, refused_at_parse(owner):
        raise OctopodsValidationError("phone", "is too short")
    assert type(err.value) is ValueError
    assert err.value.__cause__ is None
    assert err.value.__suppress_context__
    with pytest.raises(KeyError, match="other"), refused_at_parse("owner"):  # other errors pass through
        raise KeyError("other")
    with refused_at_parse("owner"):
        pass


def test_a_body_template_that_parses_is_returned_and_a_literal_one_is_checked_as_sms_text() -> None:
    assert body_template("Hi {{ recipient.name }}") == "Hi {{ recipient.name }}"
    assert body_template("Your appointment is tomorrow") == "Your appointment is tomorrow"
    templated_long = "{{ recipient.name }}" + "x" * 1600  # its length is known only once rendered
    assert body_template(templated_long) == templated_long
    with pytest.raises(OctopodsValidationError, match="body: is 1601 characters long"):
        body_template("x" * 1601)
    with pytest.raises(OctopodsValidationError, match=r"body: .*U\+0007"):
        body_template("Ring \x07")


@pytest.mark.parametrize("body", ["", "   ", None, 42, ["Hi"]])
def test_a_body_that_is_not_a_text_template_is_refused(body: object) -> None:
    with pytest.raises(OctopodsValidationError, match="message: must be a non-empty text template, got ") as err:
        body_template(body, field="message")
    assert err.value.field == "message"


def test_a_body_template_that_does_not_parse_is_refused_with_its_line() -> None:
    with pytest.raises(OctopodsValidationError, match=r"body: is not a valid Jinja template: .* \(line 2\)$"):
        body_template("Hi\n{{ recipient.name ")
