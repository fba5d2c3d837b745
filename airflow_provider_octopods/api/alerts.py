"""Alert texts built for a phone screen: one GSM-7 segment (160 characters) when possible.

Each text says what happened (:class:`EventKind`): a task failed, failed and will retry,
succeeded; a DAG run failed or succeeded; a DAG run missed its deadline.

The rule: the text is made of GSM-7 characters only (anything else becomes ``?``), on one line,
and it is shortened until it fits 160 GSM-7 units: first the run id (down to 24 characters),
then the cause (down to 30), then the run id again (down to 12), then the task and DAG ids
(each shortened in the middle, so both ends stay readable), and only then cut at the end.
No stack trace, nothing but ids and a one-line cause.

A DAG run's failure says what failed first: ``Airflow: DAG nut_b failed: tasks extract, load
+3 more (run manual 2026-12-06 23:49:37)``. The run id is written short (:func:`short_run_id`),
and the text is shortened in its own order: fewer task names (at least one) and a count of the
others, then the cause, then the run id (its date and time, then ``12-06 23:49``; a run id of
the user's own down to 12), then the DAG and task ids.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import Enum

from airflow_provider_octopods.api.segments import count_segments, is_gsm7

ONE_SEGMENT = 160
ELLIPSIS = "..."
# Airflow's reason when a failed task failed the run: once the tasks are named, it says nothing more.
TASK_FAILURE_REASON = "task_failure"
# Run ids Airflow makes: "<kind>__<ISO date and time>", since Airflow 3 with "_<random>" after it
# when the run has no logical date.
_GENERATED_RUN_ID = re.compile(
    r"(?P<kind>[a-z][a-z_]*?)__(?P<date>\d{4}-\d{2}-\d{2})T(?P<time>\d{2}:\d{2}:\d{2})"
    r"(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?(?:_[A-Za-z0-9]+)?"
)


class EventKind(str, Enum):
    """What an alert reports; ``body`` templates get it as ``{{ event }}``."""

    FAILED = "failed"
    RETRY = "retry"
    SUCCEEDED = "succeeded"
    RUN_FAILED = "run_failed"
    RUN_SUCCEEDED = "run_succeeded"
    DEADLINE_MISSED = "deadline_missed"


@dataclass(frozen=True)
class AlertEvent:
    """What happened, as far as the callback context tells.

    :param task_ids: for a task event, the task (several when failures were gathered); for a run
        failure, the run's failed tasks as far as Airflow could tell (under deduplication, those
        not alerted yet first).
    :param max_tries: how many tries the task has in all, when known.
    :param next_try: when the next try starts (text such as ``10:42 UTC``), when known.
    :param deadline: the missed deadline's name; ``due`` and ``late_by`` say when and by how much.
    """

    dag_id: str | None = None
    run_id: str | None = None
    task_ids: tuple[str, ...] = ()
    try_number: int | None = None
    cause: str | None = None
    kind: EventKind = EventKind.FAILED
    max_tries: int | None = None
    next_try: str | None = None
    deadline: str | None = None
    due: str | None = None
    late_by: str | None = None

    @property
    def run_level(self) -> bool:
        return self.kind in (EventKind.RUN_FAILED, EventKind.RUN_SUCCEEDED, EventKind.DEADLINE_MISSED)


def alert_text(event: AlertEvent, *, limit: int = ONE_SEGMENT) -> str:
    """The alert text for ``event``, at most ``limit`` GSM-7 units when the ids allow it."""
    failure = event
    task_ids = (failure.task_ids,) if isinstance(failure.task_ids, str) else failure.task_ids
    failure = replace(
        failure,
        dag_id=_clean(failure.dag_id) or "unknown DAG",
        run_id=_clean(failure.run_id),
        task_ids=tuple(_clean(t) for t in task_ids if t),
        cause=_clean(failure.cause),
        deadline=_clean(failure.deadline),
    )
    steps: tuple[Callable[[AlertEvent], AlertEvent], ...] = (
        _shorter_run(24),
        _shorter_cause,
        _shorter_run(12),
        _shorter_ids,
    )
    if failure.kind is EventKind.RUN_FAILED:
        forms = _run_id_forms(failure.run_id or "")
        failure = replace(failure, run_id=forms[0])
        steps = (_fewer_tasks, _shorter_cause, _next_form(forms), _shorter_run(12), _shorter_ids)
    failed_tasks = len(failure.task_ids)

    def compose(f: AlertEvent) -> str:
        return _compose(f, more=failed_tasks - len(f.task_ids))

    text = compose(failure)
    for shorten in steps:
        while _units(text) > limit:
            smaller = shorten(failure)
            if smaller == failure:
                break
            failure = smaller
            text = compose(failure)
    if _units(text) > limit:
        while _units(text) > limit - len(ELLIPSIS):
            text = text[:-1]
        text = text.rstrip() + ELLIPSIS
    return text


def short_run_id(run_id: str) -> str:
    """A run id Airflow made, as its kind and its date and time to the second
    (``manual__2026-12-06T23:49:37.957132+00:00`` is ``manual 2026-12-06 23:49:37``, the time as
    the run id writes it); any other run id as it is."""
    return _run_id_forms(run_id)[0]


def _run_id_forms(run_id: str) -> tuple[str, ...]:
    """Ways to write ``run_id``, each shorter than the one before: for one Airflow made, its kind,
    date and time; its date and time; the month, day, hour and minute."""
    match = _GENERATED_RUN_ID.fullmatch(run_id)
    if not match:
        return (run_id,)
    date, time = match["date"], match["time"]
    return f"{match['kind']} {date} {time}", f"{date} {time}", f"{date[5:]} {time[:5]}"


def one_line_cause(exception: object, *, reason: object = None) -> str | None:
    """``TypeName: first line of the message`` for an exception, else the reason text, else None."""
    if isinstance(exception, BaseException):
        message = str(exception).strip().splitlines()[0] if str(exception).strip() else ""
        return f"{type(exception).__name__}: {message}" if message else type(exception).__name__
    if isinstance(exception, str) and exception.strip():
        return exception.strip().splitlines()[0]
    if reason:
        return str(reason).strip().splitlines()[0] if str(reason).strip() else None
    return None


def _compose(f: AlertEvent, *, more: int = 0) -> str:
    """The text of ``f``; ``more``: how many of a run's failed tasks are left out of ``f.task_ids``."""
    run = f" run {f.run_id}" if f.run_id else ""
    cause = f": {f.cause}" if f.cause else ""
    tries = ""
    if f.try_number:
        tries = f"try {f.try_number} of {f.max_tries}" if f.max_tries else f"try {f.try_number}"
    if f.kind is EventKind.DEADLINE_MISSED:
        name = f" {f.deadline}" if f.deadline else ""
        if f.task_ids:
            name += f" of {', '.join(f.task_ids)}"
        when = ", ".join(
            part for part in (f"due {f.due}" if f.due else "", f"{f.late_by} late" if f.late_by else "") if part
        )
        return f"Airflow: DAG {f.dag_id}{run} missed its deadline{name}{f' ({when})' if when else ''}"
    if f.kind is EventKind.RUN_SUCCEEDED:
        return f"Airflow: DAG {f.dag_id} succeeded{run}"
    if f.kind is EventKind.RUN_FAILED:
        return f"Airflow: DAG {f.dag_id} failed{_run_failure(f, more)}{f' (run {f.run_id})' if f.run_id else ''}"
    if len(f.task_ids) > 1:
        names = ", ".join(f.task_ids)
        return f"Airflow: {len(f.task_ids)} tasks failed in {f.dag_id}{run}: {names}{cause}"
    what = f"{f.dag_id}.{f.task_ids[0]}" if f.task_ids else f.dag_id
    if f.kind is EventKind.SUCCEEDED:
        return f"Airflow: {what} succeeded{f' ({tries})' if tries else ''}{run}"
    if f.kind is EventKind.RETRY:
        details = ", ".join(part for part in (tries, f"next {f.next_try}" if f.next_try else "") if part)
        return f"Airflow: {what} failed, will retry{f' ({details})' if details else ''}{run}{cause}"
    return f"Airflow: {what} failed{f' ({tries})' if tries else ''}{run}{cause}"


