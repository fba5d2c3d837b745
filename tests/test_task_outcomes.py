"""How API errors and delivery outcomes become task outcomes: retried by Airflow, or failed for good."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, AirflowSensorTimeout

from airflow_provider_octopods.api import errors
from airflow_provider_octopods.api.decision import Operation
from airflow_provider_octopods.task_outcomes import delivery_result, final, task_error


@pytest.mark.parametrize(
    ("operation", "error"),
    [
        pytest.param(Operation.SEND, errors.OctopodsRateLimitError("slow down", retry_after=3), id="rate limited"),
        pytest.param(Operation.SEND, errors.OctopodsTransportError("connection refused"), id="nothing sent"),
        pytest.param(Operation.SEND, errors.OctopodsSmsRejectedError("rejected", error_code=4), id="SMS rejected"),
        pytest.param(Operation.STATUS, errors.OctopodsServerError("down", http_status=502), id="status read 5xx"),
        pytest.param(Operation.STATUS, RuntimeError("bug"), id="status read, not ours"),
    ],
)
def test_an_error_airflow_may_retry_is_raised_as_it_is(operation: Operation, error: BaseException) -> None:
    assert task_error(error, operation) is error
    assert not isinstance(error, AirflowFailException)


@pytest.mark.parametrize(
    ("operation", "error"),
    [
        pytest.param(Operation.SEND, errors.OctopodsValidationError("phone", "+1***123 is too short"), id="bad input"),
        pytest.param(Operation.SEND, errors.OctopodsAuthError("refused", http_status=401), id="bad key"),
        pytest.param(Operation.SEND, errors.OctopodsServerError("down", http_status=502), id="send may be out"),
        pytest.param(Operation.SEND, errors.OctopodsUnknownOutcomeError("no answer"), id="unknown outcome"),
        pytest.param(Operation.STATUS, errors.OctopodsNotFoundError("no such message", http_status=404), id="404"),
        pytest.param(Operation.SEND, RuntimeError("bug while reading the answer"), id="send, not ours"),
    ],
)
def test_any_other_error_fails_the_task_for_good_as_its_own_class(operation: Operation, error: BaseException) -> None:
    failure = task_error(error, operation)
    assert isinstance(failure, AirflowFailException)
    assert isinstance(failure, type(error))
    assert type(failure).__name__ == type(error).__name__
    assert type(failure).__module__ == type(error).__module__
    assert (str(failure), failure.args) == (str(error), error.args)


def test_a_final_error_keeps_its_fields_and_cause_and_hides_the_context() -> None:
    cause = ConnectionResetError("reset by peer")
    error = errors.OctopodsRateLimitError("slow down", retry_after=3.5, http_status=429, request_id="req-1")
    error.__cause__ = cause
    failure = final(error)
    assert isinstance(failure, errors.OctopodsRateLimitError)
    assert (failure.retry_after, failure.http_status, failure.request_id, failure.message) == (
        3.5,
        429,
        "req-1",
        "slow down",
    )
    assert failure.__cause__ is cause
    assert failure.__suppress_context__
    assert error.__cause__ is cause  # the original is left as it was
    assert not isinstance(error, AirflowFailException)


def test_final_leaves_an_error_that_already_fails_for_good_and_reuses_one_class_per_error_class() -> None:
    already = AirflowFailException("stop")
    assert final(already) is already
    first = final(errors.OctopodsValidationError("phone", "a"))
    second = final(errors.OctopodsValidationError("body", "b"))
    assert type(first) is type(second)
    assert final(first) is first


def test_an_error_whose_class_cannot_be_copied_fails_for_good_naming_it() -> None:
    class NeedsACode(Exception):
        def __new__(cls, code: int) -> NeedsACode:
            return super().__new__(cls, code)

    error = NeedsACode(7)
    failure = final(error)
    assert type(failure) is AirflowFailException
    assert str(failure) == "NeedsACode: 7"
    assert failure.__cause__ is error


def test_fail_for_good_errors_survive_pickling() -> None:
    error = final(errors.OctopodsValidationError("phone", "+1***123 is too short"))
    again = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert isinstance(again, AirflowFailException)
    assert isinstance(again, errors.OctopodsValidationError)
    assert type(again) is type(error)
    assert (again.field, again.problem, str(again)) == (
        "phone",
        "+1***123 is too short",
        "phone: +1***123 is too short",
    )
    plain = pickle.loads(pickle.dumps(final(RuntimeError("bug"))))  # noqa: S301 - our own bytes
    assert isinstance(plain, AirflowFailException)
    assert isinstance(plain, RuntimeError)
    assert plain.args == ("bug",)


# -- delivery_result --------------------------------------------------------------------------------


@pytest.mark.parametrize("sensor", [True, False], ids=["sensor", "operator"])
def test_a_delivered_event_is_the_task_s_result(sensor: bool) -> None:
    event = {"outcome": "success", "delivered": ["1"], "failed": {}}
    assert delivery_result(event, sensor=sensor) is event


@pytest.mark.parametrize("outcome", ["failure", "error"])
@pytest.mark.parametrize("sensor", [True, False], ids=["sensor", "operator"])
def test_a_failed_delivery_or_tracking_error_fails_the_task_for_good(outcome: str, sensor: bool) -> None:
    with pytest.raises(AirflowFailException, match=f"^SMS delivery {outcome}: message 1 was undelivered$"):
        delivery_result({"outcome": outcome, "message": "message 1 was undelivered"}, sensor=sensor)


def test_a_timeout_lets_airflow_s_retries_apply() -> None:
    event = {"outcome": "timeout", "message": "1 message still pending"}
    with pytest.raises(AirflowSensorTimeout, match=r"^SMS delivery timeout: 1 message still pending$"):
        delivery_result(event, sensor=True)
    with pytest.raises(AirflowException, match=r"^SMS delivery timeout: 1 message still pending$") as err:
        delivery_result(event, sensor=False)
    assert not isinstance(err.value, (AirflowFailException, AirflowSensorTimeout))


@pytest.mark.parametrize("event", [None, "success", ["success"], {"status": "success"}])
def test_an_event_that_is_not_a_delivery_summary_fails_the_task_for_good(event: Any) -> None:
    with pytest.raises(AirflowFailException, match="unexpected delivery event from the trigger: ") as err:
        delivery_result(event, sensor=True)
    assert repr(event) in str(err.value)
