"""Real Airflow deployments (every process) for the end-to-end tests, one tier at a time:

* ``sqlite``: SQLite metadata DB, LocalExecutor on Airflow 3.x (SequentialExecutor on 2.11);
* ``postgres-celery`` (Airflow 3.x): PostgreSQL metadata DB, CeleryExecutor with a Redis broker
  and one Celery worker without metadata-DB access; the servers are installed and started by
  tests/e2e/servers.py.

Each test runs on every tier of the running Airflow line unless ``@pytest.mark.e2e_tiers(...)``
names fewer (select one with ``-k sqlite`` or ``-k postgres-celery``). Tests are grouped by tier, so
one deployment runs at a time, each with its own sandbox.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_octopods.sandbox import SandboxServer
from airflow_provider_octopods.sandbox.config import SandboxConfig
from tests.e2e.deployment import CeleryExecutorConfig, Deployment, airflow_major
from tests.e2e.servers import Servers, ServersUnavailable, running_servers

ROOT = Path(__file__).resolve().parents[2]
E2E_KEY = "e2e-key-Hq3Lm8Tz2Vx7"
SQLITE = "sqlite"
POSTGRES_CELERY = "postgres-celery"
# They look at what every other e2e test of their tier left behind, so they run after them.
RUN_LAST = ("test_worker_isolation.py", "test_key_scan.py")


def tiers() -> list[str]:
    """The deployment tiers of the running Airflow line, cheapest first."""
    return [SQLITE, POSTGRES_CELERY] if airflow_major() >= 3 else [SQLITE]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "tier" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("e2e_tiers")
    wanted = [tier for tier in tiers() if marker is None or tier in marker.args]
    if not wanted:
        reason = f"runs on the {' and '.join(marker.args if marker else ())} tier, which needs Airflow 3.x"
        metafunc.parametrize("tier", [pytest.param(None, marks=pytest.mark.skip(reason=reason))], indirect=True)
        return
    metafunc.parametrize("tier", wanted, indirect=True, scope="session")


@pytest.hookimpl(trylast=True)  # after pytest grouped the tests by the session fixtures' parameters
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    slots = [index for index, item in enumerate(items) if "/e2e/" in str(item.path)]
    e2e = [items[index] for index in slots]
    for item in e2e:
        item.add_marker(pytest.mark.e2e)

    def order(item: pytest.Item) -> tuple[int, int]:
        params = getattr(getattr(item, "callspec", None), "params", {})
        tier = params.get("tier")
        last = RUN_LAST.index(item.path.name) + 1 if item.path.name in RUN_LAST else 0
        return (tiers().index(tier) if tier in tiers() else -1, last)

    for index, item in zip(slots, sorted(e2e, key=order), strict=True):
        items[index] = item


def key_hits_in_db(url: str, key: str, *, tables: Callable[[str], bool] = lambda name: True) -> list[str]:
    """``table.column`` of every value holding ``key`` in the database at SQLAlchemy ``url``
    (SQLite or PostgreSQL), compressed values included."""
    import sqlalchemy

    needle = key.encode()
    hits = []
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as db:
            names = [name for name in sqlalchemy.inspect(db).get_table_names() if tables(name)]
            for name in names:
                result = db.execute(sqlalchemy.text(f'SELECT * FROM "{name}"'))  # noqa: S608  # catalogue names
                columns = list(result.keys())
                for row in result:
                    for column, value in zip(columns, row, strict=True):
                        if value is not None and needle in _as_bytes(value):
                            hits.append(f"{name}.{column}")
    finally:
        engine.dispose()
    return hits


def key_hits_in_redis(url: str, key: str) -> list[str]:
    """Every Redis key (Celery's queues, results, locks...) whose name or value holds ``key``,
    messages' base64 bodies included."""
    import redis  # type: ignore[import-not-found]  # only on Airflow 3.x, where this tier runs

    needle = key.encode()
    client = redis.Redis.from_url(url)
    hits = []
    try:
        for name in client.scan_iter(count=1000):
            kind = client.type(name)
            values: list[Any] = [name]
            if kind == b"string":
                values.append(client.get(name))
            elif kind == b"list":
                values += client.lrange(name, 0, -1)
            elif kind == b"hash":
                values += [item for pair in client.hgetall(name).items() for item in pair]
            elif kind == b"set":
                values += client.smembers(name)
            elif kind == b"zset":
                values += client.zrange(name, 0, -1)
            if any(needle in _as_bytes(value) for value in values if value is not None):
                hits.append(name.decode(errors="replace"))
    finally:
        client.close()
    return hits


def _as_bytes(value: object) -> bytes:
    """``value`` as bytes, plus what a zlib-compressed value or a Celery message's base64 body
    decodes to."""
    raw = bytes(value) if isinstance(value, (bytes, memoryview)) else str(value).encode(errors="surrogatepass")
    with contextlib.suppress(zlib.error):
        raw += zlib.decompress(raw)
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        message = json.loads(raw)
        if message.get("properties", {}).get("body_encoding") == "base64":
            raw += base64.b64decode(message["body"])
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
def tier(request: pytest.FixtureRequest) -> str:
    """The deployment tier of this test (parametrized by :func:`pytest_generate_tests`)."""
    return str(request.param)


@pytest.fixture(scope="session")
def e2e_sandbox(tier: str) -> Iterator[SandboxServer]:
    """The API for one tier's deployment (each tier counts its own messages)."""
    with SandboxServer(SandboxConfig(sent_after=0.2, final_after=0.5)) as server:
        yield server


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def servers(tier: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers | None]:
    """PostgreSQL and Redis for the ``postgres-celery`` tier (None on ``sqlite``). Missing
    servers fail the tier in CI (``CI=true``); elsewhere they skip it, saying why."""
    if tier != POSTGRES_CELERY:
        yield None
        return
    with contextlib.ExitStack() as stack:
        try:
            servers = stack.enter_context(running_servers(keep_logs_in=tmp_path_factory.mktemp("servers_logs")))
        except ServersUnavailable as err:
            message = f"the {POSTGRES_CELERY} e2e tier cannot run: {err}"
            if in_ci():
                pytest.fail(message, pytrace=False)
            pytest.skip(message)
        yield servers


@pytest.fixture(scope="session")
def deployment(
    tier: str, e2e_sandbox: SandboxServer, servers: Servers | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """Airflow's processes on 127.0.0.1; ``octopods_default`` is an environment variable and
    ``octopods_in_db`` a connection in the metadata DB, both pointing at the sandbox."""
    home = tmp_path_factory.mktemp(f"airflow_e2e_{tier}")
    deployment = Deployment(
        home,
        deployed_dags(),
        env={"AIRFLOW_CONN_OCTOPODS_DEFAULT": e2e_sandbox.connection_json(E2E_KEY)},
        connections={"octopods_in_db": e2e_sandbox.connection_json(E2E_KEY)},
        metadata_db=servers.metadata_db_url if servers else None,
        celery=CeleryExecutorConfig(servers.broker_url, servers.result_backend) if servers else None,
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
