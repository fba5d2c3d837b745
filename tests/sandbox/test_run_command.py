"""``octopods-sandbox run -- COMMAND``: a sandbox for one command, its connection, its report."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from airflow_provider_octopods.sandbox.config import SandboxConfig
from airflow_provider_octopods.sandbox.runner import run_command

SANDBOX = [str(Path(sys.executable).parent / "octopods-sandbox")]
KEY = "run-test-key-Hq2"

HOOK_SCRIPT = """
import sys
from airflow_provider_octopods.hooks.octopods import OctopodsHook

result = OctopodsHook().send_sms("+15005550100", "hi")
print("sent", result.message_id)
sys.exit(3)
"""

REQUESTS_SCRIPT = """
import json, os
import requests

conn = json.loads(os.environ["AIRFLOW_CONN_SMS_ALERTS"])
assert "AIRFLOW_CONN_OCTOPODS_DEFAULT" not in os.environ
url = conn["host"] + "/api/v1/sms/messages"
headers = {"X-Octopods-Auth": conn["password"]}
body = "Reminder: " + "x" * 80
for _ in range(2):
    sent = requests.post(url, json={"destination_phone": "+447700900123", "body": body}, headers=headers, timeout=5)
    assert sent.status_code == 201, sent.text
requests.get(url + "/" + str(sent.json()["message_id"]), headers=headers, timeout=5).raise_for_status()
refused = requests.post(url, json={"destination_phone": "+15005550104", "body": "x"}, headers=headers, timeout=5)
assert refused.status_code == 400
print("host", conn["host"])
"""


def sandbox_run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "PYTEST"))}
    return subprocess.run(
        [*SANDBOX, "run", *args],
        env=env | {"AIRFLOW_HOME": str(tmp_path / "airflow")},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def saved_messages(report: list[str]) -> Path:
    """The file of all messages that a report names, removed when the test ends."""
    [command] = [line.partition(": ")[2] for line in report if "octopods-sandbox messages --from " in line]
    path = Path(command.removeprefix("octopods-sandbox messages --from ").removesuffix(" --full"))
    assert path.is_file()
    return path


def script(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_run_gives_the_command_a_connection_and_passes_its_exit_code(tmp_path: Path) -> None:
    my_dag = script(tmp_path, "my_dag.py", HOOK_SCRIPT)
    result = sandbox_run(
        tmp_path, "--sent-after", "0", "--final-after", "0", "--api-key", KEY, "--", sys.executable, my_dag
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "sent " in result.stdout
    report = result.stderr.splitlines()
    assert "octopods-sandbox: the command exited with code 3 after" in result.stderr
    start = report.index("The sandbox received 1 message(s): 1 delivered")
    message = report[start + 1].split()
    assert message[2:] == ["+1*******100", "delivered", '"hi"']
    saved = saved_messages(report)
    assert report[start + 2] == f"Whole bodies: octopods-sandbox messages --from {saved} --full"
    assert [m["body"] for m in json.loads(saved.read_text())["messages"]] == ["hi"]
    saved.unlink()
    assert report[start + 3 :] == [
        "Duplicated phone-and-body pairs: 0",
        "Requests: 1 send(s), 0 status read(s); answers: 201 x1",
    ]
    assert "+15005550100" not in result.stdout + result.stderr
    assert KEY not in result.stdout + result.stderr


def test_run_with_another_connection_id_reports_duplicates_and_requests(tmp_path: Path) -> None:
    client = script(tmp_path, "client.py", REQUESTS_SCRIPT)
    # Slow progression, so every message is still queued when the report is printed; no "--" needed.
    options = ["--quiet", "--sent-after", "60", "--final-after", "60", "--conn-id", "sms_alerts"]
    result = sandbox_run(tmp_path, *options, sys.executable, client)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("host http://127.0.0.1:")
    report = result.stderr.splitlines()
    assert "connection 'sms_alerts' is in AIRFLOW_CONN_SMS_ALERTS for the command (throwaway key)" in result.stderr
    start = report.index("The sandbox received 2 message(s): 2 queued")
    body = '"Reminder: ' + "x" * 50 + '"… (90 chars)'
    for line in report[start + 1 : start + 3]:
        assert line.split(maxsplit=4)[2:] == ["+44*******123", "queued", body]
    saved_messages(report).unlink()
    assert report[start + 4 :] == [
        "Duplicated phone-and-body pairs: 1",
        "Requests: 3 send(s), 1 status read(s); answers: 200 x1, 201 x2, error 3 x1",
    ]
    assert "POST /api/v1/sms/messages" not in result.stderr  # --quiet: no request log


def test_run_reports_a_command_that_cannot_start(tmp_path: Path) -> None:
    result = sandbox_run(tmp_path, "--", str(tmp_path / "no-such-command"))
    assert result.returncode == 127
    assert "octopods-sandbox: cannot run" in result.stderr
    assert "The sandbox received 0 message(s)." in result.stderr.splitlines()


def test_run_does_not_run_the_command_when_the_sandbox_cannot_start(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = sandbox_run(tmp_path, "--port", port, "--", sys.executable, "-c", f"open({str(marker)!r}, 'w')")
    assert result.returncode == 2
    assert f"octopods-sandbox: the sandbox could not start on 127.0.0.1:{port}" in result.stderr
    assert not marker.exists()


@pytest.mark.parametrize("args", [[], ["--port", "0"], ["--port", "0", "--"], ["--"]])
def test_run_needs_a_command(tmp_path: Path, args: list[str]) -> None:
    result = sandbox_run(tmp_path, *args)
    assert result.returncode == 2
    assert "no command given" in result.stderr


def test_run_refuses_arguments_before_the_double_dash(tmp_path: Path) -> None:
    result = sandbox_run(tmp_path, "python", "--", "x.py")
    assert result.returncode == 2
    assert "unrecognized arguments before --: python" in result.stderr


def test_run_help_and_the_main_help_describe_it() -> None:
    run_help = subprocess.run([*SANDBOX, "run", "--help"], capture_output=True, text=True, check=True).stdout
    for text in ("--conn-id", "--variant", "--fault", "-- COMMAND", "AIRFLOW_CONN_<ID>"):
        assert text in run_help
    main_help = subprocess.run([*SANDBOX, "--help"], capture_output=True, text=True, check=True).stdout
    assert "octopods-sandbox run [options] [--conn-id ID] -- COMMAND" in main_help


def test_run_command_in_process_reports_an_empty_sandbox() -> None:
    out = io.StringIO()
    code = run_command(SandboxConfig(), [sys.executable, "-c", "raise SystemExit(5)"], out=out)
    assert code == 5
    lines = out.getvalue().splitlines()
    assert lines[-3:] == [
        "The sandbox received 0 message(s).",
        "Duplicated phone-and-body pairs: 0",
        "Requests: none",
    ]
