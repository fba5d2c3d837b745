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
    policy_failure,
    policy_problems,
    summary,
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
        {"row": 3, "phone": "+44*******003", "outcome": "failed", "error": "down (HTTP 503)"},
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
    assert lines[3] == ["3", "+44*******003", "failed", "", "http_503", "down (HTTP 503)"]
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
        "2 accepted (1 by an earlier try), 1 failed {'http_503': 1}, 1 unknown, 1 invalid, 1 duplicate, "
        "1 opted out, 4 segments"
    )


def test_the_counts_line_of_a_batch_without_failures_shows_no_empty_codes() -> None:
    plan = plan_batch([{"phone": phone(1)}], render=lambda row: "Hi")
    report = BatchReport(plan)
    report.record(plan.sends[0], RowOutcome.ACCEPTED, accepted(plan.sends[0], 11))
    line = counts_line(summary(report, max_ids=10))
    assert line.startswith("1 accepted (0 by an earlier try), 0 failed")
    assert "{}" not in line
    assert line.endswith("0 unknown, 0 invalid, 0 duplicate, 0 opted out, 1 segments")


# -- policy_problems, policy_failure ----------------------------------------------------------------


def test_invalid_rows_break_the_policy_only_with_fail_on_invalid() -> None:
    plan = plan_batch([{"phone": phone(1)}, {"phone": "oops"}], render=lambda row: "Hi")
    report = BatchReport(plan)
    report.record(plan.sends[0], RowOutcome.ACCEPTED, accepted(plan.sends[0], 11))
    result = summary(report, max_ids=10)
    assert policy_problems(report, result, fail_on_invalid=False, max_failure_ratio=0.0) == []
    assert policy_problems(report, result, fail_on_invalid=True, max_failure_ratio=0.0) == [
        "1 invalid rows (fail_on_invalid=True)"
    ]


def test_failed_and_unknown_rows_break_the_policy_only_beyond_the_ratio() -> None:
    report = mixed_report()  # 1 failed and 1 unknown of 4 rows sent
    result = summary(report, max_ids=10)
    assert policy_problems(report, result, fail_on_invalid=False, max_failure_ratio=0.5) == []
    assert policy_problems(report, result, fail_on_invalid=True, max_failure_ratio=0.25) == [
        "1 invalid rows (fail_on_invalid=True)",
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
    assert counts_line(base).startswith("3 accepted (1 by an earlier try), 0 failed, 0 unknown, ")
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
