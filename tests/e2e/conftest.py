"""One real Airflow deployment (every process, LocalExecutor on 3.x) for all end-to-end tests."""

from __future__ import annotations

import re
import sqlite3
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from airflow_provider_octopods.sandbox import SandboxServer
from airflow_provider_octopods.sandbox.config import SandboxConfig
from tests.e2e.deployment import Deployment, airflow_major

ROOT = Path(__file__).resolve().parents[2]
E2E_KEY = "e2e-key-Hq3Lm8Tz2Vx7"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.path):
            item.add_marker(pytest.mark.e2e)
    # the key scan looks at what every other e2e test left behind, so it runs after them
    scans = [item for item in items if item.path.name == "test_key_scan.py"]
    items[:] = [item for item in items if item not in scans] + scans


def key_hits_in_db(database: Path, key: str, *, tables: Callable[[str], bool] = lambda name: True) -> list[str]:
    """``table.column`` of every value holding ``key`` in the metadata DB, compressed values included."""
    needle = key.encode()
    hits = []
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        names = [n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'") if tables(n)]
        for name in names:
            cursor = db.execute(f'SELECT * FROM "{name}"')  # noqa: S608  # names from sqlite_master
            columns = [c[0] for c in cursor.description]
            for row in cursor:
                for column, value in zip(columns, row, strict=True):
                    if value is not None and needle in _as_bytes(value):
                        hits.append(f"{name}.{column}")
    return hits


def _as_bytes(value: object) -> bytes:
    raw = value if isinstance(value, bytes) else str(value).encode(errors="surrogatepass")
    try:
        return raw + zlib.decompress(raw)
    except zlib.error:
        return raw


def key_hits_in_files(root: Path, key: str) -> list[Path]:
    """Every file under ``root`` but the metadata DB that holds ``key``."""
    return [
        path
        for path in root.rglob("*")
        if path.is_file() and not path.name.startswith("airflow.db") and key.encode() in path.read_bytes()
    ]


# Airflow's masker writes exactly "***"; a masked phone is a run of stars between digits.
AIRFLOW_MASK = re.compile(r"(?<![\d*])\*{3}(?![\d*])")


def deployed_dags() -> list[Path]:
    dags = sorted((ROOT / "example_dags").glob("*.py"))
    dags += [
        ROOT / "tests" / "dags" / "octopods_notifier_dags.py",
        ROOT / "tests" / "e2e" / "dags" / "octopods_e2e_alerts.py",
        ROOT / "tests" / "e2e" / "dags" / "octopods_e2e_lifecycle.py",
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
