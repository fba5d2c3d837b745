"""Notifier behaviour without a DAG run: contexts of every shape, recipients, never raising."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
import requests_mock
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_octopods.notifications.octopods import (
    OctopodsNotifier,
    failure_from_context,
    recipients,
    send_octopods_notification,
)
from airflow_provider_octopods.sandbox import SandboxServer
from tests.conftest import TEST_KEY

SEND_URL = "https://app.octopods.io/api/v1/sms/messages"
ACCEPTED = {"status_code": 201, "json": {"request_id": "r", "message_id": 1}}


def task_context(**extra: Any) -> dict[str, Any]:
    ti = SimpleNamespace(dag_id="etl", task_id="load", run_id="manual__1", try_number=2)
    return {"ti": ti, "task_instance": ti, "dag": DAG(dag_id="etl", schedule=None), "run_id": "manual__1"} | extra


def test_alias_and_template_fields() -> None:
    assert send_octopods_notification is OctopodsNotifier
    assert OctopodsNotifier.template_fields == ("phones", "body")


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"phones": []}, "phones"),
        ({"phones": 5}, "phones"),
        ({"phones": "+15005550100", "body": 3}, "body"),
        ({"phones": "+15005550100", "dedup_window": -1}, "dedup_window"),
        ({"phones": "+15005550100", "default_region": "XYZ"}, "default_region"),
        ({"phones": ["+15005550100", "12345"]}, "phones: .* has no country code"),
        ({"phones": "+1555CALLNOW"}, "phones: .* contains letters"),
    ],
)
def test_bad_parameters(kw: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        OctopodsNotifier(**kw)


def test_task_context() -> None:
    failure = failure_from_context(task_context(exception=ValueError("bad row\ntraceback...")))
    assert (failure.dag_id, failure.run_id, failure.task_ids, failure.try_number) == ("etl", "manual__1", ("load",), 2)
    assert failure.cause == "ValueError: bad row"
    assert not failure.run_failed


def test_minimal_dag_level_context_of_airflow_3_0() -> None:
    failure = failure_from_context(
        {"dag": SimpleNamespace(dag_id="etl"), "run_id": "scheduled__x", "reason": "task_failure"}
    )
    assert (failure.dag_id, failure.run_id, failure.cause, failure.run_failed) == (
        "etl",
        "scheduled__x",
        "task_failure",
        True,
    )


def test_dag_level_context_of_airflow_2_carries_a_task_but_is_a_run_failure() -> None:
    failure = failure_from_context(task_context(reason="task_failure", dag_run=SimpleNamespace(run_id="manual__1")))
    assert failure.run_failed
    assert failure.task_ids == ()


def test_empty_context_still_gives_an_alert(octopods_conn: str, requests_mock: requests_mock.Mocker) -> None:
    requests_mock.post(SEND_URL, **ACCEPTED)
    OctopodsNotifier(phones="+15005550100").notify({})
    assert requests_mock.last_request.json()["body"] == "Airflow: unknown DAG failed"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("+15005550100", ["+15005550100"]),
        ("+15005550100, +447700900123", ["+15005550100", "+447700900123"]),
        ("['+15005550100', '+447700900123']", ["+15005550100", "+447700900123"]),
        (["+15005550100", " "], ["+15005550100"]),
    ],
)
def test_recipients(value: object, expected: list[str]) -> None:
    assert recipients(value) == expected


def test_default_body_is_one_sms(octopods_conn: str, requests_mock: requests_mock.Mocker) -> None:
    requests_mock.post(SEND_URL, **ACCEPTED)
    context = task_context(exception=RuntimeError("x" * 2000))
    context["ti"].dag_id = context["ti"].task_id = "a_very_long_identifier_" * 8
    OctopodsNotifier(phones="+15005550100").notify(context)
    body = requests_mock.last_request.json()["body"]
    assert len(body) <= 160
    assert "RuntimeError: xxx" in body


@pytest.mark.parametrize(
    "response",
    [
        {"status_code": 400, "json": {"error_code": 5, "error": "rotated"}},
        {"status_code": 401, "json": {}},
        {"status_code": 500, "text": "<html>oops</html>"},
    ],
)
def test_never_raises_and_logs_the_reason(
    octopods_conn: str, requests_mock: requests_mock.Mocker, read_logs: Callable[[], str], response: dict
) -> None:
    requests_mock.post(SEND_URL, **response)
    OctopodsNotifier(phones=["+15005550100", "+447700900123"])(task_context(exception=ValueError("x")))
    assert requests_mock.call_count == 2  # each recipient tried
    logs = read_logs()
    assert "Octopods alert to +1*******100 failed" in logs
    assert "Octopods alert to +44*******123 failed" in logs
    assert TEST_KEY not in logs


def test_missing_connection_never_raises(read_logs: Callable[[], str]) -> None:
    OctopodsNotifier(phones="+15005550100", octopods_conn_id="octopods_absent")(task_context())
    assert "connection 'octopods_absent' is not defined" in read_logs()


def test_bad_template_never_raises(octopods_conn: str, read_logs: Callable[[], str]) -> None:
    OctopodsNotifier(phones="+15005550100", body="{{ broken ")(task_context())
    assert "Octopods alert was not sent" in read_logs()


def test_rendering_with_a_dag_that_cannot_build_jinja(octopods_conn: str, requests_mock: requests_mock.Mocker) -> None:
    requests_mock.post(SEND_URL, **ACCEPTED)
    context = {"dag": SimpleNamespace(dag_id="etl"), "run_id": "r1", "reason": "task_failure"}
    OctopodsNotifier(phones="+15005550100", body="{{ run_id }} failed: {{ reason }}")(context)
    assert requests_mock.last_request.json()["body"] == "r1 failed: task_failure"


def test_async_notify_shares_the_payload(
    octopods_sandbox_factory: Callable[..., SandboxServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = octopods_sandbox_factory()
    monkeypatch.setenv("AIRFLOW_CONN_OCTOPODS_DEFAULT", server.connection_json(TEST_KEY))
    notifier = OctopodsNotifier(phones=["+15005550100", "{{ 'bogus' }}", "+447700900123"])
    notifier.phones = ["+15005550100", "bogus", "+447700900123"]  # as rendered
    context = task_context(exception=ValueError("late data"))
    asyncio.run(notifier.async_notify(context))
    sync_text = notifier._text(failure_from_context(context))
    assert [m.body for m in server.messages()] == [sync_text, sync_text]
    assert [m.phone for m in server.messages()] == ["+15005550100", "+447700900123"]
