"""When a row may be sent: quiet hours in the recipient's time zones, and a send time per row.

Nothing here imports Airflow. :class:`SendWindow` is a daily range of local hours
(``08:00``-``21:00``). :func:`earliest_send` gives the first moment, not before a row's own send
time, that lies inside the window in every time zone the recipient may be in: the row's own zone
when it names one, else every zone of the number (phonenumbers' time-zone data, by area code where
the number has one).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Any

from airflow_provider_octopods.api.errors import OctopodsValidationError

_CLOCK = re.compile(r"(?P<hour>[01]?\d|2[0-3]):(?P<minute>[0-5]\d)")
_MOST_STEPS = 8  # moves of a candidate moment between zones before the zones are found to share no window


@dataclass(frozen=True)
class SendWindow:
    """Local hours in which a recipient may be texted, every day: from ``start`` (included) to
    ``end`` (excluded); a window whose end comes before its start runs past midnight."""

    start: time
    end: time

    @classmethod
    def parse(cls, value: object, *, field: str = "send_window") -> SendWindow:
        """A window from ``("08:00", "21:00")`` or ``"08:00-21:00"``; refused naming ``field``."""
        parts: Sequence[object]
        if isinstance(value, str):
            parts = [p.strip() for p in value.split("-")]
        elif isinstance(value, (list, tuple)):
            parts = value
        else:
            raise OctopodsValidationError(
                field, f"must be two times like ('08:00', '21:00'), got {type(value).__name__}"
            )
        if len(parts) != 2:
            raise OctopodsValidationError(field, "must be two times, a start and an end, like ('08:00', '21:00')")
        start, end = (_clock(part, field) for part in parts)
        if start == end:
            raise OctopodsValidationError(field, "starts and ends at the same time: no moment is inside it")
        return cls(start, end)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def contains(self, moment: time) -> bool:
        if self.start < self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end

    def next_open(self, local: datetime) -> datetime:
        """``local`` if it is inside the window, else the next opening in the same time zone."""
        if self.contains(local.time()):
            return local
        day = local.date() if local.time() < self.start else local.date() + timedelta(days=1)
        place = local.tzinfo or timezone.utc
        return first_reading(day, self.start, place).astimezone(place)


def first_reading(day: date, clock: time, place: tzinfo) -> datetime:
    """The first moment (UTC) at which the wall clock in ``place`` reads ``clock`` on ``day``, or
    later: the first of the two in an hour repeated when clocks go back, the change itself when
    ``clock`` falls in an hour skipped when they go forward."""
    wall = datetime.combine(day, clock)
    first = wall.replace(tzinfo=place).astimezone(timezone.utc)
    after_change = wall.replace(tzinfo=place, fold=1).astimezone(timezone.utc)
    if after_change >= first:  # the time exists (once, or twice: fold 0 is the first)
        return first
    # Skipped: the two readings bracket the change, at a whole minute.
    moment = after_change
    while moment < first and moment.astimezone(place).replace(tzinfo=None) < wall:
        moment += timedelta(minutes=1)
    return moment


def _clock(value: object, field: str) -> time:
    if isinstance(value, time):
        return value.replace(tzinfo=None)
    match = _CLOCK.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise OctopodsValidationError(field, f"{value!r} is not a time of day like '08:00'")
    return time(int(match["hour"]), int(match["minute"]))


@lru_cache(maxsize=1024)
def zone(name: str) -> tzinfo:
    """The IANA time zone ``name``; refused naming the row's time-zone field when unknown."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise OctopodsValidationError("time zone", f"{name!r} is not a known IANA time zone name") from None
    except OSError:  # a directory of the zone database ("America"), not a zone
        raise OctopodsValidationError("time zone", f"{name!r} is not a known IANA time zone name") from None


def number_zones(phone: str) -> tuple[str, ...]:
    """The time zones the number may be in (phonenumbers' data); empty when it does not know."""
    import phonenumbers
    from phonenumbers import timezone as number_timezone

    names = number_timezone.time_zones_for_number(phonenumbers.parse(phone))
    return tuple(name for name in names if name != number_timezone.UNKNOWN_TIMEZONE)


def send_time(value: object, zones: Sequence[tzinfo], *, field: str) -> datetime:
    """A row's send time as an aware UTC moment: an ISO date-time with an offset, or a naive one in
    the row's time zone (which must then be one)."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise OctopodsValidationError(field, f"{value!r} is not an ISO date-time") from None
    elif isinstance(value, datetime):
        moment = value
    else:
        raise OctopodsValidationError(field, f"must be an ISO date-time, got {type(value).__name__}")
    if moment.tzinfo is None:
        if len(zones) != 1:
            raise OctopodsValidationError(
                field, "has no UTC offset and the recipient's time zone is not one; add an offset, or a tz_field"
            )
        moment = moment.replace(tzinfo=zones[0])
    return moment.astimezone(timezone.utc)


def earliest_send(not_before: datetime, window: SendWindow | None, zones: Sequence[tzinfo]) -> datetime:
    """The first moment at or after ``not_before`` inside ``window`` in every one of ``zones``.

    :raises OctopodsValidationError: naming ``send_window``, when the zones share no such moment.
    """
    if window is None or not zones:
        return not_before
    moment = not_before
    for _ in range(_MOST_STEPS):
        moved = False
        for place in zones:
            local = moment.astimezone(place)
            opening = window.next_open(local)
            if opening != local:
                moment, moved = opening.astimezone(timezone.utc), True
        if not moved:
            return moment
    raise OctopodsValidationError(
        "send_window", f"{window} never holds in all of the recipient's {len(zones)} time zones at once"
    )


def window_close(moment: datetime, window: SendWindow, zones: Sequence[tzinfo]) -> datetime:
    """When the window that holds ``moment`` (in every one of ``zones``) first closes in one of them."""
    closes = []
    for place in zones:
        local = moment.astimezone(place)
        day = local.date() if local.time() < window.end else local.date() + timedelta(days=1)
        closes.append(first_reading(day, window.end, place))
    return min(closes)


def row_schedule(
    row: Any, phone: str, *, window: SendWindow | None, tz_field: str | None, send_at_field: str | None, now: datetime
) -> tuple[datetime | None, datetime | None]:
    """When ``row`` (to ``phone``) may go out (None: at once), and when its window closes again
    (None: no window). A number whose time zone is not known needs the row's ``tz_field``."""
    name = row.get(tz_field) if tz_field else None
    if name not in (None, ""):
        if not isinstance(name, str):
            raise OctopodsValidationError(str(tz_field), f"must be an IANA time zone name, got {type(name).__name__}")
        try:
            zones: Sequence[tzinfo] = (zone(name.strip()),)
        except OctopodsValidationError as err:
            raise OctopodsValidationError(str(tz_field), err.problem) from None
    elif window is not None or send_at_field:
        zones = tuple(zone(name) for name in number_zones(phone))
        if not zones and window is not None:
            raise OctopodsValidationError(
                str(tz_field or "send_window"), "the number's time zone is not known; name it in the row's tz_field"
            )
    else:
        return None, None
    not_before = now
    raw = row.get(send_at_field) if send_at_field else None
    if raw not in (None, ""):
        not_before = max(now, send_time(raw, zones, field=str(send_at_field)))
    moment = earliest_send(not_before, window, zones)
    closes = window_close(moment, window, zones) if window is not None and zones else None
    return (None if moment <= now else moment), closes
