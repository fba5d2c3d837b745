"""Pacing of requests: how long to wait before the next one, shared by sync and async callers.

:class:`RateLimiter` never sleeps. ``reserve()`` books the next request slot and returns how many
seconds the caller must wait before starting it; the caller sleeps with ``time.sleep`` or
``asyncio.sleep``. Slots are handed out in order, so concurrent callers that each sleep for their
own answer start their requests at the booked times.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from airflow_provider_octopods.api.errors import OctopodsValidationError
from airflow_provider_octopods.api.validation import positive_number

DEFAULT_MAX_BURST = 5
RECOVER_SECONDS = 10.0
LATE_START_SECONDS = 0.003
_FLOAT_SLACK = 1e-9


@dataclass(frozen=True, slots=True)
class Booking:
    """A request slot: the ``number``-th booked (from 0), to start at ``start`` on the limiter's clock."""

    number: int
    start: float


class RateLimiter:
    """A token bucket with a sliding one-second window guard.

    Guarantee: in any one-second window, at most ``floor(per_second)`` request starts (at least 1);
    over longer periods, ``per_second`` on average. Slots are booked in time order, at most
    ``burst`` back to back; with ``burst=1`` each slot is an interval after the one before. Callers
    that start at their booked times start in turn. A caller that starts late tells
    :meth:`started_late`, which counts its start as made in the one-second window (or refuses it):
    the one-second guarantee then holds for the starts as made, though a late start may come
    right next to an on-time one. A caller that knows when its request was written tells
    :meth:`count_written`; the guarantee then holds for the requests as written, as long as each
    write is told before ``max_per_window`` more slots are booked (fewer callers waiting at once
    than that), since a later booking relies on the times it knew when it was made.

    :param per_second: the allowed request rate, e.g. ``10`` or ``0.5`` (one every two seconds).
    :param burst: how many requests may start at once after an idle period; default
        ``min(5, floor(per_second))``, at most ``floor(per_second)`` (at least 1).
    :param clock: a monotonic clock in seconds; tests pass a fake one.
    :param window: the most request starts in any one-second window (default and at most
        ``floor(per_second)`` unless given: an API limit of 10 a second paced at 9.9 still allows
        10 in a window, since starts 1/9.9 s apart never put 11 in one). Lowered with the rate.
    :param adaptive: a :meth:`slow_down` that starts a pause also lowers the steady rate by a
        quarter (to at most a fiftieth of the first one), so that a caller whose rate is above the
        server's limit settles below it instead of meeting 429s again after every pause; the 429s
        of requests already in flight during that pause do not lower it again. After
        ``RECOVER_SECONDS`` without a pause, the rate goes back up by one such step, up to the
        first one: occasional 429s do not slow a long batch down for good.
    :raises OctopodsValidationError: naming ``per_second`` or ``burst``.
    """

    def __init__(
        self,
        per_second: float,
        *,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        adaptive: bool = False,
        window: int | None = None,
    ) -> None:
        self.per_second = positive_number(per_second, field="per_second")
        self._window_share: float | None = None
        if window is not None:
            allowed = positive_number(window, field="window")
            if not allowed.is_integer():
                raise OctopodsValidationError("window", f"must be a whole number of requests, got {window!r}")
            self._window_share = allowed / self.per_second
        self.max_per_window = self._window_for(self.per_second)
        self.burst = self._burst(burst)
        self.adaptive = adaptive
        self._lowest = self.per_second / 50
        self._highest = self.per_second
        self._steady_since = -math.inf
        self._clock = clock
        self._interval = 1.0 / self.per_second
        # Token bucket as virtual scheduling (GCRA): a request may start once the clock reaches
        # ``_theoretical - _tolerance``; each start pushes ``_theoretical`` one interval further.
        self._tolerance = (self.burst - 1) * self._interval
        self._theoretical = -math.inf
        self._not_before = -math.inf
        self._recent: deque[float] = deque(maxlen=self.max_per_window)
        self._booked = 0
        self._lock = threading.Lock()

    def _window_for(self, per_second: float) -> int:
        if self._window_share is None:
            return max(1, math.floor(per_second))
        return max(1, math.floor(per_second * self._window_share + _FLOAT_SLACK))

    def _burst(self, burst: int | None) -> int:
        if burst is None:
            return min(DEFAULT_MAX_BURST, self.max_per_window)
        number = positive_number(burst, field="burst")
        if not number.is_integer():
            raise OctopodsValidationError("burst", f"must be a whole number of requests, got {burst!r}")
        if number > self.max_per_window:
            raise OctopodsValidationError(
                "burst",
                f"is {int(number)}, more than the {self.max_per_window} request(s) per second that "
                f"per_second={self.per_second:g} allows",
            )
        return int(number)

    def reserve(self) -> float:
        """Book the next request slot; return the seconds to wait before starting the request (>= 0).

        The caller must wait that long and then start its request; it never sleeps here.
        """
        booking = self.book()
        return max(booking.start - self._clock(), 0.0)

    def book(self) -> Booking:
        """Book the next request slot (what :meth:`reserve` does), returning the slot itself: a
        caller that may wake up late tells :meth:`started_late` when it does."""
        with self._lock:
            now = self._clock()
            if self.adaptive and self.per_second < self._highest and now - self._steady_since >= RECOVER_SECONDS:
                self._set_rate(min(self._highest, self.per_second / 0.75))
                self._steady_since = now
            # _FLOAT_SLACK absorbs rounding in the sums of intervals, so a full bucket gives
            # exactly 0 rather than a 1e-13 wait; the one-second window guard takes no slack.
            start = max(now, self._not_before, self._theoretical - self._tolerance - _FLOAT_SLACK)
            # Never before an earlier booking: out of order, bookings would escape the window guard
            # (it compares with the oldest of the last ones booked) and bunch up as sent.
            if self._recent:
                start = max(start, self._recent[-1])
            if len(self._recent) == self.max_per_window:
                start = max(start, self._recent[0] + 1.0)
            self._theoretical = max(self._theoretical, start) + self._interval
            self._recent.append(start)
            self._booked += 1
            return Booking(self._booked - 1, start)

    def may_start(self, booking: Booking) -> bool:
        """Whether ``booking``'s request may start now: on time; or late, but counted as made (see
        :meth:`started_late`); or at most ``LATE_START_SECONDS`` late, as timers always are a
        little (so that more callers waiting at once than ``max_per_window`` never keep giving
        up their slots). False: the caller books another slot."""
        late = self._clock() - booking.start
        return late <= 0 or self.started_late(booking) or late <= LATE_START_SECONDS

    def started_late(self, booking: Booking) -> bool:
        """Whether ``booking``'s request may still start now, after its slot.

        It may while no later booking relies on its slot's time: until ``max_per_window`` more are
        booked, the one-second window guard takes the start as made instead (the booking that many
        later is then at least a second after it), so late starts never bunch up with on-time ones.
        Later than that, False: the caller books another slot.
        """
        return self._count_at(booking, self._clock())

    def count_written(self, booking: Booking, when: float) -> None:
        """Count ``booking``'s request as made at ``when`` (on the limiter's clock): when it was
        written, which may be a few milliseconds after it was let start (the event loop or another
        thread was busy). Later bookings then keep the one-second window as the requests were
        written, not only as they were let start. Told after ``max_per_window`` more were booked,
        or of a slot this limiter did not book, it changes nothing."""
        self._count_at(booking, when)

    def _count_at(self, booking: Booking, when: float) -> bool:
        with self._lock:
            index = booking.number - (self._booked - len(self._recent))
            if not 0 <= index < len(self._recent):
                return False
            self._recent[index] = max(self._recent[index], when)
            return True

    def now(self) -> float:
        """The limiter's clock, to tell whether a caller started at the time it booked."""
        return self._clock()

    def slow_down(self, seconds: float) -> None:
        """Make every later reservation wait until at least ``seconds`` from now.

        Meant for a 429's ``Retry-After``: the whole batch pauses, then resumes at the steady rate
        without a burst (the bucket is emptied). Slots booked before the call are not moved.

        :param seconds: how long to pause; 0 changes nothing.
        :raises OctopodsValidationError: naming ``seconds`` if it is negative or not a number.
        """
        if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and seconds == 0:
            return
        pause = positive_number(seconds, field="seconds")
        with self._lock:
            until = self._clock() + pause
            if self.adaptive and self._clock() >= self._not_before:  # once per pause, not per 429 in it
                self._set_rate(max(self._lowest, self.per_second * 0.75))
            self._not_before = max(self._not_before, until)
            self._steady_since = max(self._steady_since, self._not_before)  # quiet only after every pause
            self._theoretical = max(self._theoretical, until + self._tolerance)

    def _set_rate(self, per_second: float) -> None:
        self.per_second = per_second
        self.max_per_window = self._window_for(per_second)
        self.burst = min(self.burst, self.max_per_window)
        self._interval = 1.0 / per_second
        self._tolerance = (self.burst - 1) * self._interval
        self._recent = deque(self._recent, maxlen=self.max_per_window)


API_PACING_MARGIN = 0.99
ARRIVAL_JITTER = 0.01  # seconds


def api_pacer(per_second: float, *, clock: Callable[[], float] = time.monotonic) -> RateLimiter:
    """A limiter for many requests to the API, at most ``per_second`` in any second as the server
    counts them: a little under the rate and one request at a time (no burst), because requests
    start a few milliseconds late when the caller is busy and any bunching shows at the server;
    each 429 pause lowers the rate (``adaptive``).

    :raises OctopodsValidationError: naming ``per_second``.
    """
    rate = positive_number(per_second, field="per_second")
    # Room in the window for requests that reach the API a few milliseconds apart from when they
    # started (ARRIVAL_JITTER): none below 100 a second, where requests are further apart.
    window = max(1, math.floor(rate + _FLOAT_SLACK) - math.floor(rate * ARRIVAL_JITTER + _FLOAT_SLACK))
    return RateLimiter(rate * API_PACING_MARGIN, burst=1, clock=clock, adaptive=True, window=window)
