"""The pytest fixture works for a project that only installed the package: its own DAG, its own tests."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

USER_DAG = """
from datetime import datetime

from airflow.providers.common.compat.sdk import DAG
from airflow_provider_octopods.operators.octopods import OctopodsSendSmsOperator

with DAG(dag_id="my_reminders", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    OctopodsSendSmsOperator(task_id="remind", phone="+15005550100", body="Reminder: dentist at 10:00 tomorrow")
"""

USER_CONFTEST = """
import os, subprocess, sys, tempfile
from pathlib import Path

home = tempfile.mkdtemp()
os.environ["AIRFLOW_HOME"] = home
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(__file__).parent / "dags")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{home}/airflow.db"
subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
"""

USER_TEST = """
import os
from pathlib import Path


def load(dag_id):
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:
        from airflow.models.dagbag import DagBag
    return DagBag(str(Path(__file__).parent / "dags")).get_dag(dag_id)


def test_my_dag_sends_one_reminder(octopods_sandbox, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_OCTOPODS_DEFAULT", octopods_sandbox.connection_json())
    load("my_reminders").test()
    [message] = octopods_sandbox.messages()
    assert message.body == "Reminder: dentist at 10:00 tomorrow"
    assert octopods_sandbox.url.startswith("http://127.0.0.1:")


def test_factory_gives_hostile_sandboxes(octopods_sandbox_factory):
    import requests

    server = octopods_sandbox_factory(variant="legacy", faults=("http_503:@1",))
    response = requests.post(server.url + "/api/v1/sms/messages", json={}, headers={"X-Octopods-Auth": "k"})
    assert response.status_code == 503
    assert server.connection_uri().startswith("octopods://")
"""


def test_fixture_in_a_fresh_project(tmp_path: Path) -> None:
    project = tmp_path / "my_airflow_project"
    (project / "dags").mkdir(parents=True)
    (project / "dags" / "reminders.py").write_text(textwrap.dedent(USER_DAG))
    (project / "conftest.py").write_text(textwrap.dedent(USER_CONFTEST))
    (project / "test_reminders.py").write_text(textwrap.dedent(USER_TEST))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHONPATH", "PYTEST"))}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(project), str(project)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "2 passed" in result.stdout
