"""A batch of personalised SMS, before and after sending: which rows go out, and what became of each.

Nothing here imports Airflow or does I/O. :func:`plan_batch` turns recipient rows into validated
sends (phones normalised, bodies rendered by a function the caller gives, segments counted) and
sets aside, each with its row number and reason, the invalid rows, the duplicates and the opted
out. :class:`BatchReport` collects the outcome of every row and summarises it.

A batch may hold 100,000 rows, so the report keeps a byte per row (its outcome) and a message id
per sent row, not an object per row; the per-row lines are made when they are written.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, TextIO

from airflow_provider_octopods.api.errors import OctopodsError, OctopodsValidationError
from airflow_provider_octopods.api.masking import mask_phone, mask_phones_in
from airflow_provider_octopods.api.models import MessageId, SendRequest, SendResult
from airflow_provider_octopods.api.validation import normalize_phone, validate_body

MAX_REASON = 500  # a row's error text is cut there, at a word boundary


class RowOutcome(str, Enum):
    """What became of one recipient row."""

    ACCEPTED = "accepted"  # the API accepted it in this try
    ACCEPTED_EARLIER = "accepted_earlier"  # an earlier try, or an earlier run of its campaign, sent it
    FAILED = "failed"  # refused, or provably not sent
    UNKNOWN = "unknown"  # may have been sent: not re-sent, listed for a human
    INVALID = "invalid"  # refused before sending (phone, body, template)
    DUPLICATE = "duplicate"  # same phone and text as an earlier row
    OPTED_OUT = "opted_out"  # on the opt-out list
    PLANNED = "planned"  # dry run: would be sent
    HELD = "held"  # its send time or window had not come when the batch's deadline passed


@dataclass(frozen=True, slots=True)
class PlannedSend:
    """A row that will be sent. ``occurrence`` counts rows with the same phone and text (1 = first);
    ``not_before`` is when it may go out (its send time, its recipient's quiet hours), None: now."""

    row: int
    request: SendRequest
    occurrence: int = 1
    not_before: datetime | None = None
    closes_at: datetime | None = None  # its send window closes then: not started after it


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
    segments: int = 0  # of the sends: the cost estimate

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
    one_per_recipient: bool = False,
    schedule: Callable[[Mapping[str, Any], str], tuple[datetime | None, datetime | None]] | None = None,
) -> BatchPlan:
    """Validate every row and decide which are sent.

    :param rows: mappings with a phone under ``phone_field`` and any other fields.
    :param render: the row's text (a template rendered for it); whatever it raises makes the row
        invalid, the others go on.
    :param region_field: a field holding the row's region for numbers without a country code.
    :param default_region: the region for such numbers when the row has none.
    :param opted_out: tells whether a normalised (E.164) number opted out.
    :param allow_duplicates: send a row with the same phone and text as an earlier row again.
    :param one_per_recipient: a row with the same phone as an earlier row is a duplicate whatever
        its text (a campaign sends one SMS per recipient).
    :param schedule: when a row to the (E.164) phone may go out (None: at once) and when its window
        closes (None: never); what it raises makes the row invalid.
    """
    plan = BatchPlan()
    seen = _Seen()
    normalised: dict[str | None, dict[str, str]] = {}  # per region: a number in a form seen before is not parsed again
    for number, row in enumerate(rows, start=1):
        plan.total += 1
        if not isinstance(row, Mapping):
            plan.set_aside.append(_invalid(number, "", "recipients", f"row is a {type(row).__name__}, not a mapping"))
            continue
        raw_phone = row.get(phone_field)
        if raw_phone is None or (isinstance(raw_phone, str) and not raw_phone.strip()):
            plan.set_aside.append(_invalid(number, "", phone_field, "is missing"))
            continue
        region = (row.get(region_field) if region_field else None) or default_region
        known = normalised.setdefault(region, {}) if region is None or isinstance(region, str) else {}
        phone = known.get(raw_phone) if isinstance(raw_phone, str) else None
        if phone is None:
            try:
                phone = normalize_phone(raw_phone, default_region=region, field=phone_field)
            except OctopodsError as err:
                plan.set_aside.append(_invalid(number, mask_phone(raw_phone), phone_field, _reason(err, phone_field)))
                continue
            if isinstance(raw_phone, str):
                known[raw_phone] = phone
        try:
            body = render(row)
        except Exception as err:  # a template error in one row must not stop the batch
            plan.set_aside.append(_invalid(number, mask_phone(phone), "body", f"does not render: {_render_error(err)}"))
            continue
        try:
            body = validate_body(body)
        except OctopodsError as err:
            plan.set_aside.append(_invalid(number, mask_phone(phone), "body", _reason(err, "body")))
            continue
        not_before = closes_at = None
        if schedule is not None:
            try:
                not_before, closes_at = schedule(row, phone)
            except OctopodsValidationError as err:
                plan.set_aside.append(_invalid(number, mask_phone(phone), err.field, mask_phones_in(err.problem)))
                continue
        if opted_out is not None and opted_out(phone):
            plan.set_aside.append(RowResult(number, mask_phone(phone), RowOutcome.OPTED_OUT))
            continue
        occurrence = seen.count(phone, "" if one_per_recipient else body)
        if occurrence > 1 and not allow_duplicates:
            plan.set_aside.append(RowResult(number, mask_phone(phone), RowOutcome.DUPLICATE))
            continue
        request = SendRequest(phone=phone, body=body)
        plan.segments += request.segment_info.segments
        plan.sends.append(PlannedSend(number, request, occurrence, not_before, closes_at))
    return plan


