"""The DAG-level failure alert inside real Airflow (``dag.test()``), against the sandbox: it names
the failed tasks, fits one SMS, and gives ``{{ log_url }}`` to body templates."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from airflow_provider_octopods.api.segments import Encoding, count_segments
from airflow_provider_octopods.sandbox import SandboxServer
from tests.conftest import DAGS_FOLDER, TEST_KEY
from tests.dagrun import RunOutcome, load_dag, migrate_db, run_dag

pytestmark = pytest.mark.system

HERE = Path(__file__).parent / "dags"
ON_CALL = "+15005550100"
LINKS = "+447700900123"
SHORT_RUN = r"\(run manual \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\)"
LONG_DAG_ID = ("octopods_run_failure_" + "long_dag_id_" * 10)[:100]


@pytest.fixture(scope="module")
def dags() -> Iterator[Path]:
    """This folder's DAG files, inside Airflow's DAGs folder (Airflow 3 runs no DAG from elsewhere)."""
    migrate_db()
    folder = DAGS_FOLDER / "notifications"
    shutil.copytree(HERE, folder, ignore=shutil.ignore_patterns("__pycache__"))
    yield folder
    shutil.rmtree(folder)


@pytest.fixture
def run(
    dags: Path, octopods_sandbox_factory: Callable[..., SandboxServer], monkeypatch: pytest.MonkeyPatch
) -> Callable[[str], tuple[RunOutcome, SandboxServer]]:
    def go(dag_id: str) -> tuple[RunOutcome, SandboxServer]:
        server = octopods_sandbox_factory()
        monkeypatch.setenv("AIRFLOW_CONN_OCTOPODS_DEFAULT", server.connection_json(TEST_KEY))
        return run_dag(load_dag(dags, dag_id)), server

    return go


def one_gsm7_segment(text: str) -> bool:
    info = count_segments(text)
    return info.encoding is Encoding.GSM7 and info.segments == 1


def test_the_dag_level_alert_names_the_failed_tasks(run: Callable[[str], tuple[RunOutcome, SandboxServer]]) -> None:
    outcome, server = run("octopods_run_failure_named")
    assert outcome.state == "failed"
    assert outcome.task_states["report"] == "upstream_failed"
    [alert] = [m.body for m in server.sent_to(ON_CALL)]
    match = re.fullmatch(rf"Airflow: DAG octopods_run_failure_named failed: tasks (\w+), (\w+) {SHORT_RUN}", alert)
    assert match, alert
    assert sorted(match.groups()) == ["extract_orders", "load_orders"]
    assert one_gsm7_segment(alert)
    links = dict(m.body.split(" ") for m in server.sent_to(LINKS))  # {{ event }} {{ log_url }}
    assert sorted(links) == ["failed", "run_failed"]  # the task's own alert, then the run's
    for url in links.values():
        assert url.startswith("http")
        assert "octopods_run_failure_named" in url
    assert "extract_orders" in links["failed"]
    assert match.group(1) in links["run_failed"]  # the log of the task named first


def test_long_dag_and_task_ids_still_fit_one_segment(run: Callable[[str], tuple[RunOutcome, SandboxServer]]) -> None:
    outcome, server = run(LONG_DAG_ID)
    assert outcome.state == "failed"
    [alert] = [m.body for m in server.sent_to(ON_CALL)]
    assert one_gsm7_segment(alert), alert
    assert alert.startswith("Airflow: DAG octopods_run_failure_long")  # perhaps shortened in the middle
    assert re.search(r"failed: tasks step_\d_a_very_long_\S* \+2 more \(run ", alert), alert
