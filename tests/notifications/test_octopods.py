"""Notifier behaviour without a DAG run: contexts of every shape, recipients, never raising."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
import requests_mock
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_octopods.api.alerts import EventKind
from airflow_provider_octopods.notifications.events import event_from_context as failure_from_context
from airflow_provider_octopods.notifications.octopods import (
    OctopodsNotifier,
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
        ({"phones": "+15005550100", "default_region": "XX"}, "default_region: .XX. is not a known region code"),
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
    assert failure.kind is EventKind.FAILED


def test_minimal_dag_level_context_of_airflow_3_0() -> None:
    failure = failure_from_context(
        {"dag": SimpleNamespace(dag_id="etl"), "run_id": "scheduled__x", "reason": "task_failure"}
    )
    assert (failure.dag_id, failure.run_id, failure.cause, failure.kind) == (
        "etl",
        "scheduled__x",
        "task_failure",
        EventKind.RUN_FAILED,
    )


def test_dag_level_context_of_airflow_2_carries_a_task_but_is_a_run_failure() -> None:
    # Airflow 2.11 passes the run's last task instance, whatever its state.
    ti = SimpleNamespace(dag_id="etl", task_id="load", run_id="manual__1", try_number=2, state="success")
    context = task_context(ti=ti, task_instance=ti, reason="task_failure", dag_run=SimpleNamespace(run_id="manual__1"))
    failure = failure_from_context(context)
    assert failure.kind is EventKind.RUN_FAILED
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
    assert "connection 'octopods_absent' was not found" in read_logs()


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


@pytest.mark.parametrize(
    ("state", "kind", "text"),
    [
        ("failed", EventKind.FAILED, "Airflow: etl.load failed (try 2 of 3) run manual__1: ValueError: bad"),
        ("up_for_retry", EventKind.RETRY, "Airflow: etl.load failed, will retry (try 2 of 3, next "),
        ("success", EventKind.SUCCEEDED, "Airflow: etl.load succeeded (try 2 of 3) run manual__1"),
    ],
)
def test_task_events_from_the_task_instance_state(state: str, kind: EventKind, text: str) -> None:
    from datetime import timedelta

    from airflow_provider_octopods.api.alerts import alert_text

    ti = SimpleNamespace(
        dag_id="etl",
        task_id="load",
        run_id="manual__1",
        try_number=2,
        max_tries=2,
        state=state,
        task=SimpleNamespace(retry_delay=timedelta(minutes=5)),
    )
    event = failure_from_context(task_context(ti=ti, task_instance=ti, exception=ValueError("bad")))
    assert event.kind is kind
    assert alert_text(event).startswith(text)


def test_dag_level_success_and_deadline_contexts() -> None:
    success = failure_from_context({"dag": SimpleNamespace(dag_id="etl"), "run_id": "r", "reason": "success"})
    assert success.kind is EventKind.RUN_SUCCEEDED
    deadline = failure_from_context(
        {
            "dag_run": {"dag_id": "etl", "run_id": "scheduled__1"},
            "deadline": {"id": "x", "deadline_time": "2026-01-01T00:00:00+00:00"},
        }
    )
    assert (deadline.kind, deadline.dag_id, deadline.run_id, deadline.due) == (
        EventKind.DEADLINE_MISSED,
        "etl",
        "scheduled__1",
        "2026-01-01 00:00 UTC",
    )
    assert deadline.late_by is not None
    assert deadline.late_by.endswith("m")


def test_body_templates_get_the_event_kind(octopods_conn: str, requests_mock: requests_mock.Mocker) -> None:
    requests_mock.post(SEND_URL, **ACCEPTED)
    ti = SimpleNamespace(
        dag_id="etl", task_id="load", run_id="manual__1", try_number=1, max_tries=1, state="up_for_retry"
    )
    OctopodsNotifier(phones="+15005550100", body="{{ ti.task_id }}: {{ event }}")(task_context(ti=ti, task_instance=ti))
    assert requests_mock.last_request.json()["body"] == "load: retry"


@pytest.mark.parametrize(
    ("kw", "text"),
    [
        ({"phones": [f"+1555000{n:04d}" for n in range(21)]}, "phones: has 21 numbers; at most max_recipients=20"),
        (
            {"phones": "+15005550100", "body": "x" * 161, "max_segments": 1},
            "body: takes 2 SMS segments; at most max_segments=1",
        ),
        ({"phones": "  ,  "}, "phones: must be a number or a non-empty list"),
        ({"phones": "+15005550100", "max_recipients": 0}, "max_recipients: must be a whole number of at least 1"),
        ({"phones": "+15005550100", "include_cause": "no"}, "include_cause: must be True or False"),
    ],
)
def test_literal_configuration_that_cannot_work_is_refused_at_parse(kw: dict, text: str) -> None:
    with pytest.raises(ValueError, match=text.replace("(", r"\(").replace(")", r"\)")):
        OctopodsNotifier(**kw)


def test_a_rendered_list_over_max_recipients_alerts_the_first_ones(
    octopods_conn: str, requests_mock: requests_mock.Mocker, read_logs: Callable[[], str]
) -> None:
    requests_mock.post(SEND_URL, **ACCEPTED)
    notifier = OctopodsNotifier(phones="{{ var.value.oncall }}", max_recipients=3)
    notifier.phones = [f"+1555000{n:04d}" for n in range(5)]  # as rendered
    notifier.notify(task_context(exception=ValueError("x")))
    assert requests_mock.call_count == 3
    assert "more than max_recipients=3; not alerted: +1*******003, +1*******004" in read_logs()


def test_include_cause_false_leaves_the_exception_out(octopods_conn: str, requests_mock: requests_mock.Mocker) -> None:
    requests_mock.post(SEND_URL, **ACCEPTED)
    OctopodsNotifier(phones="+15005550100", include_cause=False).notify(
        task_context(exception=ValueError("customer jane@example.com missing"))
    )
    body = requests_mock.last_request.json()["body"]
    assert "jane@example.com" not in body
    assert body.startswith("Airflow: etl.load failed")


def test_a_rendered_body_over_max_segments_is_shortened(
    octopods_conn: str, requests_mock: requests_mock.Mocker
) -> None:
    requests_mock.post(SEND_URL, **ACCEPTED)
    notifier = OctopodsNotifier(phones="+15005550100", body="{{ params.long }}", max_segments=1)
    notifier.body = "word " * 100  # as rendered
    notifier.notify(task_context())
    sent = requests_mock.last_request.json()["body"]
    assert sent.endswith("...")
    assert len(sent) <= 160


def test_preview_shows_each_kind_and_sends_nothing(octopods_conn: str, requests_mock: requests_mock.Mocker) -> None:
    text = OctopodsNotifier(phones=["+15005550100", "+447700900123"]).preview(dag_id="clinic_nightly", task_id="load")
    lines = text.splitlines()
    for kind in EventKind:
        assert any(line.startswith(f"{kind.value}: Airflow: ") for line in lines), kind
    assert "retry: Airflow: clinic_nightly.load failed, will retry (try 1 of 3, next 06:05 UTC)" in text
    assert "1 segment(s), GSM-7" in text or "1 segment(s), gsm7" in text
    assert "to: +1*******100, +44*******123 (nothing was sent)" in text
    assert requests_mock.call_count == 0


def test_preview_renders_a_body_template_per_kind() -> None:
    text = OctopodsNotifier(phones="+15005550100", body="{{ dag.dag_id }} {{ event }}").preview(dag_id="etl")
    assert "failed: etl failed" in text
    assert "run_succeeded: etl run_succeeded" in text


def test_deadline_alert_callback_accepts_the_context_airflow_passes() -> None:
    notifier = OctopodsNotifier(phones="+15005550100", context={"deadline": {"id": "x"}})
    assert notifier.context == {"deadline": {"id": "x"}}
    import importlib

    try:  # Airflow 3.1+ hands the context only to callbacks that take one
        loading = importlib.import_module("airflow._shared.module_loading")
    except ImportError:
        return
    assert loading.accepts_context(OctopodsNotifier)


def test_deadline_alert_through_async_notify_reaches_the_sandbox(
    octopods_sandbox_factory: Callable[..., SandboxServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = octopods_sandbox_factory()
    monkeypatch.setenv("AIRFLOW_CONN_OCTOPODS_DEFAULT", server.connection_json(TEST_KEY))
    context = {
        "dag_run": {"dag_id": "clinic_nightly", "run_id": "scheduled__2026-11-25T06:00:00+00:00"},
        "deadline": {"id": "d1", "deadline_time": "2026-11-25T07:00:00+00:00"},
    }
    asyncio.run(OctopodsNotifier(phones="+15005550100", context=context).async_notify(context))
    [message] = server.messages()
    assert message.body.startswith("Airflow: DAG clinic_nightly run scheduled__2026-11-25T06:00:00+00:00 missed its")
    assert "(due 2026-11-25 07:00 UTC" in message.body


def test_real_deadline_context_names_the_run() -> None:
    # Deadline.handle_miss passes DAGRunResponse.model_dump(), whose run id key is "dag_run_id".
    event = failure_from_context(
        {
            "dag_run": {"dag_run_id": "scheduled__2026-11-25", "dag_id": "etl", "state": "running"},
            "deadline": {"id": "x", "deadline_time": "2026-11-25T07:00:00+00:00"},
        }
    )
    assert (event.dag_id, event.run_id) == ("etl", "scheduled__2026-11-25")


def test_the_callback_slot_decides_when_the_state_cannot(
    octopods_conn: str, requests_mock: requests_mock.Mocker
) -> None:
    # The DAG processor runs a retry callback after a heartbeat timeout with a "running" snapshot.
    requests_mock.post(SEND_URL, **ACCEPTED)
    notifier = OctopodsNotifier(phones="+15005550100")
    ti = SimpleNamespace(dag_id="etl", task_id="load", run_id="manual__1", try_number=1, max_tries=1, state="running")
    task = SimpleNamespace(on_retry_callback=[notifier], on_failure_callback=None, on_success_callback=None)
    notifier(task_context(ti=ti, task_instance=ti, task=task, exception=RuntimeError("heartbeat")))
    assert requests_mock.last_request.json()["body"].startswith("Airflow: etl.load failed, will retry (try 1 of 2")


def test_custom_body_under_dedup_still_names_the_gathered_tasks(
    octopods_conn: str, requests_mock: requests_mock.Mocker
) -> None:
    from airflow_provider_octopods.api.alerts import AlertEvent

    notifier = OctopodsNotifier(phones="+15005550100", body="ETL broke", dedup_window=60)
    event = AlertEvent("etl", "r", ("load", "clean", "index"), 1, "x", EventKind.FAILED)
    assert notifier._text(event, also=notifier._also_failed(event)) == "ETL broke (also failed: clean, index)"
    run = AlertEvent("etl", "r", ("late",), None, "task_failure", EventKind.RUN_FAILED)
    assert notifier._text(run, also=notifier._also_failed(run)) == "ETL broke (also failed: late)"


def test_phones_rendering_to_nothing_is_logged(
    octopods_conn: str, requests_mock: requests_mock.Mocker, read_logs: Callable[[], str]
) -> None:
    notifier = OctopodsNotifier(phones="{{ var.value.oncall }}")
    notifier.phones = ""  # as rendered from an empty Variable
    notifier.notify(task_context(exception=ValueError("x")))
    assert requests_mock.call_count == 0
    assert "phones rendered to no number at all" in read_logs()


def test_literal_items_of_a_list_with_templates_are_checked_at_parse() -> None:
    with pytest.raises(ValueError, match=r"phones: \*\*345 has no country code"):
        OctopodsNotifier(phones=["{{ var.value.oncall }}", "12345"])
    with pytest.raises(ValueError, match="phones: has 21 entries; at most max_recipients=20"):
        OctopodsNotifier(phones=["{{ var.value.oncall }}", *[f"+1555000{n:04d}" for n in range(20)]])
    OctopodsNotifier(phones=["{{ var.value.oncall }}", "+15005550100"])  # fine until rendered


def test_deadline_callback_checks_the_notifier_when_the_dag_is_parsed() -> None:
    from airflow_provider_octopods.notifications.octopods import octopods_deadline_callback

    with pytest.raises(ValueError, match=r"phones: \*\*345 has no country code"):
        octopods_deadline_callback(phones=["12345"])
    try:
        async_callback = importlib.import_module("airflow.sdk").AsyncCallback
    except ImportError:  # Airflow 2.11: no deadline alerts, and the error says what to use
        with pytest.raises(ValueError, match=r"needs Airflow 3\.1\+ deadline alerts; use sla_miss_callback"):
            octopods_deadline_callback(phones=["+15005550100"])
        return
    callback = octopods_deadline_callback(phones=["+15005550100"], dedup_window=None)
    assert isinstance(callback, async_callback)
    assert callback.path == "airflow_provider_octopods.notifications.octopods.OctopodsNotifier"
    assert callback.kwargs == {"phones": ["+15005550100"], "dedup_window": None}


def test_a_failure_callback_called_twice_for_one_try_alerts_once(
    octopods_conn: str, requests_mock: requests_mock.Mocker
) -> None:
    """Airflow runs a task's failure callback twice for one try when a worker dies (a missed
    heartbeat, then the executor's report): one SMS, also without ``dedup_window``."""
    requests_mock.post(SEND_URL, **ACCEPTED)
    notifier = OctopodsNotifier(phones="+15005550100")
    notifier(task_context())
    notifier(task_context())
    assert requests_mock.call_count == 1
    next_try = task_context()
    next_try["ti"] = next_try["task_instance"] = SimpleNamespace(
        dag_id="etl", task_id="load", run_id="manual__1", try_number=3
    )
    notifier(next_try)  # another try is another failure
    other_team = OctopodsNotifier(phones="+15005550101")
    other_team(task_context())  # other recipients keep their own count
    assert requests_mock.call_count == 3


