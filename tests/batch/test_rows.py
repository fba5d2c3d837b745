"""The batch's input: recipient rows and opt-out lists loaded as data, and the body rendered per row."""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_octopods.api.errors import OctopodsValidationError
from airflow_provider_octopods.batch.rows import (
    SAMPLES,
    body_renderer,
    check_recipients,
    describe_source,
    load_rows,
    object_storage_path,
    opt_out_check,
)
from airflow_provider_octopods.operators.octopods import OctopodsSendBatchOperator

ROWS = [{"phone": "+447700900101", "name": "A"}, {"phone": "+447700900102", "name": "B"}]
# Rows as a security probe wrote them: each name would reveal something if it were rendered.
PROBES = [
    {"phone": "+447700900101", "name": "{{ conn.octopods_default.password }}"},
    {"phone": "+447700900102", "name": "{{ var.value.x }}"},
    {"phone": "+447700900103", "name": "{{"},
    {"phone": "+447700900104", "name": "{{ 7*7 }}"},
]


class StoredFile:
    """What the loader uses of an ``ObjectStoragePath``: ``open`` and ``suffix``."""

    suffix = ".csv"

    def __init__(self, text: str | None = None) -> None:
        self.text = text
        self.modes: list[str] = []

    @contextmanager
    def open(self, mode: str) -> Iterator[io.StringIO]:
        self.modes.append(mode)
        if self.text is None:
            raise PermissionError(13, "Access denied")
        yield io.StringIO(self.text)

    def __str__(self) -> str:
        return "s3://bucket/patients.csv"


# -- load_rows --------------------------------------------------------------------------------------


def test_a_list_or_tuple_of_rows_is_taken_as_it_is() -> None:
    rows = copy.deepcopy(PROBES)
    loaded = load_rows(rows)
    assert loaded == PROBES
    assert loaded is not rows  # the caller's list is not the one the batch keeps
    assert load_rows(tuple(rows)) == PROBES


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(json.dumps(PROBES), id="JSON"),
        pytest.param(repr(PROBES), id="a list's repr, as Jinja renders an XCom"),
        pytest.param("\n  " + json.dumps(PROBES) + "\n", id="JSON with surrounding whitespace"),
    ],
)
def test_text_holding_a_list_is_loaded_and_its_values_stay_as_written(text: str) -> None:
    assert load_rows(text) == PROBES


def test_text_that_starts_like_a_list_but_is_not_one_is_refused_without_showing_the_rows() -> None:
    with pytest.raises(OctopodsValidationError, match=r"recipients: .* starts like a list but is not one") as err:
        load_rows("[{'phone': '+447700900101', 'when': datetime.date(2026, 11, 25)}]")  # an XCom's repr
    assert err.value.field == "recipients"
    assert "900101" not in str(err.value)


def test_a_csv_path_is_read_with_its_header_and_a_byte_order_mark_is_dropped(tmp_path: Path) -> None:
    source = tmp_path / "patients.csv"
    source.write_text("phone,name\n+447700900101,{{ 7*7 }}\n07700 900102,Bo\n", encoding="utf-8-sig")  # Excel's
    assert source.read_bytes().startswith(b"\xef\xbb\xbf")
    assert load_rows(str(source)) == [
        {"phone": "+447700900101", "name": "{{ 7*7 }}"},
        {"phone": "07700 900102", "name": "Bo"},
    ]


def test_a_file_url_is_read_through_airflow_s_object_storage_path(tmp_path: Path) -> None:
    (tmp_path / "patients.csv").write_text("phone,name\n+447700900101,A\n+447700900102,B\n")
    source = object_storage_path(f"file://{tmp_path}/patients.csv")
    assert describe_source(source) == f"CSV file://{tmp_path}/patients.csv"
    assert load_rows(source) == ROWS


