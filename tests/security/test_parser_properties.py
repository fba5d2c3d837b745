"""Property tests of the response parsers: whatever a server sends (any bytes, any JSON value,
nested deep, huge, of the wrong type, with lone surrogates; any status; any headers), reading it
gives a parsed value or one of the provider's own errors, never a stray library exception."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any, TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_octopods.api import build_send_request
from airflow_provider_octopods.api.decision import Operation
from airflow_provider_octopods.api.errors import OctopodsError
from airflow_provider_octopods.api.models import MAX_MESSAGE_ID, MessageId, MessageStatus, SendResult
from airflow_provider_octopods.api.protocol import (
    RawResponse,
    error_from_response,
    parse_retry_after,
    parse_send_response,
    parse_status_response,
)

T = TypeVar("T")
PHONE = "+15551234567"
REQUEST = build_send_request(PHONE, "Hello")
FIELDS = [
    "message_id",
    "status",
    "error",
    "error_code",
    "request_id",
    "failure_reason",
    "status_message",
    "phone_number",
    "sent_at",
    "delivered_at",
    "last_updated",
    "channel_message_id",
]
EXAMPLES = settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)

# Text with every code point, lone surrogates included.
any_text = st.text(st.characters(exclude_categories=()), max_size=40)
huge_text = st.builds(
    lambda piece, count: piece * count,
    st.sampled_from(["x", "9", f"{PHONE} ", " ", "\n", "é", "\ud800"]),
    st.integers(0, 600_000),
)
huge_int = st.builds(lambda digits: 10**digits - 1, st.integers(19, 6000))
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | huge_int
    | st.floats(allow_nan=True, allow_infinity=True)
    | any_text
    | st.sampled_from(["", "null", "0", "-1", "42", "delivered", "DELIVERED", "2026-04-24T10:23:45Z", PHONE])
)
deep = st.builds(
    lambda depth, opener: json.loads("[" * depth + "]" * depth) if opener == "[" else _nested_dict(depth),
    st.integers(50, 900),
    st.sampled_from(["[", "{"]),
)
json_values = st.recursive(
    scalars | huge_text | deep,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(any_text | st.sampled_from(FIELDS), children),
    max_leaves=12,
)
digit_strings = st.builds(
    lambda digit, count: digit * count, st.sampled_from(["9", "0", "\u00b2", "\u0663", "\uff17"]), st.integers(1, 6000)
)
field_values = json_values | huge_int | digit_strings | st.integers(-(2**70), 2**70)
# Objects shaped like the API's answers (its field names, values of any kind), and any others.
api_shaped = st.fixed_dictionaries({}, optional=dict.fromkeys(FIELDS, field_values))
errors_shaped = st.fixed_dictionaries(
    {"error_code": field_values}, optional={"error": field_values, "request_id": field_values}
)
payloads = api_shaped | errors_shaped | st.dictionaries(st.sampled_from(FIELDS) | any_text, json_values, max_size=8)


def _nested_dict(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def _deep_bytes(depth: int, opener: bytes, closer: bytes, field: bool) -> bytes:
    body = opener * depth + closer * depth
    return b'{"message_id": ' + body + b', "error": ' + body + b"}" if field else body


def _encode(value: object, ascii_only: bool) -> bytes:
    try:
        return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    except (ValueError, RecursionError):
        return b"{}"


bodies = (
    st.binary(max_size=200)
    | st.builds(_encode, api_shaped, st.booleans())
    | st.builds(_encode, errors_shaped, st.booleans())
    | st.builds(_encode, json_values | payloads, st.booleans())
    | st.builds(_deep_bytes, st.integers(900, 100_000), st.just(b"["), st.just(b"]"), st.booleans())
    | st.builds(lambda depth: b'{"a":' * depth + b"1" + b"}" * depth, st.integers(900, 50_000))
    | st.builds(lambda digits: b'{"message_id": ' + b"7" * digits + b"}", st.integers(4000, 6000))
)
headers = st.dictionaries(
    st.sampled_from(["Retry-After", "retry-after", "Content-Type", "X-Other"]) | any_text, any_text, max_size=4
)
responses = st.builds(RawResponse, st.integers(0, 1000) | st.sampled_from([200, 201, 400, 429, 500]), bodies, headers)
message_ids = st.integers(1, MAX_MESSAGE_ID) | st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)


def outcome(read: Callable[[], T]) -> T | OctopodsError:
    """What ``read`` returned, or the provider's error it raised; anything else fails the test."""
    try:
        return read()
    except OctopodsError as err:
        _check_error(err)
        return err


