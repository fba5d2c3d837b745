"""OctopodsSendBatchOperator: parse-time checks, and execute against the sandbox (in-memory record)."""

from __future__ import annotations

import copy
import csv
import importlib
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from airflow_provider_octopods import metrics
from airflow_provider_octopods.operators.octopods import OctopodsSendBatchOperator
from airflow_provider_octopods.sandbox import SandboxServer
from airflow_provider_octopods.send_record import MemoryStore
from tests.conftest import TEST_KEY

ROWS = [{"phone": f"+447700900{n:03d}", "name": f"P{n}"} for n in range(10)]


def operator(**kw: Any) -> OctopodsSendBatchOperator:
    args: dict[str, Any] = {"task_id": "remind", "recipients": ROWS, "body": "Hi {{ recipient.name }}"}
    return OctopodsSendBatchOperator(**(args | kw))


# Rows as a security probe wrote them: each name would reveal something if it were rendered.
PROBES = [
    {"phone": "+447700900101", "name": "{{ conn.octopods_default.password }}"},
    {"phone": "+447700900102", "name": "{{ var.value.x }}"},
    {"phone": "+447700900103", "name": "{{"},
    {"phone": "+447700900104", "name": "{{ 7*7 }}"},
]
SECRET_VARIABLE = "the-variable-value"


class TaskInstance(SimpleNamespace):
    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> Any:
        return self.xcoms.get((task_ids, key))


def context(try_number: int = 1, xcoms: dict[tuple[str, str], Any] | None = None, run_id: str = "r") -> dict[str, Any]:
    """A task context with what a template could reach: the connection's key, a Variable, XComs."""
    ti = TaskInstance(
        dag_id="d", run_id=run_id, task_id="remind", map_index=-1, try_number=try_number, pushed={}, xcoms=xcoms or {}
    )
    return {
        "ti": ti,
        "task_instance": ti,
        "ds": "2026-11-25",
        "params": {},
        "conn": {"octopods_default": {"password": TEST_KEY}},
        "var": {"value": {"x": SECRET_VARIABLE}},
    }


def sent_as_text(server: SandboxServer) -> None:
    """The sandbox got each probe's name as text, nothing rendered from it."""
    bodies = sorted(m.body for m in server.messages())
    assert bodies == sorted(f"Hi {row['name']}" for row in PROBES)
    assert not any(TEST_KEY in b or SECRET_VARIABLE in b or "49" in b for b in bodies)