def _run_failure(f: AlertEvent, more: int) -> str:
    """What failed the run: ``: tasks a, b +3 more``, Airflow's reason if it says more, else ``""``."""
    what = []
    if f.task_ids:
        names = ", ".join(f.task_ids) + (f" +{more} more" if more else "")
        what.append(f"task{'s' if len(f.task_ids) + more > 1 else ''} {names}")
    if f.cause and not (f.task_ids and f.cause == TASK_FAILURE_REASON):
        what.append(f.cause)
    return f": {'; '.join(what)}" if what else ""


def _next_form(forms: tuple[str, ...]) -> Callable[[AlertEvent], AlertEvent]:
    def shorten(f: AlertEvent) -> AlertEvent:
        at = forms.index(f.run_id) if f.run_id in forms else len(forms)
        return replace(f, run_id=forms[at + 1]) if at + 1 < len(forms) else f

    return shorten


def _fewer_tasks(f: AlertEvent) -> AlertEvent:
    return replace(f, task_ids=f.task_ids[:-1]) if len(f.task_ids) > 1 else f


def _shorter_cause(f: AlertEvent) -> AlertEvent:
    if not f.cause or len(f.cause) <= 30:
        return f
    return replace(f, cause=f.cause[: max(30, len(f.cause) - 10) - len(ELLIPSIS)].rstrip() + ELLIPSIS)


def _shorter_run(floor: int) -> Callable[[AlertEvent], AlertEvent]:
    def shorten(f: AlertEvent) -> AlertEvent:
        if not f.run_id or len(f.run_id) <= floor:
            return f
        return replace(f, run_id=_middle(f.run_id, max(floor, len(f.run_id) - 4)))

    return shorten


def _shorter_ids(f: AlertEvent) -> AlertEvent:
    longest = max([f.dag_id or "", *f.task_ids], key=len)
    if len(longest) <= 12:
        return f
    short = _middle(longest, len(longest) - 4)
    if f.dag_id == longest:
        return replace(f, dag_id=short)
    return replace(f, task_ids=tuple(short if t == longest else t for t in f.task_ids))


def _middle(text: str, size: int) -> str:
    keep = max(size - len(ELLIPSIS), 4)
    head = (keep + 1) // 2
    return text[:head] + ELLIPSIS + text[len(text) - (keep - head) :]


def _clean(text: str | None) -> str:
    if not text:
        return ""
    line = " ".join(str(text).split())
    return "".join(c if is_gsm7(c) and c.isprintable() else "?" for c in line)  # ESC is GSM-7, not text


def _units(text: str) -> int:
    return count_segments(text).units


def task_list(names: Sequence[str]) -> tuple[str, ...]:
    """Unique task ids in first-seen order."""
    return tuple(dict.fromkeys(n for n in names if n))
