"""When the rows of a batch go out: quiet hours, send times, and how long the batch waits for them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_octopods.api.batch import PlannedSend
from airflow_provider_octopods.api.errors import OctopodsValidationError
from airflow_provider_octopods.api.windows import SendWindow, row_schedule

DEFAULT_DEADLINE = timedelta(hours=24)


def check_deadline(value: object) -> None:
    """Refuse a ``deadline`` that cannot be one: a ``timedelta``, an aware ``datetime`` or an ISO text."""
    if value is None or isinstance(value, timedelta):
        return
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise OctopodsValidationError("deadline", "must have a time zone (an aware datetime)")
        return
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise OctopodsValidationError("deadline", f"{value!r} is not an ISO date-time") from None
        if moment.tzinfo is None:
            raise OctopodsValidationError("deadline", f"{value!r} has no UTC offset")
        return
    raise OctopodsValidationError("deadline", f"must be a timedelta or a date-time, got {type(value).__name__}")


class Timing:
    """The batch's send times: which rows go now, which wait, and until when it waits.

    :param send_window: local hours a recipient may be texted (``("08:00", "21:00")``), or None.
    :param tz_field: the row field naming the recipient's IANA time zone, else the number's zones.
    :param send_at_field: the row field holding the row's earliest send time, or None.
    :param deadline: how long the batch waits for held rows: a ``timedelta`` from its first start,
        or a date-time; rows whose time has not come by then are reported as held.
    :param started: when the batch first started (UNIX time), across its deferrals.
    :param now: this moment (UTC).
    """

    def __init__(
        self,
        *,
        send_window: object,
        tz_field: str | None,
        send_at_field: str | None,
        deadline: object,
        started: float,
        now: datetime,
    ) -> None:
        self.window = SendWindow.parse(send_window) if send_window else None
        self.tz_field = tz_field
        self.send_at_field = send_at_field
        self.now = now
        self.started = started
        check_deadline(deadline)
        if isinstance(deadline, str):
            deadline = datetime.fromisoformat(deadline.strip())
        if isinstance(deadline, datetime):
            self.deadline_at = deadline.astimezone(timezone.utc)
        else:
            wait = deadline if isinstance(deadline, timedelta) else DEFAULT_DEADLINE
            self.deadline_at = datetime.fromtimestamp(started, timezone.utc) + wait

    @property
    def active(self) -> bool:
        """Whether some rows may have to wait."""
        return self.window is not None or bool(self.send_at_field)

    def schedule(self, row: Mapping[str, Any], phone: str) -> tuple[datetime | None, datetime | None]:
        """When ``row`` may go out (None: now) and when its window closes; for
        :func:`~airflow_provider_octopods.api.batch.plan_batch`."""
        return row_schedule(
            row, phone, window=self.window, tz_field=self.tz_field, send_at_field=self.send_at_field, now=self.now
        )

    def split(
        self, todo: Sequence[tuple[str, PlannedSend]]
    ) -> tuple[list[tuple[str, PlannedSend]], list[tuple[str, PlannedSend]], list[PlannedSend]]:
        """``todo`` as the sends due now, those to wait for, and those whose time comes after the deadline."""
        due, waiting, late = [], [], []
        for slot, send in todo:
            if send.not_before is None or send.not_before <= self.now:
                due.append((slot, send))
            elif send.not_before <= self.deadline_at and self.now < self.deadline_at:
                waiting.append((slot, send))
            else:
                late.append(send)
        return due, waiting, late

    def by_time(self, sends: Sequence[PlannedSend]) -> dict[str, int]:
        """How many sends go out when, by minute (UTC), and how many would still be held at the
        deadline: ``{"now": 12, "2026-12-07T13:00Z": 3, "held": 1}``."""

        def when(send: PlannedSend) -> str:
            if send.not_before is None or send.not_before <= self.now:
                return "now"
            return "held" if send.not_before > self.deadline_at else f"{send.not_before:%Y-%m-%dT%H:%M}Z"

        counts = Counter(when(send) for send in sends)
        return dict(sorted(counts.items(), key=lambda item: {"now": "", "held": "~"}.get(item[0], item[0])))


def wait_trigger(moment: datetime) -> Any:
    """Airflow's trigger that fires at ``moment`` (through the compat provider: the standard
    provider's on 3.x, the core one on 2.11)."""
    from airflow.providers.common.compat.standard.triggers import TimeDeltaTrigger

    return TimeDeltaTrigger(max(timedelta(0), moment - datetime.now(timezone.utc)))
