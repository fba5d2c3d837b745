"""What happened, read from the context Airflow gives a callback (2.11 and 3.x, task or DAG level,
failure, retry, success, deadline). Reads only ids, states, tries and a one-line cause; for a DAG
run's failure, also which of its tasks failed (asked of Airflow: see ``run_failures``)."""

from __future__ import annotations

from contextlib import suppress
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_octopods.api.alerts import TASK_FAILURE_REASON, AlertEvent, EventKind, one_line_cause, task_list
from airflow_provider_octopods.notifications.run_failures import RunFailures, ask_airflow

_KEPT_AS = "octopods_run_failures"  # a run's failed tasks, kept in the callback's context: asked once


def event_from_context(context: Any, *, include_cause: bool = True) -> AlertEvent:
    """The :class:`AlertEvent` a callback context describes; degrades to whatever keys are present."""
    get = _getter(context)
    deadline = get("deadline")
    if isinstance(deadline, dict):
        return _deadline_event(get("dag_run"), deadline)
    if get("slas") is not None or get("task_list") is not None:  # sla_miss_callback(dag, task_list, ...)
        return _sla_event(get("dag"), get("slas"), get("task_list"))
    ti = get("task_instance") or get("ti")
    dag = get("dag")
    dag_run = get("dag_run")
    reason = get("reason")
    dag_id = _attr(ti, "dag_id") or _attr(dag, "dag_id") or _attr(dag_run, "dag_id") or get("dag_id")
    run_id = get("run_id") or _attr(dag_run, "run_id") or _attr(ti, "run_id")
    cause = one_line_cause(get("exception"), reason=reason) if include_cause else None
    if cause:
        cause = _redact(cause)
    if reason and not get("exception"):
        # A DAG-level callback: Airflow passes the run's outcome as ``reason``.
        if str(reason).lower() == "success" or _state(dag_run) == "success":
            return AlertEvent(dag_id=dag_id, run_id=run_id, kind=EventKind.RUN_SUCCEEDED)
        failed = run_failures(context, dag_id, run_id).task_ids
        return AlertEvent(dag_id=dag_id, run_id=run_id, task_ids=failed, cause=cause, kind=EventKind.RUN_FAILED)
    state = _state(ti)
    kind = {"up_for_retry": EventKind.RETRY, "success": EventKind.SUCCEEDED}.get(state or "", EventKind.FAILED)
    if get("octopods_event") in {k.value for k in (EventKind.FAILED, EventKind.RETRY, EventKind.SUCCEEDED)}:
        kind = EventKind(get("octopods_event"))
    try_number = _attr(ti, "try_number")
    max_tries = _attr(ti, "max_tries")
    task_id = _attr(ti, "task_id")
    return AlertEvent(
        dag_id=dag_id,
        run_id=run_id,
        task_ids=(task_id,) if task_id else (),
        try_number=try_number if isinstance(try_number, int) else None,
        max_tries=max_tries + 1 if isinstance(max_tries, int) and max_tries >= 0 else None,
        cause=None if kind is EventKind.SUCCEEDED else cause,
        kind=kind,
        next_try=_next_try(ti) if kind is EventKind.RETRY else None,
    )


def run_failures(context: Any, dag_id: str | None, run_id: str | None) -> RunFailures:
    """The failed tasks of a DAG-level failure callback's run, and the first one's log URL.

    Asked of Airflow once per callback (the answer is kept in the context). Where Airflow cannot
    tell, the task instance in the context stands in if it failed. On Airflow 3 that is the task
    whose failure ended the run: it comes first, with its log URL, unless the metadata DB gave
    the order in which they failed. Never raises.
    """
    get = _getter(context)
    kept = get(_KEPT_AS)
    if isinstance(kept, RunFailures):
        return kept
    found = None
    if dag_id and run_id:
        try:
            found = ask_airflow(str(dag_id), str(run_id), dag_task_ids=set(_attr(get("dag"), "task_ids") or ()))
        except Exception:  # Airflow could not say from here
            found = None
    found = found or RunFailures()
    ti = _failed_task_instance(get("task_instance") or get("ti"), get("reason"))
    if ti is not None and not found.log_url and (ti.task_id in found.task_ids or not found.task_ids):
        found = RunFailures(task_list([str(ti.task_id), *found.task_ids]), _text(_attr(ti, "log_url")))
    with suppress(TypeError):  # a context that cannot keep it: asked again next time
        context[_KEPT_AS] = found
    return found


