"""What errors and reprs carry: a server's text cut short with phone numbers masked, no raw
phone in a result's repr, no password from a connection's host in a configuration error."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from airflow_provider_octopods.api import build_send_request, errors
from airflow_provider_octopods.api.decision import Operation
from airflow_provider_octopods.api.masking import mask_phones_in, server_text
from airflow_provider_octopods.api.models import MessageStatus, SendResult
from airflow_provider_octopods.api.protocol import (
    RawResponse,
    error_from_response,
    parse_send_response,
    parse_status_response,
)
from airflow_provider_octopods.api.settings import settings_from_connection
from airflow_provider_octopods.api.transport import describe
from tests.security.conftest import BOTH_CLIENTS, Make, RawServer, answer, settings_for

PHONE = "+15551234567"
OTHER_PHONE = "+44 7700 900123"
REQUEST = build_send_request(PHONE, "Hello")
HUGE = "E" * (5 * 1024 * 1024)
ECHO = f"Invalid phone number {PHONE} for body 'call {OTHER_PHONE} now'"


def assert_no_phone(text: str) -> None:
    for digits in ("5551234567", "7700900123", "7700 900123"):
        assert digits not in text


ERROR_ANSWERS = [
    (400, {"error_code": 3, "error": HUGE}),
    (400, {"error_code": 99, "error": HUGE}),
    (400, {"error_code": 1, "error": HUGE}),
    (400, {"error_code": 5, "error": HUGE}),
    (500, {"error": HUGE}),
    (418, {"error": HUGE}),
    (400, {"error_code": 3, "error": "bad", "request_id": HUGE}),
]


@pytest.mark.parametrize(("status", "payload"), ERROR_ANSWERS)
@pytest.mark.parametrize("operation", list(Operation))
def test_a_huge_server_text_is_cut_to_a_few_hundred_characters(
    status: int, payload: dict[str, object], operation: Operation
) -> None:
    error = error_from_response(RawResponse(status, json.dumps(payload).encode()), operation, message_id=7)
    assert isinstance(error, errors.OctopodsError)
    assert len(str(error)) < 1000
    assert len(repr(error)) < 1000
    assert error.request_id is None or len(error.request_id) <= 128


@pytest.mark.parametrize(("status", "extra"), [(400, {"error_code": 3}), (400, {"error_code": 42}), (503, {})])
def test_phone_numbers_a_server_echoes_are_masked(status: int, extra: dict[str, object]) -> None:
    body = json.dumps({"error": ECHO, **extra}).encode()
    error = error_from_response(RawResponse(status, body), Operation.SEND)
    text = str(error)
    assert_no_phone(text)
    assert "+1*******567" in text
    assert "+44*******123" in text
    assert "for body" in text  # the rest of the server's explanation stays


@pytest.mark.parametrize("status", [502, 404, 302])
def test_a_page_quoted_in_an_error_is_short_and_masked(status: int) -> None:
    page = f"<html><body>Gateway error for {PHONE}</body></html>".encode() + b"x" * 100_000
    error = error_from_response(RawResponse(status, page), Operation.STATUS, message_id=3)
    assert_no_phone(str(error))
    assert len(str(error)) < 400


def test_an_unreadable_answer_is_quoted_short_and_masked() -> None:
    body = f"sent to {PHONE} ".encode() * 50_000
    with pytest.raises(errors.OctopodsUnknownOutcomeError) as sent:
        parse_send_response(RawResponse(201, body), REQUEST)
    with pytest.raises(errors.OctopodsServerError) as status:
        parse_status_response(RawResponse(200, body), 42)
    for error in (sent.value, status.value):
        assert_no_phone(str(error))
        assert len(str(error)) < 700


def test_status_texts_are_cut_and_masked() -> None:
    payload = {"message_id": 42, "status": "failed", "failure_reason": f"{ECHO} " + HUGE, "status_message": ECHO}
    status = MessageStatus.from_response(payload, message_id=42)
    assert status.reason is not None
    assert len(status.reason) <= 500
    assert_no_phone(status.reason)
    assert_no_phone(str(status.status_message))
    assert "Invalid phone number +1*******567" in status.reason


@BOTH_CLIENTS
def test_a_client_error_carries_a_short_masked_server_text(serve: Callable[..., RawServer], make: Make) -> None:
    server = serve(answer(400, {"error_code": 3, "error": ECHO + " " + "E" * 900_000, "request_id": "q" * 5000}))
    with pytest.raises(errors.OctopodsInvalidPhoneError) as err:
        make(settings_for(server.url), Operation.SEND, 1)
    assert len(str(err.value)) < 1000
    assert_no_phone(str(err.value))


def test_a_library_message_quoting_the_server_is_masked() -> None:
    import http.client

    text = describe(http.client.BadStatusLine(f"HTTP/1.1 200 OK for {PHONE} " + "x" * 500))
    assert_no_phone(text)
    assert len(text) <= 160


# Reprs


def test_reprs_of_results_mask_the_phone() -> None:
    result = SendResult.from_response(
        {"request_id": "r", "message_id": 42, "phone_number": PHONE}, phone=PHONE, segments=REQUEST.segment_info
    )
    status = MessageStatus.from_response({"message_id": 42, "status": "sent", "phone_number": PHONE}, message_id=42)
    for shown in (repr(result), repr(status), repr(REQUEST), str(result), str(status)):
        assert_no_phone(shown)
        assert "+1*******567" in shown
    assert "message_id=42" in repr(result)
    assert "status=<DeliveryStatus.SENT: 'sent'>" in repr(status)
    assert result.phone == PHONE  # the object itself keeps the number it sent to


# Connection hosts


@pytest.mark.parametrize(
    "host",
    [
        "ftp://user:KEY-s3cret@x.com",
        "ftp://user:KEY-s3cret@x.com:21/path",
        "ftp://KEY-s3cret@x.com",
        "ldap://user:p@KEY-s3cret@x.com",
        "//user:KEY-s3cret@x.com",
    ],
)
def test_a_host_that_is_not_a_url_is_echoed_without_its_userinfo(host: str) -> None:
    with pytest.raises(errors.OctopodsConfigurationError, match="is not a URL") as err:
        settings_from_connection("octo", host=host, password="k")
    text = str(err.value)
    assert "s3cret" not in text
    assert "user" not in text
    assert "***@" in text
    assert "x.com" in text


@pytest.mark.parametrize("host", ["https://user:KEY-s3cret@x.com", "user:KEY-s3cret@x.com", "KEY-s3cret@x.com"])
def test_a_url_with_credentials_is_refused_without_echoing_them(host: str) -> None:
    with pytest.raises(errors.OctopodsConfigurationError, match="no credentials") as err:
        settings_from_connection("octo", host=host, password="k")
    assert "s3cret" not in str(err.value)


# The masking helper


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("call +15551234567 now", "call +1*******567 now"),
        ("call +1 (555) 123-4567.", "call +1*******567."),
        ("to +44 7700 900123, or", "to +44*******123, or"),
        ("national 07700900123", "national ********123"),
        ("phone:+15551234567", "phone:+1*******567"),
        ("tel:+15551234567", "tel:+1*******567"),
        ("+15551234567: not a mobile", "+1*******567: not a mobile"),
        ("15551234567-invalid", "********567-invalid"),
    ],
)
def test_phone_numbers_in_text_are_masked(text: str, masked: str) -> None:
    assert mask_phones_in(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "request d8c0d247-1a2b-4c3d-8e9f-446655440000",
        "at 2026-04-24T10:23:45Z",
        "on 2026-04-24 10:23",
        "error_code 3, HTTP 400, 1600 characters",
        "SM0000000000000000000000000000002a",
    ],
)
def test_ids_dates_and_small_numbers_are_left_alone(text: str) -> None:
    assert mask_phones_in(text) == text


def test_server_text_is_one_line_and_cut() -> None:
    assert server_text("a\n\n b\tc") == "a b c"
    cut = server_text("x" * 10_000, limit=300)
    assert (len(cut), cut[-1]) == (300, "…")
    assert server_text(" " * 10_000) == ""
    near_the_cut = "y" * 290 + " " + PHONE + " tail"
    assert_no_phone(server_text(near_the_cut, limit=300))


@pytest.mark.parametrize("page", [" " * 355 + PHONE + " more", "<html>\n" + "    " * 200 + PHONE + " x" * 400])
def test_whitespace_before_a_number_does_not_leave_a_part_of_it_unmasked(page: str) -> None:
    shown = server_text(page)
    assert "5551234" not in shown
    assert_no_phone(shown)
