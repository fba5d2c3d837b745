"""Sandbox settings: which documented API variant to speak and how fast messages progress."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from airflow_provider_octopods.sandbox.faults import FaultSpec


class Variant(str, Enum):
    """The documented API variants the sandbox can speak.

    * ``current``: send returns ``request_id``, ``message_id``, ``phone_number`` with ``+``; status
      is lower-case with ``phone_number``, ``sent_at``, ``delivered_at``, ``failure_reason``.
    * ``legacy``: the original document: send's ``phone_number`` has no ``+``; status is upper-case
      (``DELIVERED``) with ``status_message`` and ``last_updated``.
    * ``hubspot``: a HubSpot workspace: send returns only ``request_id`` (no tracking possible).
    """

    CURRENT = "current"
    LEGACY = "legacy"
    HUBSPOT = "hubspot"


@dataclass(frozen=True)
class SandboxConfig:
    """How a sandbox behaves.

    :param variant: which documented response shapes to return.
    :param sent_after: seconds a new message stays ``queued`` before it is ``sent``.
    :param final_after: seconds after which it reaches its final status (``delivered`` unless a
        magic number says otherwise). Must be at least ``sent_after``.
    :param delivery_jitter: each message's final status comes up to this many seconds later than
        ``final_after``, at a random moment (uniform), so deliveries spread out like real carriers'.
    :param seed: seed of the sandbox's random choices, for reproducible runs.
    :param api_keys: if given, only these keys are accepted (401 otherwise); by default any
        non-empty key is.
    :param first_message_id: the id given to the first accepted message.
    :param channel_message_id: add the provider's ``channel_message_id`` to send responses.
    :param plus_in_phone: whether send responses echo ``phone_number`` with ``+``; None: the
        variant's habit (legacy: without).
    :param unknown_for: seconds a new message reports ``unknown`` before ``queued``.
    :param scoped_keys: a message's status can only be read with the key that sent it (as the
        real API: keys belong to one channel); another key gets error 1, not found.
    :param rate_limit: requests per second allowed per key (token bucket); over it, 429 with
        ``Retry-After``. None: no limit.
    :param faults: fault specs such as ``"reset_after:0.05"`` (see ``sandbox.faults``).
    :param hang_seconds: how long ``hang_after`` keeps a request without an answer.
    """

    variant: Variant = Variant.CURRENT
    sent_after: float = 0.5
    final_after: float = 1.0
    delivery_jitter: float = 0.0
    seed: int | None = None
    api_keys: frozenset[str] | None = None
    first_message_id: int = 4829174
    channel_message_id: bool = False
    plus_in_phone: bool | None = None
    unknown_for: float = 0.0
    scoped_keys: bool = True
    rate_limit: float | None = None
    faults: tuple[FaultSpec, ...] = ()
    hang_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.sent_after < 0 or self.final_after < self.sent_after or self.delivery_jitter < 0:
            raise ValueError("need 0 <= sent_after <= final_after and delivery_jitter >= 0")
        object.__setattr__(self, "variant", Variant(self.variant))
        specs = tuple(f if isinstance(f, FaultSpec) else FaultSpec.parse(str(f)) for f in self.faults)
        object.__setattr__(self, "faults", specs)
        if self.rate_limit is not None and self.rate_limit <= 0:
            raise ValueError("rate_limit must be positive")
        if self.unknown_for < 0 or self.unknown_for > self.sent_after:
            raise ValueError("need 0 <= unknown_for <= sent_after")
        if self.api_keys is not None:
            object.__setattr__(self, "api_keys", frozenset(self.api_keys))

    def __repr__(self) -> str:
        keys = "any" if self.api_keys is None else f"{len(self.api_keys)} key(s)"
        return (
            f"SandboxConfig(variant={self.variant.value}, sent_after={self.sent_after}, "
            f"final_after={self.final_after}, delivery_jitter={self.delivery_jitter}, seed={self.seed}, "
            f"api_keys={keys}, rate_limit={self.rate_limit}, faults=[{', '.join(map(str, self.faults))}])"
        )
