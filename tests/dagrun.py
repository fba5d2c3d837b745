"""Run DAG files inside real Airflow (2.11 or 3.x) and read back what happened.

Used by the demo and the system tests. Call :func:`prepare_environment` before Airflow is
imported anywhere in the process.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def prepare_environment(home: Path, dags_folder: Path) -> None:
    """Point Airflow at a throwaway home with a SQLite metadata DB and the given DAGs folder."""
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__METRICS__TIMER_UNIT_CONSISTENCY": "True",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        }
    )


def migrate_db() -> None:
    """Create the metadata DB (``airflow db migrate``) in a child process."""
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


def load_dag(folder: Path, dag_id: str) -> Any:
    """Parse ``folder`` with Airflow's own DagBag and return ``dag_id``; import errors raise."""
    try:
        dagbag_module = importlib.import_module("airflow.dag_processing.dagbag")  # Airflow 3
    except ImportError:
        dagbag_module = importlib.import_module("airflow.models.dagbag")  # Airflow 2
    bag = dagbag_module.DagBag(str(folder))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    dag = bag.get_dag(dag_id)
    if dag is None:
        raise KeyError(f"no DAG {dag_id!r} in {folder}")
    return dag


@dataclass
class RunOutcome:
    """The end of one DAG run: its state, each task's state and tries, and every XCom."""

    state: str
    run_id: str
    task_states: dict[str, str]
    tries: dict[str, int]
    xcoms: dict[tuple[str, str], Any] = field(default_factory=dict)

    def xcom(self, task_id: str, key: str = "return_value") -> Any:
        return self.xcoms.get((task_id, key))


def run_dag(dag: Any, conf: dict[str, Any] | None = None) -> RunOutcome:
    """``dag.test()`` with ``conf``, then collect states and XComs from the metadata DB."""
    dag_run = dag.test(run_conf=conf or {})
    tis = dag_run.get_task_instances()
    return RunOutcome(
        state=str(getattr(dag_run.state, "value", dag_run.state)),
        run_id=dag_run.run_id,
        task_states={ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in tis},
        tries={ti.task_id: int(ti.try_number) for ti in tis},
        xcoms=read_xcoms(dag.dag_id, dag_run.run_id),
    )


def read_xcoms(dag_id: str, run_id: str) -> dict[tuple[str, str], Any]:
    from airflow.utils.session import create_session

    xcom_module: Any = importlib.import_module("airflow.models.xcom")
    with create_session() as session:
        if hasattr(xcom_module, "XComModel"):  # Airflow 3
            model = xcom_module.XComModel
            rows = list(session.scalars(model.get_many(run_id=run_id, dag_ids=dag_id)))
            return {(r.task_id, r.key): model.deserialize_value(r) for r in rows}
        rows = xcom_module.XCom.get_many(run_id=run_id, dag_ids=dag_id, session=session).all()
        return {(r.task_id, r.key): r.value for r in rows}  # Airflow 2 deserialises on load


def octopods_variables() -> list[str]:
    """Keys of the provider's Variables (send records, alert ledgers) left in the metadata DB."""
    from airflow.models import Variable
    from airflow.utils.session import create_session

    with create_session() as session:
        return [key for (key,) in session.query(Variable.key) if key.startswith("octopods_")]
