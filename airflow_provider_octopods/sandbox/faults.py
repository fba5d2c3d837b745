"""Fault injection: what goes wrong with which request, reproducibly (seeded or scheduled).

A fault is written ``NAME:WHEN[:ENDPOINT]``:

* ``WHEN`` is a probability (``0.05``: 5 % of requests) or a schedule (``@1,3``: the 1st and 3rd
  request to that endpoint);
* ``ENDPOINT`` is ``send``, ``status`` or ``all`` (default).

Names: ``http_500``, ``http_502``, ``http_503`` (an HTML gateway page; nothing processed),
``http_500_after``, ``http_502_after`` (processed and recorded, then an HTML error page),
``malformed`` (processed, then a truncated JSON body), ``reset_before`` (connection reset before
processing: nothing recorded), ``reset_after`` (processed and recorded, then the connection is
reset), ``hang_after`` (processed and recorded, then no answer for ``hang_seconds``).
Three names take seconds instead of ``WHEN``: ``latency:0.2`` (every request waits 0.2 s),
``jitter:0.1`` (plus a random 0 to 0.1 s) and ``rotate_key:10`` (from 10 s after start, every
request is refused with error 5 DEPRECATED_API_KEY).
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from enum import Enum

ENDPOINTS = ("send", "status", "all")


class Fault(str, Enum):
    HTTP_500 = "http_500"
    HTTP_502 = "http_502"
    HTTP_503 = "http_503"
    HTTP_500_AFTER = "http_500_after"
    HTTP_502_AFTER = "http_502_after"
    MALFORMED = "malformed"
    RESET_BEFORE = "reset_before"
    RESET_AFTER = "reset_after"
    HANG_AFTER = "hang_after"
    LATENCY = "latency"
    JITTER = "jitter"
    ROTATE_KEY = "rotate_key"

    @property
    def takes_seconds(self) -> bool:
        return self in (Fault.LATENCY, Fault.JITTER, Fault.ROTATE_KEY)

    @property
    def after_processing(self) -> bool:
        return self in (
            Fault.MALFORMED,
            Fault.RESET_AFTER,
            Fault.HANG_AFTER,
            Fault.HTTP_500_AFTER,
            Fault.HTTP_502_AFTER,
        )


@dataclass(frozen=True)
class FaultSpec:
    """One parsed ``NAME:WHEN[:ENDPOINT]``."""

    fault: Fault
    probability: float = 0.0
    schedule: frozenset[int] = frozenset()
    seconds: float = 0.0
    endpoint: str = "all"

    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        parts = text.strip().split(":")
        if len(parts) not in (2, 3):
            raise ValueError(f"fault {text!r}: expected NAME:WHEN[:ENDPOINT]")
        try:
            fault = Fault(parts[0])
        except ValueError:
            names = ", ".join(f.value for f in Fault)
            raise ValueError(f"fault {text!r}: unknown name {parts[0]!r} (one of {names})") from None
        endpoint = parts[2] if len(parts) == 3 else "all"
        if endpoint not in ENDPOINTS:
            raise ValueError(f"fault {text!r}: endpoint must be one of {', '.join(ENDPOINTS)}")
        when = parts[1]
        try:
            if fault.takes_seconds:
                return cls(fault, seconds=_non_negative(float(when)), endpoint=endpoint)
            if when.startswith("@"):
                schedule = frozenset(int(n) for n in when[1:].split(",") if n)
                if not schedule or min(schedule) < 1:
                    raise ValueError
                return cls(fault, schedule=schedule, endpoint=endpoint)
            probability = float(when)
            if not 0 <= probability <= 1:
                raise ValueError
            return cls(fault, probability=probability, endpoint=endpoint)
        except ValueError:
            raise ValueError(
                f"fault {text!r}: WHEN must be {'seconds' if fault.takes_seconds else 'a probability 0..1 or @N,M'}"
            ) from None

    def __str__(self) -> str:
        when = (
            f"{self.seconds:g}"
            if self.fault.takes_seconds
            else (f"@{','.join(map(str, sorted(self.schedule)))}" if self.schedule else f"{self.probability:g}")
        )
        return f"{self.fault.value}:{when}:{self.endpoint}"


@dataclass(frozen=True)
class Decision:
    """What happens to one request: a delay, then at most one fault before or after processing."""

    delay: float = 0.0
    before: Fault | None = None
    after: Fault | None = None


@dataclass
class FaultPlan:
    """Decides each request's faults from the specs, a seeded generator and request counters."""

    specs: tuple[FaultSpec, ...] = ()
    seed: int | None = None
    _rng: random.Random = field(init=False)
    _counts: dict[str, int] = field(init=False, default_factory=dict)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def decide(self, endpoint: str, elapsed: float) -> Decision:
        """The decision for the next request to ``endpoint``, ``elapsed`` seconds after start."""
        with self._lock:
            ordinal = self._counts[endpoint] = self._counts.get(endpoint, 0) + 1
            delay = 0.0
            chosen: Fault | None = None
            for spec in self.specs:
                if spec.endpoint not in ("all", endpoint):
                    continue
                if spec.fault is Fault.LATENCY:
                    delay += spec.seconds
                elif spec.fault is Fault.JITTER:
                    delay += self._rng.uniform(0, spec.seconds)
                elif spec.fault is Fault.ROTATE_KEY:
                    if elapsed >= spec.seconds and chosen is None:
                        chosen = Fault.ROTATE_KEY
                else:
                    fires = ordinal in spec.schedule if spec.schedule else self._rng.random() < spec.probability
                    if fires and chosen is None:
                        chosen = spec.fault
            if chosen is not None and chosen.after_processing:
                return Decision(delay, after=chosen)
            return Decision(delay, before=chosen)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._rng = random.Random(self.seed)


def _non_negative(value: float) -> float:
    if value < 0:
        raise ValueError
    return value
