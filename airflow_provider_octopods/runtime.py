"""Where this code runs inside Airflow, and which API reaches connections and Variables from there.

On Airflow 3 a task, a DAG processor or a triggerer reaches connections and Variables through
the Task SDK, which asks the API server. Code that runs outside them (a DAG-level callback under
``dag.test()`` or ``airflow dags test``) only sees environment variables through the Task SDK;
there Airflow's own core API (secrets backend, then the metadata DB) is the supported way. On
Airflow 2.11 the core API is the only one and works everywhere.
"""

from __future__ import annotations

import importlib
from typing import Any


def task_sdk_present() -> bool:
    """Whether this is Airflow 3 (connections and Variables go through the Task SDK)."""
    try:
        importlib.import_module("airflow.sdk.execution_time.task_runner")
    except ImportError:
        return False
    return True


def outside_task_supervisor() -> bool:
    """Airflow 3 code running where the Task SDK cannot ask the API server (2.11: never)."""
    try:
        task_runner = importlib.import_module("airflow.sdk.execution_time.task_runner")
    except ImportError:
        return False
    return getattr(task_runner, "SUPERVISOR_COMMS", None) is None


def variables() -> Any:
    """The ``Variable`` class that reaches the metadata DB from here."""
    if outside_task_supervisor():
        try:
            return importlib.import_module("airflow.models.variable").Variable
        except ImportError:  # a Task-SDK-only installation: environment variables only
            pass
    from airflow.providers.common.compat.sdk import Variable

    return Variable
