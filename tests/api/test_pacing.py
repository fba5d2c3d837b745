from __future__ import annotations

import asyncio
import itertools
import math
import random
import time

import pytest

from airflow_provider_octopods.api.errors import OctopodsValidationError
from airflow_provider_octopods.api.pacing import Booking, RateLimiter, api_pacer

EPSILON = 1e-9


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def most_in_window(starts: list[float], width: float) -> int:
    """The largest number of starts inside any half-open window [x, x + width)."""
    ordered = sorted(starts)
    best, first = 0, 0
    for last, start in enumerate(ordered):
        while start - ordered[first] >= width - EPSILON:
            first += 1
        best = max(best, last - first + 1)
    return best


def assert_paced(starts: list[float], limiter: RateLimiter) -> None:
    interval = 1 / limiter.per_second
    assert most_in_window(starts, 1.0) <= limiter.max_per_window
    assert most_in_window(starts, interval * 0.999) <= limiter.burst
    assert most_in_window(starts, 10.0) <= limiter.burst + math.floor(10 * limiter.per_second)


CASES = [(0.5, None), (1, None), (2.5, None), (3, 3), (10, None), (10, 1), (10, 10), (33.3, None), (200, 5)]


@pytest.mark.parametrize(("per_second", "burst"), CASES)
def test_sequential_caller_never_exceeds_the_rate(per_second: float, burst: int | None) -> None:
    clock, rng = FakeClock(), random.Random(7)
    limiter = RateLimiter(per_second, burst=burst, clock=clock)
    starts = []
    for _ in range(4000):
        clock.advance(limiter.reserve())
        starts.append(clock())
        idle = rng.random()
        if idle < 0.05:
            clock.advance(rng.uniform(1, 5))  # idle long enough to refill the bucket
        elif idle < 0.5:
            clock.advance(rng.uniform(0, 1.5 / per_second))
    assert_paced(starts, limiter)


@pytest.mark.parametrize(("per_second", "burst"), CASES)
def test_concurrent_callers_booking_ahead_never_exceed_the_rate(per_second: float, burst: int | None) -> None:
    clock, rng = FakeClock(), random.Random(11)
    limiter = RateLimiter(per_second, burst=burst, clock=clock)
    starts, waits = [], []
    for _ in range(4000):
        wait = limiter.reserve()  # as async tasks do: book now, sleep their own wait later
        waits.append(wait)
        starts.append(clock() + wait)
        clock.advance(rng.choice([0.0, 0.0, 0.001, 0.3 / per_second, 2.0]))
    assert min(waits) >= 0
    assert starts == sorted(starts)
    assert_paced(starts, limiter)


@pytest.mark.parametrize("seed", range(40))
def test_a_pause_shorter_than_the_slots_already_booked_books_after_them(seed: int) -> None:
    """A 429's pause ends before slots booked earlier: the next bookings come after those, so the
    one-second window still holds at most max_per_window (the guard compares with the oldest)."""
    clock, rng = FakeClock(), random.Random(seed)
    limiter = RateLimiter(rng.choice([3, 10, 99]), burst=rng.choice([None, 1, 2]), clock=clock, adaptive=seed % 2 == 0)
    most = limiter.max_per_window  # an adaptive limiter only lowers it
    starts = []
    for _ in range(300):
        step = rng.random()
        if step < 0.3:
            clock.advance(rng.uniform(0, 0.5))
        elif step < 0.33:
            limiter.slow_down(rng.uniform(0.01, 1))
        starts.append(clock() + limiter.reserve())
    assert starts == sorted(starts)
    assert most_in_window(starts, 1.0) <= most


