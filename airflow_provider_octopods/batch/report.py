"""The batch's report: the XCom summary, the per-row CSV file, and the log's counts line."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_octopods.api.batch import BatchReport
from airflow_provider_octopods.batch.rows import object_storage_path

ROWS_IN_XCOM = 1000


def summary(report: BatchReport, *, max_ids: int) -> dict[str, Any]:
    """The counts, message ids (at most ``max_ids``), the rows to look at and, for batches of up to
    ``ROWS_IN_XCOM`` rows, every row's outcome: what the operator returns to XCom."""
    result = report.summary(max_ids=max_ids, max_rows=ROWS_IN_XCOM)
    if report.plan.total <= ROWS_IN_XCOM:
        result["rows"] = [
            {
                k: v
                for k, v in (
                    ("row", r.row),
                    ("phone", r.phone),
                    ("outcome", r.outcome.value),
                    ("message_id", r.message_id),
                    ("error", r.error),
                )
                if v is not None
            }
            for r in report.rows()
        ]
    return result


def write_report(report: BatchReport, path: Any, into: dict[str, Any], log: Any) -> None:
    """Write the per-row CSV report to ``path`` (a local path, a URL or an ``ObjectStoragePath``)
    and name it in the summary ``into``; without a path, warn when the rows are nowhere else."""
    if not path:
        if report.plan.total > ROWS_IN_XCOM:
            log.warning("No report_path: the per-row report of this %d-row batch is not kept", report.plan.total)
        return
    if isinstance(path, str) and "://" in path:
        path = object_storage_path(path)
    opener = getattr(path, "open", None)
    local = isinstance(path, str) or type(path).__module__ == "pathlib"
    if callable(opener) and not local:
        with opener("w") as out:
            report.write_csv(out)
    else:
        from pathlib import Path

        target = Path(str(path))
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("w", newline="", encoding="utf-8") as out:
            report.write_csv(out)
    into["report_path"] = str(path)
    log.info("Per-row report written to %s", path)


def policy_problems(
    report: BatchReport, summary: Mapping[str, Any], *, fail_on_invalid: bool, max_failure_ratio: float
) -> list[str]:
    """What makes the batch fail its policy (``fail_on_invalid``, ``max_failure_ratio``), if anything."""
    problems = []
    if fail_on_invalid and summary["invalid"]:
        problems.append(f"{summary['invalid']} invalid rows (fail_on_invalid=True)")
    failed_share = report.failure_ratio()
    if failed_share > max_failure_ratio:
        problems.append(
            f"{summary['failed']} failed and {summary['unknown']} unknown of the rows sent "
            f"({failed_share:.1%} > max_failure_ratio={max_failure_ratio:.1%})"
        )
    return problems


def policy_failure(problems: list[str], summary: Mapping[str, Any], *, retry_helps: bool) -> Exception:
    """The task's error for a failed policy: one Airflow may retry when a retry can help (rows that
    failed and may succeed later), else one that fails the task for good."""
    from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

    message = "Batch failed its policy: " + "; ".join(problems) + f". {counts_line(summary)}"
    if retry_helps:
        return AirflowException(message + " A retry sends only the rows not accepted yet.")
    return AirflowFailException(message)


def counts_line(summary: Mapping[str, Any]) -> str:
    """One line of counts for the log and for error messages."""
    by_code = summary["failed_by_code"]
    return (
        f"{summary['accepted']} accepted ({summary['accepted_earlier']} by an earlier try), "
        f"{summary['failed']} failed{f' {by_code}' if by_code else ''}, {summary['unknown']} unknown, "
        f"{summary['invalid']} invalid, {summary['duplicate']} duplicate, {summary['opted_out']} opted out, "
        f"{summary['segments']} segments"
    )


class Stopped(Exception):
    """A row's error when the task was stopped before the row's turn: a retry sends it."""

    def __init__(self) -> None:
        super().__init__("not sent: the task was stopped before this row's turn")


class EarlierUnknown(Exception):
    """A row's error when an earlier try may have sent it: not sent again."""

    def __init__(self, try_number: int | None) -> None:
        super().__init__(
            f"an earlier try{'' if try_number is None else f' ({try_number})'} may have sent it; "
            "not sent again (resend_unknown=True would)"
        )
