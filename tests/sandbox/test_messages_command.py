"""``octopods-sandbox messages``: what a running sandbox received; and the summary ``run`` prints."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from airflow_provider_octopods.sandbox import SandboxServer
from airflow_provider_octopods.sandbox.cli import main
from tests.sandbox.test_run_command import SANDBOX, sandbox_run, saved_messages, script

KEY = "messages-test-key-4Rt"
LONG_ALERT = "ALERT nightly_etl failed: " + "task load_orders retried 3 times; " * 4 + "END"
MESSAGES = [
    ("+15005550100", "short one"),
    ("+447700900123", LONG_ALERT),
    ("+15005550101", "this one fails"),
]
MESSAGE_LINE_START = "  id "

TWENTY_FIVE_SCRIPT = """
import json, os
import requests

conn = json.loads(os.environ["AIRFLOW_CONN_OCTOPODS_DEFAULT"])
url = conn["host"] + "/api/v1/sms/messages"
for n in range(25):
    phone = "+15005550101" if n % 5 == 0 else "+15005550100"
    body = f"message {n:02}: " + "x" * 70
    sent = requests.post(url, json={"destination_phone": phone, "body": body},
                         headers={"X-Octopods-Auth": conn["password"]}, timeout=5)
    assert sent.status_code == 201, sent.text
"""

SEND_THEN_LIST_SCRIPT = f"""
import json, os, subprocess, sys
import requests

conn = json.loads(os.environ["AIRFLOW_CONN_OCTOPODS_DEFAULT"])
sent = requests.post(conn["host"] + "/api/v1/sms/messages",
                     json={{"destination_phone": "+447700900123", "body": {LONG_ALERT!r}}},
                     headers={{"X-Octopods-Auth": conn["password"]}}, timeout=5)
