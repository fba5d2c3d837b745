"""Failure-alert texts built for a phone screen: one GSM-7 segment (160 characters) when possible.

The rule: the text is made of GSM-7 characters only (anything else becomes ``?``), on one line,
and it is shortened until it fits 160 GSM-7 units: first the run id (down to 24 characters),
then the cause (down to 30), then the run id again (down to 12), then the task and DAG ids
(each shortened in the middle, so both ends stay readable), and only then cut at the end.
No stack trace, nothing but ids and a one-line cause.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from airflow_provider_octopods.api.segments import count_segments, is_gsm7

ONE_SEGMENT = 160
ELLIPSIS = "..."


@dataclass(frozen=True)
class Failure:
    """What failed, as far as the callback context tells."""

    dag_id: str | None = None
    run_id: str | None = None
    task_ids: tuple[str, ...] = ()
    try_number: int | None = None
    cause: str | None = None
    run_failed: bool = False  # a DAG-level callback: the run failed; task_ids are failures not alerted yet


def failure_alert(failure: Failure, *, limit: int = ONE_SEGMENT) -> str:
    """The alert text for ``failure``, at most ``limit`` GSM-7 units when the ids allow it."""
    task_ids = (failure.task_ids,) if isinstance(failure.task_ids, str) else failure.task_ids
    failure = replace(
        failure,
        dag_id=_clean(failure.dag_id) or "unknown DAG",
        run_id=_clean(failure.run_id),
        task_ids=tuple(_clean(t) for t in task_ids if t),
        cause=_clean(failure.cause),
    )
    text = _compose(failure)
    for shorten in (_shorter_run(24), _shorter_cause, _shorter_run(12), _shorter_ids):
        while _units(text) > limit:
            smaller = shorten(failure)
            if smaller == failure:
                break
            failure = smaller
            text = _compose(failure)
    if _units(text) > limit:
        while _units(text) > limit - len(ELLIPSIS):
            text = text[:-1]
        text = text.rstrip() + ELLIPSIS
    return text


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


def _compose(f: Failure) -> str:
    run = f" run {f.run_id}" if f.run_id else ""
    tries = f" (try {f.try_number})" if f.try_number else ""
    cause = f": {f.cause}" if f.cause else ""
    if f.run_failed:
        also = f" (also failed: {', '.join(f.task_ids)})" if f.task_ids else ""
        return f"Airflow: DAG {f.dag_id} failed{run}{cause}{also}"
    if len(f.task_ids) > 1:
        names = ", ".join(f.task_ids)
        return f"Airflow: {len(f.task_ids)} tasks failed in {f.dag_id}{run}: {names}{cause}"
    if f.task_ids:
        return f"Airflow: {f.dag_id}.{f.task_ids[0]} failed{tries}{run}{cause}"
    return f"Airflow: {f.dag_id} failed{run}{cause}"


def _shorter_cause(f: Failure) -> Failure:
    if not f.cause or len(f.cause) <= 30:
        return f
    return replace(f, cause=f.cause[: max(30, len(f.cause) - 10) - len(ELLIPSIS)].rstrip() + ELLIPSIS)


def _shorter_run(floor: int) -> Callable[[Failure], Failure]:
    def shorten(f: Failure) -> Failure:
        if not f.run_id or len(f.run_id) <= floor:
            return f
        return replace(f, run_id=_middle(f.run_id, max(floor, len(f.run_id) - 4)))

    return shorten


def _shorter_ids(f: Failure) -> Failure:
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
    return "".join(c if is_gsm7(c) else "?" for c in line)


def _units(text: str) -> int:
    return count_segments(text).units


def task_list(names: Sequence[str]) -> tuple[str, ...]:
    """Unique task ids in first-seen order."""
    return tuple(dict.fromkeys(n for n in names if n))
