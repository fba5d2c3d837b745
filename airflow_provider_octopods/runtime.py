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


def run_state_answered() -> bool | None:
    """Whether this Airflow 3 process's supervisor answers a request for a DAG run's state (see
    :func:`answered`)."""
    return answered({"type": "DagRunStateResult", "state": "running"})


def answered(answer: dict[str, Any]) -> bool | None:
    """Whether this Airflow 3 process's supervisor channel can decode ``answer`` (a Task SDK
    result, such as ``{"type": "TaskStatesResult", "task_states": {}}``), so asking the request it
    answers gets a reply.

    Each place that runs user code (task runner, dag-processor, triggerer) decodes its own set of
    answers, and a place asked what it cannot answer never replies: the caller hangs. The
    dag-processor, which runs the failure callbacks of a task whose worker died, is such a place.
    None when it cannot be told (no supervisor, as on 2.11, or ``dag.test()``'s in-process one,
    which answers everything a task may ask).
    """
    try:
        task_runner = importlib.import_module("airflow.sdk.execution_time.task_runner")
    except ImportError:
        return None
    decoder = getattr(getattr(task_runner, "SUPERVISOR_COMMS", None), "body_decoder", None)
    validate = getattr(decoder, "validate_python", None)
    if not callable(validate):
        return None
    try:
        validate(answer)
    except Exception:
        return False
    return True


def dag_run_ended(context: Any) -> bool | None:
    """Whether the callback's DAG run has already finished (success or failed), asked of Airflow
    now, not read from the context's snapshot. None when this place cannot tell: the caller takes
    the safe side (an alert sent, a ledger kept)."""
    try:
        dag_run = context.get("dag_run")
        dag_id, run_id = str(dag_run.dag_id), str(dag_run.run_id)
        ti = context.get("ti")
        if callable(getattr(type(ti), "get_dagrun_state", None)):  # Airflow 3: through the Task SDK
            if run_state_answered() is False:  # the dag-processor: it would never answer
                return None
            state = ti.get_dagrun_state(dag_id=dag_id, run_id=run_id)
        else:
            dag_run_model = importlib.import_module("airflow.models.dagrun").DagRun
            found = dag_run_model.find(dag_id=dag_id, run_id=run_id)
            state = found[0].state if found else None
    except Exception:
        return None
    return str(getattr(state, "value", state)) in ("success", "failed")