class _Seen:
    """How many times each (phone, text) pair came up, without a tuple per row: most numbers come
    once, so a number maps to its first text and only numbers seen again get a count per text."""

    def __init__(self) -> None:
        self._first: dict[str, str] = {}
        self._again: Counter[tuple[str, str]] = Counter()

    def count(self, phone: str, body: str) -> int:
        """Count one more ``(phone, body)``; return how many there were so far, this one included."""
        first = self._first.get(phone)
        if first is None:
            self._first[phone] = body
            return 1
        key = (phone, body)
        times = self._again.get(key) or (1 if first == body else 0)
        self._again[key] = times + 1
        return times + 1


def opt_out_list(numbers: Iterable[object], *, default_region: str | None = None) -> Callable[[str], bool]:
    """A lookup over opt-out numbers in any form a user keeps them; unparseable entries are ignored."""
    normalised = set()
    for number in numbers:
        try:
            normalised.add(normalize_phone(number, default_region=default_region, field="opt_out"))
        except OctopodsError:
            continue
    return normalised.__contains__


_OUTCOMES = list(RowOutcome)
_SENT = (RowOutcome.ACCEPTED, RowOutcome.ACCEPTED_EARLIER)
_TRIED = (RowOutcome.ACCEPTED, RowOutcome.ACCEPTED_EARLIER, RowOutcome.FAILED, RowOutcome.UNKNOWN)


