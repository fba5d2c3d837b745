"""Which failures may be retried, and how long to wait.

Retry safety, decided once for every transport:

* A status read (GET) has no side effect, so any transient failure may be retried: connect
  errors, timeouts, lost connections, 429 and 5xx.
* A send (POST) may be retried only when the API provably did not act on it: the connection
  was never established, or the API answered 429 or 503 (it refused before processing).
  A read timeout, a connection lost after the request went out, or another 5xx may mean the
  SMS was sent; retrying then could send it twice, so the outcome is reported instead.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from enum import Enum
from typing import TYPE_CHECKING, Generic, TypeVar

from airflow_provider_octopods.api.errors import (
    OctopodsError,
    OctopodsRateLimitError,
    OctopodsServerError,
    OctopodsTransportError,
    OctopodsUnknownOutcomeError,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_octopods.api.protocol import RawResponse

T = TypeVar("T")


class Operation(str, Enum):
    """The two API calls; ``idempotent`` says whether repeating one is harmless."""

    SEND = "send"
    STATUS = "status"

    @property
    def idempotent(self) -> bool:
        return self is Operation.STATUS


class Failure(str, Enum):
    """Transport failures, by what they tell us about whether the API saw the request."""

    NOT_SENT = "not_sent"  # connection refused, DNS failure, connect timeout
    NO_ANSWER = "no_answer"  # read timeout, connection reset or closed after sending


def transport_error(operation: Operation, failure: Failure, detail: str) -> OctopodsError:
    """The error a transport failure becomes for ``operation``."""
    if failure is Failure.NOT_SENT:
        return OctopodsTransportError(f"could not reach the Octopods API ({detail})")
    if operation.idempotent:
        return OctopodsServerError(f"no answer from the Octopods API ({detail})")
    return OctopodsUnknownOutcomeError(
        f"the send request went out but no answer came back ({detail}); the SMS may or may not have "
        "been sent, so it was not retried. Check the recipient or the Octopods dashboard before "
        "sending it again"
    )


def is_retryable(operation: Operation, error: OctopodsError) -> bool:
    """Whether the client may repeat ``operation`` after ``error``."""
    if isinstance(error, (OctopodsRateLimitError, OctopodsTransportError)):
        return True
    if isinstance(error, OctopodsServerError):
        return operation.idempotent or error.http_status == 503
    return False


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter.

    :param max_attempts: total tries of one call, the first included.
    :param backoff: the first wait in seconds; each later wait doubles, up to ``max_backoff``.
    :param max_backoff: the longest wait between tries, also the cap on a server's Retry-After.
    """

    max_attempts: int = 4
    backoff: float = 0.5
    max_backoff: float = 30.0

    def delay(self, attempt: int, error: OctopodsError, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based)."""
        hint = getattr(error, "retry_after", None)
        if hint is not None:
            return min(max(hint, 0.0), self.max_backoff)
        ceiling = min(self.backoff * 2 ** (attempt - 1), self.max_backoff)
        return (rng or random).uniform(ceiling / 2, ceiling)

    def should_retry(self, operation: Operation, error: OctopodsError, attempt: int) -> bool:
        """Whether to try again after failed try number ``attempt``."""
        return attempt < self.max_attempts and is_retryable(operation, error)


@dataclass(frozen=True)
class Wait:
    """The verdict "wait ``delay`` seconds, then try again" after ``error``."""

    delay: float
    error: OctopodsError


class RetryingCall(Generic[T]):
    """The retry loop of one API call, without the I/O: transports feed it each try's outcome.

    ``parse`` turns a 2xx response into the result; an unreadable answer counts as a failed try
    too (retried for status reads, an unknown outcome for sends). ``settle`` returns the result,
    raises the final error, or returns :class:`Wait`.
    """

    def __init__(self, policy: RetryPolicy, operation: Operation, parse: Callable[[RawResponse], T]) -> None:
        self.policy = policy
        self.operation = operation
        self.parse = parse
        self.attempt = 0

    def settle(self, response: RawResponse | None, failure: OctopodsError | None) -> T | Wait:
        self.attempt += 1
        if failure is None:
            assert response is not None
            if response.status < 400:
                try:
                    return self.parse(response)
                except OctopodsError as err:
                    failure = err
            else:
                from airflow_provider_octopods.api.protocol import error_from_response

                failure = error_from_response(response, self.operation)
                if not self.policy.should_retry(self.operation, failure, self.attempt):
                    return self.parse(response)  # raises the mapped error with its full context
        if not self.policy.should_retry(self.operation, failure, self.attempt):
            raise failure
        return Wait(self.policy.delay(self.attempt, failure), failure)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Parse ``Retry-After``: delta seconds or an HTTP date. Unparseable values give None."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max((when - (now or datetime.now(timezone.utc))).total_seconds(), 0.0)
