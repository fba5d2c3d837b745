"""Planning a batch and summarising its report, without Airflow or I/O."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from airflow_provider_octopods.api.batch import BatchReport, RowOutcome, failure_kind, opt_out_list, plan_batch
from airflow_provider_octopods.api.errors import OctopodsInvalidPhoneError, OctopodsServerError
from airflow_provider_octopods.api.models import SendResult
from airflow_provider_octopods.api.segments import Encoding


def render(row: Any) -> str:
    return f"Hi {row['name']}"


def test_rows_are_sorted_out_with_row_numbers_and_masked_phones() -> None:
    rows: list[Any] = [
        {"phone": "+447700900001", "name": "A"},
        {"phone": "12345", "name": "B"},
        {"name": "C"},
        "not a row",
        {"phone": "+447700900001", "name": "A"},  # same phone, same text
        {"phone": "+447700900001", "name": "A2"},  # same phone, other text: sent
        {"phone": "07700 900002", "name": "D"},  # national, region from default_region
        {"phone": "+447700900003", "name": "E"},
        {"phone": "+447700900004"},  # render fails
        {"phone": "+447700900005", "name": ""},  # renders to "Hi " : fine
    ]
    plan = plan_batch(
        rows, render=render, default_region="GB", opted_out=opt_out_list(["07700900003"], default_region="GB")
    )
    assert plan.total == 10
    assert [(s.row, s.request.phone) for s in plan.sends] == [
        (1, "+447700900001"),
        (6, "+447700900001"),
        (7, "+447700900002"),
        (10, "+447700900005"),
    ]
    aside = {r.row: r for r in plan.set_aside}
    assert aside[2].outcome is RowOutcome.INVALID
    assert aside[2].error.startswith("phone: ")
    assert "12345" not in str(aside[2].error)
    assert aside[3].error == "phone: is missing"
    assert aside[4].error == "recipients: row is a str, not a mapping"
    assert aside[5].outcome is RowOutcome.DUPLICATE
    assert aside[8].outcome is RowOutcome.OPTED_OUT
    assert aside[8].phone == "+44*******003"
    assert aside[9].error == "body: does not render: KeyError: 'name'"
    assert plan.segments == 4


def test_duplicates_can_be_allowed_and_then_count_their_occurrence() -> None:
    rows = [{"phone": "+447700900001", "name": "A"}] * 3
    plan = plan_batch(rows, render=render, allow_duplicates=True)
    assert [s.occurrence for s in plan.sends] == [1, 2, 3]


def test_a_per_row_region_field_and_an_empty_or_oversize_body() -> None:
    rows = [
        {"phone": "020 7946 0958", "region": "GB", "name": "x"},
        {"phone": "(201) 555-0123", "region": "US", "name": "y" * 1600},
        {"phone": "+447700900001", "name": None},
    ]
    plan = plan_batch(rows, render=lambda r: "" if r["name"] is None else f"Hi {r['name']}", region_field="region")
    assert [s.request.phone for s in plan.sends] == ["+442079460958"]
    errors = {r.row: r.error for r in plan.set_aside}
    assert errors[2].startswith("body: ")
    assert errors[3].startswith("body: ")


def test_report_summary_counts_failures_by_code_and_caps_ids() -> None:
    rows = [{"phone": f"+44770090000{n}", "name": str(n)} for n in range(5)]
    plan = plan_batch(rows, render=render)
    report = BatchReport(plan)
    one, two, three, four, five = plan.sends
    report.record(one, RowOutcome.ACCEPTED, SendResult("r", 11, one.request.phone, 1, Encoding.GSM7))
    report.record(two, RowOutcome.ACCEPTED_EARLIER, SendResult("r", 12, two.request.phone, 1, Encoding.GSM7))
    report.record(three, RowOutcome.FAILED, error=OctopodsInvalidPhoneError("bad number", error_code=2))
    report.record(four, RowOutcome.FAILED, error=OctopodsServerError("down", http_status=503))
    report.record(five, RowOutcome.UNKNOWN, error=TimeoutError("read timed out"))
    summary = report.summary(max_ids=10, max_rows=10)
    assert (summary["accepted"], summary["accepted_earlier"], summary["failed"], summary["unknown"]) == (2, 1, 2, 1)
    assert summary["failed_by_code"] == {"error_2": 1, "http_503": 1}
    assert summary["message_ids"] == [11, 12]
    assert summary["unknown_rows"] == [5]
    assert report.failure_ratio() == pytest.approx(3 / 5)  # the earlier try's send counts as tried
    capped = report.summary(max_ids=1, max_rows=10)
    assert capped["message_ids"] is None
    assert capped["message_ids_omitted"] == 2
    csv_text = report.csv_text()
    assert csv_text.splitlines()[0] == "row,phone,outcome,message_id,error_code,error"
    assert "+44*******000,accepted,11" in csv_text
    assert "+447700900000" not in csv_text


def test_failure_kind() -> None:
    assert failure_kind(OctopodsInvalidPhoneError("x", error_code=2)) == "error_2"
    assert failure_kind(ConnectionResetError()) == "ConnectionResetError"


def test_the_failure_ratio_counts_the_rows_an_earlier_try_sent() -> None:
    rows = [{"phone": f"+44770090000{n}", "name": str(n)} for n in range(4)]
    plan = plan_batch(rows, render=render)
    report = BatchReport(plan)
    for send in plan.sends[:3]:
        report.record(send, RowOutcome.ACCEPTED_EARLIER, SendResult("r", 1, send.request.phone, 1, Encoding.GSM7))
    report.record(plan.sends[3], RowOutcome.UNKNOWN, error=TimeoutError("killed"))
    assert report.failure_ratio() == pytest.approx(1 / 4)


def test_a_fixed_text_sent_twice_to_one_number_is_a_duplicate() -> None:
    text = "Your appointment is tomorrow"  # a renderer may return this very string object every time
    rows = [{"phone": "+447700900001"}, {"phone": "+447700900002"}, {"phone": "+447700900001"}]
    plan = plan_batch(rows, render=lambda row: text)
    assert [s.row for s in plan.sends] == [1, 2]
    assert [(r.row, r.outcome) for r in plan.set_aside] == [(3, RowOutcome.DUPLICATE)]


def test_the_report_of_rows_settled_out_of_order_lists_every_row_once_in_row_order() -> None:
    rows: list[Any] = [{"phone": f"+4477009{n:05d}", "name": str(n)} for n in range(2000)]
    rows[5] = {"phone": "oops", "name": "x"}
    rows[9] = rows[8]
    plan = plan_batch(rows, render=render)
    report = BatchReport(plan)
    for send in reversed(plan.sends):  # answers come back in any order
        if send.row % 7 == 0:
            report.record(send, RowOutcome.FAILED, error=OctopodsServerError("down", http_status=503))
        else:
            report.record(
                send, RowOutcome.ACCEPTED, SendResult("r", 10_000 + send.row, send.request.phone, 1, Encoding.GSM7)
            )
    lines = report.csv_text().splitlines()
    assert len(lines) == 2001
    assert [int(line.split(",")[0]) for line in lines[1:]] == list(range(1, 2001))
    assert lines[6].startswith("6,")
    assert ",invalid,,,phone: " in lines[6]
    assert lines[10] == "10,+44*******008,duplicate,,,"
    assert lines[14] == "14,+44*******013,failed,,http_503,HTTP 503: down"
    assert lines[15] == "15,+44*******014,accepted,10015,,"
    summary = report.summary(max_ids=5000, max_rows=5)
    assert summary["message_ids"] == [10_000 + r for r in range(1, 2001) if r not in (6, 10) and r % 7]
    assert summary["failed_rows"] == [7, 14, 21, 28, 35]
    assert (summary["failed"], summary["invalid"], summary["duplicate"]) == (285, 1, 1)
    assert summary["failed_by_code"] == {"http_503": 285}
    again = plan.sends[0]
    report.record(again, RowOutcome.UNKNOWN, error=TimeoutError("lost"))  # a later outcome replaces the first
    assert report.rows()[0].outcome is RowOutcome.UNKNOWN
    assert report.rows()[0].message_id is None


def test_a_render_error_quoting_a_row_value_masks_the_phone_numbers_in_it() -> None:
    def render(row: Mapping[str, Any]) -> str:
        raise ValueError(f"cannot read {row['note']!r}")

    plan = plan_batch([{"phone": "+447700900001", "note": "call +447700900999 first"}], render=render)
    [row] = plan.set_aside
    assert row.error is not None
    assert "+447700900999" not in row.error
    assert row.error.startswith("body: does not render: ValueError: cannot read 'call +44")


def test_a_long_error_is_cut_at_a_word_boundary_and_marked() -> None:
    from airflow_provider_octopods.api.batch import MAX_REASON, clip

    text = " ".join(f"word{n}" for n in range(200))
    cut = clip(text)
    assert len(cut) <= MAX_REASON
    assert cut.endswith("…")
    assert text.startswith(cut[:-1])
    assert text[len(cut) - 1] == " "  # the cut falls between two words
    assert clip("short") == "short"
    long_word = "phone: " + "*" * 2000
    assert clip(long_word) == long_word[: MAX_REASON - 1] + "…"  # no boundary near the end: cut there
