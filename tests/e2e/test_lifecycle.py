"""Airflow's lifecycle in a real deployment (issues 11 and 12): a triggerer killed while a deferred
sensor tracks 100 messages, and a worker killed in the middle of a batch."""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from collections.abc import Iterator

import psutil
import pytest

from airflow_provider_octopods.sandbox import SandboxServer
from airflow_provider_octopods.sandbox.config import SandboxConfig
from airflow_provider_octopods.sandbox.store import progress
from tests.e2e.conftest import E2E_KEY, key_hits_in_db
from tests.e2e.deployment import Deployment


@pytest.fixture(scope="module")
def slow_sandbox(deployment: Deployment) -> Iterator[SandboxServer]:
    """A sandbox whose messages stay ``sent`` for 20 s, as connection ``octopods_slow`` in the DB."""
    with SandboxServer(SandboxConfig(sent_after=0.5, final_after=20)) as server:
        deployment.airflow("connections", "add", "octopods_slow", "--conn-json", server.connection_json(E2E_KEY))
        try:
            yield server
        finally:
            deployment.airflow("connections", "delete", "octopods_slow", check=False)


def wait_for(what: str, condition: object, deployment: Deployment, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not callable(condition) or not condition():
        deployment.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not seen after {timeout}s")
        time.sleep(0.5)


def bodies(server: SandboxServer, prefix: str) -> list[str]:
    return [m.body for m in server.messages() if m.body.startswith(prefix)]


def test_a_deferred_sensor_keeps_tracking_100_messages_across_a_triggerer_restart(
    deployment: Deployment, slow_sandbox: SandboxServer
) -> None:
    dag_id = "octopods_e2e_triggerer_restart"
    run_id = deployment.trigger(dag_id)
    wait_for(
        "the sensor deferred", lambda: deployment.task_states(dag_id, run_id).get("track") == "deferred", deployment
    )
    sent = [m for m in slow_sandbox.messages() if m.body.startswith("Restart check")]
    assert len(sent) == 100
    assert sum(progress(m).final_at is None for m in sent) == 100  # all 100 still pending
    database = deployment.home / "airflow.db"
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        [(triggers,)] = db.execute("SELECT count(*) FROM trigger WHERE classpath LIKE '%octopods%'")
    assert triggers == 1
    assert key_hits_in_db(database, E2E_KEY, tables=lambda name: name == "trigger") == []  # its kwargs

    deployment.stop_process("triggerer", kill=True)
    time.sleep(3)
    assert deployment.task_states(dag_id, run_id)["track"] == "deferred"
    deployment.start_process("triggerer", ["triggerer"])

    assert deployment.wait_run(dag_id, run_id, timeout=300) == "success"
    tracked = deployment.xcom(dag_id, run_id, "track")
    assert len(tracked["delivered"]) == 98
    assert set(map(str, tracked["delivered"])) <= {str(m.message_id) for m in sent}
    assert len(bodies(slow_sandbox, "Restart check")) == 100  # tracking resumed, nothing re-sent


def sender_process(deployment: Deployment, port: int) -> psutil.Process:
    """The process of Airflow's that holds a connection to the sandbox on ``port``: the task's."""
    for started in deployment.processes.values():
        for process in psutil.Process(started.pid).children(recursive=True):
            try:
                if any(c.raddr and c.raddr.port == port for c in process.net_connections(kind="tcp")):
                    return process
            except psutil.NoSuchProcess:
                continue
    raise LookupError(f"no Airflow process is connected to port {port}")


def test_a_worker_killed_mid_batch_is_retried_and_no_recipient_gets_two_sms(
    deployment: Deployment, slow_sandbox: SandboxServer
) -> None:
    dag_id = "octopods_e2e_killed_batch"
    run_id = deployment.trigger(dag_id)
    wait_for("100 sends", lambda: len(bodies(slow_sandbox, "Kill check")) >= 100, deployment)
    victim = sender_process(deployment, slow_sandbox.port)
    victim.kill()  # SIGKILL: no on_kill, no clean-up, the send record is all that is left
    received_at_kill = len(bodies(slow_sandbox, "Kill check"))

    assert deployment.wait_run(dag_id, run_id, timeout=300) == "success"
    report = deployment.xcom(dag_id, run_id, "send")
    received = Counter(bodies(slow_sandbox, "Kill check"))
    assert max(received.values()) == 1  # no recipient got two
    assert report["accepted"] + report["unknown"] == 300
    # in doubt: intents written ahead (2 x max_in_flight, or up to 1 s of sends when the record's
    # writes are slow) and results not yet written (<= 1 s at 20/s)
    assert report["unknown"] <= max(2 * 4, 20) + 20
    assert report["accepted"] <= len(received) <= 300
    assert received_at_kill < 300 - report["unknown"] <= len(received)  # the retry sent the rest