@pytest.fixture
def server(octopods_sandbox_factory: Any, monkeypatch: pytest.MonkeyPatch) -> SandboxServer:
    sandbox: SandboxServer = octopods_sandbox_factory()
    monkeypatch.setenv("AIRFLOW_CONN_OCTOPODS_DEFAULT", sandbox.connection_json(TEST_KEY))
    return sandbox


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"body": ""}, "body: must be a non-empty text template"),
        ({"body": "Hi {{ recipient.name "}, "body: is not a valid Jinja template"),
        ({"body": "x" * 1601}, "body: "),
        ({"recipients": []}, "recipients: is an empty list"),
        ({"recipients": 42}, "recipients: must be a list of rows or a CSV path"),
        ({"rate_limit": -1}, "rate_limit"),
        ({"max_in_flight": 0}, "max_in_flight: must be a whole number of at least 1"),
        ({"max_failure_ratio": 2}, "max_failure_ratio: must be between 0 and 1"),
        ({"default_region": "XX"}, "default_region"),
        ({"dry_run": "maybe"}, "dry_run: must be True or False"),
        ({"phone_field": ""}, "phone_field: must be a field name"),
    ],
)
def test_a_literal_no_rendering_can_fix_is_refused_when_the_dag_is_parsed(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        operator(**kwargs)


def test_templates_and_xcom_args_are_left_for_execute() -> None:
    from airflow.providers.common.compat.sdk import DAG, task

    with DAG(dag_id="d", schedule=None):

        @task
        def rows() -> list[dict[str, str]]:
            return ROWS  # type: ignore[return-value]

        operator(recipients=rows(), default_region="{{ params.region }}", dry_run="{{ params.dry }}")
        operator(task_id="csv", recipients="/data/{{ ds }}/patients.csv")
    assert set(OctopodsSendBatchOperator.template_fields) >= {"recipients", "default_region", "opt_out", "dry_run_only"}


def test_rendered_recipients_and_opt_out_show_a_count_not_the_numbers() -> None:
    op = operator(opt_out=["+447700900001", "+447700900002"])
    op.render_template_fields(context(), jinja_env=op.get_template_env())
    assert op.recipients == "10 recipients (list)"
    assert op.opt_out == "2 numbers (list)"
    op.render_template_fields(context(), jinja_env=op.get_template_env())  # rendering again keeps the rows
    assert op.recipients == "10 recipients (list)"
    assert op._opt_out(None)("+447700900002")  # type: ignore[misc]


def test_an_opt_out_list_is_data_never_templates() -> None:
    op = operator(opt_out=["+447700900001", "{{ var.value.x }}", "{{"])
    op.render_template_fields(context(), jinja_env=op.get_template_env())  # a bare "{{" would fail a render
    assert op.opt_out == "3 numbers (list)"
    assert op._opt_out_numbers == ["+447700900001", "{{ var.value.x }}", "{{"]


def rows_from_a_json_file(tmp_path: Path) -> list[dict[str, str]]:
    source = tmp_path / "rows.json"
    source.write_text(json.dumps(PROBES))
    return json.loads(source.read_text())  # as a DAG file loads them when it is parsed


@pytest.mark.parametrize(
    "rows",
    [
        pytest.param(lambda tmp_path: copy.deepcopy(PROBES), id="literal list"),
        pytest.param(lambda tmp_path: tuple(copy.deepcopy(PROBES)), id="literal tuple"),
        pytest.param(rows_from_a_json_file, id="JSON file loaded at parse time"),
    ],
)
def test_literal_rows_are_data_never_templates(
    rows: Callable[[Path], Any], server: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    op = operator(recipients=rows(tmp_path), record_store=MemoryStore())
    ctx = context()
    op.render_template_fields(ctx, jinja_env=op.get_template_env())  # a bare "{{" used to fail here
    assert op.recipients == "4 recipients (list)"
    assert op._rows == PROBES
    assert op.execute(ctx)["accepted"] == 4
    sent_as_text(server)
    assert not [row["phone"] for row in PROBES if row["phone"] in caplog.text]


@pytest.mark.parametrize("native", [False, True], ids=["text rendering", "native rendering"])
def test_a_template_producing_the_rows_is_rendered_once_and_its_rows_are_data(
    native: bool, server: SandboxServer
) -> None:
    from airflow.providers.common.compat.sdk import DAG

    with DAG(dag_id="d", schedule=None, render_template_as_native_obj=native):
        op = operator(recipients="{{ ti.xcom_pull('extract') }}", record_store=MemoryStore())
    ctx = context(xcoms={("extract", "return_value"): PROBES})
    op.render_template_fields(ctx, jinja_env=op.get_template_env())
    assert op.recipients == "4 recipients (list)"
    assert op._rows == PROBES
    op.execute(ctx)
    sent_as_text(server)


def test_a_templated_csv_path_is_rendered_and_the_file_s_rows_are_data(server: SandboxServer, tmp_path: Path) -> None:
    (tmp_path / "2026-11-25").mkdir()
    with (tmp_path / "2026-11-25" / "patients.csv").open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=["phone", "name"])
        writer.writeheader()
        writer.writerows(PROBES)
    op = operator(recipients=f"{tmp_path}/{{{{ ds }}}}/patients.csv", record_store=MemoryStore())
    ctx = context()
    op.render_template_fields(ctx, jinja_env=op.get_template_env())
    assert op.recipients == f"4 recipients (CSV {tmp_path}/2026-11-25/patients.csv)"
    op.execute(ctx)
    sent_as_text(server)


@pytest.fixture
def task_session_given_back() -> Iterator[None]:
    """Airflow 2.11's mapped rendering, outside a running task, opens a session of its own and
    keeps it as the current task session, which makes every later ``dag.test()`` in this process
    fail ("Session already set for this task"). Closed and cleared after the test."""
    yield
    try:
        module = importlib.import_module("airflow.utils.task_instance_session")
    except ImportError:
        return
    name = "__current_task_instance_session"
    session = getattr(module, name, None)
    if session is not None:
        session.close()
        setattr(module, name, None)


@pytest.mark.usefixtures("task_session_given_back")
def test_mapped_rows_are_data_never_templates() -> None:
    from airflow.providers.common.compat.sdk import DAG

    with DAG(dag_id="d", schedule=None) as dag:
        mapped = OctopodsSendBatchOperator.partial(task_id="remind", body="Hi {{ recipient.name }}").expand(
            recipients=[PROBES[:2], PROBES[2:]]
        )
    for map_index, rows in enumerate([PROBES[:2], PROBES[2:]]):
        ctx = context() | {"dag": dag, "dag_run": SimpleNamespace(conf={}), "run_id": "r"}
        ctx["ti"].map_index = map_index
        mapped.render_template_fields(ctx)  # renders the task unmapped for this index: ctx["task"]
        assert ctx["task"].recipients == "2 recipients (list)"
        assert ctx["task"]._rows == rows


def test_on_kill_stops_a_running_batch(octopods_sandbox_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    sandbox = octopods_sandbox_factory()
    monkeypatch.setenv("AIRFLOW_CONN_OCTOPODS_DEFAULT", sandbox.connection_json(TEST_KEY))
    rows = [{"phone": f"+4477009{n:05d}", "name": str(n)} for n in range(400)]
    op = operator(recipients=rows, rate_limit=100, record_store=MemoryStore(), max_failure_ratio=1.0)
    threading.Timer(1.0, op.on_kill).start()  # Airflow 3's SIGTERM handler calls on_kill
    ctx = context()
    with pytest.raises(AirflowException, match="Batch stopped by Airflow before its end; a retry sends the rest"):
        op.execute(ctx)
    summary = ctx["ti"].pushed["report"]
    assert 50 < len(sandbox.messages()) < 200  # stopped after about a second at 100/s
    assert summary["accepted"] == len(sandbox.messages())
    assert summary["unknown"] == 0
    assert summary["failed"] == 400 - summary["accepted"]  # not sent, for the next try


def test_on_kill_while_the_batch_is_planned_starts_no_send(
    octopods_sandbox_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_octopods.batch import rounds

    sandbox = octopods_sandbox_factory()
    monkeypatch.setenv("AIRFLOW_CONN_OCTOPODS_DEFAULT", sandbox.connection_json(TEST_KEY))
    rows = [{"phone": f"+4477009{n:05d}", "name": str(n)} for n in range(20)]
    op = operator(recipients=rows, record_store=MemoryStore(), max_failure_ratio=1.0)
    real_plan = rounds.plan_batch

    def plan_then_sigterm(*args: Any, **kwargs: Any) -> Any:
        plan = real_plan(*args, **kwargs)
        op.on_kill()  # Airflow 3's SIGTERM handler, before the first send
        return plan

    monkeypatch.setattr(rounds, "plan_batch", plan_then_sigterm)
    ctx = context()
    with pytest.raises(AirflowException, match="Batch stopped by Airflow before its end; a retry sends the rest"):
        op.execute(ctx)
    assert sandbox.requests() == []
    summary = ctx["ti"].pushed["report"]
    assert (summary["accepted"], summary["unknown"], summary["failed"]) == (0, 0, 20)  # all for the next try


def test_csv_recipients_variable_opt_out_and_a_report_file(
    server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "patients.csv"
    with source.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=["phone", "name"])
        writer.writeheader()
        writer.writerows(ROWS)
    monkeypatch.setenv("AIRFLOW_VAR_SMS_OPT_OUT", '["07700 900001", "+447700900002"]')
    report_path = tmp_path / "out" / "report.csv"
    op = operator(
        recipients=str(source),
        opt_out="sms_opt_out",
        default_region="GB",
        report_path=str(report_path),
        record_store=MemoryStore(),
    )
    summary = op.execute(context())
    assert (summary["accepted"], summary["opted_out"]) == (8, 2)
    assert summary["report_path"] == str(report_path)
    lines = report_path.read_text().splitlines()
    assert lines[0] == "row,phone,outcome,message_id,error_code,error"
    assert lines[2] == "2,+44*******001,opted_out,,,"
    assert len(server.messages()) == 8


def test_a_callable_opt_out_and_a_second_try_that_sends_nothing_again(server: SandboxServer) -> None:
    store = MemoryStore()
    op = operator(opt_out=lambda phone: phone.endswith("9"), record_store=store)
    first = op.execute(context(1))
    assert (first["accepted"], first["opted_out"]) == (9, 1)
    again = op.execute(context(2))  # e.g. a later task in the try failed and Airflow retried
    assert (again["accepted"], again["accepted_earlier"]) == (9, 9)
    assert sorted(again["message_ids"]) == sorted(first["message_ids"])
    assert len(server.messages()) == 9
    assert server.duplicates() == 0


def test_an_unknown_outcome_of_an_earlier_try_is_listed_not_resent_unless_asked(server: SandboxServer) -> None:
    from airflow_provider_octopods.api import build_send_request
    from airflow_provider_octopods.send_record import SendGuard, TaskKey

    store = MemoryStore()
    guard = SendGuard(TaskKey("d", "r", "remind"), try_number=1, store=store)
    request = build_send_request(ROWS[3]["phone"], "Hi P3")
    guard.begin([(guard.slot(request, 1), request)])  # the worker died after this intent
    summary = operator(record_store=store, max_failure_ratio=0.5).execute(context(2))
    assert (summary["accepted"], summary["unknown"], summary["unknown_rows"]) == (9, 1, [4])
    assert not any(m.phone.endswith("900003") for m in server.messages())
    with pytest.raises(AirflowFailException, match="1 unknown of the rows sent"):  # by default, a human decides
        operator(record_store=store).execute(context(3))
    resent = operator(record_store=store, resend_unknown=True).execute(context(4))
    assert (resent["accepted"], resent["unknown"]) == (10, 0)


def test_policy_breach_fails_the_task_after_sending_everything_and_pushing_the_report(server: SandboxServer) -> None:
    rows = [*ROWS, {"phone": "+15005550104", "name": "refused"}, {"phone": "oops", "name": "invalid"}]
    ctx = context()
    with pytest.raises(AirflowFailException, match=r"1 failed and 0 unknown .* > max_failure_ratio=5.0%") as err:
        operator(recipients=rows, max_invalid_ratio=0.1, record_store=MemoryStore()).execute(ctx)
    assert not isinstance(err.value, AirflowException) or isinstance(err.value, AirflowFailException)
    report = ctx["ti"].pushed["report"]
    assert (report["accepted"], report["failed"], report["invalid"]) == (10, 1, 1)
    assert report["failed_by_code"] == {"error_3": 1}
    assert len(server.messages()) == 10
    ctx = context()
    with pytest.raises(AirflowFailException, match=r"Nothing was sent: 1 of 11 rows invalid \(fail_on_invalid=True\)"):
        operator(recipients=rows[:-2] + rows[-1:], fail_on_invalid=True, record_store=MemoryStore()).execute(ctx)
    assert len(server.messages()) == 10  # nothing more: refused before the first request
    tolerant = operator(
        recipients=rows, max_failure_ratio=0.5, max_invalid_ratio=0.1, record_store=MemoryStore()
    ).execute(context())
    assert tolerant["failed"] == 1


def test_a_retryable_failure_over_the_ratio_lets_airflow_retry(
    octopods_sandbox_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = octopods_sandbox_factory(faults=("http_503:1.0:send",))
    monkeypatch.setenv("AIRFLOW_CONN_OCTOPODS_DEFAULT", sandbox.connection_json(TEST_KEY))
    with pytest.raises(AirflowException, match="A retry sends only the rows not accepted yet") as err:
        operator(recipients=ROWS[:2], record_store=MemoryStore()).execute(context())
    assert not isinstance(err.value, AirflowFailException)


def test_the_objects_alive_during_a_batch_are_kept_out_of_garbage_collections(
    server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The objects alive at the start, the plan and the list of sends are frozen; the youngest
    generation is collected less often while the batch runs; all is given back at the end."""
    import gc

    from airflow_provider_octopods.batch.runner import YOUNG_OBJECTS, BatchRunner

    frozen_while_planning: list[int] = []
    threshold = gc.get_threshold()

    def opted_out(phone: str) -> bool:
        frozen_while_planning.append(gc.get_freeze_count())
        assert gc.get_threshold()[0] == max(YOUNG_OBJECTS, threshold[0])
        return False

    collected: list[bool] = []
    run = BatchRunner.run

    def watched_run(self: BatchRunner, todo: list[Any], *args: Any, **kwargs: Any) -> int:
        # Frozen objects are in no generation the collector walks.
        collected.append(any(item is todo for g in (0, 1, 2) for item in gc.get_objects(generation=g)))
        assert gc.get_threshold()[0] == max(YOUNG_OBJECTS, threshold[0])
        return run(self, todo, *args, **kwargs)

    monkeypatch.setattr(BatchRunner, "run", watched_run)
    assert gc.get_freeze_count() == 0
    summary = operator(opt_out=opted_out, record_store=MemoryStore()).execute(context())
    assert summary["accepted"] == 10
    assert min(frozen_while_planning) > 0
    assert collected == [False]  # the list of sends was frozen before sending
    assert gc.get_freeze_count() == 0  # given back
    assert gc.get_threshold() == threshold


def test_rows_an_earlier_try_withdrew_meanwhile_are_sent_before_the_end(
    server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Try 1 (given up by Airflow, still running) had intents for two rows when try 2 started, and
    withdrew them while try 2 sent the rest: try 2 reads the record again and sends those two."""
    from airflow_provider_octopods.api import build_send_request
    from airflow_provider_octopods.send_record import SendGuard, TaskKey

    store = MemoryStore()
    first = SendGuard(TaskKey("d", "r", "remind"), try_number=1, store=store)
    held = [build_send_request(row["phone"], f"Hi {row['name']}") for row in ROWS[:2]]
    first.begin([(first.slot(request, 1), request) for request in held])
    refresh = SendGuard.refresh

    def withdrawn_meanwhile(guard: SendGuard) -> None:
        first.settle((), [first.slot(request, 1) for request in held])  # try 1 stops, withdrawing them
        refresh(guard)

    monkeypatch.setattr(SendGuard, "refresh", withdrawn_meanwhile)
    summary = operator(record_store=store).execute(context(2))
    assert (summary["accepted"], summary["unknown"]) == (10, 0)
    assert len(server.messages()) == 10
    assert server.duplicates() == 0


# -- batches that tell the truth (issue 22) --------------------------------------------------------


@pytest.fixture
def logged(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> Callable[[int], list[str]]:
    """The operator logs through a plain logger (Airflow 3's task logger does not reach caplog):
    gives the messages logged at a level or above."""
    plain = logging.getLogger("tests.batch.operator")
    monkeypatch.setattr(OctopodsSendBatchOperator, "log", property(lambda self: plain))
    caplog.set_level(logging.INFO, logger="tests.batch.operator")
    return lambda level: [r.getMessage() for r in caplog.records if r.name == plain.name and r.levelno >= level]


def test_unknown_outcomes_are_one_warning_listing_the_rows_and_the_report_keeps_the_whole_error(
    octopods_sandbox_factory: Any, monkeypatch: pytest.MonkeyPatch, logged: Callable[[int], list[str]], tmp_path: Path
) -> None:
    sandbox = octopods_sandbox_factory(faults=("reset_after:1.0:send",))  # processed, then the answer is lost
    monkeypatch.setenv("AIRFLOW_CONN_OCTOPODS_DEFAULT", sandbox.connection_json(TEST_KEY))
    report_path = tmp_path / "report.csv"
    result = operator(
        recipients=ROWS[:3], max_failure_ratio=1.0, report_path=str(report_path), record_store=MemoryStore()
    ).execute(context())
    assert result["unknown"] == 3
    warnings = [m for m in logged(logging.WARNING) if "unknown outcome" in m]
    assert warnings == [
        "3 rows have an unknown outcome (the request may have gone out; not sent again): rows 1, 2, 3. They are the "
        "report's unknown_rows; check them (the Octopods dashboard, the recipients), then resend_unknown=True sends "
        "them again, and those who got the first SMS get a second"
    ]
    with report_path.open(newline="") as handle:
        errors = [row["error"] for row in csv.DictReader(handle)]
    assert len(errors) == 3
    assert all(len(error) > 200 for error in errors)  # not cut mid-sentence at 200 characters
    assert all(
        error.endswith("Check the recipient or the Octopods dashboard before sending it again") for error in errors
    )


def test_a_dry_run_logs_its_counts_segments_and_samples(
    server: SandboxServer, logged: Callable[[int], list[str]]
) -> None:
    operator(dry_run=True, record_store=MemoryStore()).execute(context())
    lines = logged(logging.INFO)
    assert any(m.startswith("Dry run, nothing sent: ") and "10 segments" in m for m in lines)
    assert 'Sample for +44*******000: "Hi P0"' in lines
    assert 'Sample for +44*******002: "Hi P2"' in lines
    assert server.requests() == []


def test_an_interrupted_batch_logs_one_line_of_counts_and_what_the_next_try_does(
    octopods_sandbox_factory: Any, monkeypatch: pytest.MonkeyPatch, logged: Callable[[int], list[str]]
) -> None:
    import signal

    sandbox = octopods_sandbox_factory(faults=("latency:0.1",))
    monkeypatch.setenv("AIRFLOW_CONN_OCTOPODS_DEFAULT", sandbox.connection_json(TEST_KEY))
    rows = [{"phone": f"+447700901{n:03d}", "name": f"P{n}"} for n in range(40)]

    def timeout(signum: int, frame: Any) -> None:
        raise TimeoutError("execution_timeout")  # as Airflow's timeout raises in the task's main thread

    previous = signal.signal(signal.SIGALRM, timeout)
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    try:
        with pytest.raises(TimeoutError):
            operator(recipients=rows, max_in_flight=1, record_store=MemoryStore()).execute(context())
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    lines = [m for m in logged(logging.INFO) if m.startswith("Batch interrupted")]
    assert len(lines) == 1
    sent = len(sandbox.messages())
    assert 0 < sent < 40
    assert lines[0].startswith(
        f"Batch interrupted (TimeoutError): this try sent {sent} ({sent} accepted, 0 failed, 0 unknown), "
        f"{40 - sent} not started, 0 sent by earlier tries. The next try (a retry, or clearing this task) sends "
        f"the {40 - sent} not started or failed"
    )
    assert not [m for m in logged(logging.INFO) if "Batch killed" in m]


def test_rows_an_earlier_run_of_the_campaign_may_have_sent_are_held_unless_resend_unknown(
    server: SandboxServer,
) -> None:
    from airflow_provider_octopods.api.models import SendRequest
    from airflow_provider_octopods.send_record import SendGuard, TaskKey

    store = MemoryStore()
    killed = SendGuard(TaskKey("other_dag", "scheduled__x", "remind"), store=store)
    killed.join_campaign("spring", ttl=3600)
    request = SendRequest(ROWS[3]["phone"], "an older text")
    killed.begin([(killed.slot(request, 1), request)])  # the worker died before the answer was recorded
    result = operator(campaign="spring", max_failure_ratio=1.0, record_store=store).execute(context(run_id="r2"))
    assert (result["accepted"], result["unknown"], result["unknown_rows"]) == (9, 1, [4])
    assert ROWS[3]["phone"] not in {m.phone for m in server.messages()}
    again = operator(campaign="spring", resend_unknown=True, record_store=store).execute(context(run_id="r3"))
    assert (again["accepted"], again["accepted_earlier"]) == (10, 9)
    assert len(server.sent_to(ROWS[3]["phone"])) == 1
    assert server.duplicates() == 0


def test_a_campaign_sends_one_sms_per_recipient_whatever_the_text(server: SandboxServer) -> None:
    store = MemoryStore()
    rows = [*ROWS[:2], {"phone": ROWS[0]["phone"], "name": "other text"}]
    first = operator(recipients=rows, campaign="c", record_store=store).execute(context(run_id="r1"))
    assert (first["accepted"], first["duplicate"]) == (2, 1)  # the same phone twice is a duplicate
    second = operator(recipients=ROWS[:4], body="Reminder {{ recipient.name }}", campaign="c", record_store=store)
    result = second.execute(context(run_id="r2"))
    assert (result["accepted"], result["accepted_earlier"]) == (4, 2)
    assert len(server.messages()) == 4
    without = operator(recipients=ROWS[:1], record_store=store).execute(context(run_id="r3"))
    assert without["accepted_earlier"] == 0  # no campaign: only this task instance counts
    assert len(server.messages()) == 5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"campaign": ""}, "campaign: must be a non-empty name"),
        ({"campaign": 7}, "campaign: must be a string"),
        ({"campaign_ttl": 0}, "campaign_ttl"),
        ({"max_invalid_ratio": 1.5}, "max_invalid_ratio: must be between 0 and 1"),
        ({"allow_empty": "yes"}, "allow_empty: must be True or False"),
        ({"campaign": "c\r"}, "campaign: must be a non-empty name"),
        ({"campaign": "c", "allow_duplicates": True}, "allow_duplicates: cannot be True with a campaign"),
    ],
)
def test_campaign_and_plan_parameters_are_checked_when_the_dag_is_parsed(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        operator(**kwargs)
    operator(task_id="ok", recipients=[], allow_empty=True)  # an empty literal, allowed


# -- send windows (issue 23) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"send_window": "8 to 9"}, "send_window: must be two times"),
        ({"send_window": ("08:00", "24:00")}, "send_window: '24:00' is not a time of day"),
        ({"deadline": "tomorrow"}, "deadline: 'tomorrow' is not an ISO date-time"),
        ({"deadline": 5}, "deadline: must be a timedelta or a date-time"),
        ({"tz_field": ""}, "tz_field: must be a field name"),
    ],
)
def test_a_send_window_or_deadline_no_rendering_can_fix_is_refused_at_parse(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        operator(**kwargs)
    operator(task_id="templated", send_window="{{ params.window }}", deadline="{{ params.deadline }}")


def test_a_dry_run_says_how_many_rows_go_out_when_and_a_bad_time_zone_is_the_row_s_error(
    server: SandboxServer,
) -> None:
    from datetime import datetime, timedelta, timezone

    soon = (datetime.now(timezone.utc) + timedelta(hours=2)).replace(second=0, microsecond=0)
    rows = [
        {"phone": ROWS[0]["phone"], "name": "now", "tz": "Etc/UTC"},
        {"phone": ROWS[1]["phone"], "name": "later", "tz": "Etc/UTC", "at": soon.isoformat()},
        {"phone": ROWS[2]["phone"], "name": "later too", "tz": "Etc/UTC", "at": soon.isoformat()},
        {"phone": ROWS[3]["phone"], "name": "nowhere", "tz": "Mars/Olympus"},
    ]
    result = operator(
        recipients=rows,
        tz_field="tz",
        send_at_field="at",
        dry_run=True,
        max_invalid_ratio=0.5,
        record_store=MemoryStore(),
    ).execute(context())
    assert result["sends_by_time"] == {"now": 1, f"{soon:%Y-%m-%dT%H:%M}Z": 2}
    assert result["rows"][3]["error"] == "tz: 'Mars/Olympus' is not a known IANA time zone name"
    assert server.requests() == []


def test_a_batch_waiting_for_held_rows_defers_and_its_deadline_holds_across_resumes(
    server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import datetime, timedelta, timezone

    from airflow.providers.common.compat.sdk import TaskDeferred

    start = datetime.now(timezone.utc)
    later = (start + timedelta(hours=1)).isoformat()
    rows = [
        {"phone": ROWS[0]["phone"], "name": "now", "tz": "Etc/UTC"},
        {"phone": ROWS[1]["phone"], "name": "in an hour", "tz": "Etc/UTC", "at": later},
        {
            "phone": ROWS[2]["phone"],
            "name": "in a week",
            "tz": "Etc/UTC",
            "at": (start + timedelta(days=7)).isoformat(),
        },
    ]
    store = MemoryStore()
    op = operator(
        recipients=rows,
        tz_field="tz",
        send_at_field="at",
        deadline=timedelta(hours=2),
        record_store=store,
        execution_timeout=timedelta(hours=3),
    )
    ctx = context()
    counted: list[tuple[str, int]] = []
    monkeypatch.setattr(metrics, "incr", lambda name, count=1: counted.append((name, count)))
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(ctx)
    assert deferred.value.method_name == "execute_complete"
    assert counted == [("sms.accepted", 1)]  # the round's sends are counted before it waits
    first_start = deferred.value.kwargs["started"]
    assert abs(first_start - start.timestamp()) < 60
    # execution_timeout bounds the wait, from the first start (Airflow 3 does not do it by itself)
    assert abs(deferred.value.timeout.total_seconds() - 3 * 3600) < 60
    moment = deferred.value.trigger.moment
    assert abs((moment - (start + timedelta(hours=1))).total_seconds()) < 60  # waits for the next due row
    assert [m.body for m in server.messages()] == ["Hi now"]
    with pytest.raises(TaskDeferred) as again:  # resumed early: the row is not due yet, it waits again
        op.execute_complete(ctx, event=None, started=first_start)
    assert again.value.kwargs["started"] == first_start  # the deadline still counts from the first start
    assert again.value.timeout <= deferred.value.timeout
    # Resumed after the deadline (two hours after the first start): what is not due yet is held.
    result = op.execute_complete(ctx, event=None, started=first_start - 3 * 3600)
    assert (result["accepted"], result["accepted_earlier"], result["held"]) == (1, 1, 2)
    assert [m.body for m in server.messages()] == ["Hi now"]  # sent once, in the first round


def test_the_new_templated_fields_take_xcom_args_and_mapped_values() -> None:
    from airflow.providers.common.compat.sdk import DAG, task

    with DAG(dag_id="d", schedule=None):

        @task
        def plan() -> str:
            return "08:00-21:00"

        operator(task_id="xcom", send_window=plan(), deadline=plan(), campaign=plan())
        OctopodsSendBatchOperator.partial(task_id="mapped", recipients=ROWS, body="Hi").expand(
            campaign=["spring", "autumn"], send_window=["08:00-21:00", "09:00-20:00"]
        )
