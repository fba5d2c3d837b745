"""Counters the provider emits through Airflow's own ``Stats`` (StatsD or OpenTelemetry, as the
deployment's ``[metrics]`` section configures; nothing when metrics are off).

Every name starts with ``octopods.``; none carries a phone number, a text or a key:

* ``octopods.sms.accepted``, ``octopods.sms.unknown`` (a send that may have gone out),
  ``octopods.sms.failed`` and ``octopods.sms.failed.<reason>`` (the API's error name, such as
  ``PHONE_INVALID``, or the error's class): sends by outcome, from the hook and the batch;
* ``octopods.api.rate_limited``: answers 429; ``octopods.api.status_reads``: status reads made
  (each try counts);
* ``octopods.alert.sent``, ``octopods.alert.suppressed``: alerts sent, and failures whose alert
  was left to another callback (deduplication, or a failure callback Airflow ran twice);
* ``octopods.batch.rows.<outcome>``: batch rows by outcome (``accepted``, ``accepted_earlier``,
  ``invalid``, ``duplicate``, ``opted_out``, ``failed``, ``unknown``).

A metric that cannot be emitted is dropped silently: metrics never fail a task or an alert.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from typing import Any

from airflow_provider_octopods.api.decision import Operation, decide
from airflow_provider_octopods.api.errors import OctopodsError

PREFIX = "octopods"
BATCH_OUTCOMES = ("accepted", "accepted_earlier", "invalid", "duplicate", "opted_out", "failed", "unknown")
_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def incr(name: str, count: int = 1) -> None:
    """Add ``count`` to the counter ``octopods.<name>``."""
    if count <= 0:
        return
    try:
        _stats().incr(f"{PREFIX}.{name}", count)
    except Exception:  # metrics must never break a send or an alert
        return


@cache
def _stats() -> Any:
    """Airflow's ``Stats`` (looked up once: the compat module resolves it on each import)."""
    from airflow.providers.common.compat.sdk import Stats

    return Stats


def api_event(event: str) -> None:
    """A client's observer: ``"status_read"`` and ``"rate_limited"`` tries (see ``api.retry.try_events``)."""
    incr({"status_read": "api.status_reads", "rate_limited": "api.rate_limited"}.get(event, f"api.{event}"))


def failure_reason(error: BaseException) -> str:
    """A metric-safe name for why a send failed: the API's error name, else the error's class."""
    from airflow_provider_octopods.api.protocol import ERROR_CODE_NAMES

    code = error.error_code if isinstance(error, OctopodsError) else None
    name = ERROR_CODE_NAMES.get(code, type(error).__name__) if isinstance(code, int) else type(error).__name__
    return _UNSAFE.sub("_", name)[:64]


def sent(counts: Mapping[str, int]) -> None:
    """Sends by outcome, as counted by a caller that made many: ``accepted``, ``unknown`` and
    ``failed.<reason>`` (see :func:`send_outcome`)."""
    for key, count in counts.items():
        incr(f"sms.{key}", count)
        if key.startswith("failed."):
            incr("sms.failed", count)


def send_outcome(error: BaseException | None) -> str:
    """The key a send counts under in :func:`sent`: ``accepted`` (no error), ``unknown`` (it may
    have gone out) or ``failed.<reason>``."""
    if error is None:
        return "accepted"
    if decide(Operation.SEND, error).maybe_sent:
        return "unknown"
    return f"failed.{failure_reason(error)}"


def batch_rows(summary: Mapping[str, Any]) -> None:
    """A batch try's rows by outcome, from its summary."""
    for outcome in BATCH_OUTCOMES:
        value = summary.get(outcome)
        if isinstance(value, int):
            incr(f"batch.rows.{outcome}", value)
