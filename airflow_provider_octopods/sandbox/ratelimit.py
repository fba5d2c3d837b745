"""Per-key token buckets like an SMS provider's throughput limit, and a peak-rate meter."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable


class RateLimiter:
    """``rate`` requests per second per key, with bursts up to ``rate``; None means no limit."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def admit(self, key: str) -> float | None:
        """None if the request may proceed, else the seconds to wait (for ``Retry-After``)."""
        if not self.rate:
            return None
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.rate, now))
            tokens = min(self.rate, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return None
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate

    @staticmethod
    def retry_after_header(wait: float) -> str:
        """Whole seconds, at least 1, as HTTP wants them."""
        return str(max(1, math.ceil(wait)))

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()


class PeakMeter:
    """The most requests seen in any one-second window."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._window: deque[float] = deque()
        self.peak = 0
        self._lock = threading.Lock()

    def hit(self) -> None:
        now = self._clock()
        with self._lock:
            self._window.append(now)
            while self._window[0] <= now - 1.0:
                self._window.popleft()
            self.peak = max(self.peak, len(self._window))

    def reset(self) -> None:
        with self._lock:
            self._window.clear()
            self.peak = 0