def test_with_a_burst_of_one_every_start_is_an_interval_after_the_one_before() -> None:
    """Late starts cannot bunch up with on-time ones: with 64 callers booking ahead, waking up to
    3 ms late and the clock stalling now and then, the starts as made (not only as booked) hold at
    most one more than max_per_window in any second, and the rate stays within 1 % of the pace."""
    clock, rng = FakeClock(), random.Random(5)
    limiter = RateLimiter(99, burst=1, clock=clock)
    wake_ups = [(clock(), caller) for caller in range(64)]
    booked: dict[int, float] = {}
    starts: list[float] = []
    while len(starts) < 3000:
        wake_ups.sort()
        at, caller = wake_ups.pop(0)
        clock.now = max(clock.now, at) + (rng.uniform(0, 0.05) if rng.random() < 0.01 else 0.0)
        if caller in booked and clock() - booked.pop(caller) <= 0.003:
            starts.append(clock())
            wake_ups.append((clock() + 0.1, caller))  # the answer comes 100 ms later
            continue
        wait = limiter.reserve()  # first try, or woken too late: book another slot
        booked[caller] = clock() + wait
        wake_ups.append((clock() + wait + rng.choice([0.0, 0.001, 0.002]), caller))
    gaps = sorted(later - earlier for earlier, later in itertools.pairwise(starts))
    assert gaps[0] >= 1 / 99 - 0.003 - EPSILON
    assert most_in_window(starts, 1.0) <= limiter.max_per_window + 1
    assert len(starts) / (starts[-1] - starts[0]) > 0.9 * 99  # the stalls' late wake-ups cost their slots


def test_late_starts_counted_as_made_keep_every_window_of_starts_as_made_within_the_limit() -> None:
    """As the async client paces: 64 callers book ahead; each wakes up on time or a few ms late,
    and now and then the clock stalls up to 50 ms. A late caller starts if the limiter can still
    count its start as made, else books again. The starts as made never exceed max_per_window in
    any second, and late wake-ups cost little of the rate (a slot given up costs a whole interval)."""
    clock, rng = FakeClock(), random.Random(5)
    limiter = RateLimiter(99, burst=1, clock=clock)
    wake_ups: list[tuple[float, int]] = [(clock(), caller) for caller in range(64)]
    booked: dict[int, Booking] = {}
    starts: list[float] = []
    given_up = 0
    while len(starts) < 5000:
        wake_ups.sort()
        at, caller = wake_ups.pop(0)
        clock.now = max(clock.now, at) + (rng.uniform(0, 0.05) if rng.random() < 0.01 else 0.0)
        booking = booked.pop(caller, None)
        if booking is not None:
            if clock() <= booking.start or limiter.started_late(booking):
                starts.append(clock())
                wake_ups.append((clock() + 0.1, caller))  # the answer comes 100 ms later
                continue
            given_up += 1
        booked[caller] = booking = limiter.book()
        wake_ups.append((max(clock(), booking.start) + rng.choice([0.0, 0.001, 0.002, 0.005]), caller))
    assert most_in_window(starts, 1.0) <= limiter.max_per_window
    print(f"given up {given_up}, rate {len(starts) / (starts[-1] - starts[0]):.2f}")
    assert given_up < 0.01 * len(starts)  # a quarter of the wake-ups are 5 ms late
    assert len(starts) / (starts[-1] - starts[0]) > 0.95 * 99  # the stalls cost 2-3 %