def dag_processor_channel() -> tuple[Any, Any]:
    """Airflow 3's dag-processor channel as a stand-in: it decodes the dag-processor's answers and
    never replies to a request it cannot answer (GetDagRunState); and the Task SDK's answers."""
    comms = pytest.importorskip("airflow.sdk.execution_time.comms")
    processor = pytest.importorskip("airflow.dag_processing.processor")
    if not hasattr(processor, "ToDagProcessor"):
        pytest.skip("Airflow 2 has no dag-processor supervisor")
    from pydantic import TypeAdapter

    return TypeAdapter(processor.ToDagProcessor), TypeAdapter(comms.ToTask)


@pytest.mark.parametrize("place", ["dag-processor", "task runner"])
def test_the_run_state_is_asked_only_where_airflow_answers_it(
    octopods_conn: str, requests_mock: requests_mock.Mocker, monkeypatch: pytest.MonkeyPatch, place: str
) -> None:
    """Airflow 3's dag-processor runs the failure callbacks of a task whose worker died; asked for
    a run's state (GetDagRunState), it never answers. The notifier must not ask there, and alerts
    at once (the safe side); in a task, it asks, and leaves the failure to the DAG-level alert."""
    import threading

    dag_processor_answers, task_answers = dag_processor_channel()  # Airflow 3 only
    from airflow.sdk.execution_time import task_runner  # type: ignore[import-not-found,unused-ignore]

    asked = threading.Event()

    class Channel:
        body_decoder = dag_processor_answers if place == "dag-processor" else task_answers

        def send(self, msg: Any) -> Any:
            if getattr(msg, "type", None) != "GetDagRunState":
                return None  # e.g. MaskSecret, which needs no answer
            asked.set()
            if place == "dag-processor":
                threading.Event().wait(30)  # it cannot decode this request and never answers
            return SimpleNamespace(state="running")

    channel = Channel()
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", channel, raising=False)

    class RuntimeTaskInstance(SimpleNamespace):
        def get_dagrun_state(self, dag_id: str, run_id: str) -> str:
            return str(channel.send(SimpleNamespace(type="GetDagRunState")).state)  # as the Task SDK's does

    requests_mock.post(SEND_URL, **ACCEPTED)
    dag = SimpleNamespace(dag_id="etl", on_failure_callback=[OctopodsNotifier(phones="+15005550100", dedup_window=60)])
    notifier = OctopodsNotifier(phones="+15005550100", dedup_window=60)

    def fail(task_id: str) -> None:
        ti = RuntimeTaskInstance(dag_id="etl", task_id=task_id, run_id="manual__1", try_number=1, map_index=-1)
        context = {"ti": ti, "task_instance": ti, "dag": dag, "run_id": "manual__1"}
        context["dag_run"] = SimpleNamespace(dag_id="etl", run_id="manual__1", state="running")
        worker = threading.Thread(target=notifier, args=(context,), daemon=True)
        worker.start()
        worker.join(20)
        assert not worker.is_alive(), "the callback hung"

    fail("load")  # the first failure of the run: alerted, naming it
    assert requests_mock.call_count == 1
    assert "load" in requests_mock.last_request.json()["body"]
    fail("late")  # a later one in the window, with a DAG-level alert to come
    if place == "dag-processor":  # the run's state cannot be known here: alert now
        assert not asked.is_set()
        assert requests_mock.call_count == 2
    else:  # the run goes on: the DAG-level alert will name it
        assert asked.is_set()
        assert requests_mock.call_count == 1


