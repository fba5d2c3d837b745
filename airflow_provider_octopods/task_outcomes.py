"""How API errors and delivery outcomes become task outcomes in Airflow."""

from __future__ import annotations

from typing import Any

from airflow_provider_octopods.api.errors import OctopodsError
from airflow_provider_octopods.api.tracking import SUCCESS, TIMEOUT


def task_error(err: OctopodsError, *, retry_allowed: bool = True) -> BaseException:
    """The exception a task should raise for ``err``.

    Errors that another try can fix without risk (rate limit, API unreachable, 503, SMS
    provider rejection) are raised as they are, so Airflow's ``retries`` apply. Everything
    else (bad input, bad key, unknown outcome) fails the task at once: retrying cannot help,
    or could send an SMS twice. ``retry_allowed=False`` forces the second kind, for failures
    that happen after a message was already sent.
    """
    from airflow.providers.common.compat.sdk import AirflowFailException

    if retry_allowed and err.task_retry_safe:
        return err
    failure = AirflowFailException(str(err))
    failure.__cause__ = None
    failure.__suppress_context__ = True
    return failure


def delivery_result(event: dict[str, Any] | None, *, sensor: bool) -> dict[str, Any]:
    """Turn a delivery summary (trigger event or sync batch) into the task's result, or raise.

    Success returns the summary. Failures and errors fail the task without retries; a deadline
    reached fails it too (``AirflowSensorTimeout`` for sensors), naming the pending ids.
    """
    from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSensorTimeout

    if not isinstance(event, dict) or "outcome" not in event:
        raise AirflowFailException(f"unexpected delivery event from the trigger: {event!r}")
    if event["outcome"] == SUCCESS:
        return event
    message = f"SMS delivery {event['outcome']}: {event.get('message', '')}"
    if event["outcome"] == TIMEOUT and sensor:
        raise AirflowSensorTimeout(message)
    if not sensor:
        message += ". The SMS was sent once; the task is not retried, so it is not sent again"
    raise AirflowFailException(message)
