"""Every example DAG, and the connection's form and test button, in a real deployment through
Airflow's REST API (issue 12, part 1)."""

from __future__ import annotations

import html
import json
import re
from datetime import datetime

import pytest

from airflow_provider_octopods.sandbox import SandboxServer
from airflow_provider_octopods.sandbox.config import SandboxConfig
from tests.e2e.conftest import E2E_KEY, SQLITE
from tests.e2e.deployment import Deployment, airflow_major


def run(deployment: Deployment, dag_id: str) -> tuple[str, str]:
    run_id = deployment.trigger(dag_id)
    return run_id, deployment.wait_run(dag_id, run_id)


def received(server: SandboxServer, message_id: object) -> list[str]:
    return [m.phone for m in server.messages() if str(m.message_id) == str(message_id)]


@pytest.mark.parametrize("dag_id", ["example_octopods_send_and_track", "example_octopods_deferrable"])
def test_send_and_track_examples(deployment: Deployment, e2e_sandbox: SandboxServer, dag_id: str) -> None:
    run_id, state = run(deployment, dag_id)
    assert state == "success"
    assert set(deployment.task_states(dag_id, run_id).values()) == {"success"}
    message_id = deployment.xcom(dag_id, run_id, "send")
    assert [p.lstrip("+") for p in received(e2e_sandbox, message_id)] == ["15005550100"]


def test_taskflow_example(deployment: Deployment, e2e_sandbox: SandboxServer) -> None:
    run_id, state = run(deployment, "example_octopods_taskflow")
    assert state == "success"
    sent = deployment.xcom("example_octopods_taskflow", run_id, "send_reminder")
    assert sent["phone"] == "+1*******100"  # masked in XCom
    assert received(e2e_sandbox, sent["message_id"])
    assert deployment.xcom("example_octopods_taskflow", run_id, "report_status") in ("queued", "sent", "delivered")


def test_reminders_example(deployment: Deployment, e2e_sandbox: SandboxServer) -> None:
    run_id, state = run(deployment, "example_octopods_reminders")
    assert state == "success"
    report = deployment.xcom("example_octopods_reminders", run_id, "send_reminders")
    assert (report["accepted"], report["invalid"], report["duplicate"]) == (3, 1, 1)
    for message_id in report["message_ids"]:
        assert received(e2e_sandbox, message_id)
    assert deployment.xcom("example_octopods_reminders", run_id, "summary") == (
        "3 sent, 1 invalid, 1 duplicate, 0 opted out; 3 delivered"
    )
    assert [v for v in deployment.variables() if v.startswith("octopods_")] == []


def intervals(deployment: Deployment, dag_id: str, run_id: str) -> dict[str, tuple[datetime, datetime]]:
    """When each task of the run started and ended."""
    where = f"WHERE dag_id = '{dag_id}' AND run_id = '{run_id}'"
    rows = deployment.query(f"SELECT task_id, start_date, end_date FROM task_instance {where}")  # noqa: S608 - our ids
    return {
        task_id: tuple(v if isinstance(v, datetime) else datetime.fromisoformat(v) for v in times)  # type: ignore[misc]
        for task_id, *times in rows
    }


def test_a_pool_with_one_slot_runs_the_batches_of_one_channel_one_at_a_time(
    deployment: Deployment, e2e_sandbox: SandboxServer
) -> None:
    """Both batches are ready while the first one sends (neither depends on the other), on an
    executor that runs tasks side by side (LocalExecutor, Celery): the pool alone keeps them apart."""
    if airflow_major() < 3:
        pytest.skip("the SequentialExecutor (the 2.11 tier) runs one task at a time: no pool is needed")
    dag_id = "example_octopods_channel_pool"
    deployment.airflow("pools", "set", "octopods_main_channel", "1", "one Octopods batch at a time")
    run_id, state = run(deployment, dag_id)
    assert state == "success"
    times = intervals(deployment, dag_id, run_id)
    first, second = sorted((times["remind_appointments"], times["remind_renewals"]))
    assert max(times["appointments"][1], times["renewals"][1]) < first[1]  # both were ready while one sent
    assert first[1] <= second[0], f"the second batch started before the first one ended: {first}, {second}"
    for task_id, prefix in (("remind_appointments", "see you tomorrow"), ("remind_renewals", "renews next week")):
        assert deployment.xcom(dag_id, run_id, task_id)["accepted"] == 40
        sent = [m.body for m in e2e_sandbox.messages() if m.body.endswith(prefix + ".")]
        assert len(sent) == len(set(sent)) == 40


def test_two_batches_without_a_pool_share_the_channel_and_send_each_row_once(
    deployment: Deployment, e2e_sandbox: SandboxServer
) -> None:
    dag_id = "example_octopods_channel_shared"
    run_id, state = run(deployment, dag_id)
    assert state == "success"
    for task_id, prefix in (("notify_deliveries", "+447700908"), ("ask_surveys", "+447700909")):
        report = deployment.xcom(dag_id, run_id, task_id)
        assert (report["accepted"], report["unknown"], report["failed"]) == (40, 0, 0)
        phones = [m.phone for m in e2e_sandbox.messages() if m.phone.startswith(prefix)]
        assert len(phones) == len(set(phones)) == 40


# The connection's form and test button are the API server's alone: the executor and the metadata
# DB's kind change nothing there, so the quicker tier proves them.
@pytest.mark.e2e_tiers(SQLITE)
def test_the_connection_type_is_listed_with_its_form(deployment: Deployment) -> None:
    if airflow_major() >= 3:
        [meta] = [
            m
            for m in deployment.request("GET", "/ui/connections/hook_meta", root=True)
            if m["connection_type"] == "octopods"
        ]
        assert meta["hook_name"]
        assert meta["standard_fields"]["host"]["title"] == "API base URL"
        assert meta["standard_fields"]["password"]["title"] == "API key"
        assert "connect_timeout" in meta["extra_fields"]
    else:
        providers = deployment.request("GET", "/providers")["providers"]
        assert "airflow-provider-octopods" in [p["package_name"] for p in providers]
        form = deployment.page("/connection/add")
        found = re.search(r'<script id="field_behaviours" type="text/json">(.*?)</script>', form, re.S)
        assert found, form[:500]
        behaviour = json.loads(html.unescape(found.group(1)))["octopods"]
        assert behaviour["relabeling"] == {"host": "API base URL", "password": "API key"}
        assert {"login", "schema", "port"} <= set(behaviour["hidden_fields"])
        assert "Connect timeout (s)" in form
        assert "CA bundle (path)" in form


@pytest.mark.e2e_tiers(SQLITE)
def test_the_connection_test_accepts_a_good_key_and_refuses_a_bad_one_sending_nothing(
    deployment: Deployment, e2e_sandbox: SandboxServer
) -> None:
    with SandboxServer(SandboxConfig(api_keys=(E2E_KEY,))) as strict:
        body = {"connection_id": "octopods_try", "conn_type": "octopods", "host": strict.url}
        good = deployment.request("POST", "/connections/test", body | {"password": E2E_KEY})
        assert good["status"] is True, good
        assert "the API key was accepted (no SMS was sent)" in good["message"]
        bad = deployment.request("POST", "/connections/test", body | {"password": "wrong-key-123"})
        assert bad["status"] is False
        assert "The API key was refused" in bad["message"]
        assert "wrong-key-123" not in bad["message"]
        assert strict.messages() == []