RUN_ID = "manual__2026-12-06T23:49:37.957132+00:00"
LOG_URL = "http://airflow.example.com/dags/etl/runs/manual__2026/tasks/extract?try_number=1"


def dag_processor_context(ti_state: str | None = None) -> dict[str, Any]:
    """What Airflow 3's dag-processor gives a DAG's ``on_failure_callback``: the context of the
    task instance whose failure ended the run (its state not filled in), and the reason."""
    ti = SimpleNamespace(dag_id="etl", task_id="extract", run_id=RUN_ID, try_number=1, state=ti_state, log_url=LOG_URL)
    dag = SimpleNamespace(dag_id="etl", task_ids=["extract", "split", "clean", "report"])
    run = SimpleNamespace(dag_id="etl", run_id=RUN_ID)
    return {"dag": dag, "run_id": RUN_ID, "ti": ti, "task_instance": ti, "dag_run": run, "reason": "task_failure"}


@pytest.mark.parametrize("place", ["dag-processor", "somewhere that cannot answer"])
def test_a_dag_level_alert_names_the_failed_tasks_asked_through_the_task_sdk(
    octopods_conn: str, requests_mock: requests_mock.Mocker, monkeypatch: pytest.MonkeyPatch, place: str
) -> None:
    """Airflow 3 runs DAG-level callbacks in the dag-processor, without the metadata DB: the failed
    tasks are asked through the Task SDK (GetTaskStates), which it answers; where the channel
    could not decode the answer, nothing is asked (the caller would hang) and the alert names the
    task Airflow passed with the callback."""
    dag_processor_answers, _ = dag_processor_channel()  # Airflow 3 only
    from airflow.sdk.execution_time import task_runner  # type: ignore[import-not-found,unused-ignore]

    asked: list[Any] = []

    class Undecodable:
        def validate_python(self, value: object) -> None:
            raise ValueError("not an answer of this channel")

    class Channel:
        body_decoder = dag_processor_answers if place == "dag-processor" else Undecodable()

        def send(self, msg: Any) -> Any:
            if getattr(msg, "type", None) != "GetTaskStates":
                return None  # e.g. MaskSecret, which needs no answer
            asked.append(msg)
            states = {"extract": "failed", "split_0": "failed", "split_1": "failed", "clean": "success"}
            return SimpleNamespace(task_states={RUN_ID: states | {"report": "upstream_failed"}})

    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", Channel(), raising=False)
    requests_mock.post(SEND_URL, **ACCEPTED)
    context = dag_processor_context()  # Airflow calls each callback of the list with the same context
    OctopodsNotifier(phones="+15005550100")(context)
    OctopodsNotifier(phones="+15005550100", body="{{ event }} {{ log_url }}")(context)
    default, templated = (r.json()["body"] for r in requests_mock.request_history)
    if place == "dag-processor":
        assert [(m.dag_id, m.run_ids) for m in asked] == [("etl", [RUN_ID])]  # asked once
        assert default == "Airflow: DAG etl failed: tasks extract, split (run manual 2026-12-06 23:49:37)"
    else:
        assert asked == []
        assert default == "Airflow: DAG etl failed: task extract (run manual 2026-12-06 23:49:37)"
    assert templated == f"run_failed {LOG_URL}"