def paced_writes(*, tell: bool, seed: int = 11) -> tuple[list[float], list[float]]:
    """The API pacer at 100 a second as the batch uses it: 64 callers book ahead and start on
    time; each request is written 0 to 2 ms after its start, and one in a hundred 5 to 20 ms
    after (the event loop or another thread held on). With ``tell``, each write is told to the limiter
    (``count_written``) when it happens. Returns the starts and the writes."""
    clock, rng = FakeClock(), random.Random(seed)
    limiter = api_pacer(100, clock=clock)
    events: list[tuple[float, int, str, Booking | None]] = [(clock(), caller, "book", None) for caller in range(64)]
    starts: list[float] = []
    writes: list[float] = []
    while len(writes) < 6000:
        events.sort(key=lambda event: event[0])
        at, caller, kind, booking = events.pop(0)
        clock.now = max(clock.now, at)
        if kind == "book":
            booking = limiter.book()
            events.append((max(clock(), booking.start), caller, "start", booking))
        elif kind == "start":
            assert booking is not None
            assert limiter.may_start(booking)
            starts.append(clock())
            lag = rng.uniform(0.005, 0.02) if rng.random() < 0.01 else rng.uniform(0, 0.002)
            events.append((clock() + lag, caller, "write", booking))
        else:
            assert booking is not None
            writes.append(clock())
            if tell:
                limiter.count_written(booking, clock())
            events.append((clock() + 0.1, caller, "book", None))  # the answer, 100 ms later
    return starts, writes


def test_requests_written_late_keep_every_window_of_writes_within_the_limit() -> None:
    """Told when each request was written, the pacer keeps the one-second window as the requests
    left, not only as they were let start: at most 99 writes in any second at 100 a second (one
    under the limit, for the way to the server), and the rate stays above 98 % of the limit."""
    _, writes = paced_writes(tell=True)
    assert most_in_window(writes, 1.0) <= 99
    assert len(writes) / (writes[-1] - writes[0]) > 98


def test_untold_writes_are_what_the_window_of_starts_cannot_keep() -> None:
    """The same run without ``count_written``: the starts keep the window, the writes do not (so the
    test above does show what telling the writes does)."""
    starts, writes = paced_writes(tell=False)
    assert most_in_window(starts, 1.0) <= 99
    assert most_in_window(writes, 1.0) > 100


def test_a_write_told_while_in_the_window_moves_the_slot_that_relies_on_it() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, burst=1, clock=clock)  # 2 in any second, one every 0.5 s
    first, second = limiter.book(), limiter.book()
    limiter.count_written(second, second.start + 0.2)  # written at 0.7 instead of 0.5
    # The next slot keeps the pace (1.0); the one after it is a second after the write (1.7, not 1.5).
    assert [limiter.book().start - first.start for _ in range(2)] == pytest.approx([1.0, 1.7])


def test_a_write_told_after_the_window_moved_on_or_of_another_limiter_changes_nothing() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, burst=1, clock=clock)
    first = limiter.book()
    limiter.book(), limiter.book()  # at 0.5 and 1.0: the one at 1.0 was booked relying on the first
    limiter.count_written(first, first.start + 1.2)
    limiter.count_written(Booking(10**6, 0.0), clock() + 5.0)  # a slot this limiter never booked
    assert [limiter.book().start - first.start for _ in range(2)] == pytest.approx([1.5, 2.0])


def test_a_write_is_told_to_the_right_slot_after_a_429_narrowed_the_window() -> None:
    clock = FakeClock()
    limiter = RateLimiter(8, burst=1, clock=clock, adaptive=True)
    booked = [limiter.book() for _ in range(8)]
    limiter.slow_down(0.001)  # a 429: 6 a second from now on, so 6 in any second
    assert limiter.max_per_window == 6
    last = booked[-1]
    limiter.count_written(last, last.start + 0.3)
    later = [limiter.book() for _ in range(limiter.max_per_window)]
    assert later[-1].start == pytest.approx(last.start + 1.3)  # untold: 0.1 s earlier, at the pace


