"""Airflow listener: when a task instance succeeds, delete the send record it used.

Registered through :mod:`airflow_provider_octopods.plugins`. It does nothing (no I/O) for tasks
that did not send through this provider in the same process.
"""

from __future__ import annotations

from typing import Any

from airflow.listeners import hookimpl


@hookimpl
def on_task_instance_success(previous_state: Any, task_instance: Any) -> None:
    from airflow_provider_octopods.send_record import task_succeeded

    task_succeeded(task_instance)
