"""``octopods-sandbox run -- COMMAND``: a sandbox that lives as long as one command.

The sandbox starts on a free port, the command gets a connection to it in its environment
(``AIRFLOW_CONN_<ID>``, JSON, with a throwaway key) and the sandbox's URL (``OCTOPODS_SANDBOX_URL``),
and when the command ends this prints a summary of what the sandbox received, saves all of its
messages to a file, and exits with the command's exit code.

The code that reads a sandbox's messages and prints them is here too, for ``octopods-sandbox
messages`` to share.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from airflow_provider_octopods.api.masking import mask_phone
from airflow_provider_octopods.api.models import DeliveryStatus
from airflow_provider_octopods.sandbox.config import SandboxConfig
from airflow_provider_octopods.sandbox.store import RequestRecord

if TYPE_CHECKING:
    from airflow_provider_octopods.sandbox.server import SandboxServer

BODY_PREVIEW_CHARS = 60
SUMMARY_MESSAGES = 20  # messages listed at the end of a run; the rest are in the saved file
CONN_ENV_PREFIX = "AIRFLOW_CONN_"
DEFAULT_CONN_ID = "octopods_default"
SANDBOX_URL_ENV = "OCTOPODS_SANDBOX_URL"
LISTING_PATH = "/_sandbox/messages"  # the sandbox's inspection endpoint (app.py)
FETCH_TIMEOUT = 10.0
COMMAND_NOT_FOUND = 127  # what a shell returns for a command it cannot run
SANDBOX_FAILED = 2  # the sandbox could not start, so the command was not run
# Printed bodies are JSON-quoted, which escapes C0 controls; these would still reach the terminal
# raw: DEL and C1 controls (0x9b starts an escape sequence), bidirectional controls (they reorder
# what is shown) and lone surrogates (not text: printing one fails).
_UNSAFE_IN_TERMINAL = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


class InspectionError(Exception):
    """A sandbox's messages could not be read; the message says why, in one line."""


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
        env[SANDBOX_URL_ENV] = server.url
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
    """What the sandbox received: a summary of its messages (:func:`summary`, all of them saved to
    a file it names), duplicates, and requests by kind."""
    try:
        document = fetch_listing(server.url)
        messages = messages_in(document, server.url)
    except InspectionError as err:
        lines = [f"The sandbox's messages could not be read: {err}"]
    else:
        saved: str | OSError | None = None
        if messages:
            try:
                saved = save_listing(document)
            except OSError as err:
                saved = err
        lines = summary(messages, saved)
    lines.append(f"Duplicated phone-and-body pairs: {server.duplicates()}")
    lines.append(f"Requests: {describe_requests(server.requests())}")
    return lines


def summary(messages: Sequence[Mapping[str, Any]], saved: str | OSError | None) -> list[str]:
    """Counts by status, the first :data:`SUMMARY_MESSAGES` messages (bodies cut), and how to see
    the rest.

    :param messages: what the sandbox listed, in order.
    :param saved: the file all of them were saved to, or why they could not be (the sandbox stops
        after the report, so a file is the only place left to read them from).
    """
    if not messages:
        return ["The sandbox received 0 message(s)."]
    lines = [f"The sandbox received {len(messages)} message(s): {status_counts(messages)}"]
    lines += message_lines(messages[:SUMMARY_MESSAGES])
    more = len(messages) - SUMMARY_MESSAGES
    if isinstance(saved, str):
        command = f"octopods-sandbox messages --from {shlex.quote(saved)}"
        lines.append(f"{more} more: {command}" if more > 0 else f"Whole bodies: {command} --full")
    elif more > 0:
        lines.append(f"{more} more, not shown: they could not be saved to a file ({saved})")
    return lines


def message_lines(messages: Sequence[Mapping[str, Any]], *, full: bool = False) -> list[str]:
    """One line a message, in aligned columns: id, masked phone, status, and the body, quoted (so
    that line breaks show as \\n).

    :param messages: messages as the inspection API lists them.
    :param full: print whole bodies; otherwise bodies longer than :data:`BODY_PREVIEW_CHARS`
        are cut, and the cut is marked with "…" and the body's length.
    """
    rows = [
        (
            f"id {message.get('message_id', '?')}",
            mask_phone(message.get("phone")),
            str(message.get("status", "?")),
            _shown_body(message.get("body"), full=full),
        )
        for message in messages
    ]
    id_width, phone_width, status_width = (max((len(row[column]) for row in rows), default=0) for column in range(3))
    return [
        f"  {message_id:<{id_width}}  {phone:<{phone_width}}  {status:<{status_width}}  {body}"
        for message_id, phone, status, body in rows
    ]