@pytest.mark.parametrize(
    ("ti_state", "text", "log_url"),
    [
        ("failed", "Airflow: DAG etl failed: task extract (run manual 2026-12-06 23:49:37)", LOG_URL),
        ("success", "Airflow: DAG etl failed: task_failure (run manual 2026-12-06 23:49:37)", ""),
    ],
)
def test_a_dag_level_alert_that_cannot_ask_airflow_falls_back_to_the_context(
    octopods_conn: str, requests_mock: requests_mock.Mocker, ti_state: str, text: str, log_url: str
) -> None:
    """Where Airflow cannot tell (this run is in no metadata DB), the task in the context is named
    if it failed, else the run's reason; ``{{ log_url }}`` is that task's log, else empty."""
    requests_mock.post(SEND_URL, **ACCEPTED)
    OctopodsNotifier(phones="+15005550100")(dag_processor_context(ti_state))
    OctopodsNotifier(phones="+15005550100", body="[{{ log_url }}]")(dag_processor_context(ti_state))
    default, templated = (r.json()["body"] for r in requests_mock.request_history)
    assert default == text
    assert templated == f"[{log_url}]"


def test_log_url_renders_in_a_task_level_body(octopods_conn: str, requests_mock: requests_mock.Mocker) -> None:
    requests_mock.post(SEND_URL, **ACCEPTED)
    ti = SimpleNamespace(dag_id="etl", task_id="load", run_id="manual__1", try_number=2, state="failed")
    ti.log_url = LOG_URL
    body = "{{ ti.task_id }} failed: {{ log_url }}"
    OctopodsNotifier(phones="+15005550100", body=body)(task_context(ti=ti, task_instance=ti))
    assert requests_mock.last_request.json()["body"] == f"load failed: {LOG_URL}"