def test_more_callers_waiting_than_the_window_holds_all_start_when_their_timers_fire_a_little_late() -> None:
    """A trigger reading 100 statuses at 10/s with 16 reads in flight: 16 callers booked ahead,
    more than the 9 starts a second allows, each woken 0.5 ms after its slot (timers never fire
    early). None may keep giving up its slot (a livelock)."""
    clock = FakeClock()
    limiter = api_pacer(10, clock=clock)
    wake_ups: list[tuple[float, int, Booking]] = []
    for caller in range(16):
        booking = limiter.book()
        wake_ups.append((booking.start + 0.0005, caller, booking))
    starts: list[float] = []
    for _ in range(10_000):
        if len(starts) == 100:
            break
        wake_ups.sort(key=lambda w: w[0])
        at, caller, booking = wake_ups.pop(0)
        clock.now = max(clock.now, at)
        if limiter.may_start(booking):
            starts.append(clock())
            booking = limiter.book()  # its next read
        else:
            booking = limiter.book()
        wake_ups.append((max(clock(), booking.start) + 0.0005, caller, booking))
    assert len(starts) == 100
    assert starts[-1] - starts[0] < 100 / 9.9 + 1  # every slot used: no caller gave up for good
    assert most_in_window(starts, 1.0) <= limiter.max_per_window + 1


def test_the_api_pacer_leaves_a_start_a_few_milliseconds_late_under_the_limit() -> None:
    clock = FakeClock()
    pacer = api_pacer(100, clock=clock)
    assert (pacer.burst, pacer.adaptive) == (1, True)
    starts = []
    for _ in range(300):
        clock.now += pacer.reserve()
        starts.append(clock())
    late = [start + (0.009 if index % 100 == 0 else 0.0) for index, start in enumerate(starts)]  # 9 ms late
    assert most_in_window(sorted(late), 1.0) <= 100


def test_defaults_burst_then_steady_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock)
    assert (limiter.max_per_window, limiter.burst) == (10, 5)
    waits = [limiter.reserve() for _ in range(8)]
    assert waits[:5] == [0, 0, 0, 0, 0]
    assert waits[5:] == pytest.approx([0.1, 0.2, 0.3])
    assert RateLimiter(2.9, clock=clock).burst == 2
    assert RateLimiter(0.25, clock=clock).max_per_window == 1


def test_long_run_keeps_the_average_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, burst=1, clock=clock)
    starts = []
    for _ in range(3001):
        clock.advance(limiter.reserve())
        starts.append(clock())
    assert starts[-1] - starts[0] == pytest.approx(300.0)


def test_fractional_rate_below_one_spaces_requests() -> None:
    clock = FakeClock()
    limiter = RateLimiter(0.5, clock=clock)
    assert [limiter.reserve() for _ in range(3)] == pytest.approx([0, 2, 4])


def test_slow_down_pauses_everyone_then_resumes_without_a_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock)
    for _ in range(3):
        limiter.reserve()
    limiter.slow_down(3)
    limiter.slow_down(1)  # a shorter pause does not shorten the longer one
    waits = [limiter.reserve() for _ in range(4)]
    assert waits == pytest.approx([3.0, 3.1, 3.2, 3.3])
    clock.advance(10)
    limiter.slow_down(0)
    assert limiter.reserve() == 0


@pytest.mark.parametrize("seconds", [-1, "soon", None, float("nan"), True])
def test_slow_down_rejects_bad_pauses(seconds: object) -> None:
    with pytest.raises(OctopodsValidationError) as err:
        RateLimiter(1).slow_down(seconds)  # type: ignore[arg-type]
    assert err.value.field == "seconds"


