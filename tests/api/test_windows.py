"""Quiet hours and send times: the pure time logic."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from airflow_provider_octopods.api.errors import OctopodsValidationError
from airflow_provider_octopods.api.windows import (
    SendWindow,
    earliest_send,
    number_zones,
    row_schedule,
    send_time,
    window_close,
)

UTC = timezone.utc
NOW = datetime(2026, 12, 7, 12, 30, tzinfo=UTC)  # 07:30 in New York, 06:30 in Chicago, 21:30 in Tokyo
WINDOW = SendWindow.parse(("08:00", "21:00"))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("8 to 9", "send_window: must be two times"),
        (("08:00",), "send_window: must be two times"),
        (("08:00", "25:00"), "send_window: '25:00' is not a time of day"),
        ("09:00-09:00", "send_window: starts and ends at the same time"),
        (42, "send_window: must be two times like"),
    ],
)
def test_a_window_that_cannot_be_a_time_range_is_refused_naming_the_field(value: object, message: str) -> None:
    with pytest.raises(OctopodsValidationError, match=message):
        SendWindow.parse(value)


def test_a_window_holds_local_hours_and_may_run_past_midnight() -> None:
    assert SendWindow.parse("08:00-21:00") == WINDOW
    assert WINDOW.contains(time(8, 0))
    assert WINDOW.contains(time(20, 59))
    assert not WINDOW.contains(time(21, 0))
    night = SendWindow.parse(("22:00", "06:00"))
    assert night.contains(time(23, 0))
    assert night.contains(time(5, 59))
    assert not night.contains(time(12, 0))
    chicago = ZoneInfo("America/Chicago")
    assert WINDOW.next_open(datetime(2026, 12, 7, 6, 30, tzinfo=chicago)) == datetime(2026, 12, 7, 8, 0, tzinfo=chicago)
    assert WINDOW.next_open(datetime(2026, 12, 7, 22, 0, tzinfo=chicago)) == datetime(2026, 12, 8, 8, 0, tzinfo=chicago)


def test_the_earliest_send_holds_in_every_zone_of_the_recipient() -> None:
    new_york, chicago, tokyo = ZoneInfo("America/New_York"), ZoneInfo("America/Chicago"), ZoneInfo("Asia/Tokyo")
    assert earliest_send(NOW, WINDOW, [new_york]) == datetime(2026, 12, 7, 13, 0, tzinfo=UTC)  # 08:00 New York
    assert earliest_send(NOW, WINDOW, [new_york, chicago]) == datetime(2026, 12, 7, 14, 0, tzinfo=UTC)  # 08:00 Chicago
    inside = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
    assert earliest_send(inside, WINDOW, [new_york, chicago]) == inside
    with pytest.raises(OctopodsValidationError, match="never holds in all of the recipient's 2 time zones"):
        earliest_send(NOW, SendWindow.parse("08:00-09:00"), [new_york, tokyo])


def test_a_number_s_zones_come_from_its_area_code_and_a_row_may_name_its_own() -> None:
    assert number_zones("+12125550100") == ("America/New_York",)
    assert "America/Los_Angeles" in number_zones("+15005550100")  # no area code data: every NANP zone
    at, _ = row_schedule(
        {"tz": "Asia/Tokyo"}, "+12125550100", window=WINDOW, tz_field="tz", send_at_field=None, now=NOW
    )
    assert at == datetime(2026, 12, 7, 23, 0, tzinfo=UTC)  # 08:00 in Tokyo tomorrow
    assert row_schedule({}, "+12125550100", window=WINDOW, tz_field="tz", send_at_field=None, now=NOW)[0] == datetime(
        2026, 12, 7, 13, 0, tzinfo=UTC
    )
    with pytest.raises(OctopodsValidationError, match="tz: 'Mars/Olympus' is not a known IANA time zone name"):
        row_schedule({"tz": "Mars/Olympus"}, "+12125550100", window=WINDOW, tz_field="tz", send_at_field=None, now=NOW)


def test_a_send_time_with_or_without_an_offset_and_a_window_together() -> None:
    new_york = ZoneInfo("America/New_York")
    assert send_time("2026-12-07T09:00:00-05:00", [], field="at") == datetime(2026, 12, 7, 14, 0, tzinfo=UTC)
    assert send_time("2026-12-07T09:00", [new_york], field="at") == datetime(2026, 12, 7, 14, 0, tzinfo=UTC)
    with pytest.raises(OctopodsValidationError, match="at: has no UTC offset and the recipient's time zone is not one"):
        send_time("2026-12-07T09:00", [new_york, ZoneInfo("America/Chicago")], field="at")
    with pytest.raises(OctopodsValidationError, match="at: 'tomorrow' is not an ISO date-time"):
        send_time("tomorrow", [new_york], field="at")
    late_evening = {"at": "2026-12-07T20:59:30-05:00"}  # due inside the window: goes then
    at, _ = row_schedule(late_evening, "+12125550100", window=WINDOW, tz_field=None, send_at_field="at", now=NOW)
    assert at == datetime(2026, 12, 8, 1, 59, 30, tzinfo=UTC)
    after_hours = {"at": "2026-12-07T22:00:00-05:00"}  # due after the window: the next morning
    at, _ = row_schedule(after_hours, "+12125550100", window=WINDOW, tz_field=None, send_at_field="at", now=NOW)
    assert at == datetime(2026, 12, 8, 13, 0, tzinfo=UTC)
    past = {"at": (NOW - timedelta(days=1)).isoformat()}  # due in the past: at once
    assert row_schedule(past, "+447700900123", window=None, tz_field=None, send_at_field="at", now=NOW) == (None, None)


def test_a_window_needs_a_known_time_zone_and_a_zone_name_must_be_one() -> None:
    unknown = "+15555550100"  # a plausible NANP number phonenumbers places nowhere
    assert number_zones(unknown) == ()
    with pytest.raises(OctopodsValidationError, match="tz: the number's time zone is not known; name it in the row"):
        row_schedule({}, unknown, window=WINDOW, tz_field="tz", send_at_field=None, now=NOW)
    assert row_schedule({}, unknown, window=None, tz_field=None, send_at_field=None, now=NOW) == (None, None)
    for name in ("America", "../etc/passwd", "Mars/Olympus"):
        with pytest.raises(OctopodsValidationError, match="is not a known IANA time zone name"):
            row_schedule({"tz": name}, "+12125550100", window=WINDOW, tz_field="tz", send_at_field=None, now=NOW)


def test_a_send_comes_with_the_moment_its_window_closes_in_the_first_of_its_zones() -> None:
    new_york, chicago = ZoneInfo("America/New_York"), ZoneInfo("America/Chicago")
    moment = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
    assert window_close(moment, WINDOW, [new_york, chicago]) == datetime(2026, 12, 8, 2, 0, tzinfo=UTC)  # 21:00 NY
    night = SendWindow.parse("22:00-06:00")
    late = datetime(2026, 12, 8, 4, 0, tzinfo=UTC)  # 23:00 New York
    assert window_close(late, night, [new_york]) == datetime(2026, 12, 8, 11, 0, tzinfo=UTC)  # 06:00 New York
    at, closes = row_schedule({}, "+12125550100", window=WINDOW, tz_field=None, send_at_field=None, now=moment)
    assert (at, closes) == (None, datetime(2026, 12, 8, 2, 0, tzinfo=UTC))


def test_across_the_autumn_fall_back_a_held_row_opens_at_the_local_start_of_the_longer_night() -> None:
    london = ZoneInfo("Europe/London")  # BST (UTC+1) until 01:00 UTC on 2026-10-25, then GMT
    evening = datetime(2026, 10, 24, 21, 30, tzinfo=UTC)  # 22:30 BST
    opens = earliest_send(evening, WINDOW, [london])
    assert opens == datetime(2026, 10, 25, 8, 0, tzinfo=UTC)  # 08:00 GMT: the night lasted an hour longer
    assert opens.astimezone(london).time() == time(8, 0)
    assert window_close(opens, WINDOW, [london]) == datetime(2026, 10, 25, 21, 0, tzinfo=UTC)  # 21:00 GMT
    # A night window across the repeated hour closes at 06:00 on the wall clock, nine hours after
    # it opened at 22:00 BST.
    night = SendWindow.parse("22:00-06:00")
    assert earliest_send(evening, night, [london]) == evening
    assert window_close(evening, night, [london]) == datetime(2026, 10, 25, 6, 0, tzinfo=UTC)
    # The US falls back a week later: a number across two zones opens at 08:00 in the later one.
    new_york, chicago = ZoneInfo("America/New_York"), ZoneInfo("America/Chicago")
    saturday = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)  # 22:00 EDT on Oct 31
    assert earliest_send(saturday, WINDOW, [new_york, chicago]) == datetime(2026, 11, 1, 14, 0, tzinfo=UTC)  # 08:00 CST


def test_across_the_spring_change_a_window_opens_and_closes_by_the_wall_clock() -> None:
    london = ZoneInfo("Europe/London")  # GMT until 01:00 UTC on 2026-03-29, then BST
    evening = datetime(2026, 3, 28, 22, 0, tzinfo=UTC)
    assert earliest_send(evening, WINDOW, [london]) == datetime(2026, 3, 29, 7, 0, tzinfo=UTC)  # 08:00 BST
    assert window_close(datetime(2026, 3, 29, 7, 0, tzinfo=UTC), WINDOW, [london]) == datetime(
        2026, 3, 29, 20, 0, tzinfo=UTC
    )
    # A window that starts inside the skipped hour (01:00-02:00 does not exist that night) opens
    # when the clock passes its start: at the change, 02:00 BST.
    skipped = SendWindow.parse("01:30-05:00")
    opens = earliest_send(evening, skipped, [london])
    assert opens == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert opens.astimezone(london).time() == time(2, 0)
    assert skipped.contains(opens.astimezone(london).time())
    # One that ends inside it closes at the change too, not at a reading of 01:30 an hour later
    # (02:30 BST, outside the window on the wall clock).
    night = SendWindow.parse("22:00-01:30")
    late = datetime(2026, 3, 29, 0, 45, tzinfo=UTC)  # 00:45 GMT: inside
    assert earliest_send(late, night, [london]) == late
    assert window_close(late, night, [london]) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert not night.contains(datetime(2026, 3, 29, 1, 0, tzinfo=UTC).astimezone(london).time())


def test_a_window_edge_in_the_repeated_autumn_hour_is_its_first_occurrence() -> None:
    london = ZoneInfo("Europe/London")  # 01:00-02:00 happens twice on 2026-10-25: BST, then GMT
    night = SendWindow.parse("22:00-01:30")
    inside = datetime(2026, 10, 25, 0, 10, tzinfo=UTC)  # 01:10 BST
    assert window_close(inside, night, [london]) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 01:30 BST
    early = SendWindow.parse("01:30-05:00")
    before = datetime(2026, 10, 24, 23, 0, tzinfo=UTC)  # 00:00 BST
    assert earliest_send(before, early, [london]) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 01:30 BST


def test_a_naive_send_time_in_a_repeated_or_skipped_hour_takes_the_first_reading() -> None:
    london = ZoneInfo("Europe/London")
    # 01:30 happens twice on 2026-10-25: the first (BST) is taken.
    assert send_time("2026-10-25T01:30", [london], field="send_at") == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    # 01:30 never happens on 2026-03-29: read on the offset before the change, it is 02:30 BST.
    assert send_time("2026-03-29T01:30", [london], field="send_at") == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