class BatchReport:
    """The outcome of every row of a batch, and its summary."""

    def __init__(self, plan: BatchPlan) -> None:
        self.plan = plan
        # Per row (1-based): its outcome (0: none yet, else 1 + its place in RowOutcome) and, for a
        # row with a send result, its message id; errors only for the rows that have one.
        self._outcomes = bytearray(plan.total + 1)
        self._message_ids: list[MessageId | None] = []
        self._errors: dict[int, tuple[str, str | None]] = {}
        self._set_aside = {r.row: r for r in plan.set_aside}
        for result in plan.set_aside:
            self._outcomes[result.row] = _OUTCOMES.index(result.outcome) + 1
            if result.error is not None:
                self._errors[result.row] = (result.error, result.error_code)

    def record(
        self, send: PlannedSend, outcome: RowOutcome, result: SendResult | None = None, error: Any = None
    ) -> None:
        row = send.row
        self._outcomes[row] = _OUTCOMES.index(outcome) + 1
        self._set_aside.pop(row, None)
        if result is not None and result.message_id is not None:
            if not self._message_ids:
                self._message_ids = [None] * len(self._outcomes)
            self._message_ids[row] = result.message_id
        elif self._message_ids:
            self._message_ids[row] = None
        if error is not None:
            self._errors[row] = (error_text(error), failure_kind(error))
        else:
            self._errors.pop(row, None)

    def _each(self) -> Iterator[RowResult]:
        """Every row with an outcome, in row order, made as it is asked for."""
        sends = iter(self.plan.sends)
        send = next(sends, None)
        outcomes, ids, errors = self._outcomes, self._message_ids, self._errors
        for row in range(1, len(outcomes)):
            while send is not None and send.row < row:
                send = next(sends, None)
            code = outcomes[row]
            if not code:
                continue
            aside = self._set_aside.get(row)
            if aside is not None:
                yield aside
                continue
            phone = mask_phone(send.request.phone) if send is not None and send.row == row else ""
            error, error_code = errors.get(row, (None, None))
            yield RowResult(row, phone, _OUTCOMES[code - 1], ids[row] if ids else None, error, error_code)

    def rows(self) -> list[RowResult]:
        return list(self._each())

    def rows_with(self, outcome: RowOutcome) -> list[int]:
        """The numbers of the rows (from 1) whose outcome is ``outcome``, in order."""
        code = _OUTCOMES.index(outcome) + 1
        return [row for row, found in enumerate(self._outcomes) if found == code]

    def counts(self) -> Counter[RowOutcome]:
        return Counter({outcome: self._outcomes.count(index + 1) for index, outcome in enumerate(_OUTCOMES)})

    def failed_by_code(self) -> dict[str, int]:
        codes = (self._errors.get(row, ("", None))[1] for row in self.rows_with(RowOutcome.FAILED))
        return dict(Counter(code or "unknown" for code in codes))

    def message_ids(self) -> list[MessageId]:
        sent = {_OUTCOMES.index(o) + 1 for o in _SENT}
        ids, outcomes = self._message_ids, self._outcomes
        return [ids[row] for row in range(len(ids)) if ids[row] is not None and outcomes[row] in sent]  # type: ignore[misc]

    def not_started(self) -> int:
        """Rows to send that have no outcome yet."""
        outcomes = self._outcomes
        return sum(1 for send in self.plan.sends if not outcomes[send.row])

    def failure_ratio(self) -> float:
        """Failed and unknown rows over the rows there was an attempt to send, in any try."""
        counts = self.counts()
        attempted = sum(counts[o] for o in _TRIED)
        return (counts[RowOutcome.FAILED] + counts[RowOutcome.UNKNOWN]) / attempted if attempted else 0.0

    def summary(self, *, max_ids: int, max_rows: int) -> dict[str, Any]:
        """Counts, message ids (up to ``max_ids``) and the rows needing attention (up to ``max_rows``)."""
        counts = self.counts()
        ids = self.message_ids()
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
            "held": counts[RowOutcome.HELD],
            "segments": self.plan.segments,
            "message_ids": ids if len(ids) <= max_ids else None,
            "message_ids_omitted": 0 if len(ids) <= max_ids else len(ids),
            "unknown_rows": self.rows_with(RowOutcome.UNKNOWN)[:max_rows],
            "failed_rows": self.rows_with(RowOutcome.FAILED)[:max_rows],
        }

    def write_csv(self, out: TextIO) -> None:
        writer = csv.writer(out)
        writer.writerow(["row", "phone", "outcome", "message_id", "error_code", "error"])
        writer.writerows(
            [r.row, r.phone, r.outcome.value, r.message_id or "", r.error_code or "", r.error or ""]
            for r in self._each()
        )

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
    return RowResult(row, phone, RowOutcome.INVALID, error=clip(f"{field_name}: {reason}"))


def _reason(err: OctopodsError, field_name: str) -> str:
    problem = getattr(err, "problem", None)
    return str(problem) if problem else err.message


def _render_error(err: BaseException) -> str:
    """Why a row's body did not render. A template's own errors name the template's parts; any
    other error (a filter given a row's value) may quote the row, so phone numbers in it are masked."""
    if type(err).__module__.startswith("jinja2"):
        return _first_line(err)
    return mask_phones_in(_first_line(err))


def _first_line(err: Any) -> str:
    text = str(err).strip().splitlines()
    line = text[0] if text else ""
    name = type(err).__name__ if isinstance(err, BaseException) else ""
    return clip(f"{name}: {line}" if name and not isinstance(err, OctopodsError) else line)


def error_text(err: Any) -> str:
    """A send's error for the report: what identifies it first (HTTP status, API error code,
    request id; else the exception's type), then its message, cut at a word boundary."""
    if not isinstance(err, OctopodsError):
        return _first_line(err)
    cause = [
        part
        for part in (
            f"HTTP {err.http_status}" if err.http_status is not None else None,
            f"error_code={err.error_code}" if err.error_code is not None else None,
            f"request_id={err.request_id}" if err.request_id else None,
        )
        if part
    ] or [type(err).__name__]
    lines = err.message.strip().splitlines()
    return clip(f"{', '.join(cause)}: {lines[0] if lines else ''}")


def clip(text: str, limit: int = MAX_REASON) -> str:
    """``text`` cut to at most ``limit`` characters at a word boundary, marked with "…" when cut."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit * 3 // 4:  # a word boundary near the end; else a word longer than a quarter of it
        cut = cut[:space]
    return cut.rstrip(" ,;:(") + "…"
