"""The retry loop of one API call, without the I/O: how often, how long to wait, and when to stop.

Whether a failure may be retried at all is not decided here but in
:func:`airflow_provider_octopods.api.decision.decide`; this module only applies it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from airflow_provider_octopods.api.decision import Operation, decide, unreadable_answer
from airflow_provider_octopods.api.errors import OctopodsError, OctopodsRateLimitError
from airflow_provider_octopods.api.masking import server_text
from airflow_provider_octopods.api.protocol import ApiCall, RawResponse

T = TypeVar("T")

# What reading a bad answer can raise. For a status read, anything else (a task timeout signal,
# an interrupt) is not about the answer and passes through; for a send, everything counts.
_READ_ERRORS = (ValueError, TypeError, LookupError, AttributeError, RecursionError, ArithmeticError)


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter.

    :param max_attempts: total tries of one call, the first included.
    :param backoff: the first wait in seconds; each later wait doubles, up to ``max_backoff``.
    :param max_backoff: the longest wait between tries, also the cap on a server's Retry-After.
    :param max_rate_limited: when set, 429 answers (too many requests) are counted apart: up to
        this many of them, plus ``max_attempts`` tries for everything else. A batch that paces
        itself sets it high, so that a storm of 429s slows the batch down rather than failing rows.
    """

    max_attempts: int = 4
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_rate_limited: int | None = None

    def delay(self, attempt: int, error: OctopodsError, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based)."""
        hint = getattr(error, "retry_after", None)
        if hint is not None:
            return min(max(hint, 0.0), self.max_backoff)
        ceiling = min(self.backoff * 2 ** (attempt - 1), self.max_backoff)
        return (rng or random).uniform(ceiling / 2, ceiling)


@dataclass(frozen=True)
class Wait:
    """The verdict "wait ``delay`` seconds, then try again" after ``error``."""

    delay: float
    error: OctopodsError


class RetryingCall(Generic[T]):
    """Drives one :class:`ApiCall`: transports feed it each try's outcome and act on its answer.

    ``settle`` returns the parsed result, raises the final error, or returns :class:`Wait`. An
    answer that cannot be read, whatever the exception, counts as a failed try: retried for
    status reads, an unknown outcome for sends.
    """

    def __init__(self, policy: RetryPolicy, call: ApiCall[T]) -> None:
        self.policy = policy
        self.call = call
        self.attempt = 0
        self.rate_limited = 0

    def settle(self, response: RawResponse | None, failure: OctopodsError | None) -> T | Wait:
        self.attempt += 1
        if failure is None:
            assert response is not None
            outcome = self._read(response) if response.status < 400 else self.call.error(response)
            if not isinstance(outcome, OctopodsError):
                return outcome
            failure = outcome
        if self.policy.max_rate_limited is None:
            within = self.attempt < self.policy.max_attempts
        elif isinstance(failure, OctopodsRateLimitError):
            self.rate_limited += 1
            within = self.rate_limited < self.policy.max_rate_limited
        else:
            within = self.attempt - self.rate_limited < self.policy.max_attempts
        if within and decide(self.call.operation, failure).retry_call:
            return Wait(self.policy.delay(self.attempt, failure), failure)
        raise failure

    def _read(self, response: RawResponse) -> T | OctopodsError:
        try:
            return self.call.parse(response)
        except OctopodsError as err:
            return err
        except Exception as exc:
            if self.call.operation is Operation.STATUS and not isinstance(exc, _READ_ERRORS):
                raise
            return unreadable_answer(
                self.call.operation, response.status, server_text(f"{type(exc).__name__}: {exc}", limit=160)
            )


def try_events(call: ApiCall[Any], response: RawResponse | None, failure: OctopodsError | None) -> tuple[str, ...]:
    """What one try of ``call`` counts as, for a client's observer (metrics): ``"status_read"``
    for every try of a status read, ``"rate_limited"`` for a 429."""
    events: tuple[str, ...] = ("status_read",) if call.operation is Operation.STATUS else ()
    if isinstance(failure, OctopodsRateLimitError) or (response is not None and response.status == 429):
        events += ("rate_limited",)
    return events
