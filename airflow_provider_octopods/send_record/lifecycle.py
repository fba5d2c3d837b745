"""The guard of the task instance running in this process, and the record's end.

Every hook of one try shares one guard (and its count of repeated sends). When the task instance
succeeds, the provider's listener deletes its record, so a successful task cleared by hand is a
deliberate re-run and sends again; a task that failed keeps its record, so clearing it later does
not send twice.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from airflow_provider_octopods.send_record.guard import SendGuard, TaskKey
from airflow_provider_octopods.send_record.store import RecordStore

log = logging.getLogger(__name__)

_ACTIVE: dict[TaskKey, SendGuard] = {}
_ACTIVE_LOCK = threading.Lock()


def current_guard(store: RecordStore | None = None) -> SendGuard | None:
    """The guard of the task instance running in this process, or None outside a running task."""
    ti = _running_task_instance()
    if ti is None:
        return None
    return guard_for(ti, store)


def guard_for(task_instance: Any, store: RecordStore | None = None) -> SendGuard:
    """The guard of ``task_instance``'s current try, shared by every caller in this process."""
    key = TaskKey.of(task_instance)
    try_number = getattr(task_instance, "try_number", None)
    try_number = try_number if isinstance(try_number, int) else None
    with _ACTIVE_LOCK:  # threads of one task share one guard
        guard = _ACTIVE.get(key)
        if guard is None or guard.try_number != (try_number or 1) or (store is not None and guard.store is not store):
            max_tries = getattr(task_instance, "max_tries", None)
            last_try = max_tries + 1 if isinstance(max_tries, int) else None
            guard = SendGuard(key, try_number=try_number, store=store, last_try=last_try)
            _ACTIVE[key] = guard
        return guard


def task_succeeded(task_instance: Any) -> None:
    """Delete the record of ``task_instance`` if this process used one (the listener calls this).

    Never raises: the task has succeeded; a record left behind only costs a few Variables.
    """
    if not _ACTIVE:
        return
    try:
        guard = _ACTIVE.pop(TaskKey.of(task_instance), None)
        if guard is not None and _success_stands(task_instance):
            guard.clear()
    except Exception:
        log.exception("Could not delete the Octopods send record of a succeeded task; it stays as Variables")


def _success_stands(task_instance: Any) -> bool:
    """Whether the metadata DB holds ``task_instance`` as succeeded.

    Airflow 3 tells the listener of a success even when the API server refused it (409: the task
    instance had already been given up, after lost heartbeats, and its retry may be running): the
    retry then needs the record. Airflow 2.11's task instance writes its state itself before the
    listener runs.
    """
    count = getattr(task_instance, "get_ti_count", None)
    if count is None:
        return True
    succeeded = count(
        dag_id=task_instance.dag_id,
        map_index=task_instance.map_index,
        task_ids=[task_instance.task_id],
        run_ids=[task_instance.run_id],
        states=["success"],
    )
    if succeeded:
        return True
    log.warning(
        "Airflow did not record this task instance's success (it may have been given up and retried): "
        "its Octopods send record is kept, so that no try sends its SMS again"
    )
    return False


def _running_task_instance() -> Any:
    try:
        from airflow.providers.common.compat.sdk import get_current_context

        context = get_current_context()
    except Exception:  # no task is running in this process
        return None
    ti = context.get("ti") or context.get("task_instance")
    return ti if ti is not None and getattr(ti, "run_id", None) else None
