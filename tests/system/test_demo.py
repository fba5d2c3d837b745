"""The main job (tools/demo.py) in both of its modes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from airflow_provider_octopods.sandbox import SandboxServer
from tests.conftest import ROOT, TEST_KEY


def demo(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST"))}
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "demo.py"), *args],
        env=clean | {"HOME": str(tmp_path)} | env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_demo_uses_the_embedded_sandbox_by_default(tmp_path: Path) -> None:
    result = demo(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Mode: local Octopods sandbox at http://127.0.0.1:")
    assert "Final delivery status: delivered" in lines
    assert any(line.startswith("Message id: ") for line in lines)
    log = Path(lines[-1].removeprefix("Task logs: "))
    assert "Sending SMS to +1*******100" in log.read_text()


def test_demo_uses_a_configured_connection_and_needs_a_recipient(
    tmp_path: Path, octopods_sandbox_factory: Callable[..., SandboxServer]
) -> None:
    api = octopods_sandbox_factory(sent_after=0.2, final_after=0.5)  # stands in for the real API
    conn = api.connection_json(TEST_KEY)
    refused = demo(tmp_path, AIRFLOW_CONN_OCTOPODS_DEFAULT=conn)
    assert refused.returncode == 2
    assert refused.stdout.splitlines()[0].startswith("Mode: real Octopods API (connection octopods_default from")
    assert api.messages() == []
    result = demo(tmp_path, "--phone", "+447700900123", AIRFLOW_CONN_OCTOPODS_DEFAULT=conn)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    assert result.stdout.startswith("Mode: real Octopods API")
    [message] = api.messages()
    assert message.phone == "+447700900123"
    assert TEST_KEY not in result.stdout + result.stderr


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
        f"Mode: real Octopods API (connection octopods_default from the Airflow connection store of {home})"
    )
    assert len(api.messages()) == 1
    assert TEST_KEY not in result.stdout
