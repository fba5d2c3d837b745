"""Airflow listeners that tidy the provider's state in the metadata DB.

* When a task instance succeeds, the send record it used is deleted (no I/O for tasks that did
  not send through this provider in the same process).
* When a DAG run ends, its alert ledger is deleted if every failure in it was named in an alert
  (one Variable query per finished run, inside the scheduler's own transaction); a ledger with
  names still to report is left for the DAG-level alert, which deletes it after naming them;
  and every campaign past its ``campaign_ttl`` is deleted.

Registered through :mod:`airflow_provider_octopods.plugins`.
"""

from __future__ import annotations

from typing import Any

from airflow.listeners import hookimpl


@hookimpl
def on_task_instance_success(previous_state: Any, task_instance: Any) -> None:
    from airflow_provider_octopods.send_record import task_succeeded

    task_succeeded(task_instance)


@hookimpl
def on_dag_run_success(dag_run: Any, msg: str) -> None:
    _run_ended(dag_run, succeeded=True)


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    _run_ended(dag_run, succeeded=False)


def _run_ended(dag_run: Any, *, succeeded: bool) -> None:
    from sqlalchemy.orm import object_session

    from airflow_provider_octopods.notifications.dedup import run_ended

    try:
        session = object_session(dag_run)
    except Exception:  # not a mapped object
        session = None
    run_ended(str(dag_run.dag_id), str(dag_run.run_id), session, succeeded=succeeded)
    from airflow_provider_octopods.send_record.campaign import sweep_expired

    sweep_expired(session)
