from __future__ import annotations

import pytest

from airflow_provider_octopods.api.alerts import AlertEvent as Failure
from airflow_provider_octopods.api.alerts import EventKind, one_line_cause, short_run_id
from airflow_provider_octopods.api.alerts import alert_text as failure_alert
from airflow_provider_octopods.api.segments import Encoding, count_segments


def fits_one_gsm7_sms(text: str) -> bool:
    info = count_segments(text)
    return info.encoding is Encoding.GSM7 and info.segments == 1


def test_short_alert_is_complete() -> None:
    text = failure_alert(Failure("etl", "scheduled__2026-11-24T10:00:00+00:00", ("load",), 2, "ValueError: bad row 7"))
    assert text == "Airflow: etl.load failed (try 2) run scheduled__2026-11-24T10:00:00+00:00: ValueError: bad row 7"


@pytest.mark.parametrize("cause_len", [50, 300, 5000])
@pytest.mark.parametrize("id_len", [10, 60, 250])
def test_long_ids_and_causes_fit_one_segment(cause_len: int, id_len: int) -> None:
    failure = Failure(
        dag_id="d" * id_len,
        run_id="manual__2026-11-24T10:41:30.886260+00:00",
        task_ids=("t" * id_len,),
        try_number=3,
        cause="RuntimeError: " + "x" * cause_len,
    )
    text = failure_alert(failure)
    assert fits_one_gsm7_sms(text)
    assert len(text) <= 160
    assert text.startswith("Airflow: d")


def test_cause_is_kept_before_the_run_id() -> None:
    text = failure_alert(
        Failure("orders", "manual__2026-11-24T10:41:30.886260+00:00", ("load",), 1, "KeyError: 'customer_id' missing")
    )
    assert text.endswith("KeyError: 'customer_id' missing")
    assert "manual__2026-" in text


def test_non_gsm_characters_and_newlines_are_replaced() -> None:
    text = failure_alert(Failure("d", "r", ("t",), 1, "Erro: não é possível ✗\nsecond line"))
    assert fits_one_gsm7_sms(text)
    assert "\n" not in text
    assert "?" in text


def test_several_tasks_and_dag_level_forms() -> None:
    assert (
        failure_alert(Failure("d", "r", ("a", "b", "c"), None, "boom"))
        == "Airflow: 3 tasks failed in d run r: a, b, c: boom"
    )
    assert failure_alert(Failure("d", "r", (), None, "task_failure", EventKind.RUN_FAILED)) == (
        "Airflow: DAG d failed: task_failure (run r)"
    )
    assert failure_alert(Failure("d", "r", ("x",), None, "task_failure", EventKind.RUN_FAILED)) == (
        "Airflow: DAG d failed: task x (run r)"
    )
    assert failure_alert(Failure()) == "Airflow: unknown DAG failed"


def test_one_line_cause() -> None:
    assert one_line_cause(ValueError("first\nsecond")) == "ValueError: first"
    assert one_line_cause(KeyError()) == "KeyError"
    assert one_line_cause("Task timed out\nmore") == "Task timed out"
    assert one_line_cause(None, reason="task_failure") == "task_failure"
    assert one_line_cause(None) is None


@pytest.mark.parametrize(
    ("event", "text"),
    [
        (
            Failure("etl", "r1", ("load",), 2, "ValueError: bad row", EventKind.FAILED, max_tries=3),
            "Airflow: etl.load failed (try 2 of 3) run r1: ValueError: bad row",
        ),
        (
            Failure(
                "etl", "r1", ("load",), 1, "ValueError: bad row", EventKind.RETRY, max_tries=3, next_try="10:42 UTC"
            ),
            "Airflow: etl.load failed, will retry (try 1 of 3, next 10:42 UTC) run r1: ValueError: bad row",
        ),
        (
            Failure("etl", "r1", ("load",), 2, None, EventKind.SUCCEEDED, max_tries=3),
            "Airflow: etl.load succeeded (try 2 of 3) run r1",
        ),
        (Failure("etl", "r1", (), None, None, EventKind.RUN_SUCCEEDED), "Airflow: DAG etl succeeded run r1"),
        (
            Failure(
                "etl", "r1", kind=EventKind.DEADLINE_MISSED, deadline="sla", due="2026-11-25 07:00 UTC", late_by="12m"
            ),
            "Airflow: DAG etl run r1 missed its deadline sla (due 2026-11-25 07:00 UTC, 12m late)",
        ),
    ],
)
def test_each_event_kind_says_what_happened(event: Failure, text: str) -> None:
    assert failure_alert(event) == text


