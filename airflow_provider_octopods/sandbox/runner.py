"""``octopods-sandbox run -- COMMAND``: a sandbox that lives as long as one command.

The sandbox starts on a free port, the command gets a connection to it in its environment
(``AIRFLOW_CONN_<ID>``, JSON, with a throwaway key), and when the command ends this prints what
the sandbox received and exits with the command's exit code.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

from airflow_provider_octopods.api.masking import mask_phone
from airflow_provider_octopods.sandbox.config import SandboxConfig
from airflow_provider_octopods.sandbox.store import AcceptedMessage, RequestRecord, progress

if TYPE_CHECKING:
    from airflow_provider_octopods.sandbox.server import SandboxServer

BODY_PREVIEW_CHARS = 60
CONN_ENV_PREFIX = "AIRFLOW_CONN_"
DEFAULT_CONN_ID = "octopods_default"
COMMAND_NOT_FOUND = 127  # what a shell returns for a command it cannot run
SANDBOX_FAILED = 2  # the sandbox could not start, so the command was not run


def connection_env_var(conn_id: str) -> str:
    """The environment variable Airflow reads connection ``conn_id`` from."""
    return CONN_ENV_PREFIX + conn_id.upper()


def run_command(
    config: SandboxConfig,
    command: Sequence[str],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    conn_id: str = DEFAULT_CONN_ID,
    out: TextIO | None = None,
) -> int:
    """Run ``command`` against a fresh sandbox, print the sandbox's report, return the exit code."""
    from airflow_provider_octopods.sandbox.server import SandboxServer

    out = out or sys.stderr
    # The sandbox only accepts its configured keys; otherwise a random one, so no real key is reused.
    api_key = sorted(config.api_keys)[0] if config.api_keys else f"sandbox-{secrets.token_hex(12)}"
    variable = connection_env_var(conn_id)
    server = SandboxServer(config, host=host, port=port)
    try:
        server.start()
    except (OSError, RuntimeError) as err:
        say(out, f"the sandbox could not start on {host}:{port}: {err}")
        return SANDBOX_FAILED
    try:
        env = dict(os.environ)
        replaced = variable in env
        env[variable] = server.connection_json(api_key)
        say(out, f"sandbox listening on {server.url} (variant {config.variant.value})")
        say(
            out,
            f"connection {conn_id!r} is in {variable} for the command "
            + ("(your first --api-key" if config.api_keys else "(throwaway key")
            + ("; it replaces your own value of that variable)" if replaced else ")"),
        )
        say(out, f"running: {shlex.join(command)}")
        started = time.monotonic()
        code = _run(command, env, out)
        if code is None:
            code = COMMAND_NOT_FOUND
            say(out, f"the command could not be started (exit code {code})")
        else:
            say(out, f"the command exited with code {code} after {time.monotonic() - started:.1f}s")
        for line in report(server):
            print(line, file=out)
        out.flush()
    finally:
        server.stop()
    return code


def _run(command: Sequence[str], env: dict[str, str], out: TextIO) -> int | None:
    """The command's exit code, or None when it could not be started."""
    try:
        child = subprocess.Popen(list(command), env=env)  # noqa: S603 - running the user's command is the point
    except OSError as err:
        say(out, f"cannot run {command[0]!r}: {err.strerror or err}")
        return None
    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread:
        previous = signal.signal(signal.SIGTERM, lambda signum, _frame: child.send_signal(signum))
    try:
        while True:
            try:
                code = child.wait()
                break
            except KeyboardInterrupt:
                # Ctrl-C reached the command too (same process group): let it end, then report.
                continue
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    return 128 - code if code < 0 else code  # killed by signal N: 128 + N, as shells report it


def say(out: TextIO, message: str) -> None:
    print(f"octopods-sandbox: {message}", file=out, flush=True)


def report(server: SandboxServer) -> list[str]:
    """What the sandbox received: each message (phone masked), duplicates, requests by kind."""
    messages = server.messages()
    lines = [f"The sandbox received {len(messages)} message(s)" + (":" if messages else ".")]
    rows = [describe(message) for message in messages]
    id_width, phone_width, status_width = (max((len(row[column]) for row in rows), default=0) for column in range(3))
    for message_id, phone, status, body in rows:
        lines.append(f"  {message_id:<{id_width}}  {phone:<{phone_width}}  {status:<{status_width}}  {body}")
    lines.append(f"Duplicated phone-and-body pairs: {server.duplicates()}")
    lines.append(f"Requests: {describe_requests(server.requests())}")
    return lines


def describe(message: AcceptedMessage) -> tuple[str, str, str, str]:
    """Id, masked phone, status now, and the body's start (quoted, so line breaks show as \\n)."""
    body = message.body[:BODY_PREVIEW_CHARS] + ("..." if len(message.body) > BODY_PREVIEW_CHARS else "")
    return (
        f"id {message.message_id}",
        mask_phone(message.phone),
        progress(message).status.value,
        json.dumps(body, ensure_ascii=False),
    )


def describe_requests(requests: Sequence[RequestRecord]) -> str:
    if not requests:
        return "none"
    sends = sum(r.method == "POST" for r in requests)
    reads = len(requests) - sends
    answers = Counter(f"error {r.error_code}" if r.error_code is not None else str(r.status) for r in requests)
    faults = Counter(r.fault for r in requests if r.fault)
    text = f"{sends} send(s), {reads} status read(s); answers: " + ", ".join(
        f"{answer} x{count}" for answer, count in sorted(answers.items())
    )
    if faults:
        text += "; faults injected: " + ", ".join(f"{fault} x{count}" for fault, count in sorted(faults.items()))
    return text