def _check_error(err: OctopodsError) -> None:
    assert len(str(err)) < 2000
    assert "5551234567" not in str(err)


def _check_id(value: MessageId | None) -> None:
    if isinstance(value, int):
        assert 0 < value <= MAX_MESSAGE_ID
    elif value is not None:
        assert isinstance(value, str)
        assert 0 < len(value) <= 64


@EXAMPLES
@given(responses)
def test_a_send_answer_is_read_or_is_our_error(response: RawResponse) -> None:
    result = outcome(lambda: parse_send_response(response, REQUEST))
    if isinstance(result, SendResult):
        assert 200 <= response.status < 300
        _check_id(result.message_id)
        assert PHONE not in repr(result)


@EXAMPLES
@given(responses, message_ids)
def test_a_status_answer_is_read_or_is_our_error(response: RawResponse, message_id: MessageId) -> None:
    result = outcome(lambda: parse_status_response(response, message_id))
    if isinstance(result, MessageStatus):
        assert 200 <= response.status < 300
        assert result.message_id == message_id
        assert PHONE not in repr(result)


@EXAMPLES
@given(responses, st.sampled_from(list(Operation)), st.none() | message_ids)
def test_any_answer_maps_to_our_error(
    response: RawResponse, operation: Operation, message_id: MessageId | None
) -> None:
    error = error_from_response(response, operation, message_id=message_id)
    assert isinstance(error, OctopodsError)
    _check_error(error)


@EXAMPLES
@given(json_values | payloads, message_ids)
def test_the_status_model_takes_any_json_value(payload: Any, message_id: MessageId) -> None:
    result = outcome(lambda: MessageStatus.from_response(payload, message_id=message_id))
    if isinstance(result, MessageStatus):
        assert result.message_id == message_id
        assert result.reason is None or len(result.reason) <= 500


@EXAMPLES
@given(json_values | payloads)
def test_the_send_model_takes_any_json_value(payload: Any) -> None:
    result = outcome(lambda: SendResult.from_response(payload, phone=PHONE, segments=REQUEST.segment_info))
    if isinstance(result, SendResult):
        _check_id(result.message_id)


http_dates = st.builds(
    lambda when, usegmt: format_datetime(when, usegmt=usegmt),
    st.datetimes(timezones=st.just(timezone.utc)),
    st.booleans(),
)
retry_after_values = (
    st.none()
    | any_text
    | http_dates
    | st.floats().map(repr)
    | st.integers().map(str)
    | huge_text.map(lambda text: text[:5000])
    | st.sampled_from(["1e999", "-1e999", "nan", "inf", "-5", " 7 ", "Wed, 21 Oct 99999 07:28:00 GMT", "Mon, 32 Foo"])
)


@EXAMPLES
@given(retry_after_values, st.none() | st.datetimes(timezones=st.just(timezone.utc)))
def test_retry_after_is_a_wait_or_nothing(value: str | None, now: datetime | None) -> None:
    wait = parse_retry_after(value, now=now)
    assert wait is None or (math.isfinite(wait) and wait >= 0)


@EXAMPLES
@given(headers)
def test_a_rate_limit_answer_with_any_headers_is_our_error(fields: dict[str, str]) -> None:
    error = error_from_response(RawResponse(429, b"", fields), Operation.SEND)
    _check_error(error)
    wait = getattr(error, "retry_after", None)
    assert wait is None or (math.isfinite(wait) and wait >= 0)
