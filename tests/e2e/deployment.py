"""A real Airflow deployment on 127.0.0.1 for end-to-end tests: every process Airflow runs in
production, a throwaway ``AIRFLOW_HOME`` with a SQLite metadata DB, and Airflow's REST API to
drive it.

* Airflow 3.x: ``api-server``, ``scheduler``, ``dag-processor`` and ``triggerer``, LocalExecutor.
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

FINISHED = ("success", "failed")


def airflow_major() -> int:
    from importlib.metadata import version

    return int(version("apache-airflow").split(".")[0])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Deployment:
    """Airflow's processes on a throwaway home; ``dags`` are copied into its DAGs folder.

    :param home: an empty directory for ``AIRFLOW_HOME``.
    :param dags: DAG files to deploy.
    :param env: extra environment for every process (connections as ``AIRFLOW_CONN_*``...).
    :param connections: connections to create in the metadata DB (id -> JSON form).
    """

    home: Path
    dags: list[Path]
    env: dict[str, str] = field(default_factory=dict)
    connections: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    jwt_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def major(self) -> int:
        return airflow_major()

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/{'v2' if self.major >= 3 else 'v1'}"

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST"))}
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.home / "dags"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__FERNET_KEY": "",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
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
        except BaseException:
            self.stop()
            raise
        return self

    def start_process(self, name: str, args: list[str]) -> None:
        out = (self.home / "logs" / f"{name}.out").open("ab")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "airflow", *args],
            env=self.environment(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop_process(self, name: str, *, kill: bool = False) -> None:
        """Stop one process and its whole group, politely unless ``kill``; what is left of the
        group (a task runner the leader did not wait for) is killed after the leader exits."""
        process = self.processes.pop(name, None)
        if process is None:
            return
        try:
            os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        except ProcessLookupError:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

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
