"""The main job: run the send-and-track example DAG end to end and say what happened.

Run through ``python3 tools/dev.py demo``. With no ``octopods_default`` connection configured it
starts the embedded Octopods sandbox on a free 127.0.0.1 port (nothing leaves the machine).
With one configured (``AIRFLOW_CONN_OCTOPODS_DEFAULT``, or the connection store of the Airflow
home you use) it uses that: a loopback host is a local sandbox you started, anything else is the
real API, which sends a real SMS to ``--phone``.

The throwaway Airflow home is removed at the end (``--keep`` keeps it); after a failed run the
task logs are first saved next to it and their error lines printed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from airflow_provider_octopods.api.masking import mask_phone  # noqa: E402
from airflow_provider_octopods.api.settings import DEFAULT_BASE_URL, is_loopback_host  # noqa: E402
from tests.dagrun import RunOutcome, load_dag, migrate_db, prepare_environment, run_dag  # noqa: E402

DAG_ID = "example_octopods_send_and_track"
CONN_ENV = "AIRFLOW_CONN_OCTOPODS_DEFAULT"
SANDBOX_PHONE = "+15005550100"
ERROR_LINES_SHOWN = 12
_ERROR_LINE = re.compile(r"\[error\b|\bERROR\b|^\S*(Error|Exception)\b\S*: ")
_PHONE = re.compile(r"\+\d{7,15}\b")


def configured_connection() -> tuple[str, str] | None:
    """The user's ``octopods_default`` connection (value for the env var, where it came from)."""
    if os.environ.get(CONN_ENV):
        return os.environ[CONN_ENV], f"environment variable {CONN_ENV}"
    home = Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")
    if not (home / "airflow.cfg").exists():
        return None
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "connections", "get", "octopods_default", "-o", "json"],
        capture_output=True,
        text=True,
        check=False,
        env=dict(os.environ, AIRFLOW_HOME=str(home)),
    )
    if result.returncode != 0:
        return None
    try:
        rows = json.loads(result.stdout)
        row = rows[0] if isinstance(rows, list) else rows
        fields = {k: row.get(k) for k in ("conn_type", "host", "login", "password", "schema", "port")}
        fields["extra"] = row.get("extra_dejson") or {}
    except (ValueError, IndexError, AttributeError):
        return None
    # The JSON form, not get_uri: a host that is itself a URL does not survive the URI form.
    value = json.dumps({k: v for k, v in fields.items() if v not in (None, "", {})})
    return value, f"the Airflow connection store of {home}"


def connection_base_url(value: str) -> str | None:
    """The API base URL a connection value (JSON or URI form) points at, as the hook reads it."""
    try:
        if value.lstrip().startswith("{"):
            fields = json.loads(value)
            host, schema, port = fields.get("host"), fields.get("schema"), fields.get("port")
        else:
            parts = urlsplit(value)
            host, schema, port = unquote(parts.hostname or ""), unquote(parts.path.lstrip("/")), parts.port
    except (ValueError, AttributeError):
        return None
    text = str(host or "").strip()
    if not text:
        return DEFAULT_BASE_URL
    if "://" not in text:
        scheme = str(schema or "").strip().lower()
        text = f"{scheme if scheme in ('http', 'https') else 'https'}://{text}{f':{port}' if port else ''}"
    return text.rstrip("/")


def is_loopback(url: str) -> bool:
    """Whether ``url`` is on this machine: the real Octopods API never is, a sandbox is."""
    return is_loopback_host(urlsplit(url).hostname or "")


def answers(url: str) -> bool:
    """Whether anything answers HTTP at ``url`` (any status counts)."""
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy for a loopback URL
    try:
        with direct.open(f"{url}/_sandbox/health", timeout=5):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError, ValueError):
        return False


