"""What a failure means, and who may retry it: decided here, once, for every caller.

The clients ask :func:`decide` whether to repeat a request inside the call; the operator, the
sensor, the trigger, the notifier and the hook ask the same function whether Airflow may run the
task again, and whether an SMS may already be out. The rules:

* A status read (GET) has no side effect: any transient failure (connect error, timeout, lost
  connection, 429, 5xx, an unreadable answer) is retried in the call, and a task that still
  failed may be retried by Airflow.
* A send (POST) is repeated only when the API provably did not act on it: the connection was
  never established (refused, DNS, connect timeout, TLS failure) or the API answered 429 or 503
  (refused before processing). Airflow may then retry the task too: nothing was sent.
* A send whose outcome is ambiguous (another 5xx, a 2xx that cannot be read, a reset or timeout
  after the request went out, any unexpected exception while reading the answer) is never
  repeated, by the client or by Airflow: the SMS may have been sent. The task fails for good and
  says so.
* An SMS provider rejection (error 4) is not repeated in the call; nothing was sent, so Airflow
  may retry the task later.
* Bad input, a bad or revoked key, an unknown message id: repeating cannot help. Fail for good.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from airflow_provider_octopods.api.errors import (
    OctopodsError,
    OctopodsRateLimitError,
    OctopodsServerError,
    OctopodsSmsRejectedError,
    OctopodsTLSError,
    OctopodsTransportError,
    OctopodsUnknownOutcomeError,
)


class Operation(str, Enum):
    """The two API calls."""

    SEND = "send"
    STATUS = "status"


class Stage(str, Enum):
    """How far a request got before the transport failed."""

    NOT_SENT = "not_sent"  # connection refused, DNS failure, connect timeout, TLS failure
    NO_ANSWER = "no_answer"  # read timeout, connection reset or closed after sending


@dataclass(frozen=True)
class Decision:
    """The three answers about one failure.

    :param retry_call: the client may repeat the request now (after a backoff).
    :param retry_task: Airflow may run the task again (its ``retries`` apply).
    :param maybe_sent: a send may have reached the API: it must not be repeated without a human.
    """

    retry_call: bool
    retry_task: bool
    maybe_sent: bool = False


TRANSIENT = Decision(retry_call=True, retry_task=True)
REFUSED_FOR_NOW = Decision(retry_call=False, retry_task=True)
AMBIGUOUS = Decision(retry_call=False, retry_task=False, maybe_sent=True)
FINAL = Decision(retry_call=False, retry_task=False)


def decide(operation: Operation, error: BaseException) -> Decision:
    """The decision for ``error`` raised by ``operation``; the only copy of the retry rules."""
    if isinstance(error, OctopodsTLSError):
        return FINAL
    if isinstance(error, (OctopodsRateLimitError, OctopodsTransportError)):
        return TRANSIENT
    if isinstance(error, OctopodsServerError):
        if operation is Operation.STATUS or error.http_status == 503:
            return TRANSIENT
        return AMBIGUOUS
    if isinstance(error, OctopodsUnknownOutcomeError):
        return AMBIGUOUS
    if isinstance(error, OctopodsSmsRejectedError):
        return REFUSED_FOR_NOW
    if isinstance(error, OctopodsError):
        return FINAL
    # Not one of ours: a bug or an unexpected library error. A send may have gone out.
    return AMBIGUOUS if operation is Operation.SEND else REFUSED_FOR_NOW


MAY_HAVE_BEEN_SENT = (
    "the SMS may or may not have been sent, so it was not retried (neither now nor by Airflow). "
    "Check the recipient or the Octopods dashboard before sending it again"
)


def transport_error(operation: Operation, stage: Stage, detail: str) -> OctopodsError:
    """The error a transport failure becomes for ``operation``."""
    if stage is Stage.NOT_SENT:
        return OctopodsTransportError(f"could not reach the Octopods API, nothing was sent ({detail})")
    if operation is Operation.STATUS:
        return OctopodsServerError(f"no answer from the Octopods API ({detail})")
    return OctopodsUnknownOutcomeError(
        f"the send request went out but no answer came back ({detail}); {MAY_HAVE_BEEN_SENT}"
    )


def unreadable_answer(operation: Operation, http_status: int, problem: str) -> OctopodsError:
    """The error for a 2xx answer that could not be read (not JSON, too deep, wrong shape, a bug)."""
    if operation is Operation.STATUS:
        return OctopodsServerError(f"the status answer is not the documented JSON ({problem})", http_status=http_status)
    return OctopodsUnknownOutcomeError(
        f"the API answered the send with HTTP {http_status} but its answer could not be read ({problem}); "
        f"the SMS was probably sent and its message id is unknown; {MAY_HAVE_BEEN_SENT}",
        http_status=http_status,
    )
