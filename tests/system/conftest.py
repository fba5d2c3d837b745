"""Real Airflow for system tests: one migrated SQLite DB per session, sandbox per test."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from airflow_provider_octopods.sandbox import SandboxServer
from tests.conftest import DAGS_FOLDER, TEST_KEY
from tests.dagrun import RunOutcome, load_dag, migrate_db, run_dag


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/system/" in str(item.path):
            item.add_marker(pytest.mark.system)


@pytest.fixture(scope="session")
def airflow_db() -> None:
    migrate_db()


@pytest.fixture(autouse=True)
def _no_leftover_records(airflow_db: None) -> None:
    """Each test starts without send records: the tests share one metadata DB, and a record that
    Airflow keeps on purpose (a failed task, 2.11's ``airflow tasks test``) must not leak into the next."""
    from airflow.models import Variable
    from airflow.utils.session import create_session

    from airflow_provider_octopods.send_record import VARIABLE_PREFIX

    with create_session() as session:
        session.query(Variable).filter(Variable.key.like(f"{VARIABLE_PREFIX}%")).delete(synchronize_session=False)


@pytest.fixture
def sandbox(
    airflow_db: None, octopods_sandbox_factory: Callable[..., SandboxServer], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., SandboxServer]:
    """Start a sandbox (fast progression unless told otherwise) and make it octopods_default."""

    def start(**config: object) -> SandboxServer:
        server = octopods_sandbox_factory(**({"sent_after": 0.1, "final_after": 0.3} | config))
        monkeypatch.setenv("AIRFLOW_CONN_OCTOPODS_DEFAULT", server.connection_json(TEST_KEY))
        return server

    return start


@pytest.fixture
def run() -> Callable[..., RunOutcome]:
    """Run a DAG from tests/dags or example_dags with dag.test()."""

    def go(dag_id: str, conf: dict | None = None) -> RunOutcome:
        return run_dag(load_dag(DAGS_FOLDER, dag_id), conf)

    return go