def test_reserve_never_sleeps(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_sleep(*_: object) -> None:
        raise AssertionError("the limiter must not sleep")

    monkeypatch.setattr(time, "sleep", no_sleep)
    monkeypatch.setattr(asyncio, "sleep", no_sleep)
    limiter = RateLimiter(2)
    waits = [limiter.reserve() for _ in range(20)]
    assert waits[:2] == [0, 0]
    assert waits[-1] == pytest.approx(9.0, abs=0.1)


@pytest.mark.parametrize("per_second", [0, -1, "abc", None, True, float("inf"), float("nan")])
def test_bad_rate(per_second: object) -> None:
    with pytest.raises(OctopodsValidationError, match="per_second: must be a positive number") as err:
        RateLimiter(per_second)  # type: ignore[arg-type]
    assert err.value.field == "per_second"


@pytest.mark.parametrize(
    ("per_second", "burst", "problem"),
    [
        (10, 0, "must be a positive number"),
        (10, True, "must be a positive number"),
        (10, 2.5, "must be a whole number"),
        (10, 11, "is 11, more than the 10 request"),
        (1.5, 2, "is 2, more than the 1 request"),
    ],
)
def test_bad_burst(per_second: float, burst: object, problem: str) -> None:
    with pytest.raises(OctopodsValidationError, match=problem) as err:
        RateLimiter(per_second, burst=burst)  # type: ignore[arg-type]
    assert err.value.field == "burst"


def test_an_adaptive_limiter_settles_below_the_servers_limit_after_429s() -> None:
    from airflow_provider_octopods.api.pacing import RateLimiter

    now = [0.0]
    limiter = RateLimiter(100, clock=lambda: now[0], adaptive=True)
    limiter.slow_down(1.0)
    assert limiter.per_second == 75
    for _ in range(15):  # the 429s of the other requests in flight during that pause
        limiter.slow_down(1.0)
    assert limiter.per_second == 75  # one cut per pause, not per 429
    assert limiter.reserve() == pytest.approx(1.0)  # the pause first, then the lower rate
    for _ in range(30):
        now[0] += 2.0  # each 429 after the previous pause has ended
        limiter.slow_down(0.5)
    assert limiter.per_second == 2  # never below a fiftieth of the first rate
    fixed = RateLimiter(100, clock=lambda: now[0])
    fixed.slow_down(1.0)
    assert fixed.per_second == 100


def test_an_adaptive_rate_goes_back_up_after_a_quiet_spell() -> None:
    from airflow_provider_octopods.api.pacing import RECOVER_SECONDS

    clock = FakeClock()
    limiter = RateLimiter(100, burst=1, clock=clock, adaptive=True)
    limiter.slow_down(1.0)
    limiter.slow_down(1.0)  # a second 429 of the same pause: no second cut
    assert limiter.per_second == 75
    clock.now += 1.0 + RECOVER_SECONDS / 2
    limiter.reserve()
    assert limiter.per_second == 75  # not quiet for long enough yet
    clock.now += RECOVER_SECONDS / 2
    limiter.reserve()
    assert limiter.per_second == 100  # one step back up, and never above the first rate
    clock.now += 2 * RECOVER_SECONDS
    limiter.reserve()
    assert limiter.per_second == 100


def test_the_way_back_up_waits_for_the_end_of_a_pause_a_later_429_extended() -> None:
    from airflow_provider_octopods.api.pacing import RECOVER_SECONDS

    clock = FakeClock(start=0.0)
    limiter = RateLimiter(100, burst=1, clock=clock, adaptive=True)
    limiter.slow_down(5.0)  # rate cut to 75 until t=5
    clock.now = 4.0
    limiter.slow_down(30.0)  # a 429 within the pause: no second cut, but the pause lasts to t=34
    clock.now = 34.0
    limiter.reserve()
    assert limiter.per_second == 75  # not one request yet at the lower rate
    clock.now = 34.0 + RECOVER_SECONDS
    limiter.reserve()
    assert limiter.per_second == 100


@pytest.mark.parametrize("limit", [1, 3, 10, 100, 400])
def test_the_api_pacer_sustains_99_percent_of_the_limit_and_never_more_than_it_in_a_window(limit: int) -> None:
    clock = FakeClock()
    pacer = api_pacer(limit, clock=clock)
    starts = []
    for _ in range(20 * limit):
        clock.now += pacer.reserve()
        starts.append(clock())
    assert most_in_window(starts, 1.0) <= limit - limit // 100  # room for arrival jitter at high rates
    sustained = (len(starts) - 1) / (starts[-1] - starts[0])
    assert sustained >= 0.98 * limit
