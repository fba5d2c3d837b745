from __future__ import annotations

import pytest

from airflow_provider_octopods.api import build_send_request
from airflow_provider_octopods.api.errors import OctopodsValidationError
from airflow_provider_octopods.api.validation import (
    coerce_bool,
    normalize_phone,
    positive_number,
    validate_body,
    validate_message_id,
)


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+15551234567", None, "+15551234567"),
        (" +1 (555) 123-4567 ", None, "+15551234567"),
        ("+353838000000", None, "+353838000000"),
        ("07700 900123", "GB", "+447700900123"),
        ("+447700900123", "US", "+447700900123"),
        ("(202) 555-0143", "us", "+12025550143"),
    ],
)
def test_phone_is_normalised_to_e164(raw: str, region: str | None, expected: str) -> None:
    assert normalize_phone(raw, default_region=region) == expected


@pytest.mark.parametrize(
    ("raw", "region", "problem"),
    [
        ("", None, "is empty"),
        ("   ", None, "is empty"),
        ("5551234567", None, "no country code"),
        ("+1555", None, "is too short for its country"),
        ("+1 555 1234", None, "is a local number: add the area code"),
        ("+999 1234567", None, "not a phone number|unknown country code"),
        ("+1555123456789012", None, "not a"),
        ("call me maybe", "US", "contains letters"),
        (15551234567, None, "must be a string, got int"),
        (None, None, "must be a string, got NoneType"),
    ],
)
def test_bad_phone_names_the_field(raw: object, region: str | None, problem: str) -> None:
    with pytest.raises(OctopodsValidationError, match=problem) as err:
        normalize_phone(raw, default_region=region)
    assert err.value.field == "phone"
    assert str(err.value).startswith("phone: ")
    assert isinstance(err.value, ValueError)


def test_bad_phone_message_masks_the_number() -> None:
    with pytest.raises(OctopodsValidationError) as err:
        normalize_phone("+155512345678901234")
    assert "55512345678901234" not in str(err.value)


def test_bad_region_is_rejected() -> None:
    with pytest.raises(OctopodsValidationError, match="default_region: must be a two-letter region"):
        normalize_phone("07700 900123", default_region="Britain")


@pytest.mark.parametrize("raw", ["+1555CALLNOW", "+1 800 FLOWERS", "+44 7700 9OO123", "+1 555 123 4567 home"])
def test_letters_are_refused_not_read_as_keypad_digits(raw: str) -> None:
    with pytest.raises(OctopodsValidationError, match="contains letters") as err:
        normalize_phone(raw)
    assert err.value.field == "phone"
    for word in ("CALLNOW", "FLOWERS", "9OO123", "5551234567", "home"):
        assert word not in str(err.value)


@pytest.mark.parametrize(
    "raw",
    [
        "+1-555-123-4567 ext 9",
        "+1-555-123-4567 ext. 9",
        "+1 555 123 4567 extension 12",
        "+1-555-123-4567 x9",
        "+15551234567x9",
        "+1-555-123-4567;ext=9",
        "+1-555-123-4567#9",
        "+1 555 123 4567, 9",  # no marker word: only phonenumbers' parse sees the extension
    ],
)
def test_extensions_are_refused_not_dropped(raw: str) -> None:
    with pytest.raises(OctopodsValidationError, match="has an extension; an SMS cannot be sent to an extension") as err:
        normalize_phone(raw)
    assert err.value.field == "phone"
    assert "555" not in str(err.value)


@pytest.mark.parametrize(("raw", "region"), [("07700 900123", "XX"), ("+447700900123", "zz")])
def test_unknown_region_is_an_error_on_default_region(raw: str, region: str) -> None:
    with pytest.raises(OctopodsValidationError, match=f"'{region.upper()}' is not a known region code") as err:
        normalize_phone(raw, default_region=region)
    assert err.value.field == "default_region"
    assert str(err.value).startswith("default_region: ")


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("", "is empty or blank"),
        (" \n\t", "is empty or blank"),
        ("x" * 1601, "is 1601 characters long; the API accepts at most 1600"),
        (None, "must be a string, got NoneType"),
        (42, "must be a string, got int"),
    ],
)
def test_bad_body_names_the_field(body: object, problem: str) -> None:
    with pytest.raises(OctopodsValidationError, match=problem) as err:
        validate_body(body)
    assert err.value.field == "body"


def test_body_at_the_limit_is_accepted() -> None:
    assert validate_body("é" * 1600) == "é" * 1600


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False), (None, None), ("yes", True), ("OFF", False), ("1", True), (0, False), (1, True)],
)
def test_coerce_bool_accepts_the_api_spellings(value: object, expected: bool | None) -> None:
    assert coerce_bool(value, field="open_intercom_conversation") is expected


@pytest.mark.parametrize("value", ["maybe", 2, 1.5, [], "false-ish"])
def test_coerce_bool_rejects_others(value: object) -> None:
    with pytest.raises(OctopodsValidationError, match="open_intercom_conversation: must be a boolean"):
        coerce_bool(value, field="open_intercom_conversation")


@pytest.mark.parametrize(("value", "expected"), [(42, 42), ("4829174", 4829174), (" 7 ", 7), ("msg_ab-1", "msg_ab-1")])
def test_message_id_accepted(value: object, expected: object) -> None:
    assert validate_message_id(value) == expected


@pytest.mark.parametrize("value", [0, -3, True, None, "", "../etc/passwd", "a b", 4.2, "None"])
def test_message_id_rejected(value: object) -> None:
    with pytest.raises(OctopodsValidationError) as err:
        validate_message_id(value)
    assert err.value.field == "message_id"


@pytest.mark.parametrize("value", [0, -1, "abc", None, True, float("inf"), float("nan")])
def test_positive_number_rejects(value: object) -> None:
    with pytest.raises(OctopodsValidationError, match="poll_interval: must be a positive number"):
        positive_number(value, field="poll_interval")


def test_build_send_request_validates_every_field() -> None:
    request = build_send_request(
        "07700 900123",
        "Hi",
        default_region="GB",
        destination_user_name="  Jane Doe ",
        open_intercom_conversation="on",
        intercom_teammate_id=12345,
    )
    assert request.to_payload() == {
        "destination_phone": "+447700900123",
        "body": "Hi",
        "destination_user_name": "Jane Doe",
        "open_intercom_conversation": True,
        "intercom_teammate_id": "12345",
    }
    assert build_send_request("+15551234567", "Hi").to_payload() == {
        "destination_phone": "+15551234567",
        "body": "Hi",
    }
    with pytest.raises(OctopodsValidationError, match="destination_user_name: must be a string"):
        build_send_request("+15551234567", "Hi", destination_user_name=["Jane"])
