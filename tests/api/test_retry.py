from __future__ import annotations

import random
from datetime import datetime, timezone

import pytest

from airflow_provider_octopods.api import errors
from airflow_provider_octopods.api.retry import (
    Failure,
    Operation,
    RetryPolicy,
    is_retryable,
    parse_retry_after,
    transport_error,
)

NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5", 5.0),
        (" 0.5 ", 0.5),
        ("-3", 0.0),
        ("Tue, 24 Nov 2026 12:00:10 GMT", 10.0),
        ("Tue, 24 Nov 2026 11:59:00 GMT", 0.0),
        ("soon", None),
        ("nan", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def server(status: int) -> errors.OctopodsServerError:
    return errors.OctopodsServerError("x", http_status=status)


@pytest.mark.parametrize(
    ("error", "send", "status"),
    [
        (errors.OctopodsRateLimitError("x", http_status=429), True, True),
        (errors.OctopodsTransportError("x"), True, True),
        (server(503), True, True),
        (server(500), False, True),
        (server(502), False, True),
        (server(504), False, True),
        (errors.OctopodsUnknownOutcomeError("x"), False, False),
        (errors.OctopodsInvalidPhoneError("x", error_code=3), False, False),
        (errors.OctopodsAuthError("x", http_status=401), False, False),
        (errors.OctopodsSmsRejectedError("x", error_code=4), False, False),
    ],
)
def test_what_each_call_may_retry(error: errors.OctopodsError, send: bool, status: bool) -> None:
    assert is_retryable(Operation.SEND, error) is send
    assert is_retryable(Operation.STATUS, error) is status


def test_transport_failures_by_operation() -> None:
    assert isinstance(transport_error(Operation.SEND, Failure.NOT_SENT, "refused"), errors.OctopodsTransportError)
    unknown = transport_error(Operation.SEND, Failure.NO_ANSWER, "read timeout")
    assert isinstance(unknown, errors.OctopodsUnknownOutcomeError)
    assert "may or may not have been sent" in str(unknown)
    assert isinstance(transport_error(Operation.STATUS, Failure.NO_ANSWER, "read timeout"), errors.OctopodsServerError)


def test_backoff_is_capped_exponential_and_honours_retry_after() -> None:
    policy = RetryPolicy(max_attempts=6, backoff=1.0, max_backoff=8.0)
    rng = random.Random(1)
    plain = errors.OctopodsTransportError("x")
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 8.0)]:
        delay = policy.delay(attempt, plain, rng)
        assert ceiling / 2 <= delay <= ceiling
    assert policy.delay(1, errors.OctopodsRateLimitError("x", retry_after=3.0)) == 3.0
    assert policy.delay(1, errors.OctopodsRateLimitError("x", retry_after=3600.0)) == 8.0
    assert policy.should_retry(Operation.SEND, plain, 5)
    assert not policy.should_retry(Operation.SEND, plain, 6)
