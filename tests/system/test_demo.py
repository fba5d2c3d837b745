"""The main job (tools/demo.py) in each of its modes, and ``tools/dev.py demo`` choosing the Airflow line."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_octopods.sandbox import SandboxServer
from tests.conftest import ROOT, TEST_KEY
from tools import dev
from tools.demo import connection_base_url, is_loopback


def demo(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the demo with ``tmp_path`` as HOME and as the temporary folder its Airflow home goes to."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST"))}
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "demo.py"), *args],
        env=clean | {"HOME": str(tmp_path), "TMPDIR": str(tmp_path)} | env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def left_behind(tmp_path: Path) -> list[Path]:
    return [path for path in tmp_path.glob("octopods-demo-*") if path.is_dir()]


def test_demo_uses_the_embedded_sandbox_by_default_and_cleans_up(tmp_path: Path) -> None:
    result = demo(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Mode: local Octopods sandbox at http://127.0.0.1:")
    assert "Final delivery status: delivered" in lines
    assert any(line.startswith("Message id: ") for line in lines)
    assert lines[-1].startswith("Removed the throwaway Airflow home ")
    assert left_behind(tmp_path) == []
    assert list(tmp_path.glob("octopods-demo-*.log")) == []  # logs are only kept after a failure


def test_a_failed_demo_keeps_its_task_logs_and_shows_the_error(tmp_path: Path) -> None:
    result = demo(tmp_path, "--phone", "+15005550101")  # the sandbox's "not a valid mobile subscriber"
    assert result.returncode == 1, result.stdout + result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert "  task track_delivery: failed" in lines
    errors = lines[lines.index("Errors in the task logs:") + 1 :]
    assert any("not a valid mobile subscriber" in line for line in errors)
    [saved_line] = [line for line in lines if line.startswith("Task logs saved to ")]
    saved = Path(saved_line.removeprefix("Task logs saved to "))
    assert saved.parent == tmp_path
    assert "Sending SMS to +1*******101" in saved.read_text()
    assert left_behind(tmp_path) == []
    assert "+15005550101" not in result.stdout


def test_demo_labels_a_configured_loopback_connection_as_a_sandbox_and_needs_no_phone(
    tmp_path: Path, octopods_sandbox_factory: Callable[..., SandboxServer]
) -> None:
    api = octopods_sandbox_factory(sent_after=0.2, final_after=0.5)  # one the user started
    result = demo(tmp_path, "--keep", AIRFLOW_CONN_OCTOPODS_DEFAULT=api.connection_json(TEST_KEY))
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0] == (
        f"Mode: local Octopods sandbox at {api.url} (connection octopods_default from environment variable "
        "AIRFLOW_CONN_OCTOPODS_DEFAULT; nothing leaves this machine)"
    )
    [message] = api.messages()
    assert message.phone == "+15005550100"  # the embedded mode's recipient
    assert TEST_KEY not in result.stdout + result.stderr
    [home] = left_behind(tmp_path)
    assert f"Kept the Airflow home for inspection (--keep): {home}" in lines
    assert lines[-1] == f"Task logs: {home / 'dag-run.log'}"
    assert "Sending SMS to +1*******100" in (home / "dag-run.log").read_text()


def test_demo_says_when_the_configured_sandbox_is_not_running(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    conn = json.dumps({"conn_type": "octopods", "host": f"http://127.0.0.1:{port}", "password": TEST_KEY})
    result = demo(tmp_path, AIRFLOW_CONN_OCTOPODS_DEFAULT=conn)
    assert result.returncode == 2
    assert result.stdout.splitlines() == [
        f"Mode: local Octopods sandbox at http://127.0.0.1:{port} (connection octopods_default from environment "
        "variable AIRFLOW_CONN_OCTOPODS_DEFAULT; nothing leaves this machine)",
        f"Nothing answers at http://127.0.0.1:{port}: start the sandbox there (octopods-sandbox --port ...).",
    ]
    assert left_behind(tmp_path) == []


def test_demo_needs_a_recipient_for_the_real_api(tmp_path: Path) -> None:
    conn = json.dumps({"conn_type": "octopods", "password": TEST_KEY})  # no host: https://app.octopods.io
    result = demo(tmp_path, AIRFLOW_CONN_OCTOPODS_DEFAULT=conn)
    assert result.returncode == 2
    assert result.stdout.splitlines() == [
        "Mode: real Octopods API (connection octopods_default from environment variable AIRFLOW_CONN_OCTOPODS_DEFAULT)",
        "Refusing to send a real SMS without a recipient: pass --phone +<country><number>.",
    ]
    assert TEST_KEY not in result.stdout + result.stderr
    assert left_behind(tmp_path) == []


@pytest.mark.parametrize(
    ("value", "url", "local"),
    [
        ('{"conn_type": "octopods", "password": "k"}', "https://app.octopods.io", False),
        (
            '{"conn_type": "octopods", "host": "https://app.octopods.io/", "password": "k"}',
            "https://app.octopods.io",
            False,
        ),
        ('{"conn_type": "octopods", "host": "http://127.0.0.1:8080", "password": "k"}', "http://127.0.0.1:8080", True),
        ('{"conn_type": "octopods", "host": "localhost", "schema": "http", "port": 9}', "http://localhost:9", True),
        ('{"conn_type": "octopods", "host": "http://[::1]:8080"}', "http://[::1]:8080", True),
        ("octopods://:k@127.0.0.1:8080/http", "http://127.0.0.1:8080", True),
        ("octopods://:k@http%3A%2F%2F127.0.0.1%3A8080", "http://127.0.0.1:8080", True),
        ("octopods://:k@sms.example.com", "https://sms.example.com", False),
        ("octopods://:k@127.0.0.1.example.com", "https://127.0.0.1.example.com", False),
    ],
)
def test_demo_tells_a_local_sandbox_from_the_real_api(value: str, url: str, local: bool) -> None:
    assert connection_base_url(value) == url
    assert is_loopback(url) is local


def test_demo_finds_the_connection_in_the_users_airflow_store(
    tmp_path: Path, octopods_sandbox_factory: Callable[..., SandboxServer]
) -> None:
    api = octopods_sandbox_factory(sent_after=0.2, final_after=0.5)
    home = tmp_path / "my-airflow"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST"))}
    env |= {"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    airflow = [sys.executable, "-m", "airflow"]
    subprocess.run([*airflow, "db", "migrate"], env=env, capture_output=True, check=True)
    subprocess.run(
        [*airflow, "connections", "add", "octopods_default", "--conn-json", api.connection_json(TEST_KEY)],
        env=env,
        capture_output=True,
        check=True,
    )
    result = demo(tmp_path, "--phone", "+15005550100", AIRFLOW_HOME=str(home))
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    assert result.stdout.startswith(
        f"Mode: local Octopods sandbox at {api.url} (connection octopods_default from the Airflow connection "
        f"store of {home}; nothing leaves this machine)"
    )
    assert len(api.messages()) == 1
    assert TEST_KEY not in result.stdout
    assert left_behind(tmp_path) == []


@pytest.fixture
def dev_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[str], dict[str, str]]]:
    """What ``tools/dev.py`` would run (uv, pytest, the demo), recorded instead of run."""
    calls: list[tuple[list[str], dict[str, str]]] = []

    def record(cmd: list[str], *, env: dict[str, str] | None = None, **_: Any) -> int:
        calls.append((cmd, env or {}))
        return 0

    monkeypatch.setattr(dev, "uv", lambda: "uv")
    monkeypatch.setattr(dev, "run", record)
    monkeypatch.setattr(dev, "QUIET", False)
    return calls


@pytest.mark.parametrize(("line", "venv"), [("2", ".venv-af2"), ("3", ".venv")])
def test_dev_demo_runs_on_the_chosen_airflow_line_like_the_test_command(
    dev_calls: list[tuple[list[str], dict[str, str]]], line: str, venv: str
) -> None:
    assert dev.main(["test", "--airflow", line]) == 0
    test_sync = dev_calls[0]
    dev_calls.clear()
    assert dev.main(["demo", "--airflow", line, "--keep"] if line == "2" else ["demo", "--keep"]) == 0
    sync, (command, env) = dev_calls
    assert sync == test_sync
    assert sync[1]["UV_PROJECT_ENVIRONMENT"] == str(ROOT / venv)
    assert command == [str(ROOT / venv / "bin" / "python"), str(ROOT / "tools" / "demo.py"), "--keep"]
    assert env["VIRTUAL_ENV"] == str(ROOT / venv)