def log_url(context: Any, event: AlertEvent) -> str:
    """Airflow's link to the log the event is about: the task's, or for a run failure the first
    failed task's; ``""`` when there is none or it is not known."""
    if event.kind is EventKind.RUN_FAILED:
        return run_failures(context, event.dag_id, event.run_id).log_url
    if event.run_level:
        return ""
    get = _getter(context)
    return _text(_attr(get("task_instance") or get("ti"), "log_url"))


def _failed_task_instance(ti: Any, reason: Any) -> Any:
    """``ti`` if it failed: its state says so or, as Airflow 3 leaves the state out of a DAG-level
    callback's task instance, Airflow called back for a task failure. Else None."""
    state = _state(ti)
    failed = state == "failed" or (state is None and reason == TASK_FAILURE_REASON)
    return ti if failed and _attr(ti, "task_id") else None


def _getter(context: Any) -> Any:
    return context.get if hasattr(context, "get") else (lambda _key, _default=None: None)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _deadline_event(dag_run: Any, deadline: dict[str, Any]) -> AlertEvent:
    """Airflow 3.1+ deadline callbacks get ``{"dag_run": {...}, "deadline": {"id", "deadline_time"}}``."""
    run = dag_run if isinstance(dag_run, dict) else {}
    due = _when(deadline.get("deadline_time"))
    late = None
    if due is not None:
        seconds = max(0, int((datetime.now(timezone.utc) - due).total_seconds()))
        late = _duration(seconds)
    return AlertEvent(
        dag_id=run.get("dag_id") or _attr(dag_run, "dag_id"),
        run_id=run.get("run_id") or run.get("dag_run_id") or _attr(dag_run, "run_id"),
        kind=EventKind.DEADLINE_MISSED,
        deadline=deadline.get("name") if isinstance(deadline.get("name"), str) else None,
        due=due.strftime("%Y-%m-%d %H:%M UTC") if due else None,
        late_by=late,
    )


def _sla_event(dag: Any, slas: Any, task_list: Any) -> AlertEvent:
    """Airflow 2.11's ``sla_miss_callback``: the SLA misses name the tasks (else ``task_list``)."""
    tasks = [str(_attr(sla, "task_id")) for sla in slas or () if _attr(sla, "task_id")]
    if not tasks and isinstance(task_list, str):
        tasks = [line.strip() for line in task_list.splitlines() if line.strip()]
    return AlertEvent(
        dag_id=_attr(dag, "dag_id"),
        kind=EventKind.DEADLINE_MISSED,
        deadline="SLA",
        task_ids=tuple(dict.fromkeys(tasks)),
    )


def _next_try(ti: Any) -> str | None:
    """When the next try starts, if the task instance can say (2.11), else from ``retry_delay``."""
    when: Any = None
    method = getattr(ti, "next_retry_datetime", None)
    if callable(method):
        try:
            when = method()
        except Exception:
            when = None
    task = _attr(ti, "task")
    if when is None and not _attr(task, "retry_exponential_backoff"):
        delay = _attr(task, "retry_delay")
        if isinstance(delay, timedelta):
            when = datetime.now(timezone.utc) + delay
    return when.astimezone(timezone.utc).strftime("%H:%M UTC") if isinstance(when, datetime) else None


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return None


def _duration(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def _state(obj: Any) -> str | None:
    state = _attr(obj, "state")
    value = getattr(state, "value", state)
    return str(value).lower() if value else None


def _attr(obj: object, name: str) -> Any:
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def _redact(text: str) -> str:
    """Mask anything Airflow knows to be secret (connection passwords, sensitive variables)."""
    try:
        from airflow.providers.common.compat.sdk import redact

        return str(redact(text))
    except Exception:
        return text
