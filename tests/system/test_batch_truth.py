"""Batches that tell the truth, inside real Airflow (dag.test on a real metadata DB) against the
sandbox as a real server: a broken plan fails before any request, an empty batch fails, and a
campaign keeps every run (a re-triggered one, another DAG) from texting anyone twice."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from airflow_provider_octopods.sandbox import SandboxServer
from airflow_provider_octopods.send_record.campaign import CAMPAIGN_PREFIX, campaign_key
from tests.dagrun import RunOutcome, octopods_variables

Run = Callable[..., RunOutcome]
Sandbox = Callable[..., SandboxServer]


@pytest.fixture(autouse=True)
def campaigns_deleted_after() -> Iterator[None]:
    """Campaigns outlive their runs by design: deleted after each test, as their expiry would."""
    yield
    from airflow.models import Variable
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(Variable).filter(Variable.key.startswith(CAMPAIGN_PREFIX)).delete(synchronize_session=False)


def test_a_broken_template_fails_the_batch_before_any_request_and_the_report_says_why(
    sandbox: Sandbox, run: Run, read_logs: Callable[[], str], tmp_path: Path
) -> None:
    server = sandbox()
    report_path = tmp_path / "report.csv"
    outcome = run("octopods_batch_broken_plan", {"dry_run": False, "report_path": str(report_path)})
    assert outcome.task_states["remind"] == "failed"
    assert server.requests() == []  # not one request
    report = outcome.xcom("remind", "report")
    assert (report["invalid"], report["accepted"], report["total"]) == (50, 0, 50)
    assert report["refused"].startswith("Nothing was sent: 50 of 50 rows invalid (100.0% > max_invalid_ratio=5.0%). ")
    assert (
        "50 rows: body: does not render: UndefinedError: 'dict object' has no attribute 'nmae' "
        "(rows 1, 2, 3 and 47 more)" in report["refused"]
    )
    with report_path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 50
    assert rows[0]["outcome"] == "invalid"
    assert "or raise max_invalid_ratio" in read_logs()
    dry = run("octopods_batch_broken_plan", {"dry_run": True, "report_path": str(tmp_path / "dry.csv")})
    assert dry.task_states["remind"] == "failed"  # the same verdict, ahead of time
    assert dry.xcom("remind", "report")["refused"] == report["refused"]
    assert server.requests() == []


def test_an_empty_extract_fails_the_batch_unless_it_may_be_empty(sandbox: Sandbox, run: Run) -> None:
    sandbox()
    outcome = run("octopods_batch_empty")
    assert outcome.task_states["remind"] == "failed"
    assert outcome.xcom("remind", "report")["refused"].startswith("Nothing to send: of 0 rows")
    assert outcome.task_states["remind_if_any"] == "success"
    assert outcome.xcom("remind_if_any")["accepted"] == 0


def campaign_keys(name: str) -> list[str]:
    return [key for key in octopods_variables() if key.startswith(campaign_key(name))]


def test_a_campaign_keeps_a_re_triggered_run_and_a_second_dag_from_texting_anyone_twice(
    sandbox: Sandbox, run: Run
) -> None:
    server = sandbox()
    conf = {"campaign": "renewals-test-1"}
    first = run("octopods_campaign_renewals", conf)
    assert first.state == "failed"  # the refused row breaks max_failure_ratio=0
    assert first.xcom("remind", "report")["accepted"] == 40
    assert len(server.messages()) == 40

    again = run("octopods_campaign_renewals", conf)  # triggered again: a new run, a new task instance
    assert again.run_id != first.run_id
    report = again.xcom("remind", "report")
    assert (report["accepted"], report["accepted_earlier"], report["failed"]) == (40, 40, 1)
    first_ids = sorted(first.xcom("remind", "report")["message_ids"])
    assert sorted(report["message_ids"]) == first_ids  # the earlier message ids, given back
    assert len(server.messages()) == 40
    assert server.duplicates() == 0

    second = run("octopods_campaign_second_dag", conf)  # another DAG, another text, the same campaign
    assert second.task_states["remind_again"] == "success"
    result = second.xcom("remind_again")
    assert (result["accepted"], result["accepted_earlier"]) == (40, 20)
    assert len(server.messages()) == 60  # rows 40-59 only
    assert len({m.phone for m in server.messages()}) == 60  # nobody twice, whatever the text
    assert campaign_keys("renewals-test-1")  # the campaign outlives its runs


def test_an_expired_campaign_sends_again_and_the_listener_deletes_expired_ones(sandbox: Sandbox, run: Run) -> None:
    from airflow.models import Variable

    server = sandbox()
    conf = {"campaign": "renewals-test-2"}
    assert run("octopods_campaign_second_dag", conf).xcom("remind_again")["accepted"] == 40

    def expire(name: str) -> None:
        head = json.loads(Variable.get(campaign_key(name)))
        Variable.set(campaign_key(name), json.dumps(head | {"expires": head["expires"] - head["ttl"] - 1}))

    expire("renewals-test-2")
    sent_again = run("octopods_campaign_second_dag", conf).xcom("remind_again")
    assert (sent_again["accepted"], sent_again["accepted_earlier"]) == (40, 0)
    assert len(server.messages()) == 80

    expire("renewals-test-2")
    run("octopods_campaign_second_dag", {"campaign": "another-campaign"})  # any run's end sweeps
    assert campaign_keys("renewals-test-2") == []
    assert campaign_keys("another-campaign")