assert sent.status_code == 201, sent.text
sys.exit(subprocess.run([{SANDBOX[0]!r}, "messages", "--full"]).returncode)
"""


@pytest.fixture
def sandbox(octopods_sandbox_factory: Callable[..., SandboxServer]) -> SandboxServer:
    """A sandbox that received MESSAGES, each already in its final status."""
    server = octopods_sandbox_factory(sent_after=0, final_after=0)
    for phone, body in MESSAGES:
        answer = requests.post(
            server.url + "/api/v1/sms/messages",
            json={"destination_phone": phone, "body": body},
            headers={"X-Octopods-Auth": KEY},
            timeout=5,
        )
        assert answer.status_code == 201, answer.text
    return server


def message_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(MESSAGE_LINE_START)]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_messages_cuts_long_bodies_and_full_prints_them_whole(
    sandbox: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["messages", "--url", sandbox.url]) == 0
    cut = capsys.readouterr().out
    lines = message_lines(cut)
    assert [line.split()[2:4] for line in lines] == [
        ["+1*******100", "delivered"],
        ["+44*******123", "delivered"],
        ["+1*******101", "failed"],
    ]
    assert lines[0].endswith('"short one"')
    assert lines[1].endswith(f'"{LONG_ALERT[:60]}"… ({len(LONG_ALERT)} chars)')
    assert LONG_ALERT[:61] not in cut
    assert "3 message(s), from " + sandbox.url + ": 2 delivered, 1 failed" in cut
    assert "+447700900123" not in cut  # phones masked, as run's report shows them

    assert main(["messages", "--url", sandbox.url + "/", "--full"]) == 0
    full = capsys.readouterr().out
    assert message_lines(full)[1].endswith(f'"{LONG_ALERT}"')
    assert "…" not in full


def test_messages_filters_by_phone_compared_in_e164(sandbox: SandboxServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["messages", "--url", sandbox.url, "--phone", "+44 7700-900 123"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[2] for line in message_lines(out)] == ["+44*******123"]
    assert "1 message(s) to +44*******123, of 3, from " in out

    assert main(["messages", "--url", sandbox.url, "--phone", "+15005550199"]) == 0
    assert message_lines(capsys.readouterr().out) == []

    with pytest.raises(SystemExit) as exited:
        main(["messages", "--url", sandbox.url, "--phone", "07700 900123"])
    assert exited.value.code == 2
    assert "--phone" in capsys.readouterr().err


def test_messages_json_is_the_sandbox_list_with_whole_bodies(
    sandbox: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["messages", "--url", sandbox.url, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    answer = requests.get(sandbox.url + "/_sandbox/messages", timeout=5).json()["messages"]
    assert listed == answer
    assert [(m["phone"], m["body"]) for m in listed] == MESSAGES
    assert [m["status"] for m in listed] == ["delivered", "delivered", "failed"]

    assert main(["messages", "--url", sandbox.url, "--json", "--phone", "+15005550101"]) == 0
    assert [m["body"] for m in json.loads(capsys.readouterr().out)] == ["this one fails"]


def test_messages_escapes_characters_a_terminal_would_act_on(
    octopods_sandbox: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    body = "pay \u202eatad\u202c now \x9b2J \ud800 end"
    sent = requests.post(
        octopods_sandbox.url + "/api/v1/sms/messages",
        data=json.dumps({"destination_phone": "+15005550100", "body": body}),
        headers={"X-Octopods-Auth": KEY, "Content-Type": "application/json"},
        timeout=5,
    )
    assert sent.status_code == 201, sent.text
    assert main(["messages", "--url", octopods_sandbox.url, "--full"]) == 0
    [line] = message_lines(capsys.readouterr().out)
    assert line.endswith(r'"pay \u202eatad\u202c now \u009b2J \ud800 end"')


def test_messages_reads_the_sandbox_directly_not_through_a_proxy_of_the_environment(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for variable in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(variable, f"http://127.0.0.1:{closed_port()}")
    for variable in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(variable, raising=False)
    assert main(["messages", "--url", sandbox.url]) == 0
    assert len(message_lines(capsys.readouterr().out)) == 3


def test_messages_from_an_unreachable_sandbox_is_a_one_line_error() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    result = subprocess.run([*SANDBOX, "messages", "--url", url], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("octopods-sandbox messages: ")
    assert url in line
    assert "Traceback" not in result.stderr


def test_messages_from_something_else_than_a_sandbox_is_a_one_line_error(
    sandbox: SandboxServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["messages", "--url", sandbox.url + "/api/v1"]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert "HTTP 404" in line
    assert "Octopods sandbox" in line

    assert main(["messages", "--from", str(tmp_path / "missing.json")]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert "missing.json" in line


def test_messages_without_a_url_names_the_option(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OCTOPODS_SANDBOX_URL", raising=False)
    with pytest.raises(SystemExit) as exited:
        main(["messages"])
    assert exited.value.code == 2
    assert "no sandbox URL: give --url" in capsys.readouterr().err


def test_messages_inside_run_finds_the_sandbox_without_url(tmp_path: Path) -> None:
    child = script(tmp_path, "send_then_list.py", SEND_THEN_LIST_SCRIPT)
    result = sandbox_run(tmp_path, "--quiet", "--", sys.executable, child)
    assert result.returncode == 0, result.stdout + result.stderr
    [line] = message_lines(result.stdout)
    assert line.endswith(f'"{LONG_ALERT}"')
    saved_messages(result.stderr.splitlines()).unlink()


def test_run_prints_counts_twenty_messages_and_where_the_rest_are(tmp_path: Path) -> None:
    sender = script(tmp_path, "send_25.py", TWENTY_FIVE_SCRIPT)
    result = sandbox_run(tmp_path, "--quiet", "--sent-after", "0", "--final-after", "0", "--", sys.executable, sender)
    assert result.returncode == 0, result.stdout + result.stderr
    report = result.stderr.splitlines()
    assert "The sandbox received 25 message(s): 20 delivered, 5 failed" in report
    lines = message_lines(result.stderr)
    assert len(lines) == 20
    assert lines[0].endswith(f'"message 00: {"x" * 48}"… (82 chars)')
    assert lines[19].split()[1] == str(int(lines[0].split()[1]) + 19)
    saved = saved_messages(report)
    assert f"5 more: octopods-sandbox messages --from {saved}" in report
    assert "+15005550101" not in result.stderr

    listed = subprocess.run([*SANDBOX, "messages", "--from", str(saved)], capture_output=True, text=True, check=True)
    assert len(message_lines(listed.stdout)) == 25
    as_json = subprocess.run(
        [*SANDBOX, "messages", "--from", str(saved), "--json", "--phone", "+15005550101"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert [m["body"] for m in json.loads(as_json.stdout)] == [f"message {n:02}: " + "x" * 70 for n in range(0, 25, 5)]
    saved.unlink()


def test_messages_help_and_the_other_helps_describe_it() -> None:
    messages_help = subprocess.run([*SANDBOX, "messages", "--help"], capture_output=True, text=True, check=True).stdout
    for text in ("--url", "--phone", "--full", "--json", "--from", "OCTOPODS_SANDBOX_URL", "/_sandbox/messages"):
        assert text in messages_help
    run_help = subprocess.run([*SANDBOX, "run", "--help"], capture_output=True, text=True, check=True).stdout
    assert "octopods-sandbox messages --from" in " ".join(run_help.split())
    main_help = subprocess.run([*SANDBOX, "--help"], capture_output=True, text=True, check=True).stdout
    assert "octopods-sandbox messages" in main_help