@pytest.mark.parametrize("kind", list(EventKind))
def test_every_kind_fits_one_segment_with_long_ids(kind: EventKind) -> None:
    event = Failure(
        "d" * 200,
        "manual__2026-11-24T10:41:30.886260+00:00",
        ("t" * 200,),
        3,
        "E: " + "x" * 500,
        kind,
        max_tries=4,
        next_try="10:42 UTC",
        deadline="n" * 80,
        due="2026-11-25 07:00 UTC",
        late_by="3h05m",
    )
    assert fits_one_gsm7_sms(failure_alert(event))


def test_a_cause_with_terminal_colour_codes_still_makes_a_sendable_alert() -> None:
    from airflow_provider_octopods.api.validation import validate_body

    text = failure_alert(Failure("etl", "manual__1", ("load",), 1, "RuntimeError: \x1b[31mboom\x1b[0m"))
    assert "\x1b" not in text
    assert validate_body(text) == text  # the shared body check refuses ESC; the alert has none


RUN = "manual__2026-12-06T23:49:37.957132+00:00"


@pytest.mark.parametrize(
    ("run_id", "short"),
    [
        (RUN, "manual 2026-12-06 23:49:37"),
        ("scheduled__2026-11-25T06:00:00+00:00", "scheduled 2026-11-25 06:00:00"),
        (f"{RUN}_Ab3dE5fG", "manual 2026-12-06 23:49:37"),  # Airflow 3, a run without logical date
        ("asset_triggered__2026-12-06T23:49:37+00:00", "asset_triggered 2026-12-06 23:49:37"),
        ("backfill__2026-12-06T23:49:37Z", "backfill 2026-12-06 23:49:37"),
        ("nightly_rebuild_42", "nightly_rebuild_42"),  # a run id of the user's own: as written
        ("manual__not-a-date", "manual__not-a-date"),
    ],
)
def test_short_run_id_keeps_the_kind_and_the_time_to_the_second(run_id: str, short: str) -> None:
    assert short_run_id(run_id) == short


@pytest.mark.parametrize(
    ("tasks", "cause", "text"),
    [
        (("extract",), "task_failure", "Airflow: DAG nut_b failed: task extract (run manual 2026-12-06 23:49:37)"),
        (
            ("extract", "load"),
            "task_failure",
            "Airflow: DAG nut_b failed: tasks extract, load (run manual 2026-12-06 23:49:37)",
        ),
        ((), "task_failure", "Airflow: DAG nut_b failed: task_failure (run manual 2026-12-06 23:49:37)"),
        ((), None, "Airflow: DAG nut_b failed (run manual 2026-12-06 23:49:37)"),
        (("load",), "timed_out", "Airflow: DAG nut_b failed: task load; timed_out (run manual 2026-12-06 23:49:37)"),
    ],
)
def test_a_run_failure_names_the_failed_tasks_and_a_short_run_id(
    tasks: tuple[str, ...], cause: str | None, text: str
) -> None:
    """Airflow's generic reason ("task_failure") is left out once the tasks say what failed."""
    assert failure_alert(Failure("nut_b", RUN, tasks, None, cause, EventKind.RUN_FAILED)) == text


def test_a_run_failure_names_as_many_tasks_as_fit_then_a_count() -> None:
    tasks = tuple(f"{name}_customer_orders_step" for name in ("extract", "load", "clean", "index", "report", "mail"))
    text = failure_alert(Failure("nut_b", RUN, tasks, None, "task_failure", EventKind.RUN_FAILED))
    assert fits_one_gsm7_sms(text)
    assert text.startswith("Airflow: DAG nut_b failed: tasks extract_customer_orders_step, load_customer_orders_step")
    named = text.split("failed: tasks ")[1].split(" +")[0].split(", ")
    assert 2 <= len(named) < len(tasks)
    assert named == list(tasks[: len(named)])
    assert text.endswith(f" +{len(tasks) - len(named)} more (run manual 2026-12-06 23:49:37)")


@pytest.mark.parametrize("count", [1, 2, 5, 40])
@pytest.mark.parametrize("id_len", [30, 100, 250])
def test_a_run_failure_with_long_ids_fits_one_segment_and_still_says_what_failed(count: int, id_len: int) -> None:
    dag_id = ("nightly_" + "d" * id_len)[:id_len]
    tasks = tuple((f"t{n}_" + "x" * id_len)[:id_len] for n in range(count))
    text = failure_alert(Failure(dag_id, RUN, tasks, None, "task_failure", EventKind.RUN_FAILED))
    assert fits_one_gsm7_sms(text)
    assert text.startswith("Airflow: DAG nigh")
    assert "failed: task" in text
    named = text.split("failed: task")[1].lstrip("s ").split(" (run")[0]
    names, _, more = named.partition(" +")
    assert names.startswith("t0_")  # the first failed task, perhaps shortened in the middle
    hidden = int(more.removesuffix(" more")) if more else 0
    assert len(names.split(", ")) + hidden == count
