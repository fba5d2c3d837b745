"""One real Airflow deployment (every process, LocalExecutor on 3.x) for all end-to-end tests."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from airflow_provider_octopods.sandbox import SandboxServer
from airflow_provider_octopods.sandbox.config import SandboxConfig
from tools.deployment import Deployment, airflow_major

ROOT = Path(__file__).resolve().parents[2]
E2E_KEY = "e2e-key-Hq3Lm8Tz2Vx7"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.path):
            item.add_marker(pytest.mark.e2e)


def deployed_dags() -> list[Path]:
    dags = sorted((ROOT / "example_dags").glob("*.py"))
    dags += [
        ROOT / "tests" / "dags" / "octopods_notifier_dags.py",
        ROOT / "tests" / "e2e" / "dags" / "octopods_e2e_alerts.py",
    ]
    if airflow_major() >= 3:
        dags.append(ROOT / "tests" / "e2e" / "dags" / "octopods_e2e_deadline.py")
    return dags


@pytest.fixture(scope="session")
def e2e_sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig(sent_after=0.2, final_after=0.5)) as server:
        yield server


@pytest.fixture(scope="session")
def deployment(e2e_sandbox: SandboxServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """Airflow's processes on 127.0.0.1; ``octopods_default`` is an environment variable and
    ``octopods_in_db`` a connection in the metadata DB, both pointing at the sandbox."""
    home = tmp_path_factory.mktemp("airflow_e2e")
    deployment = Deployment(
        home,
        deployed_dags(),
        env={"AIRFLOW_CONN_OCTOPODS_DEFAULT": e2e_sandbox.connection_json(E2E_KEY)},
        connections={"octopods_in_db": e2e_sandbox.connection_json(E2E_KEY)},
    )
    try:
        yield deployment.start()
    finally:
        deployment.stop()


@pytest.fixture
def received(e2e_sandbox: SandboxServer) -> Callable[..., list[str]]:
    """The bodies the sandbox received that mention ``text``, waiting until there are ``count``."""

    def wait(text: str, count: int, *, phone: str | None = None, timeout: float = 90) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            found = [
                m.body
                for m in e2e_sandbox.messages()
                if text in m.body and (phone is None or m.phone.lstrip("+") == phone.lstrip("+"))
            ]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.5)

    return wait
