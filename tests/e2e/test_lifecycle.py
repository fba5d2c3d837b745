"""Airflow's lifecycle in a real deployment (issues 11, 12, 21 and 23): a triggerer killed while a
deferred sensor tracks 100 messages, a worker killed in the middle of a batch (the task's process
on the ``sqlite`` tier, the whole Celery worker on ``postgres-celery``), a batch waiting in the
triggerer for rows held for their send time or window (the whole Celery worker killed meanwhile),
and a Celery worker lost under a task whose failure alerts are deduplicated."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime

import psutil
import pytest

from airflow_provider_octopods.api.alerts import short_run_id
from airflow_provider_octopods.sandbox import SandboxServer
from airflow_provider_octopods.sandbox.config import SandboxConfig
from airflow_provider_octopods.sandbox.store import progress
from tests.e2e.conftest import E2E_KEY, POSTGRES_CELERY, key_hits_in_db
from tests.e2e.deployment import Deployment

Received = Callable[..., list[str]]
ON_CALL = ["+15005550100", "+447700900123"]


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
    [(triggers,)] = deployment.query("SELECT count(*) FROM trigger WHERE classpath LIKE '%octopods%'")
    assert triggers == 1
    assert key_hits_in_db(deployment.database_url, E2E_KEY, tables=lambda name: name == "trigger") == []  # kwargs

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
    # SIGKILL: no on_kill, no clean-up, the send record is all that is left
    if deployment.celery:  # the whole worker, supervisor included: the scheduler learns it from silence
        # Only the worker's process group: the task process, in a group of its own, lives on
        # without its supervisor. It must start no request after those already in flight.
        orphans = deployment.kill_celery_worker(spare_task_processes=True)
        received_at_kill = len(bodies(slow_sandbox, "Kill check"))
        time.sleep(5)  # at 20 a second, 100 more sends if it went on
        sent_after_kill = len(bodies(slow_sandbox, "Kill check")) - received_at_kill
        assert orphans, "no task process outlived its worker: nothing was checked"
        Deployment.kill_processes(orphans)
        assert sent_after_kill <= 4, f"{sent_after_kill} sends after the worker's kill (max_in_flight=4)"
        deployment.restart_celery_worker()
    else:  # the task's process: its supervisor reports the failure
        sender_process(deployment, slow_sandbox.port).kill()
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


def test_rows_held_for_their_time_or_window_wait_in_the_triggerer_and_a_worker_killed_meanwhile_sends_none_twice(
    deployment: Deployment, slow_sandbox: SandboxServer
) -> None:
    dag_id = "octopods_e2e_send_times"
    run_id = deployment.trigger(dag_id)
    wait_for("the batch deferred", lambda: deployment.task_states(dag_id, run_id).get("send") == "deferred", deployment)
    assert sorted(bodies(slow_sandbox, "Due check")) == ["Due check 0", "Due check 1"]  # due, inside the window
    [(waits,)] = deployment.query("SELECT count(*) FROM trigger WHERE classpath LIKE '%DateTimeTrigger%'")
    assert waits >= 1  # the wait is the triggerer's: no worker slot is held
    if deployment.celery:  # nothing of the task runs on the worker now: its next round starts afresh
        deployment.kill_celery_worker()
        deployment.restart_celery_worker()

    assert deployment.wait_run(dag_id, run_id, timeout=400) == "success"
    assert deployment.task_states(dag_id, run_id)["send"] == "success"
    rows = {row["n"]: row for row in deployment.xcom(dag_id, run_id, "plan", key="rows")}
    opens = datetime.fromisoformat(deployment.xcom(dag_id, run_id, "plan", key="opens"))
    sent = [m for m in slow_sandbox.messages() if m.body.startswith("Due check")]
    assert sorted(m.body for m in sent) == [f"Due check {n}" for n in range(5)]  # each row once
    for message in sent:
        row = rows[int(message.body.split()[-1])]
        assert message.accepted_at >= datetime.fromisoformat(row["at"])  # never before its send time
        if row["tz"] == "Etc/UTC":
            assert message.accepted_at >= opens  # nor before its window opened
    report = deployment.xcom(dag_id, run_id, "send")
    assert (report["accepted"], report["held"]) == (5, 0)
    assert report["accepted_earlier"] in (2, 3)  # sent in earlier rounds: 2, then 1 more unless one round took both


@pytest.mark.e2e_tiers(POSTGRES_CELERY)
def test_a_celery_worker_lost_under_a_task_fails_it_and_its_deduplicated_alerts_go_out_once(
    deployment: Deployment, received: Received
) -> None:
    """The scheduler fails the task when its heartbeats stop; the DAG processor then runs the
    task's failure callback and the DAG's: one task alert and one DAG alert to each phone."""
    dag_id = "octopods_e2e_worker_lost"
    run_id = deployment.trigger(dag_id)
    wait_for("the task running", lambda: deployment.task_states(dag_id, run_id).get("hold") == "running", deployment)
    time.sleep(2)
    deployment.kill_celery_worker()
    killed_at = time.monotonic()
    deployment.restart_celery_worker()

    assert deployment.wait_run(dag_id, run_id, timeout=300) == "failed"
    run_failed_after = time.monotonic() - killed_at
    assert deployment.task_states(dag_id, run_id) == {"hold": "failed"}
    for phone in ON_CALL:  # the DAG-level alert comes last
        received(f"Airflow: DAG {dag_id} failed", 1, phone=phone, timeout=120)
    alerts_after = time.monotonic() - killed_at
    time.sleep(5)  # a late duplicate would be here by now
    for phone in ON_CALL:
        alerts = received(dag_id, 2, phone=phone, timeout=0)
        task_alerts = [a for a in alerts if a.startswith(f"Airflow: {dag_id}.hold failed")]
        dag_alerts = [a for a in alerts if a.startswith("Airflow: DAG ")]
        assert dag_alerts == [f"Airflow: DAG {dag_id} failed: task hold (run {short_run_id(run_id)})"], alerts
        assert len(task_alerts) == 1, alerts
        assert len(alerts) == 2, alerts
    # heartbeat timeout, detection, the DAG processor's turn, and the ledger's gathering time
    budget = deployment.celery.heartbeat_timeout + 35
    assert alerts_after < budget, f"alerts {alerts_after:.0f}s after the kill, run failed {run_failed_after:.0f}s after"
