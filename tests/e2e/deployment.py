"""A real Airflow deployment on 127.0.0.1 for end-to-end tests: every process Airflow runs in
production, a throwaway ``AIRFLOW_HOME``, and Airflow's REST API to drive it.

* Airflow 3.x: ``api-server``, ``scheduler``, ``dag-processor`` and ``triggerer``.
  - SQLite metadata DB in the home, LocalExecutor (the default);
  - or (``metadata_db`` and ``celery`` given) a PostgreSQL metadata DB and the CeleryExecutor
    with a Redis broker, plus ``airflow celery worker``. The worker gets no metadata-DB
    connection string (:data:`NO_METADATA_DB`): as in Airflow 3's production layout it reaches
    Airflow only through the execution API of the API server, and Celery's result backend is a
    separate database whose role cannot connect to the metadata DB (tests/e2e/servers.py).
* Airflow 2.11: ``webserver``, ``scheduler`` and ``triggerer``. 2.11 refuses the LocalExecutor on
  SQLite, so tasks run one at a time under the SequentialExecutor there.

Every process is started in its own process group and stopped by its PID (``stop``), also when
a test fails; each writes to ``<home>/logs/<name>.out``.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

FINISHED = ("success", "failed")
CELERY_WORKER = "celery-worker"
# What the Celery worker gets as its metadata DB: a URL that names its purpose and leads nowhere
# (nothing listens on port 9), so any attempt to use it fails loudly and is visible in its log.
NO_METADATA_DB = "postgresql+psycopg2://celery-worker-has-no-metadata-db@127.0.0.1:9/none"


def airflow_major() -> int:
    from importlib.metadata import version

    return int(version("apache-airflow").split(".")[0])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class CeleryExecutorConfig:
    """The CeleryExecutor's settings (Airflow 3.x only).

    :param broker_url: Celery's broker, e.g. ``redis://127.0.0.1:PORT/0``.
    :param result_backend: Celery's result backend, e.g. ``db+postgresql+psycopg2://...``.
    :param concurrency: task slots of the one worker (also Airflow's ``parallelism``).
    :param heartbeat_timeout: seconds without a heartbeat after which the scheduler fails a task
        whose worker died (Airflow's default, 300 s, would make every worker-loss test slow).
    """

    broker_url: str
    result_backend: str
    concurrency: int = 4
    heartbeat_timeout: int = 30


@dataclass
class Deployment:
    """Airflow's processes on a throwaway home; ``dags`` are copied into its DAGs folder.

    :param home: an empty directory for ``AIRFLOW_HOME``.
    :param dags: DAG files to deploy.
    :param env: extra environment for every process (connections as ``AIRFLOW_CONN_*``...).
    :param connections: connections to create in the metadata DB (id -> JSON form).
    :param metadata_db: SQLAlchemy URL of the metadata DB; default: SQLite in ``home``.
    :param celery: run tasks on a Celery worker instead of the LocalExecutor (Airflow 3.x).
    """

    home: Path
    dags: list[Path]
    env: dict[str, str] = field(default_factory=dict)
    connections: dict[str, str] = field(default_factory=dict)
    metadata_db: str | None = None
    celery: CeleryExecutorConfig | None = None
    port: int = field(default_factory=free_port)
    jwt_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    worker_log_port: int = field(default_factory=free_port)
    trigger_log_port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    log_offsets: dict[str, int] = field(default_factory=dict)  # where each process's last start began

    @property
    def major(self) -> int:
        return airflow_major()

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/{'v2' if self.major >= 3 else 'v1'}"

    @property
    def database_url(self) -> str:
        """The metadata DB's SQLAlchemy URL."""
        return self.metadata_db or f"sqlite:///{self.home / 'airflow.db'}"

    def environment(self, process: str | None = None) -> dict[str, str]:
        """The environment of Airflow ``process`` (None: a CLI command)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST"))}
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.home / "dags"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__FERNET_KEY": "",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database_url,
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "1",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
                "PYTHONUNBUFFERED": "1",
                # executors start ``airflow`` by name
                "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
            }
        )
        if self.major >= 3:
            env.update(
                {
                    "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                    "AIRFLOW__CORE__PARALLELISM": "4",
                    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.port}/execution/",
                    "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{self.port}",
                    "AIRFLOW__API__PORT": str(self.port),
                    "AIRFLOW__API_AUTH__JWT_SECRET": self.jwt_secret,
                    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
                    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
                }
            )
            if self.celery is not None:
                env.update(self.celery_environment())
                if process == CELERY_WORKER:
                    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = NO_METADATA_DB
        else:
            env.update(
                {
                    "AIRFLOW__CORE__EXECUTOR": "SequentialExecutor",
                    "AIRFLOW__API__AUTH_BACKENDS": "airflow.api.auth.backend.default",
                    "AIRFLOW__WEBSERVER__WEB_SERVER_PORT": str(self.port),
                    "AIRFLOW__WEBSERVER__WORKERS": "1",
                    "AIRFLOW__WEBSERVER__SECRET_KEY": self.jwt_secret,
                    "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "2",
                    "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "600",
                    "AIRFLOW__SCHEDULER__PARSING_PROCESSES": "1",
                }
            )
        return env | self.env

    def celery_environment(self) -> dict[str, str]:
        assert self.celery is not None
        slots = str(self.celery.concurrency)
        return {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__PARALLELISM": slots,
            "AIRFLOW__CELERY__BROKER_URL": self.celery.broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": self.celery.result_backend,
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": slots,
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.worker_log_port),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.trigger_log_port),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(self.celery.heartbeat_timeout),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
        }

    def airflow(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run an ``airflow`` CLI command against this deployment's home."""
        result = subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=self.environment(),
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
        return result

    def start(self, timeout: float = 180) -> Deployment:
        (self.home / "dags").mkdir(parents=True, exist_ok=True)
        (self.home / "logs").mkdir(exist_ok=True)
        for dag in self.dags:
            shutil.copy(dag, self.home / "dags" / dag.name)
        if self.major < 3:  # the REST API open to anyone on loopback, as Airflow 3's all-admins mode
            (self.home / "webserver_config.py").write_text('AUTH_ROLE_PUBLIC = "Admin"\n')
        self.airflow("db", "migrate")
        for conn_id, conn_json in self.connections.items():
            self.airflow("connections", "add", conn_id, "--conn-json", conn_json)
        if self.major >= 3:
            names = {
                "api-server": ["api-server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
                "scheduler": ["scheduler"],
                "dag-processor": ["dag-processor"],
                "triggerer": ["triggerer"],
            }
            if self.celery is not None:
                names[CELERY_WORKER] = self.celery_worker_args()
        else:
            names = {
                "webserver": ["webserver", "--hostname", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
                "scheduler": ["scheduler"],
                "triggerer": ["triggerer"],
            }
        try:
            for name, args in names.items():
                self.start_process(name, args)
            self.wait_healthy(timeout)
            if self.celery is not None:
                self.wait_celery_worker_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def start_process(self, name: str, args: list[str]) -> None:
        path = self.home / "logs" / f"{name}.out"
        self.log_offsets[name] = path.stat().st_size if path.exists() else 0
        out = path.open("ab")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "airflow", *args],
            env=self.environment(name),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop_process(self, name: str, *, kill: bool = False) -> None:
        """Stop one process and its whole group, politely unless ``kill``; what is left of the
        group and of its descendants in other groups (a task process the Task SDK's supervisor
        puts in a group of its own) is killed after the leader exits."""
        process = self.processes.pop(name, None)
        if process is None:
            return
        try:
            descendants = psutil.Process(process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            descendants = []
        try:
            os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
            if kill:
                self._kill(descendants)
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        except ProcessLookupError:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        self._kill(descendants)

    @staticmethod
    def _kill(processes: list[psutil.Process], timeout: float = 10) -> None:
        """SIGKILL ``processes`` and wait until each is gone (or a zombie its new parent has not
        reaped yet: not ours to wait for)."""
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        deadline = time.monotonic() + timeout
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                while process.status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
                    time.sleep(0.05)

    def celery_worker_args(self) -> list[str]:
        assert self.celery is not None
        return ["celery", "worker", "--concurrency", str(self.celery.concurrency)]

    def kill_celery_worker(self, *, spare_task_processes: bool = False) -> list[psutil.Process]:
        """SIGKILL the whole Celery worker at once, as the kernel's OOM killer or a lost node
        would: its main process, its pool, the Task SDK supervisors and their task processes.

        :param spare_task_processes: SIGKILL only the worker's process group, as ``kill -9 -<pgid>``
            does: the task processes, each in a group of its own, live on without their supervisor.
            They are returned, for the caller to watch and then kill with :meth:`kill_processes`.
        """
        if not spare_task_processes:
            self.stop_process(CELERY_WORKER, kill=True)
            return []
        process = self.processes.pop(CELERY_WORKER)
        group = os.getpgid(process.pid)
        try:
            spared = [p for p in psutil.Process(process.pid).children(recursive=True) if os.getpgid(p.pid) != group]
        except (psutil.NoSuchProcess, ProcessLookupError):
            spared = []
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        process.wait(timeout=20)
        return spared

    @classmethod
    def kill_processes(cls, processes: list[psutil.Process]) -> None:
        """SIGKILL ``processes`` (those :meth:`kill_celery_worker` spared) and wait for them."""
        cls._kill(processes)

    def restart_celery_worker(self, timeout: float = 120) -> None:
        self.start_process(CELERY_WORKER, self.celery_worker_args())
        self.wait_celery_worker_ready(timeout)

    def wait_celery_worker_ready(self, timeout: float) -> None:
        """Wait for Celery's "<name> ready." line of the worker started last."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if " ready." in self.log_since_start(CELERY_WORKER):
                return
            time.sleep(0.5)
        raise TimeoutError(f"the Celery worker is not ready after {timeout}s\n{self.log_tail(CELERY_WORKER)}")

    def stop(self) -> None:
        for name in list(self.processes):
            self.stop_process(name)

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        path = "/api/v2/monitor/health" if self.major >= 3 else "/health"
        wanted = ["metadatabase", "scheduler", "triggerer"] + (["dag_processor"] if self.major >= 3 else [])
        last: Any = None
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                last = self.request("GET", path, root=True)
                if all((last.get(part) or {}).get("status") == "healthy" for part in wanted):
                    return
            except (OSError, ValueError) as err:
                last = err
            time.sleep(1)
        raise TimeoutError(f"Airflow not healthy after {timeout}s: {last}\n{self.log_tail('scheduler')}")

    def check_alive(self) -> None:
        """Fail at once when one of Airflow's processes has died."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{self.log_tail(name)}")

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.home / "logs" / f"{name}.out"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def log_since_start(self, name: str) -> str:
        """What ``name`` logged since it was last started."""
        path = self.home / "logs" / f"{name}.out"
        if not path.exists():
            return ""
        with path.open("rb") as log:
            log.seek(self.log_offsets.get(name, 0))
            return log.read().decode(errors="replace")

    def page(self, path: str) -> str:
        """A page of the web UI (Airflow 2.11's Flask views), as HTML."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=30) as answer:
            return str(answer.read().decode())

    def request(self, method: str, path: str, body: Any = None, *, root: bool = False) -> Any:
        url = (f"http://127.0.0.1:{self.port}" if root else self.api) + path
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})  # noqa: S310
        try:
            with urllib.request.urlopen(req, timeout=30) as answer:  # noqa: S310
                raw = answer.read()
        except urllib.error.HTTPError as err:
            raise ValueError(f"{method} {path}: HTTP {err.code}: {err.read()[:500]!r}") from err
        return json.loads(raw) if raw else None

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.request("GET", f"/dags/{dag_id}")
                return
            except ValueError:
                self.check_alive()
                if time.monotonic() > deadline:
                    errors = self.request("GET", "/importErrors")
                    raise TimeoutError(f"DAG {dag_id} not parsed after {timeout}s; import errors: {errors}") from None
                time.sleep(1)

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """Start a run of ``dag_id`` through the REST API; returns its run id."""
        self.wait_for_dag(dag_id)
        body: dict[str, Any] = {"conf": conf or {}}
        if self.major >= 3:
            body["logical_date"] = None
        run = self.request("POST", f"/dags/{dag_id}/dagRuns", body)
        return str(run["dag_run_id"])

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 240) -> str:
        """Wait until the run finishes; returns its state."""
        deadline = time.monotonic() + timeout
        quoted = urllib.parse.quote(run_id, safe="")
        while time.monotonic() < deadline:
            self.check_alive()
            state = str(self.request("GET", f"/dags/{dag_id}/dagRuns/{quoted}")["state"])
            if state in FINISHED:
                return state
            time.sleep(1)
        raise TimeoutError(f"run {run_id} of {dag_id} not finished after {timeout}s\n{self.log_tail('scheduler')}")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        quoted = urllib.parse.quote(run_id, safe="")
        listing = self.request("GET", f"/dags/{dag_id}/dagRuns/{quoted}/taskInstances")
        return {ti["task_id"]: ti["state"] for ti in listing["task_instances"]}

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        quoted = urllib.parse.quote(run_id, safe="")
        path = f"/dags/{dag_id}/dagRuns/{quoted}/taskInstances/{task_id}/xcomEntries/{key}"
        entry = self.request("GET", path)
        value = entry["value"]
        if isinstance(value, str):  # the REST API may hand back the stored JSON or a repr
            try:
                return json.loads(value)
            except ValueError:
                try:
                    return ast.literal_eval(value)
                except (ValueError, SyntaxError):
                    return value
        return value

    def variables(self) -> list[str]:
        return [v["key"] for v in self.request("GET", "/variables?limit=1000")["variables"]]

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """The rows of ``sql`` run on the metadata DB (SQLite or PostgreSQL)."""
        return query(self.database_url, sql)


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` run on the database at SQLAlchemy ``url``."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(sqlalchemy.text(sql))]
    finally:
        engine.dispose()
