"""Response parsing and error mapping for every documented variant and error."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from airflow_provider_octopods.api import build_send_request, errors
from airflow_provider_octopods.api.decision import Operation, decide
from airflow_provider_octopods.api.models import DeliveryStatus
from airflow_provider_octopods.api.protocol import (
    ApiCall,
    RawResponse,
    error_from_response,
    parse_send_response,
    parse_status_response,
    request_headers,
    send_call,
    status_call,
    status_url,
)
from airflow_provider_octopods.api.segments import Encoding

REQUEST = build_send_request("+15551234567", "Hello")


def raw(status: int, payload: object = None, *, body: bytes | None = None, **headers: str) -> RawResponse:
    data = body if body is not None else json.dumps(payload).encode()
    return RawResponse(status, data, headers)


def test_send_current_shape() -> None:
    result = parse_send_response(
        raw(201, {"request_id": "r1", "message_id": 4829174, "phone_number": "+15551234567"}), REQUEST
    )
    assert (result.request_id, result.message_id, result.phone) == ("r1", 4829174, "+15551234567")
    assert (result.segments, result.encoding, result.trackable) == (1, Encoding.GSM7, True)
    assert result.to_dict()["encoding"] == "GSM-7"


def test_send_legacy_shape_without_plus_and_with_channel_message_id() -> None:
    result = parse_send_response(
        raw(201, {"message_id": 42, "phone_number": "15551234567", "request_id": "r", "channel_message_id": "SM1"}),
        REQUEST,
    )
    assert result.message_id == 42
    assert result.phone == "+15551234567"  # what we sent, normalised; not the API's echo
    assert result.channel_message_id == "SM1"


def test_send_hubspot_shape_has_no_message_id() -> None:
    result = parse_send_response(raw(201, {"request_id": "e23080fd"}), REQUEST)
    assert result.message_id is None
    assert not result.trackable
    assert result.request_id == "e23080fd"


def test_send_2xx_with_unreadable_body_is_an_unknown_outcome() -> None:
    with pytest.raises(errors.OctopodsUnknownOutcomeError, match="probably sent") as err:
        parse_send_response(raw(201, body=b"{not json"), REQUEST)
    assert err.value.http_status == 201
    assert decide(Operation.SEND, err.value).maybe_sent


def test_status_legacy_shape() -> None:
    status = parse_status_response(
        raw(
            200,
            {
                "message_id": 42,
                "status": "DELIVERED",
                "status_message": "Your message has been delived successfully.",
                "last_updated": "2023-07-07T11:15:46.000Z",
                "request_id": "d8c0d247-cfc9-48d7-868d-e6afdadb44dc",
            },
        ),
        42,
    )
    assert status.status is DeliveryStatus.DELIVERED
    assert status.raw_status == "DELIVERED"
    assert status.reason == "Your message has been delived successfully."
    assert status.last_updated == datetime(2023, 7, 7, 11, 15, 46, tzinfo=timezone.utc)
    assert status.request_id == "d8c0d247-cfc9-48d7-868d-e6afdadb44dc"


def test_status_current_shape() -> None:
    payload = {
        "request_id": "b14f",
        "message_id": 4829174,
        "status": "failed",
        "phone_number": "+15551234567",
        "sent_at": "2026-04-24T10:23:45Z",
        "delivered_at": None,
        "failure_reason": "Not a valid mobile subscriber",
        "intercom_conversation_id": "c1",
    }
    status = parse_status_response(raw(200, payload), 4829174)
    assert status.status is DeliveryStatus.FAILED
    assert status.reason == "Not a valid mobile subscriber"
    assert status.sent_at == datetime(2026, 4, 24, 10, 23, 45, tzinfo=timezone.utc)
    assert status.delivered_at is None
    assert status.raw["intercom_conversation_id"] == "c1"  # unknown fields are kept
    assert "phone" not in json.dumps(status.to_dict())  # the summary for XCom carries no number


@pytest.mark.parametrize("value", ["Bounced", None, 7, ""])
def test_status_unknown_values_map_to_unknown(value: object) -> None:
    status = parse_status_response(raw(200, {"message_id": 1, "status": value}), 1)
    assert status.status is DeliveryStatus.UNKNOWN


def test_status_with_bad_timestamps_does_not_crash() -> None:
    status = parse_status_response(raw(200, {"status": "sent", "sent_at": "yesterday"}), 9)
    assert status.sent_at is None
    assert status.message_id == 9


@pytest.mark.parametrize(
    ("code", "operation", "cls", "retry_safe"),
    [
        (1, Operation.SEND, errors.OctopodsArgumentMissingError, False),
        (1, Operation.STATUS, errors.OctopodsNotFoundError, False),
        (2, Operation.SEND, errors.OctopodsEmptyBodyError, False),
        (3, Operation.SEND, errors.OctopodsInvalidPhoneError, False),
        (4, Operation.SEND, errors.OctopodsSmsRejectedError, True),
        (5, Operation.SEND, errors.OctopodsDeprecatedKeyError, False),
        (5, Operation.STATUS, errors.OctopodsDeprecatedKeyError, False),
        (99, Operation.SEND, errors.OctopodsAPIError, False),
    ],
)
def test_error_codes(code: int, operation: Operation, cls: type, retry_safe: bool) -> None:
    error = error_from_response(
        raw(400, {"request_id": "req-9", "error_code": code, "error": "Invalid Phone number."}),
        operation,
        message_id=7 if operation is Operation.STATUS else None,
    )
    assert type(error) is cls
    assert (error.error_code, error.request_id, error.http_status) == (code, "req-9", 400)
    assert decide(operation, error).retry_task is retry_safe
    assert "Invalid Phone number." in str(error)
    assert "request_id=req-9" in str(error)


def test_deprecated_key_is_an_auth_error() -> None:
    error = error_from_response(raw(400, {"error_code": 5, "error": "rotated"}), Operation.SEND)
    assert isinstance(error, errors.OctopodsAuthError)
    assert "rotated or revoked" in str(error)


@pytest.mark.parametrize("status", [401, 403])
def test_unauthorised(status: int) -> None:
    error = error_from_response(raw(status, {"error": "Invalid API key."}), Operation.SEND)
    assert type(error) is errors.OctopodsAuthError
    assert f"HTTP {status}" in str(error)


@pytest.mark.parametrize(
    ("call", "where"),
    [
        (send_call("https://api.example.com", REQUEST), "send"),
        (status_call("https://api.example.com:8443/", 7), "status of message 7"),
    ],
)
def test_a_refused_key_names_the_host_and_says_http_401_once(call: ApiCall[object], where: str) -> None:
    error = call.error(raw(401, {"error": "Invalid API key.", "request_id": "req-1"}))
    assert type(error) is errors.OctopodsAuthError
    host = "api.example.com" if where == "send" else "api.example.com:8443"
    assert str(error) == (
        f"the API key was refused by {host} during {where} (HTTP 401, request_id=req-1); "
        "check the API key in the password field of the connection"
    )
    error.conn_id = "octopods_eu"  # as the hook's clients name it
    assert str(error).endswith("; check the API key in the password field of connection 'octopods_eu'")
    assert str(error).count("HTTP 401") == 1


def test_rate_limit_reads_retry_after() -> None:
    error = error_from_response(raw(429, {}, **{"Retry-After": "7"}), Operation.SEND)
    assert isinstance(error, errors.OctopodsRateLimitError)
    assert error.retry_after == 7.0


def test_html_gateway_page_is_a_server_error_naming_the_status() -> None:
    page = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
    error = error_from_response(raw(502, body=page), Operation.STATUS, message_id=3)
    assert isinstance(error, errors.OctopodsServerError)
    assert "HTTP 502" in str(error)
    assert "502 Bad Gateway" in str(error)


def test_status_200_with_non_json_is_a_server_error() -> None:
    with pytest.raises(errors.OctopodsServerError, match="not the documented JSON"):
        parse_status_response(raw(200, body=b"<html>oops</html>"), 3)


def test_404_without_code() -> None:
    error = error_from_response(raw(404, body=b"Not Found"), Operation.STATUS, message_id=3)
    assert isinstance(error, errors.OctopodsNotFoundError)


def test_unexpected_status() -> None:
    error = error_from_response(raw(418, body=b"teapot"), Operation.SEND)
    assert type(error) is errors.OctopodsAPIError
    assert "HTTP 418" in str(error)


def test_headers_and_urls() -> None:
    headers = request_headers("k")
    assert headers["X-Octopods-Auth"] == "k"
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"].startswith("airflow-provider-octopods/")
    assert status_url("https://app.octopods.io/", 42) == "https://app.octopods.io/api/v1/sms/messages/42"
    assert status_url("http://h", "a/b") == "http://h/api/v1/sms/messages/a%2Fb"