def test_an_object_storage_path_is_opened_for_reading() -> None:
    stored = StoredFile("phone,name\n+447700900101,A\n+447700900102,B\n")
    assert load_rows(stored) == ROWS
    assert stored.modes == ["r"]


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        pytest.param("/nowhere/patients.csv", "No such file or directory", id="missing file"),
        pytest.param("/data/\x00patients.csv", "embedded null byte", id="NUL in the path"),
        pytest.param(StoredFile(), "Access denied", id="object storage refusing"),
    ],
)
def test_an_unreadable_csv_is_reported_for_the_recipients_field(source: Any, reason: str) -> None:
    with pytest.raises(OctopodsValidationError, match=f"recipients: cannot read the CSV file .*{reason}") as err:
        load_rows(source)
    assert err.value.field == "recipients"


def test_a_csv_file_not_in_utf8_is_reported_for_the_recipients_field(tmp_path: Path) -> None:
    source = tmp_path / "patients.csv"
    source.write_bytes("phone,name\n+447700900101,Zoë\n".encode("latin-1"))
    with pytest.raises(OctopodsValidationError, match=r"recipients: cannot read the CSV file .*utf-8") as err:
        load_rows(str(source))
    assert err.value.field == "recipients"


def test_other_iterables_are_rows_and_anything_else_is_refused() -> None:
    assert load_rows(row for row in ROWS) == ROWS
    for value, kind in ((42, "int"), ({"phone": "+447700900101"}, "dict"), (b"phone\n", "bytes"), (None, "NoneType")):
        with pytest.raises(
            OctopodsValidationError, match=f"recipients: must be a list of rows or a CSV path, got {kind}$"
        ):
            load_rows(value)


# -- describe_source, check_recipients ---------------------------------------------------------------


def test_the_source_is_described_without_the_rows() -> None:
    assert describe_source("/data/2026-11-25/patients.csv") == "CSV /data/2026-11-25/patients.csv"
    assert describe_source(StoredFile("")) == "CSV s3://bucket/patients.csv"
    assert describe_source(json.dumps(ROWS)) == "list"
    assert describe_source(ROWS) == "list"


def test_literal_recipients_no_rendering_can_make_usable_are_refused() -> None:
    for usable in (ROWS, tuple(ROWS), "/data/patients.csv", "{{ ti.xcom_pull('extract') }}", StoredFile("")):
        check_recipients(usable)
    empties: list[object] = [[], ()]
    for empty in empties:
        with pytest.raises(OctopodsValidationError, match="recipients: is an empty list"):
            check_recipients(empty)
    for value, kind in ((42, "int"), ({"phone": "+447700900101"}, "dict"), (None, "NoneType")):
        with pytest.raises(
            OctopodsValidationError, match=f"recipients: must be a list of rows or a CSV path, got {kind}"
        ):
            check_recipients(value)


# -- opt_out_check ----------------------------------------------------------------------------------


class FakeVariables:
    """What ``_variable_list`` uses of Airflow's ``Variable``: ``get(key, default)``."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)


@pytest.fixture
def variables(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Airflow Variables as the opt-out loader reaches them, kept in a dict the test fills."""
    values: dict[str, str] = {}
    fake = FakeVariables(values)
    monkeypatch.setattr("airflow_provider_octopods.runtime.variables", lambda: fake)
    return values


def test_no_opt_out_means_no_check() -> None:
    assert opt_out_check(None, default_region="GB") is None


def test_an_opt_out_list_matches_numbers_in_any_form_with_the_default_region() -> None:
    numbers = ["07700 900001", "+44 7700 900002", "not a number"]
    check = opt_out_check(numbers, default_region="GB")
    assert check is not None
    assert [check(f"+44770090000{n}") for n in range(1, 4)] == [True, True, False]
    without_region = opt_out_check(numbers, default_region=None)
    assert without_region is not None
    assert not without_region("+447700900001")  # a national number means nothing without a region
    assert without_region("+447700900002")


def test_a_callable_opt_out_is_asked_with_the_e164_number() -> None:
    asked: list[str] = []

    def replied_stop(phone: str) -> Any:
        asked.append(phone)
        return "yes" if phone.endswith("1") else None

    check = opt_out_check(replied_stop, default_region=None)
    assert check is not None
    assert (check("+447700900001"), check("+447700900002")) == (True, False)
    assert asked == ["+447700900001", "+447700900002"]


