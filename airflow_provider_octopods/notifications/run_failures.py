"""Which tasks of a DAG run failed, asked of Airflow from wherever a DAG-level callback runs.

A DAG's ``on_failure_callback`` gets one task instance at most (Airflow 3: the one whose failure
ended the run; 2.11: the run's last one, whatever its state; 3.0.x: none), so the run's failed
tasks are asked of Airflow, the way each place can answer (see :mod:`airflow_provider_octopods.runtime`):

* Airflow 2.11 anywhere, and Airflow 3 outside a supervisor (a DAG-level callback under
  ``dag.test()`` or ``airflow dags test``): the metadata DB, through Airflow's own models.
* Airflow 3 under a supervisor (the dag-processor, which runs DAG-level callbacks and has no
  metadata DB access): the Task SDK's task states (``GetTaskStates``), only if this process's
  channel decodes their answer: a place asked what it cannot answer never replies.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from airflow_provider_octopods.api.alerts import task_list
from airflow_provider_octopods.runtime import answered, outside_task_supervisor, task_sdk_present

FAILED = "failed"
_MAPPED_KEY = re.compile(r"(?P<task_id>.+)_(?P<map_index>\d+)")


@dataclass(frozen=True)
class RunFailures:
    """The failed tasks of one DAG run, as far as Airflow could tell.

    :param task_ids: their ids (a mapped task once).
    :param log_url: Airflow's link to the log of the first of them, or ``""`` if not known.
    """

    task_ids: tuple[str, ...] = ()
    log_url: str = ""


def ask_airflow(dag_id: str, run_id: str, *, dag_task_ids: Collection[str] = ()) -> RunFailures | None:
    """The run's failed tasks, or None where Airflow cannot be asked from here.

    From the metadata DB they come in the order they failed, with the first one's log URL; from
    the Task SDK in Airflow's order, without a log URL.

    :param dag_task_ids: the DAG's task ids, to tell a mapped task's ``load_3`` from a task
        called ``load_3``.
    :raises Exception: whatever Airflow raises when asked (the caller keeps the alert going).
    """
    if task_sdk_present() and not outside_task_supervisor():
        keys = failed_task_states(dag_id, run_id)
        return None if keys is None else RunFailures(task_list([_task_id(key, dag_task_ids) for key in keys]))
    return _in_failure_order(failed_task_instances(dag_id, run_id))


def failed_task_instances(dag_id: str, run_id: str) -> list[Any]:
    """The run's failed task instances, from the metadata DB."""
    dag_run_model = importlib.import_module("airflow.models.dagrun").DagRun
    return list(dag_run_model.fetch_task_instances(dag_id=dag_id, run_id=run_id, state=FAILED))


def failed_task_states(dag_id: str, run_id: str) -> list[str] | None:
    """The run's failed task instances as the Task SDK names them (``task``, or ``task_<map
    index>``), or None where this process's channel could not decode the answer."""
    task_runner = importlib.import_module("airflow.sdk.execution_time.task_runner")
    if answered({"type": "TaskStatesResult", "task_states": {}}) is False:
        return None
    states = task_runner.RuntimeTaskInstance.get_task_states(dag_id=dag_id, run_ids=[run_id]).get(run_id) or {}
    return [key for key, state in states.items() if str(getattr(state, "value", state)) == FAILED]


def _in_failure_order(failed: Iterable[Any]) -> RunFailures:
    ordered = sorted(failed, key=lambda ti: (ti.end_date is None, ti.end_date or datetime.min))
    if not ordered:
        return RunFailures()
    try:
        log_url = str(ordered[0].log_url)
    except Exception:  # Airflow's URL needs configuration this process may lack
        log_url = ""
    return RunFailures(task_list([str(ti.task_id) for ti in ordered]), log_url)


def _task_id(key: str, dag_task_ids: Collection[str]) -> str:
    """A task states key as its task id: ``load_3`` is map index 3 of ``load`` if the DAG has a
    task ``load`` and none called ``load_3``."""
    mapped = _MAPPED_KEY.fullmatch(key)
    if mapped and key not in dag_task_ids and mapped["task_id"] in dag_task_ids:
        return mapped["task_id"]
    return key
