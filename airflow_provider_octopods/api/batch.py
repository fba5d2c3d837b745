"""A batch of personalised SMS, before and after sending: which rows go out, and what became of each.

Nothing here imports Airflow or does I/O. :func:`plan_batch` turns recipient rows into validated
sends (phones normalised, bodies rendered by a function the caller gives, segments counted) and
sets aside, each with its row number and reason, the invalid rows, the duplicates and the opted
out. :class:`BatchReport` collects the outcome of every row and summarises it.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TextIO

from airflow_provider_octopods.api.errors import OctopodsError
from airflow_provider_octopods.api.masking import mask_phone
from airflow_provider_octopods.api.models import MessageId, SendRequest, SendResult
from airflow_provider_octopods.api.validation import normalize_phone, validate_body

MAX_REASON = 200


class RowOutcome(str, Enum):
    """What became of one recipient row."""

    ACCEPTED = "accepted"  # the API accepted it in this try
    ACCEPTED_EARLIER = "accepted_earlier"  # an earlier try of this task instance sent it
    FAILED = "failed"  # refused, or provably not sent
    UNKNOWN = "unknown"  # may have been sent: not re-sent, listed for a human
    INVALID = "invalid"  # refused before sending (phone, body, template)
    DUPLICATE = "duplicate"  # same phone and text as an earlier row
    OPTED_OUT = "opted_out"  # on the opt-out list
    PLANNED = "planned"  # dry run: would be sent


@dataclass(frozen=True, slots=True)
class PlannedSend:
    """A row that will be sent. ``occurrence`` counts rows with the same phone and text (1 = first)."""

    row: int
    request: SendRequest
    occurrence: int = 1


@dataclass(frozen=True, slots=True)
class RowResult:
    """The outcome of one row, for the report. ``phone`` is masked."""

    row: int
    phone: str
    outcome: RowOutcome
    message_id: MessageId | None = None
    error: str | None = None
    error_code: str | None = None


@dataclass
class BatchPlan:
    """The rows of a batch, sorted out before the first send."""

    total: int = 0
    sends: list[PlannedSend] = field(default_factory=list)
    set_aside: list[RowResult] = field(default_factory=list)

    @property
    def segments(self) -> int:
        return sum(send.request.segment_info.segments for send in self.sends)

    def count(self, outcome: RowOutcome) -> int:
        return sum(1 for result in self.set_aside if result.outcome is outcome)


def plan_batch(
    rows: Iterable[object],
    *,
    render: Callable[[Mapping[str, Any]], str],
    phone_field: str = "phone",
    region_field: str | None = None,
    default_region: str | None = None,
    opted_out: Callable[[str], bool] | None = None,
    allow_duplicates: bool = False,
) -> BatchPlan:
    """Validate every row and decide which are sent.

    :param rows: mappings with a phone under ``phone_field`` and any other fields.
    :param render: the row's text (a template rendered for it); whatever it raises makes the row
        invalid, the others go on.
    :param region_field: a field holding the row's region for numbers without a country code.
    :param default_region: the region for such numbers when the row has none.
    :param opted_out: tells whether a normalised (E.164) number opted out.
    :param allow_duplicates: send a row with the same phone and text as an earlier row again.
    """
    plan = BatchPlan()
    seen: Counter[tuple[str, str]] = Counter()
    for number, row in enumerate(rows, start=1):
        plan.total += 1
        if not isinstance(row, Mapping):
            plan.set_aside.append(_invalid(number, "", "recipients", f"row is a {type(row).__name__}, not a mapping"))
            continue
        raw_phone = row.get(phone_field)
        if raw_phone is None or (isinstance(raw_phone, str) and not raw_phone.strip()):
            plan.set_aside.append(_invalid(number, "", phone_field, "is missing"))
            continue
        region = row.get(region_field) if region_field else None
        try:
            phone = normalize_phone(raw_phone, default_region=region or default_region, field=phone_field)
        except OctopodsError as err:
            plan.set_aside.append(_invalid(number, mask_phone(raw_phone), phone_field, _reason(err, phone_field)))
            continue
        try:
            body = render(row)
        except Exception as err:  # a template error in one row must not stop the batch
            plan.set_aside.append(_invalid(number, mask_phone(phone), "body", f"does not render: {_first_line(err)}"))
            continue
        try:
            body = validate_body(body)
        except OctopodsError as err:
            plan.set_aside.append(_invalid(number, mask_phone(phone), "body", _reason(err, "body")))
            continue
        if opted_out is not None and opted_out(phone):
            plan.set_aside.append(RowResult(number, mask_phone(phone), RowOutcome.OPTED_OUT))
            continue
        seen[(phone, body)] += 1
        if seen[(phone, body)] > 1 and not allow_duplicates:
            plan.set_aside.append(RowResult(number, mask_phone(phone), RowOutcome.DUPLICATE))
            continue
        request = SendRequest(phone=phone, body=body)
        plan.sends.append(PlannedSend(number, request, seen[(phone, body)]))
    return plan


def opt_out_list(numbers: Iterable[object], *, default_region: str | None = None) -> Callable[[str], bool]:
    """A lookup over opt-out numbers in any form a user keeps them; unparseable entries are ignored."""
    normalised = set()
    for number in numbers:
        try:
            normalised.add(normalize_phone(number, default_region=default_region, field="opt_out"))
        except OctopodsError:
            continue
    return normalised.__contains__


class BatchReport:
    """The outcome of every row of a batch, and its summary."""

    def __init__(self, plan: BatchPlan) -> None:
        self.plan = plan
        self.results: dict[int, RowResult] = {r.row: r for r in plan.set_aside}

    def record(
        self, send: PlannedSend, outcome: RowOutcome, result: SendResult | None = None, error: Any = None
    ) -> None:
        self.results[send.row] = RowResult(
            row=send.row,
            phone=mask_phone(send.request.phone),
            outcome=outcome,
            message_id=result.message_id if result is not None else None,
            error=None if error is None else _first_line(error),
            error_code=None if error is None else failure_kind(error),
        )

    def rows(self) -> list[RowResult]:
        return [self.results[row] for row in sorted(self.results)]

    def counts(self) -> Counter[RowOutcome]:
        return Counter(result.outcome for result in self.results.values())

    def failed_by_code(self) -> dict[str, int]:
        return dict(Counter(r.error_code or "unknown" for r in self.results.values() if r.outcome is RowOutcome.FAILED))

    def message_ids(self) -> list[MessageId]:
        sent = (RowOutcome.ACCEPTED, RowOutcome.ACCEPTED_EARLIER)
        return [r.message_id for r in self.rows() if r.outcome in sent and r.message_id is not None]

    def failure_ratio(self) -> float:
        """Failed and unknown rows over the rows there was an attempt to send, in any try."""
        counts = self.counts()
        tried = (RowOutcome.ACCEPTED, RowOutcome.ACCEPTED_EARLIER, RowOutcome.FAILED, RowOutcome.UNKNOWN)
        attempted = sum(counts[o] for o in tried)
        return (counts[RowOutcome.FAILED] + counts[RowOutcome.UNKNOWN]) / attempted if attempted else 0.0

    def summary(self, *, max_ids: int, max_rows: int) -> dict[str, Any]:
        """Counts, message ids (up to ``max_ids``) and the rows needing attention (up to ``max_rows``)."""
        counts = self.counts()
        ids = self.message_ids()
        unknown = [r.row for r in self.rows() if r.outcome is RowOutcome.UNKNOWN]
        failed = [r.row for r in self.rows() if r.outcome is RowOutcome.FAILED]
        return {
            "total": self.plan.total,
            "accepted": counts[RowOutcome.ACCEPTED] + counts[RowOutcome.ACCEPTED_EARLIER],
            "accepted_earlier": counts[RowOutcome.ACCEPTED_EARLIER],
            "invalid": counts[RowOutcome.INVALID],
            "duplicate": counts[RowOutcome.DUPLICATE],
            "opted_out": counts[RowOutcome.OPTED_OUT],
            "failed": counts[RowOutcome.FAILED],
            "failed_by_code": self.failed_by_code(),
            "unknown": counts[RowOutcome.UNKNOWN],
            "planned": counts[RowOutcome.PLANNED],
            "segments": self.plan.segments,
            "message_ids": ids if len(ids) <= max_ids else None,
            "message_ids_omitted": 0 if len(ids) <= max_ids else len(ids),
            "unknown_rows": unknown[:max_rows],
            "failed_rows": failed[:max_rows],
        }

    def write_csv(self, out: TextIO) -> None:
        writer = csv.writer(out)
        writer.writerow(["row", "phone", "outcome", "message_id", "error_code", "error"])
        for r in self.rows():
            writer.writerow([r.row, r.phone, r.outcome.value, r.message_id or "", r.error_code or "", r.error or ""])

    def csv_text(self) -> str:
        out = io.StringIO()
        self.write_csv(out)
        return out.getvalue()


def failure_kind(error: Any) -> str:
    """A short name for why a send failed, to count failures by: the API's error code if any."""
    code = getattr(error, "error_code", None)
    if code is not None:
        return f"error_{code}"
    status = getattr(error, "http_status", None)
    if status is not None:
        return f"http_{status}"
    return type(error).__name__ if isinstance(error, BaseException) else "error"


def _invalid(row: int, phone: str, field_name: str, reason: str) -> RowResult:
    return RowResult(row, phone, RowOutcome.INVALID, error=f"{field_name}: {reason}"[:MAX_REASON])


def _reason(err: OctopodsError, field_name: str) -> str:
    problem = getattr(err, "problem", None)
    return str(problem) if problem else err.message


def _first_line(err: Any) -> str:
    text = str(err).strip().splitlines()
    line = text[0] if text else ""
    name = type(err).__name__ if isinstance(err, BaseException) else ""
    return (f"{name}: {line}" if name and not isinstance(err, OctopodsError) else line)[:MAX_REASON]