@pytest.mark.parametrize(
    "stored",
    [
        pytest.param('["07700 900001", "+447700900002"]', id="JSON list"),
        pytest.param("07700 900001, +447700900002,", id="comma-separated"),
        pytest.param("07700 900001\n+447700900002\n\n", id="line-separated"),
    ],
)
def test_an_opt_out_variable_holds_a_list_in_any_of_its_forms(variables: dict[str, str], stored: str) -> None:
    variables["sms_opt_out"] = stored
    check = opt_out_check("sms_opt_out", default_region="GB")
    assert check is not None
    assert [check(f"+44770090000{n}") for n in range(1, 4)] == [True, True, False]


def test_an_opt_out_variable_that_is_missing_or_not_a_list_is_refused(variables: dict[str, str]) -> None:
    with pytest.raises(
        OctopodsValidationError, match="opt_out: names the Variable 'sms_opt_out', which does not exist"
    ):
        opt_out_check("sms_opt_out", default_region="GB")
    variables["sms_opt_out"] = '{"numbers": ["+447700900001"]}'
    with pytest.raises(OctopodsValidationError, match="opt_out: Variable 'sms_opt_out' must hold a list of numbers"):
        opt_out_check("sms_opt_out", default_region="GB")


def test_an_opt_out_of_another_type_is_refused() -> None:
    with pytest.raises(OctopodsValidationError, match="opt_out: must be a list, a callable or a Variable name, got 42"):
        opt_out_check(42, default_region=None)


# -- body_renderer ----------------------------------------------------------------------------------


def renderer(body: str, context: dict[str, Any] | None = None) -> tuple[Any, list[dict[str, str]]]:
    """The renderer the batch operator builds, with the operator's own template environment."""
    op = OctopodsSendBatchOperator(task_id="remind", recipients=ROWS, body=body)
    return body_renderer(op.get_template_env(), op.body_template, context or {}, op.phone_field)


def test_the_body_renders_the_template_and_the_context_but_row_values_as_data() -> None:
    context = {"ds": "2026-11-25", "conn": {"octopods_default": {"password": "the-key"}}}
    render, _ = renderer("{{ recipient.name }} / {{ 6*7 }} / {{ ds }}", context)
    assert [render(row) for row in PROBES] == [f"{row['name']} / 42 / 2026-11-25" for row in PROBES]
    assert "recipient" not in context  # the task's context is not changed


def test_the_first_renders_are_kept_as_samples_with_masked_phones() -> None:
    render, samples = renderer("Hi {{ recipient.name }}")
    rows = [{"phone": f"+44770090010{n}", "name": f"P{n}"} for n in range(SAMPLES + 2)]
    rows[1] = {"name": "no phone"}
    texts = [render(row) for row in rows]
    assert texts == [f"Hi {row['name']}" for row in rows]
    assert samples == [
        {"phone": "+44*******100", "body": "Hi P0"},
        {"phone": "***", "body": "Hi no phone"},
        {"phone": "+44*******102", "body": "Hi P2"},
    ]
    assert len(samples) == SAMPLES


def test_an_opt_out_variable_holding_one_number_alone_is_a_list_of_one(variables: dict[str, str]) -> None:
    variables["sms_opt_out"] = "447700900001"  # JSON reads it as a number
    check = opt_out_check("sms_opt_out", default_region="GB")
    assert check is not None
    assert check("+447700900001")
    assert not check("+447700900002")


def test_under_native_rendering_a_row_value_stays_text() -> None:
    from airflow.providers.common.compat.sdk import DAG

    from airflow_provider_octopods.operators.octopods import OctopodsSendBatchOperator

    with DAG(dag_id="native", schedule=None, render_template_as_native_obj=True):
        op = OctopodsSendBatchOperator(task_id="t", recipients=[{"phone": "+1"}], body="{{ recipient.code }}")
    render, _ = body_renderer(op.get_template_env(), op.body_template, {}, "phone")
    assert [render({"phone": "+447700900001", "code": code}) for code in ("123456", "True", "[1, 2]")] == [
        "123456",
        "True",
        "[1, 2]",
    ]
