"""How API errors and delivery outcomes become task outcomes in Airflow.

Whether Airflow may retry is not decided here: :func:`airflow_provider_octopods.api.decision.decide`
says so, and this module only expresses its answer the way Airflow understands it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from airflow_provider_octopods.api.decision import Operation, decide
from airflow_provider_octopods.api.delivery import Outcome


def task_error(err: BaseException, operation: Operation) -> BaseException:
    """The exception a task should raise for ``err`` raised by ``operation``.

    When Airflow may retry (nothing was sent and another try can help), ``err`` itself. Otherwise
    (bad input, bad key, a send that may have gone out) the same error as a subclass of
    ``AirflowFailException``, so Airflow fails the task without using its retries while user
    code can still catch it by its Octopods class.
    """
    if decide(operation, err).retry_task:
        return err
    return final(err)


def final(err: BaseException) -> BaseException:
    """``err`` as an error that fails the task for good, keeping its class, message and fields."""
    from airflow.providers.common.compat.sdk import AirflowFailException

    if isinstance(err, AirflowFailException):
        return err
    try:
        cls = _final_class(type(err), AirflowFailException)  # type: ignore[arg-type]
        copy = cls.__new__(cls)
    except TypeError:  # a built-in exception whose layout cannot be combined
        failure = AirflowFailException(f"{type(err).__name__}: {err}")
        failure.__cause__ = err
        return failure
    copy.__dict__.update(err.__dict__)
    copy.args = err.args
    copy.__cause__ = err.__cause__
    copy.__suppress_context__ = True
    return copy


def _plain(err: BaseException) -> BaseException:
    """The error as its original class again (for pickling)."""
    base: Any = type(err).__mro__[1]
    plain = base.__new__(base)
    plain.__dict__.update(err.__dict__)
    plain.args = err.args
    return plain


def _reduce_final(err: BaseException) -> tuple[Any, tuple[BaseException]]:
    return final, (_plain(err),)


@cache
def _final_class(cls: type[BaseException], fail: type[BaseException]) -> type[BaseException]:
    return type(
        cls.__name__,
        (cls, fail),
        {"__module__": cls.__module__, "__qualname__": cls.__qualname__, "__reduce__": _reduce_final},
    )


def delivery_result(event: dict[str, Any] | None, *, sensor: bool) -> dict[str, Any]:
    """Turn a delivery summary (trigger event or sync batch) into the task's result, or raise.

    Success returns the summary. A delivery failure or a tracking error fails the task for good
    (another try reads the same statuses). The deadline reached fails the task so that Airflow's
    ``retries`` apply (``AirflowSensorTimeout`` for sensors): a retried send operator does not send
    again (see :mod:`airflow_provider_octopods.send_record`) and simply resumes tracking.
    """
    from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, AirflowSensorTimeout

    if not isinstance(event, dict) or "outcome" not in event:
        raise AirflowFailException(f"unexpected delivery event from the trigger: {event!r}")
    if event["outcome"] == Outcome.SUCCESS.value:
        return event
    message = f"SMS delivery {event['outcome']}: {event.get('message', '')}"
    if event["outcome"] == Outcome.TIMEOUT.value:
        raise AirflowSensorTimeout(message) if sensor else AirflowException(message)
    raise AirflowFailException(message)