def status_counts(messages: Sequence[Mapping[str, Any]]) -> str:
    """``20 delivered, 5 failed``: how many messages are in each status, in lifecycle order."""
    counts = Counter(str(message.get("status", "?")) for message in messages)
    order = {status.value: position for position, status in enumerate(DeliveryStatus)}
    ranked = sorted(counts.items(), key=lambda item: (order.get(item[0], len(order)), item[0]))
    return ", ".join(f"{count} {status}" for status, count in ranked)


def _shown_body(body: object, *, full: bool) -> str:
    text = body if isinstance(body, str) else ""
    if full or len(text) <= BODY_PREVIEW_CHARS:
        return _quoted(text)
    return f"{_quoted(text[:BODY_PREVIEW_CHARS])}… ({len(text)} chars)"


def _quoted(text: str) -> str:
    """``text`` in JSON quotes, with every character a terminal could act on escaped."""
    return _UNSAFE_IN_TERMINAL.sub(lambda match: f"\\u{ord(match.group()):04x}", json.dumps(text, ensure_ascii=False))


def base_url(url: str) -> str:
    """A sandbox's base URL from what a user typed: ``127.0.0.1:8080/`` means ``http://127.0.0.1:8080``,
    and the inspection endpoint's own address is understood too."""
    text = url.strip().rstrip("/").removesuffix(LISTING_PATH).rstrip("/")
    return text if "://" in text else f"http://{text}"


def fetch_listing(url: str, *, timeout: float = FETCH_TIMEOUT) -> dict[str, Any]:
    """The sandbox's answer to ``GET {url}/_sandbox/messages``: ``count``, ``duplicates``, ``messages``.

    :param url: the sandbox's base URL, as it printed it when it started.
    :param timeout: seconds to wait for the connection, and then for the answer.
    :raises InspectionError: nothing answers at ``url``, or what answers is not a sandbox.
    """
    import requests  # heavy, and only this needs it

    address = url + LISTING_PATH
    session = requests.Session()
    # A proxy from the environment (HTTP_PROXY without 127.0.0.1 in NO_PROXY) would stand between
    # us and a sandbox on this machine, and fail to reach it.
    session.trust_env = False
    try:
        with session:
            answer = session.get(address, timeout=timeout)
    except requests.Timeout:
        raise InspectionError(f"no answer from {url} within {timeout:g}s; is the sandbox running there?") from None
    except requests.ConnectionError:
        raise InspectionError(f"cannot reach a sandbox at {url}: nothing answers there; is it running?") from None
    except (requests.RequestException, ValueError) as err:
        raise InspectionError(f"cannot read {address}: {_one_line(err)}") from None
    if answer.status_code != 200:
        raise InspectionError(f"{address} answered HTTP {answer.status_code}: is {url} an Octopods sandbox?")
    try:
        document = answer.json()
    except ValueError:
        raise InspectionError(f"{address} did not answer JSON: is {url} an Octopods sandbox?") from None
    if not isinstance(document, dict):
        raise InspectionError(f"{address} did not answer a message list: is {url} an Octopods sandbox?")
    return document


def read_listing(path: Path) -> object:
    """The JSON in ``path``: a file ``run`` saved, or what ``messages --json`` printed.

    :raises InspectionError: the file cannot be read or is not JSON.
    """
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise InspectionError(f"cannot read {path}: {err.strerror or err}") from None
    except ValueError as err:
        raise InspectionError(f"{path} is not JSON ({_one_line(err)})") from None


def messages_in(document: object, source: str) -> list[dict[str, Any]]:
    """The messages in a listing: the inspection API's answer (an object with ``messages``) or
    the bare list that ``messages --json`` prints.

    :param source: where ``document`` came from, to name in the error.
    :raises InspectionError: ``document`` holds no such list.
    """
    messages = document.get("messages") if isinstance(document, dict) else document
    if not isinstance(messages, list) or not all(isinstance(message, dict) for message in messages):
        raise InspectionError(f"{source} does not hold the sandbox's message list")
    return messages


def save_listing(document: Mapping[str, Any]) -> str:
    """Write ``document`` (what the inspection API answered) to a new file, readable only by its
    owner, in the temporary directory; return the file's path."""
    handle, path = tempfile.mkstemp(prefix="octopods-sandbox-messages-", suffix=".json")
    with os.fdopen(handle, "w", encoding="utf-8") as file:
        json.dump(document, file, indent=2)
        file.write("\n")
    return path


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


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
