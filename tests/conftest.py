"""Test-wide setup: a throwaway Airflow home, created before Airflow is imported anywhere."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.dagrun import prepare_environment

ROOT = Path(__file__).resolve().parent.parent
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="octopods-tests-airflow-"))
TEST_KEY = "test-key-Zq8rT1vW9"

for _name in [n for n in os.environ if n.startswith("AIRFLOW_CONN_")]:
    del os.environ[_name]
# Airflow 3 runs only DAGs from its DAGs folder: gather the test DAGs and the examples there.
DAGS_FOLDER = AIRFLOW_HOME / "dags"
DAGS_FOLDER.mkdir()
for _source in [*(ROOT / "tests" / "dags").glob("*.py"), *(ROOT / "example_dags").glob("*.py")]:
    shutil.copy(_source, DAGS_FOLDER / _source.name)
prepare_environment(AIRFLOW_HOME, DAGS_FOLDER)


def connection_json(host: str = "https://app.octopods.io", key: str | None = TEST_KEY, **extra: object) -> str:
    """An ``AIRFLOW_CONN_*`` value for an octopods connection."""
    value: dict[str, object] = {"conn_type": "octopods", "host": host}
    if key is not None:
        value["password"] = key
    if extra:
        value["extra"] = extra
    return json.dumps(value)


@pytest.fixture
def octopods_conn(monkeypatch: pytest.MonkeyPatch) -> str:
    """A default connection to https://app.octopods.io (for requests-mock tests); returns the key."""
    monkeypatch.setenv("AIRFLOW_CONN_OCTOPODS_DEFAULT", connection_json())
    return TEST_KEY


@pytest.fixture
def read_logs(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> Callable[[], str]:
    """Everything logged so far, however Airflow routes it (stdlib logging on 2.x, structlog on 3.x)."""
    caplog.set_level(logging.INFO)

    def read() -> str:
        captured = capfd.readouterr()
        return caplog.text + captured.out + captured.err

    return read
