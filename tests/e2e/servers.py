"""Throwaway PostgreSQL and Redis servers on 127.0.0.1 for the "PostgreSQL + CeleryExecutor" e2e tier.

Both come from Debian's packages (``postgresql``, ``redis-server``), installed with ``apt-get``
when missing, so that ``python3 tools/dev.py test`` gets there on a fresh machine. Each server
runs from a fresh directory, on a free port, listening on 127.0.0.1 only (no Unix socket), as a
non-root user when started by root (PostgreSQL refuses to run as root): the ``postgres`` and
``redis`` system users the packages create. :func:`running_servers` stops both and removes
their files, also when the tests fail.

The cluster holds two databases, each reachable only by its own role (``CONNECT`` is revoked
from ``PUBLIC``):

* ``airflow``, owned by role ``airflow``: Airflow's metadata DB;
* ``celery_results``, owned by role ``celery``: Celery's result backend. The Celery worker gets
  only this role, so it can read and write task results without any access to the metadata DB.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PACKAGES = ("postgresql", "redis-server")


class ServersUnavailable(RuntimeError):
    """PostgreSQL or Redis cannot be installed or started on this machine."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_bin_dir() -> Path | None:
    """The ``bin`` folder of the newest PostgreSQL server installed (Debian keeps each major
    version in ``/usr/lib/postgresql/<major>/bin``, off the ``PATH``)."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    found.sort(key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0)
    if found:
        return found[-1]
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def missing_packages() -> list[str]:
    missing = []
    bin_dir = postgres_bin_dir()
    if bin_dir is None or not (bin_dir / "pg_ctl").exists() or shutil.which("psql") is None:
        missing.append("postgresql")
    if shutil.which("redis-server") is None:
        missing.append("redis-server")
    return missing


def ensure_installed(timeout: float = 900) -> None:
    """Install PostgreSQL and Redis from Debian's packages unless already there.

    :raises ServersUnavailable: they are missing and cannot be installed (no ``apt-get``, not
        root, or ``apt-get`` failed), with the reason.
    """
    missing = missing_packages()
    if not missing:
        return
    if shutil.which("apt-get") is None:
        raise ServersUnavailable(f"{', '.join(missing)} not installed and there is no apt-get to install them")
    if os.geteuid() != 0:
        raise ServersUnavailable(
            f"{', '.join(missing)} not installed; as root: apt-get install -y {' '.join(PACKAGES)}"
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]

    def apt(cmd: list[str]) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            raise ServersUnavailable(f"{' '.join(cmd)} did not finish in {timeout:.0f}s") from None

    result = apt(install)
    if result.returncode != 0:  # a fresh machine has no package lists yet
        apt(["apt-get", "update", "-q"])
        result = apt(install)
    if result.returncode != 0 or missing_packages():
        raise ServersUnavailable(
            f"apt-get install {' '.join(PACKAGES)} failed ({result.returncode}):\n"
            f"{result.stdout[-1500:]}\n{result.stderr[-1500:]}"
        )


def service_user(name: str) -> str | None:
    """The user a server runs as: ``name`` (a package's system user) when we are root, else us."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(name)
    except KeyError:
        raise ServersUnavailable(f"user {name!r} not found: is the package that creates it installed?") from None
    return name


def run_as(user: str | None, cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` as ``user`` (None: as ourselves); raise with its output if it fails."""
    ids: dict[str, Any] = {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []} if user else {}
    result = subprocess.run(
        cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False, timeout=120, **ids, **kwargs
    )
    if result.returncode != 0:
        raise ServersUnavailable(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def wait_for_port(port: int, timeout: float, alive: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None:
            alive()
        with socket.socket() as sock:
            sock.settimeout(1)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise ServersUnavailable(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@dataclass
class Role:
    """A PostgreSQL login role owning one database of the same purpose."""

    name: str
    database: str
    password: str = field(default_factory=lambda: secrets.token_hex(12))


@dataclass
class PostgresServer:
    """A PostgreSQL cluster created with ``initdb`` in ``workdir``, started with ``pg_ctl``."""

    workdir: Path
    roles: list[Role]
    port: int = field(default_factory=free_port)
    superuser: Role = field(default_factory=lambda: Role("e2e_admin", "postgres"))
    user: str | None = None

    @property
    def data(self) -> Path:
        return self.workdir / "data"

    @property
    def log_path(self) -> Path:
        return self.workdir / "postgres.log"

    def url(self, role: str, driver: str = "postgresql+psycopg2") -> str:
        """A SQLAlchemy URL for ``role``'s database."""
        [found] = [r for r in self.roles if r.name == role]
        return f"{driver}://{found.name}:{found.password}@127.0.0.1:{self.port}/{found.database}"

    def start(self) -> PostgresServer:
        bin_dir = postgres_bin_dir()
        if bin_dir is None:
            raise ServersUnavailable("PostgreSQL's initdb not found")
        self.user = service_user("postgres")
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.user:
            shutil.chown(self.workdir, self.user, self.user)
        password_file = self.workdir / "superuser-password"
        password_file.write_text(self.superuser.password)
        if self.user:
            shutil.chown(password_file, self.user, self.user)
        run_as(
            self.user,
            [
                str(bin_dir / "initdb"),
                "--pgdata",
                str(self.data),
                "--username",
                self.superuser.name,
                "--pwfile",
                str(password_file),
                "--auth",
                "scram-sha-256",
                "--encoding",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
            cwd=self.workdir,
        )
        password_file.unlink()
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": "''",
            "max_connections": "200",
            # a throwaway cluster: durability buys nothing here
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        options = " ".join(f"-c {name}={value}" for name, value in settings.items())
        pg_ctl = [str(bin_dir / "pg_ctl"), "--pgdata", str(self.data)]
        run_as(
            self.user,
            [*pg_ctl, "start", "--wait", "--timeout", "60", "--log", str(self.log_path), "-o", options],
            cwd=self.workdir,
        )
        statements = []
        for role in self.roles:
            statements += [
                f"CREATE ROLE {role.name} LOGIN PASSWORD '{role.password}'",
                f"CREATE DATABASE {role.database} OWNER {role.name}",
                f"REVOKE ALL ON DATABASE {role.database} FROM PUBLIC",
            ]
        for statement in statements:
            self.psql(statement)
        return self

    def psql_args(self, role: str, database: str) -> list[str]:
        """``psql`` connecting as ``role`` to ``database`` (the password goes in ``PGPASSWORD``)."""
        return ["psql", "-X", "-h", "127.0.0.1", "-p", str(self.port), "-U", role, "-d", database]

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` as the superuser; returns psql's unaligned output."""
        result = subprocess.run(
            [*self.psql_args(self.superuser.name, database), "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
            env=dict(os.environ, PGPASSWORD=self.superuser.password, PGCONNECT_TIMEOUT="10"),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql {sql!r} failed: {result.stderr}")
        return result.stdout

    def stop(self) -> None:
        bin_dir = postgres_bin_dir()
        if bin_dir is None or not (self.data / "postmaster.pid").exists():
            return
        pg_ctl = [str(bin_dir / "pg_ctl"), "--pgdata", str(self.data), "stop", "--wait", "--timeout", "30"]
        try:
            run_as(self.user, [*pg_ctl, "--mode", "fast"], cwd=self.workdir)
        except (ServersUnavailable, subprocess.TimeoutExpired):
            with contextlib.suppress(ServersUnavailable, subprocess.TimeoutExpired):
                run_as(self.user, [*pg_ctl, "--mode", "immediate"], cwd=self.workdir)


@dataclass
class RedisServer:
    """A ``redis-server`` with no persistence in ``workdir``."""

    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.workdir / "redis.log"

    def start(self) -> RedisServer:
        executable = shutil.which("redis-server")
        if executable is None:
            raise ServersUnavailable("redis-server not found")
        user = service_user("redis")
        self.workdir.mkdir(parents=True, exist_ok=True)
        ids: dict[str, Any] = {}
        if user:
            shutil.chown(self.workdir, user, user)
            ids = {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []}
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir)]
        args += ["--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", str(self.log_path)]
        self.process = subprocess.Popen(
            [executable, *args], stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.workdir, **ids
        )
        wait_for_port(self.port, 60, alive=self._check_alive)
        return self

    def _check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            log = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
            raise ServersUnavailable(f"redis-server exited with {self.process.returncode}:\n{log}")

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None


@dataclass
class Servers:
    """The running PostgreSQL cluster and Redis server of one e2e session."""

    postgres: PostgresServer
    redis: RedisServer

    @property
    def metadata_db_url(self) -> str:
        return self.postgres.url("airflow")

    @property
    def result_backend(self) -> str:
        """Celery's result backend: the ``celery`` role's own database."""
        return "db+" + self.postgres.url("celery")

    @property
    def broker_url(self) -> str:
        return self.redis.url

    def logs(self) -> list[Path]:
        return [self.postgres.log_path, self.redis.log_path]


@contextlib.contextmanager
def running_servers(keep_logs_in: Path | None = None) -> Iterator[Servers]:
    """PostgreSQL and Redis, installed if needed, started, and stopped (their files removed) at
    exit; their logs are copied to ``keep_logs_in`` first.

    :raises ServersUnavailable: they cannot be installed or started.
    """
    ensure_installed()
    workdir = Path(tempfile.mkdtemp(prefix="octopods-e2e-servers-"))
    workdir.chmod(0o755)  # the servers' own users must reach their folders
    servers = Servers(
        PostgresServer(workdir / "postgres", [Role("airflow", "airflow"), Role("celery", "celery_results")]),
        RedisServer(workdir / "redis"),
    )
    try:
        servers.postgres.start()
        servers.redis.start()
        yield servers
    finally:
        try:
            servers.redis.stop()
        finally:
            servers.postgres.stop()
            if keep_logs_in is not None:
                keep_logs_in.mkdir(parents=True, exist_ok=True)
                for log in servers.logs():
                    if log.exists():
                        shutil.copy(log, keep_logs_in / log.name)
            shutil.rmtree(workdir, ignore_errors=True)
