"""How API errors become task outcomes in Airflow."""

from __future__ import annotations

from airflow_provider_octopods.api.errors import OctopodsError


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
