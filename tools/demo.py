"""The main job: run the send-and-track example DAG end to end and say what happened.

Run through ``python3 tools/dev.py demo``. With no ``octopods_default`` connection configured it
starts the embedded Octopods sandbox on a free 127.0.0.1 port (nothing leaves the machine);
with one configured (``AIRFLOW_CONN_OCTOPODS_DEFAULT``, or the connection store of the Airflow
home you use) it sends a real SMS to ``--phone``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools.dagrun import load_dag, migrate_db, prepare_environment, run_dag  # noqa: E402

DAG_ID = "example_octopods_send_and_track"
CONN_ENV = "AIRFLOW_CONN_OCTOPODS_DEFAULT"
SANDBOX_PHONE = "+15005550100"


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
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--phone", help="recipient (required against the real API)")
    args = parser.parse_args(argv)

    real = configured_connection()
    home = Path(tempfile.mkdtemp(prefix="octopods-demo-"))
    log_file = home / "dag-run.log"
    sandbox = None
    if real:
        if not args.phone:
            print(f"Mode: real Octopods API (connection octopods_default from {real[1]})")
            print("Refusing to send a real SMS without a recipient: pass --phone +<country><number>.")
            return 2
        os.environ[CONN_ENV] = real[0]
        phone = args.phone
        print(f"Mode: real Octopods API (connection octopods_default from {real[1]}); an SMS goes to {phone}")
    else:
        from airflow_provider_octopods.sandbox import SandboxConfig, SandboxServer

        sandbox = SandboxServer(SandboxConfig(sent_after=1.0, final_after=2.0)).start()
        os.environ[CONN_ENV] = sandbox.connection_json("demo-sandbox-key")
        phone = args.phone or SANDBOX_PHONE
        print(
            f"Mode: local Octopods sandbox at {sandbox.url} "
            "(no octopods_default connection configured; nothing leaves this machine)"
        )

    started = time.monotonic()
    prepare_environment(home, ROOT / "example_dags")
    print(f"Airflow home (throwaway, SQLite): {home}")
    with output_to(log_file):
        migrate_db()
        dag = load_dag(ROOT / "example_dags", DAG_ID)
        outcome = run_dag(dag, {"phone": phone})
    if sandbox is not None:
        sandbox.stop()

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
    print(f"Task logs: {log_file}")
    return 0 if outcome.state == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
