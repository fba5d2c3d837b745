"""The batch's report: the XCom summary, the per-row CSV file, the counts line and the policy's verdict."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from airflow_provider_octopods.api.batch import BatchReport, RowOutcome, opt_out_list, plan_batch
from airflow_provider_octopods.api.errors import OctopodsServerError
from airflow_provider_octopods.api.models import SendResult
from airflow_provider_octopods.api.segments import Encoding
from airflow_provider_octopods.batch.report import (
    ROWS_IN_XCOM,
    counts_line,
    interrupted_line,
    plan_refusal,
    policy_failure,
    policy_problems,
    summary,
    unknown_line,
    write_report,
)

LOG = logging.getLogger("tests.batch.report")


def phone(n: int) -> str:
    return f"+4477009{n:05d}"


def accepted(send: Any, message_id: int) -> SendResult:
    return SendResult("r", message_id, send.request.phone, 1, Encoding.GSM7)


def mixed_report() -> BatchReport:
    """One row of each kind: accepted now, accepted by an earlier try, failed, unknown, invalid,
    duplicate and opted out."""
    rows = [
        {"phone": phone(1), "name": "A"},
        {"phone": phone(2), "name": "B"},
        {"phone": phone(3), "name": "C"},
        {"phone": phone(4), "name": "D"},
        {"name": "no phone"},
        {"phone": phone(1), "name": "A"},
        {"phone": phone(9), "name": "Z"},
    ]
    plan = plan_batch(rows, render=lambda row: f"Hi {row['name']}", opted_out=opt_out_list([phone(9)]))
    report = BatchReport(plan)
    first, second, third, fourth = plan.sends
    report.record(first, RowOutcome.ACCEPTED, accepted(first, 11))
    report.record(second, RowOutcome.ACCEPTED_EARLIER, accepted(second, 12))
    report.record(third, RowOutcome.FAILED, error=OctopodsServerError("down", http_status=503))
    report.record(fourth, RowOutcome.UNKNOWN, error=TimeoutError("read timed out"))
    return report


def failed_report(total: int) -> BatchReport:
    """``total`` rows, each failed."""
    plan = plan_batch([{"phone": phone(n)} for n in range(total)], render=lambda row: "Hi")
    report = BatchReport(plan)
    for send in plan.sends:
        report.record(send, RowOutcome.FAILED, error=OctopodsServerError("down", http_status=503))
    return report


# -- summary ----------------------------------------------------------------------------------------


def test_the_summary_of_a_small_batch_lists_every_row_without_empty_fields() -> None:
    result = summary(mixed_report(), max_ids=10)
    assert (result["total"], result["accepted"], result["accepted_earlier"], result["failed"]) == (7, 2, 1, 1)
    assert (result["unknown"], result["invalid"], result["duplicate"], result["opted_out"]) == (1, 1, 1, 1)
    assert result["message_ids"] == [11, 12]
    assert (result["failed_rows"], result["unknown_rows"]) == ([3], [4])
    assert result["rows"] == [
        {"row": 1, "phone": "+44*******001", "outcome": "accepted", "message_id": 11},
        {"row": 2, "phone": "+44*******002", "outcome": "accepted_earlier", "message_id": 12},
        {"row": 3, "phone": "+44*******003", "outcome": "failed", "error": "HTTP 503: down"},
        {"row": 4, "phone": "+44*******004", "outcome": "unknown", "error": "TimeoutError: read timed out"},
        {"row": 5, "phone": "", "outcome": "invalid", "error": "phone: is missing"},
        {"row": 6, "phone": "+44*******001", "outcome": "duplicate"},
        {"row": 7, "phone": "+44*******009", "outcome": "opted_out"},
    ]


def test_message_ids_beyond_max_ids_are_left_out_and_counted() -> None:
    report = mixed_report()
    assert summary(report, max_ids=2)["message_ids"] == [11, 12]
    capped = summary(report, max_ids=1)
    assert (capped["message_ids"], capped["message_ids_omitted"]) == (None, 2)


def test_rows_are_listed_only_for_batches_of_up_to_rows_in_xcom() -> None:
    at_limit = summary(failed_report(ROWS_IN_XCOM), max_ids=10)
    assert len(at_limit["rows"]) == ROWS_IN_XCOM
    over = summary(failed_report(ROWS_IN_XCOM + 1), max_ids=10)
    assert "rows" not in over
    assert over["failed"] == ROWS_IN_XCOM + 1
    assert over["failed_rows"] == list(range(1, ROWS_IN_XCOM + 1))  # the rows to look at, capped too


# -- write_report -----------------------------------------------------------------------------------


def csv_lines(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_a_local_report_path_gets_its_folders_and_the_rows_with_masked_phones(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOG.name)
    target = tmp_path / "reports" / "2026-11-25" / "reminders.csv"
    into: dict[str, Any] = {}
    write_report(mixed_report(), str(target), into, LOG)
    assert into == {"report_path": str(target)}
    lines = csv_lines(target.read_text(encoding="utf-8"))
    assert lines[0] == ["row", "phone", "outcome", "message_id", "error_code", "error"]
    assert lines[1] == ["1", "+44*******001", "accepted", "11", "", ""]
    assert lines[3] == ["3", "+44*******003", "failed", "", "http_503", "HTTP 503: down"]
    assert len(lines) == 8
    assert "+4477009" not in target.read_text()
    assert f"Per-row report written to {target}" in caplog.text


class StoredFile:
    """What the report uses of an ``ObjectStoragePath``: ``open``."""

    def __init__(self) -> None:
        self.written = io.StringIO()
        self.modes: list[str] = []

    @contextmanager
    def open(self, mode: str) -> Iterator[io.StringIO]:
        self.modes.append(mode)
        yield self.written

    def __str__(self) -> str:
        return "s3://bucket/reminders.csv"


def test_a_path_object_is_opened_for_writing() -> None:
    stored = StoredFile()
    into: dict[str, Any] = {}
    report = mixed_report()
    write_report(report, stored, into, LOG)
    assert stored.modes == ["w"]
    assert stored.written.getvalue() == report.csv_text()
    assert into == {"report_path": "s3://bucket/reminders.csv"}


def test_a_url_is_written_through_airflow_s_object_storage_path(tmp_path: Path) -> None:
    into: dict[str, Any] = {}
    report = mixed_report()
    write_report(report, f"file://{tmp_path}/reminders.csv", into, LOG)
    assert into == {"report_path": f"file://{tmp_path}/reminders.csv"}
    assert csv_lines((tmp_path / "reminders.csv").read_text()) == csv_lines(report.csv_text())


def test_without_a_path_only_a_batch_too_big_for_xcom_warns_that_its_rows_are_not_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOG.name)
    into: dict[str, Any] = {}
    write_report(failed_report(ROWS_IN_XCOM), None, into, LOG)
    assert caplog.records == []
    write_report(failed_report(ROWS_IN_XCOM + 1), "", into, LOG)
    assert [r.getMessage() for r in caplog.records] == [
        f"No report_path: the per-row report of this {ROWS_IN_XCOM + 1}-row batch is not kept"
    ]
    assert caplog.records[0].levelno == logging.WARNING
    assert into == {}


# -- counts_line ------------------------------------------------------------------------------------


def test_the_counts_line_names_every_count_and_the_failures_by_code() -> None:
    line = counts_line(summary(mixed_report(), max_ids=10))
    assert line == (
        "2 accepted (1 earlier, by another try or run), 1 failed {'http_503': 1}, 1 unknown, 1 invalid, 1 duplicate, "
        "1 opted out, 4 segments"
    )


def test_the_counts_line_of_a_batch_without_failures_shows_no_empty_codes() -> None:
    plan = plan_batch([{"phone": phone(1)}], render=lambda row: "Hi")
    report = BatchReport(plan)
    report.record(plan.sends[0], RowOutcome.ACCEPTED, accepted(plan.sends[0], 11))
    line = counts_line(summary(report, max_ids=10))
    assert line.startswith("1 accepted (0 earlier, by another try or run), 0 failed")
    assert "{}" not in line
    assert line.endswith("0 unknown, 0 invalid, 0 duplicate, 0 opted out, 1 segments")


# -- policy_problems, policy_failure ----------------------------------------------------------------


def refusal(rows: list[Any], render: Any = lambda row: "Hi", **kw: Any) -> str | None:
    plan = plan_batch(rows, render=render)
    first = [str(k) for k in rows[0]] if rows and isinstance(rows[0], dict) else None
    policy = {"max_invalid_ratio": 0.05, "fail_on_invalid": False, "allow_empty": False, "phone_field": "phone"}
    return plan_refusal(plan, first_row_fields=first, **(policy | kw))


def test_a_plan_with_more_invalid_rows_than_the_ratio_is_refused_naming_the_commonest_reasons() -> None:
    def render(row: dict[str, Any]) -> str:
        if "nmae" in row:
            raise KeyError("'dict object' has no attribute 'nmae'")
        return "Hi"

    rows: list[Any] = [{"phone": phone(n), "nmae": "x"} for n in range(1950)]
    rows += [{"phone": phone(5000 + n)} for n in range(40)] + [{"phone": "12"} for _ in range(6)]
    rows += [{"phone": "+1555CALLNOW"}, {}, {}, {}]
    message = refusal(rows, render)
    assert message is not None
    assert message.startswith("Nothing was sent: 1,960 of 2,000 rows invalid (98.0% > max_invalid_ratio=5.0%). ")
    assert (
        "1,950 rows: body: does not render: KeyError: \"'dict object' has no attribute 'nmae'\" "
        "(rows 1, 2, 3 and 1,947 more)" in message
    )
    assert "6 rows: phone: <number> has no country code" in message
    assert "(rows 1991, 1992, 1993 and 3 more)" in message
    assert "3 rows: phone: is missing (rows 1998, 1999, 2000)" in message
    assert "; 1 more row for 1 other reason (see the report). " in message
    assert message.endswith("or raise max_invalid_ratio to send the valid rows anyway.")
    assert refusal(rows, render, max_invalid_ratio=1.0) is None


def test_a_plan_within_the_ratio_goes_on_and_fail_on_invalid_refuses_any_invalid_row() -> None:
    rows = [{"phone": phone(n)} for n in range(99)] + [{"phone": "oops"}]
    assert refusal(rows) is None
    message = refusal(rows, fail_on_invalid=True)
    assert message is not None
    assert message.startswith("Nothing was sent: 1 of 100 rows invalid (fail_on_invalid=True). ")
    assert "1 row: phone: <number> contains letters" in message
    assert "(row 100)" in message


def test_rows_without_the_phone_field_name_the_fields_they_have() -> None:
    message = refusal([{"mobile": phone(n), "name": "A"} for n in range(3)])
    assert message is not None
    assert "3 rows: phone: is missing (rows 1, 2, 3)" in message
    assert "The first row has no field 'phone' (its fields: mobile, name): phone_field names" in message


def test_nothing_to_send_is_refused_unless_allowed() -> None:
    assert refusal([{"phone": phone(1)}]) is None
    plan = plan_batch([], render=lambda row: "Hi")
    policy = {"max_invalid_ratio": 0.05, "fail_on_invalid": False, "phone_field": "phone"}
    empty = plan_refusal(plan, allow_empty=False, **policy)
    assert empty is not None
    assert empty.startswith("Nothing to send: of 0 rows, 0 invalid, 0 duplicate, 0 opted out.")
    assert "set allow_empty=True" in empty
    assert plan_refusal(plan, allow_empty=True, **policy) is None
    opted = plan_batch([{"phone": phone(9)}], render=lambda row: "Hi", opted_out=opt_out_list([phone(9)]))
    assert "1 opted out" in (plan_refusal(opted, allow_empty=False, **policy) or "")


def test_unknown_rows_make_one_warning_line_listing_them_capped() -> None:
    report = mixed_report()
    assert unknown_line(report) == (
        "1 row has an unknown outcome (the request may have gone out; not sent again): row 4. "
        "They are the report's unknown_rows; check them (the Octopods dashboard, the recipients), then "
        "resend_unknown=True sends them again, and those who got the first SMS get a second"
    )
    plan = plan_batch([{"phone": phone(n)} for n in range(30)], render=lambda row: "Hi")
    many = BatchReport(plan)
    for send in plan.sends:
        many.record(send, RowOutcome.UNKNOWN, error=TimeoutError("read timed out"))
    line = unknown_line(many)
    assert line is not None
    assert "rows 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20 and 10 more" in line
    plan = plan_batch([{"phone": phone(1)}], render=lambda row: "Hi")
    assert unknown_line(BatchReport(plan)) is None


def test_an_interrupted_batch_says_in_one_line_what_was_sent_and_what_the_next_try_does() -> None:
    plan = plan_batch([{"phone": phone(n)} for n in range(10)], render=lambda row: "Hi")
    report = BatchReport(plan)
    report.record(plan.sends[0], RowOutcome.ACCEPTED, accepted(plan.sends[0], 1))
    report.record(plan.sends[1], RowOutcome.ACCEPTED_EARLIER, accepted(plan.sends[1], 2))
    report.record(plan.sends[2], RowOutcome.FAILED, error=OctopodsServerError("down", http_status=503))
    report.record(plan.sends[3], RowOutcome.UNKNOWN, error=TimeoutError("read timed out"))
    assert interrupted_line(report, "TimeoutError") == (
        "Batch interrupted (TimeoutError): this try sent 3 (1 accepted, 1 failed, 1 unknown), 6 not started, "
        "1 sent by earlier tries. The next try (a retry, or clearing this task) sends the 7 not started or failed, "
        "and not the 1 unknown unless resend_unknown=True"
    )


def test_failed_and_unknown_rows_break_the_policy_only_beyond_the_ratio() -> None:
    report = mixed_report()  # 1 failed and 1 unknown of 4 rows sent
    result = summary(report, max_ids=10)
    assert policy_problems(report, result, max_failure_ratio=0.5) == []
    assert policy_problems(report, result, max_failure_ratio=0.25) == [
        "1 failed and 1 unknown of the rows sent (50.0% > max_failure_ratio=25.0%)",
    ]


def test_a_policy_failure_lets_airflow_retry_only_when_a_retry_helps() -> None:
    result = summary(mixed_report(), max_ids=10)
    problems = ["1 invalid rows (fail_on_invalid=True)", "too many failed"]
    expected = f"Batch failed its policy: 1 invalid rows (fail_on_invalid=True); too many failed. {counts_line(result)}"
    retried = policy_failure(problems, result, retry_helps=True)
    assert isinstance(retried, AirflowException)
    assert not isinstance(retried, AirflowFailException)
    assert str(retried) == f"{expected} A retry sends only the rows not accepted yet."
    final = policy_failure(problems, result, retry_helps=False)
    assert isinstance(final, AirflowFailException)
    assert str(final) == expected


def test_the_counts_line_reads_cleanly_with_and_without_failures() -> None:
    base = {"accepted": 3, "accepted_earlier": 1, "failed": 0, "failed_by_code": {}, "unknown": 0}
    base |= {"invalid": 0, "duplicate": 0, "opted_out": 0, "segments": 3}
    assert counts_line(base).startswith("3 accepted (1 earlier, by another try or run), 0 failed, 0 unknown, ")
    failing = base | {"failed": 2, "failed_by_code": {"PHONE_INVALID": 2}}
    assert "2 failed {'PHONE_INVALID': 2}, 0 unknown" in counts_line(failing)


def test_a_pathlib_report_path_gets_its_folders_made(tmp_path: Path) -> None:
    plan = plan_batch([{"phone": "+447700900001"}], render=lambda row: "Hi")
    report = BatchReport(plan)
    target = tmp_path / "reports" / "2026-12-07" / "reminders.csv"
    into: dict[str, Any] = {}
    write_report(report, target, into, logging.getLogger("t"))
    assert target.read_text().splitlines()[0].startswith("row,")
    assert into["report_path"] == str(target)