@contextlib.contextmanager
def output_to(path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (Airflow's task logs) to ``path``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with path.open("ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phone", help="recipient (required against the real API)")
    parser.add_argument("--keep", action="store_true", help="keep the throwaway Airflow home and its logs")
    args = parser.parse_args(argv)

    sandbox = None
    configured = configured_connection()
    if configured:
        value, source = configured
        url = connection_base_url(value)
        if url is not None and is_loopback(url):
            print(
                f"Mode: local Octopods sandbox at {url} (connection octopods_default from {source}; "
                "nothing leaves this machine)"
            )
            if not answers(url):
                print(f"Nothing answers at {url}: start the sandbox there (octopods-sandbox --port ...).")
                return 2
            phone = args.phone or SANDBOX_PHONE
        elif not args.phone:
            print(f"Mode: real Octopods API (connection octopods_default from {source})")
            print("Refusing to send a real SMS without a recipient: pass --phone +<country><number>.")
            return 2
        else:
            phone = args.phone
            print(
                f"Mode: real Octopods API (connection octopods_default from {source}); "
                f"an SMS goes to {mask_phone(phone)}"
            )
        os.environ[CONN_ENV] = value
    else:
        from airflow_provider_octopods.sandbox import SandboxConfig, SandboxServer

        sandbox = SandboxServer(SandboxConfig(sent_after=1.0, final_after=2.0)).start()
        os.environ[CONN_ENV] = sandbox.connection_json("demo-sandbox-key")
        phone = args.phone or SANDBOX_PHONE
        print(
            f"Mode: local Octopods sandbox at {sandbox.url} "
            "(no octopods_default connection configured; nothing leaves this machine)"
        )
    try:
        return run_demo(phone, keep=args.keep)
    finally:
        if sandbox is not None:
            sandbox.stop()


def run_demo(phone: str, *, keep: bool) -> int:
    """Run the DAG in a throwaway Airflow home, say what happened, then clean up."""
    started = time.monotonic()
    home = Path(tempfile.mkdtemp(prefix="octopods-demo-"))
    log_file = home / "dag-run.log"
    outcome: RunOutcome | None = None
    try:
        prepare_environment(home, ROOT / "example_dags")
        print(f"Airflow home (throwaway, SQLite): {home}")
        with output_to(log_file):
            try:
                migrate_db()
                dag = load_dag(ROOT / "example_dags", DAG_ID)
                outcome = run_dag(dag, {"phone": phone})
            except Exception:
                traceback.print_exc()  # into the task logs, which a failed run keeps
        if outcome is None:
            print(f"The demo could not run the DAG ({time.monotonic() - started:.1f}s)")
            return 1
        report(outcome, started)
        return 0 if outcome.state == "success" else 1
    finally:
        clean_up(home, log_file, succeeded=outcome is not None and outcome.state == "success", keep=keep)


def report(outcome: RunOutcome, started: float) -> None:
    sent = outcome.xcom("send", "send_result") or {}
    final = outcome.xcom("track_delivery") or {}
    print(f"DAG run {outcome.run_id}: {outcome.state} in {time.monotonic() - started:.1f}s")
    for task_id, state in outcome.task_states.items():
        print(f"  task {task_id}: {state}")
    print(
        f"Message id: {outcome.xcom('send')} (request_id {sent.get('request_id')}, to {sent.get('phone')}, "
        f"{sent.get('segments')} segment(s) {sent.get('encoding')})"
    )
    print(
        f"Final delivery status: {final.get('status', 'not reached')}"
        + (f" ({final['reason']})" if final.get("reason") else "")
    )


def clean_up(home: Path, log_file: Path, *, succeeded: bool, keep: bool) -> None:
    """Remove the throwaway home; after a failure save the task logs first and show their errors."""
    if keep:
        print(f"Kept the Airflow home for inspection (--keep): {home}")
        if log_file.exists():
            print(f"Task logs: {log_file}")
        return
    if not succeeded and log_file.exists():
        saved = home.parent / f"{home.name}.log"
        shutil.copyfile(log_file, saved)
        errors = error_lines(log_file.read_text(errors="replace"))
        if errors:
            print("Errors in the task logs:")
            for line in errors:
                print(f"  {line}")
        print(f"Task logs saved to {saved}")
    shutil.rmtree(home, ignore_errors=True)
    print(f"Removed the throwaway Airflow home {home} (pass --keep to keep it)")


def error_lines(log: str) -> list[str]:
    """The log's last error lines (or its last lines if none is marked), phones masked, shortened."""
    lines = [line.rstrip() for line in log.splitlines() if line.strip()]
    errors = [line for line in lines if _ERROR_LINE.search(line)] or lines
    return [_PHONE.sub(lambda match: mask_phone(match.group()), line)[:300] for line in errors[-ERROR_LINES_SHOWN:]]


if __name__ == "__main__":
    sys.exit(main())
