"""Hostile text is refused before any request, by the one validation every sender shares.

Allowed in a body: printable text in any script, emoji (with their zero-width joiners), line
breaks (LF, CR) and tabs. Refused: other C0/C1 control characters (NUL, BEL, ESC, DEL, U+0085,
U+009B...), bidirectional controls, lone surrogates, and a body that shows nothing (only
whitespace and invisible characters). One-line values (phone, contact name, teammate id) refuse
line breaks and tabs as well.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
import requests_mock
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_octopods.api import build_send_request
from airflow_provider_octopods.api.batch import RowOutcome, plan_batch
from airflow_provider_octopods.api.errors import OctopodsValidationError
from airflow_provider_octopods.api.validation import normalize_phone, optional_text, validate_body
from airflow_provider_octopods.hooks.octopods import OctopodsHook
from airflow_provider_octopods.notifications.octopods import OctopodsNotifier
from airflow_provider_octopods.operators.octopods import OctopodsSendBatchOperator, OctopodsSendSmsOperator
from airflow_provider_octopods.sensors.octopods import OctopodsDeliverySensor
from tests.conftest import TEST_KEY

PHONE = "+15551234567"
PHONE_DIGITS = "5551234567"
# A body that carries a phone number, so that any echo of the body in an error would show it.
TEXT = f"Call {PHONE} now"

CONTROLS = {
    "NUL": "\x00",
    "BEL": "\x07",
    "backspace": "\x08",
    "vertical tab": "\x0b",
    "form feed": "\x0c",
    "ESC": "\x1b",
    "ANSI colour": "\x1b[31m",
    "DEL": "\x7f",
    "NEL (C1)": "\x85",
    "CSI (C1)": "\x9b",
}
BIDI = {f"U+{ord(c):04X}": c for c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"}
SURROGATES = {"U+D800": "\ud800", "U+DFFF": "\udfff", "U+DC80": "\udc80"}
INVISIBLE_ONLY = ["\u200b", "\u200b\u200c\u200d\u2060\ufeff", " \u200b\n\t\ufeff ", "\u00ad\u2800\u3164", "\ufe0f"]


def hostile_cases() -> list[Any]:
    cases = [pytest.param(char, "control character", id=name) for name, char in CONTROLS.items()]
    cases += [pytest.param(char, "bidirectional control character", id=name) for name, char in BIDI.items()]
    cases += [pytest.param(char, "lone surrogate", id=name) for name, char in SURROGATES.items()]
    return cases


def assert_safe_message(err: BaseException, field: str) -> None:
    """The error names the field, never shows the key, never shows a phone number unmasked."""
    text = str(err)
    assert f"{field}: " in text
    assert TEST_KEY not in text
    assert PHONE_DIGITS not in text


@pytest.mark.parametrize(("char", "problem"), hostile_cases())
def test_a_body_with_a_hostile_character_is_refused(char: str, problem: str) -> None:
    with pytest.raises(OctopodsValidationError, match=problem) as err:
        validate_body(f"{TEXT}{char} please")
    assert err.value.field == "body"
    assert f"U+{ord(char[0]):04X} at position {len(TEXT) + 1}" in err.value.problem
    assert_safe_message(err.value, "body")


@pytest.mark.parametrize(
    "body",
    [
        "line one\nline two",
        "windows\r\nline break",
        "name:\tvalue",
        "\U0001f469\u200d\U0001f4bb deploy finished",  # an emoji joined with U+200D
        "Ihr Termin ist morgen um 9:00 \u2013 bis dann!",
        "\u0645\u0648\u0639\u062f\u0643 \u063a\u062f\u0627",  # Arabic, shown right to left by itself
        "\u0928\u092e\u0938\u094d\u200d\u0924\u0947",  # Devanagari with a zero-width joiner
    ],
)
def test_ordinary_text_line_breaks_and_tabs_are_accepted(body: str) -> None:
    assert validate_body(body) == body


@pytest.mark.parametrize("body", INVISIBLE_ONLY)
def test_a_body_of_only_invisible_characters_counts_as_empty(body: str) -> None:
    with pytest.raises(OctopodsValidationError, match="is empty or blank") as err:
        validate_body(body)
    assert err.value.field == "body"


@pytest.mark.parametrize("field", ["destination_user_name", "intercom_teammate_id"])
@pytest.mark.parametrize(("char", "problem"), [*hostile_cases(), ("\n", "line break"), ("\t", "tab")])
def test_one_line_texts_refuse_hostile_characters_and_line_breaks(field: str, char: str, problem: str) -> None:
    with pytest.raises(OctopodsValidationError, match=problem) as err:
        optional_text(f"Ada{char}Lovelace", field=field)
    assert err.value.field == field
    assert_safe_message(err.value, field)


def test_a_name_of_only_invisible_characters_is_no_name() -> None:
    assert optional_text("\u200b\ufeff", field="destination_user_name") is None


@pytest.mark.parametrize(("char", "problem"), [*hostile_cases(), ("\n", "line break")])
def test_a_phone_with_a_hostile_character_is_refused_masked(char: str, problem: str) -> None:
    with pytest.raises(OctopodsValidationError, match=problem) as err:
        normalize_phone(f"+1555123{char}4567")
    assert err.value.field == "phone"
    assert_safe_message(err.value, "phone")


@pytest.mark.parametrize(
    ("phone", "problem"),
    [
        ("+1-800-FLOWERS", "contains letters"),
        ("+1 650 253 0000 ext. 12", "has an extension"),
        ("+1 650 253 0000 x12", "has an extension"),
    ],
)
def test_phone_letters_and_extensions_are_refused(phone: str, problem: str) -> None:
    with pytest.raises(OctopodsValidationError, match=problem) as err:
        normalize_phone(phone)
    assert err.value.field == "phone"
    assert "FLOWERS" not in str(err.value)
    assert "6502530000" not in str(err.value).replace(" ", "")


def test_the_shared_request_builder_refuses_each_field() -> None:
    for kwargs, field in [
        ({"body": "a\x00b"}, "body"),
        ({"phone": "+1555123\u202e4567"}, "phone"),
        ({"destination_user_name": "Ada\x1b[2J"}, "destination_user_name"),
        ({"intercom_teammate_id": "\u2066123"}, "intercom_teammate_id"),
    ]:
        with pytest.raises(OctopodsValidationError) as err:
            build_send_request(**({"phone": PHONE, "body": "Hello"} | kwargs))
        assert err.value.field == field


# -- every sender goes through that validation --------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"body": "Hello\x07"}, "body"),
        ({"body": "\u200b\u200b"}, "body"),
        ({"body": "Hello \u202eworld"}, "body"),
        ({"destination_user_name": "Ada\x00"}, "destination_user_name"),
        ({"phone": "+1555123\x004567"}, "phone"),
    ],
)
def test_the_operator_refuses_a_hostile_literal_when_the_dag_is_parsed(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=f"task 'send'.* {field}: ") as err:
        OctopodsSendSmsOperator(**({"task_id": "send", "phone": PHONE, "body": "Hello"} | kwargs))
    assert PHONE_DIGITS not in str(err.value)


@pytest.mark.parametrize(
    ("field", "rendered", "problem"),
    [
        ("body", f"{TEXT}\x1b[31m", "control character U\\+001B"),
        ("body", f"{TEXT}\ud800", "lone surrogate"),
        ("body", "\ufeff\u200b \n", "is empty or blank"),
        ("body", f"{TEXT}\u202e", "bidirectional control character"),
        ("destination_user_name", "Ada\x00", "control character U\\+0000"),
        ("destination_user_name", "Ada\u2067", "bidirectional"),
        ("destination_user_name", "Ada\udfff", "lone surrogate"),
    ],
)
def test_the_operator_refuses_a_hostile_rendered_value_without_a_request(
    octopods_conn: str, requests_mock: requests_mock.Mocker, field: str, rendered: str, problem: str
) -> None:
    task = OctopodsSendSmsOperator(task_id="send", phone=PHONE, body="Hello")
    setattr(task, field, rendered)  # what rendering produced
    with pytest.raises(AirflowFailException, match=f"{field}: .*{problem}") as err:
        task.execute({"ti": mock.MagicMock()})
    assert isinstance(err.value, OctopodsValidationError)  # not a UnicodeEncodeError from the wire
    assert_safe_message(err.value, field)
    assert requests_mock.call_count == 0


def test_the_hook_refuses_hostile_text_without_a_request(
    octopods_conn: str, requests_mock: requests_mock.Mocker
) -> None:
    with pytest.raises(AirflowFailException, match="body: contains the control character U\\+0007") as err:
        OctopodsHook().build_send_request(PHONE, f"{TEXT}\x07")
    assert_safe_message(err.value, "body")
    assert requests_mock.call_count == 0


def test_the_notifier_refuses_a_hostile_literal_body_when_the_dag_is_parsed() -> None:
    with pytest.raises(ValueError, match="body: contains the control character U\\+001B"):
        OctopodsNotifier(phones=PHONE, body="Build failed \x1b[31mbadly")


def test_the_notifier_logs_a_hostile_rendered_body_and_sends_nothing(
    octopods_conn: str, requests_mock: requests_mock.Mocker, read_logs: Callable[[], str]
) -> None:
    notifier = OctopodsNotifier(phones=PHONE, body="ok")
    notifier.body = f"{TEXT}\u202e"  # what rendering produced
    notifier.notify({})
    logs = read_logs()
    assert "Octopods alert was not sent: body: contains a bidirectional control character (U+202E" in logs
    assert requests_mock.call_count == 0
    assert TEST_KEY not in logs
    assert PHONE_DIGITS not in logs


def test_a_notifier_body_of_only_invisible_characters_means_the_default_text(
    octopods_conn: str, requests_mock: requests_mock.Mocker
) -> None:
    requests_mock.post("https://app.octopods.io/api/v1/sms/messages", status_code=201, json={"message_id": 1})
    notifier = OctopodsNotifier(phones=PHONE, body="\u200b\ufeff")
    notifier.notify({"exception": ValueError("boom")})
    assert requests_mock.last_request.json()["body"].startswith("Airflow: ")


def test_a_batch_row_whose_rendered_body_has_a_control_character_is_reported_invalid() -> None:
    rows = [{"phone": PHONE, "name": "Ada"}, {"phone": "+15551234568", "name": "Eve\x1b]0;pwned\x07"}]
    plan = plan_batch(rows, render=lambda row: f"Hi {row['name']}")
    assert [send.row for send in plan.sends] == [1]
    [invalid] = plan.set_aside
    assert (invalid.row, invalid.outcome) == (2, RowOutcome.INVALID)
    assert str(invalid.error).startswith("body: contains the control character U+001B")
    assert "5551234568" not in str(invalid.error)


def test_the_batch_operator_reports_the_row_through_the_shared_validation(octopods_conn: str) -> None:
    rows = [{"phone": PHONE, "name": "Ada"}, {"phone": "+15551234568", "name": "\u202eEve"}]
    op = OctopodsSendBatchOperator(
        task_id="remind", recipients=rows, body="Hi {{ recipient.name }}", dry_run=True, max_invalid_ratio=0.5
    )
    ti = mock.MagicMock(dag_id="d", run_id="r", task_id="remind", map_index=-1, try_number=1)
    summary = op.execute({"ti": ti, "task_instance": ti})
    assert (summary["accepted"], summary["invalid"]) == (0, 1)
    [row] = [r for r in summary["rows"] if r["outcome"] == "invalid"]
    assert row["row"] == 2
    assert row["error"].startswith("body: contains a bidirectional control character (U+202E")


@pytest.mark.parametrize("conn_id", ["", "octo\x00pods", "octo\npods", "x" * 251, 42, ["octopods_default"]])
def test_a_connection_id_that_cannot_name_a_connection_is_refused_when_the_dag_is_parsed(conn_id: object) -> None:
    for build in (
        lambda: OctopodsSendSmsOperator(task_id="send", phone=PHONE, body="Hello", octopods_conn_id=conn_id),
        lambda: OctopodsDeliverySensor(task_id="track", message_id=42, octopods_conn_id=conn_id),
        lambda: OctopodsNotifier(phones=PHONE, octopods_conn_id=conn_id),
        lambda: OctopodsSendBatchOperator(task_id="remind", recipients=[], body="Hi", octopods_conn_id=conn_id),
    ):
        with pytest.raises(ValueError, match="octopods_conn_id: "):
            build()
