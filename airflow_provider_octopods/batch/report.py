"""The batch's report: the XCom summary, the per-row CSV file, and the log's counts line."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_octopods.api.batch import BatchPlan, BatchReport, RowOutcome
from airflow_provider_octopods.batch.rows import object_storage_path

ROWS_IN_XCOM = 1000
ROWS_NAMED = 20  # row numbers a log line or an error lists before it gives a count instead
REASONS_NAMED = 3


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


def plan_refusal(
    plan: BatchPlan,
    *,
    max_invalid_ratio: float,
    fail_on_invalid: bool,
    allow_empty: bool,
    phone_field: str,
    first_row_fields: list[str] | None = None,
) -> str | None:
    """Why the batch must not send at all, if it must not: more invalid rows than the policy
    allows, or nothing to send (unless ``allow_empty``). Decided before the first request."""
    invalid = plan.count(RowOutcome.INVALID)
    share = invalid / plan.total if plan.total else 0.0
    if invalid and (fail_on_invalid or share > max_invalid_ratio):
        policy = (
            "fail_on_invalid=True" if fail_on_invalid else f"{share:.1%} > max_invalid_ratio={max_invalid_ratio:.1%}"
        )
        hint = (
            "Fix the rows or the body template"
            + ("" if fail_on_invalid else ", or raise max_invalid_ratio to send the valid rows anyway")
            + "."
        )
        missing = f"{phone_field}: is missing"
        if (
            first_row_fields is not None
            and phone_field not in first_row_fields
            and any(r.error == missing for r in plan.set_aside)
        ):
            hint += (
                f" The first row has no field {phone_field!r} (its fields: {', '.join(first_row_fields[:10])}): "
                "phone_field names the field that holds the number."
            )
        return (
            f"Nothing was sent: {invalid:,} of {plan.total:,} rows invalid ({policy}). "
            f"{'; '.join(invalid_reasons(plan))}. {hint}"
        )
    if not plan.sends and not allow_empty:
        reasons = f" {'; '.join(invalid_reasons(plan))}." if invalid else ""
        return (
            f"Nothing to send: of {plan.total:,} rows, {invalid:,} invalid, {plan.count(RowOutcome.DUPLICATE):,} "
            f"duplicate, {plan.count(RowOutcome.OPTED_OUT):,} opted out.{reasons} An empty batch fails, so that an "
            "empty upstream extract cannot pass unnoticed; set allow_empty=True if this batch may be empty."
        )
    return None


def invalid_reasons(plan: BatchPlan) -> list[str]:
    """The most common reasons rows are invalid, each with its count and the first row numbers."""
    groups: dict[str, list[int]] = {}
    for result in plan.set_aside:
        if result.outcome is RowOutcome.INVALID:
            reason = result.error or "invalid"
            if result.phone:  # the same reason for every number: the masked number is left out
                reason = reason.replace(result.phone, "<number>")
            groups.setdefault(reason, []).append(result.row)
    ranked = sorted(groups.items(), key=lambda item: -len(item[1]))
    named = [
        f"{len(rows):,} row{'s' if len(rows) > 1 else ''}: {reason} ({rows_named(rows, 3)})"
        for reason, rows in ranked[:REASONS_NAMED]
    ]
    if len(ranked) > REASONS_NAMED:
        rest = sum(len(rows) for _, rows in ranked[REASONS_NAMED:])
        others = len(ranked) - REASONS_NAMED
        named.append(
            f"{rest:,} more row{'s' if rest > 1 else ''} for {others} other reason{'s' if others > 1 else ''} "
            "(see the report)"
        )
    return named


def rows_named(rows: list[int], most: int = ROWS_NAMED) -> str:
    """``rows 1, 2, 3 ...`` with at most ``most`` numbers, then how many more."""
    shown = ", ".join(str(row) for row in rows[:most])
    more = len(rows) - most
    return f"row{'s' if len(rows) > 1 else ''} {shown}" + (f" and {more:,} more" if more > 0 else "")


def unknown_line(report: BatchReport) -> str | None:
    """The warning for rows whose send may or may not have gone out, if there are any."""
    rows = report.rows_with(RowOutcome.UNKNOWN)
    if not rows:
        return None
    return (
        f"{len(rows):,} {'rows have' if len(rows) > 1 else 'row has'} an unknown outcome (the request may "
        f"have gone out; not sent again): {rows_named(rows)}. They are the report's unknown_rows; check "
        "them (the Octopods dashboard, the recipients), then resend_unknown=True sends them again, and "
        "those who got the first SMS get a second"
    )


def interrupted_line(report: BatchReport, cause: str) -> str:
    """The one line logged when Airflow interrupts a batch (``cause``: a timeout, SIGTERM): what
    happened and what the next try does."""
    counts = report.counts()
    accepted = counts[RowOutcome.ACCEPTED]
    failed, unknown = counts[RowOutcome.FAILED], counts[RowOutcome.UNKNOWN]
    not_started = report.not_started()
    return (
        f"Batch interrupted ({cause}): this try sent {accepted + failed + unknown:,} "
        f"({accepted:,} accepted, {failed:,} failed, {unknown:,} unknown), {not_started:,} not started, "
        f"{counts[RowOutcome.ACCEPTED_EARLIER]:,} sent by earlier tries. The next try (a retry, or clearing "
        f"this task) sends the {not_started + failed:,} not started or failed, and not the {unknown:,} unknown "
        "unless resend_unknown=True"
    )


def policy_problems(report: BatchReport, summary: Mapping[str, Any], *, max_failure_ratio: float) -> list[str]:
    """What makes the batch fail its policy after sending (``max_failure_ratio``), if anything."""
    problems = []
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
        f"{summary['accepted']} accepted ({summary['accepted_earlier']} earlier, by another try or run), "
        f"{summary['failed']} failed{f' {by_code}' if by_code else ''}, {summary['unknown']} unknown, "
        f"{summary['invalid']} invalid, {summary['duplicate']} duplicate, {summary['opted_out']} opted out, "
        + (f"{summary['held']} held past the deadline, " if summary.get("held") else "")
        + f"{summary['segments']} segments"
    )


class Stopped(Exception):
    """A row's error when the task was stopped before the row's turn: a retry sends it."""

    def __init__(self) -> None:
        super().__init__("not sent: the task was stopped before this row's turn")


class EarlierUnknown(Exception):
    """A row's error when an earlier try, or another run of its campaign, may have sent it: not sent again."""

    def __init__(self, try_number: int | None, by: str | None = None) -> None:
        who = by or f"an earlier try{'' if try_number is None else f' ({try_number})'}"
        super().__init__(f"{who} may have sent it; not sent again (resend_unknown=True would)")
