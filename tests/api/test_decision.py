from __future__ import annotations

import random
from datetime import datetime, timezone

import pytest

from airflow_provider_octopods.api import errors
from airflow_provider_octopods.api.decision import Decision, Operation, Stage, decide, transport_error
from airflow_provider_octopods.api.protocol import parse_retry_after
from airflow_provider_octopods.api.retry import RetryPolicy

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


IN_CALL = Decision(retry_call=True, retry_task=True)
BY_AIRFLOW = Decision(retry_call=False, retry_task=True)
AMBIGUOUS = Decision(retry_call=False, retry_task=False, maybe_sent=True)
NEVER = Decision(retry_call=False, retry_task=False)


@pytest.mark.parametrize(
    ("error", "send", "status"),
    [
        (errors.OctopodsRateLimitError("x", http_status=429), IN_CALL, IN_CALL),
        (errors.OctopodsTransportError("x"), IN_CALL, IN_CALL),
        (errors.OctopodsTLSError("certificate verify failed"), NEVER, NEVER),
        (server(503), IN_CALL, IN_CALL),
        (server(500), AMBIGUOUS, IN_CALL),
        (server(502), AMBIGUOUS, IN_CALL),
        (server(504), AMBIGUOUS, IN_CALL),
        (errors.OctopodsUnknownOutcomeError("x"), AMBIGUOUS, AMBIGUOUS),
        (errors.OctopodsInvalidPhoneError("x", error_code=3), NEVER, NEVER),
        (errors.OctopodsValidationError("phone", "bad"), NEVER, NEVER),
        (errors.OctopodsConfigurationError("no key"), NEVER, NEVER),
        (errors.OctopodsAuthError("x", http_status=401), NEVER, NEVER),
        (errors.OctopodsNotFoundError("x", error_code=1), NEVER, NEVER),
        (errors.OctopodsSmsRejectedError("x", error_code=4), BY_AIRFLOW, BY_AIRFLOW),
        (RecursionError("maximum recursion depth exceeded"), AMBIGUOUS, BY_AIRFLOW),
        (KeyError("message_id"), AMBIGUOUS, BY_AIRFLOW),
    ],
)
def test_one_decision_for_every_failure(error: BaseException, send: Decision, status: Decision) -> None:
    assert decide(Operation.SEND, error) == send
    assert decide(Operation.STATUS, error) == status


def test_transport_failures_by_operation() -> None:
    assert isinstance(transport_error(Operation.SEND, Stage.NOT_SENT, "refused"), errors.OctopodsTransportError)
    unknown = transport_error(Operation.SEND, Stage.NO_ANSWER, "read timeout")
    assert isinstance(unknown, errors.OctopodsUnknownOutcomeError)
    assert "may or may not have been sent" in str(unknown)
    assert isinstance(transport_error(Operation.STATUS, Stage.NO_ANSWER, "read timeout"), errors.OctopodsServerError)


def test_backoff_is_capped_exponential_and_honours_retry_after() -> None:
    policy = RetryPolicy(max_attempts=6, backoff=1.0, max_backoff=8.0)
    rng = random.Random(1)
    plain = errors.OctopodsTransportError("x")
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 8.0)]:
        delay = policy.delay(attempt, plain, rng)
        assert ceiling / 2 <= delay <= ceiling
    assert policy.delay(1, errors.OctopodsRateLimitError("x", retry_after=3.0)) == 3.0
    assert policy.delay(1, errors.OctopodsRateLimitError("x", retry_after=3600.0)) == 8.0
