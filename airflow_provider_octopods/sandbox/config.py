"""Sandbox settings: which documented API variant to speak and how fast messages progress."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


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
    """

    variant: Variant = Variant.CURRENT
    sent_after: float = 0.5
    final_after: float = 1.0
    delivery_jitter: float = 0.0
    seed: int | None = None
    api_keys: frozenset[str] | None = None
    first_message_id: int = 4829174

    def __post_init__(self) -> None:
        if self.sent_after < 0 or self.final_after < self.sent_after or self.delivery_jitter < 0:
            raise ValueError("need 0 <= sent_after <= final_after and delivery_jitter >= 0")
        object.__setattr__(self, "variant", Variant(self.variant))
        if self.api_keys is not None:
            object.__setattr__(self, "api_keys", frozenset(self.api_keys))

    def __repr__(self) -> str:
        keys = "any" if self.api_keys is None else f"{len(self.api_keys)} key(s)"
        return (
            f"SandboxConfig(variant={self.variant.value}, sent_after={self.sent_after}, "
            f"final_after={self.final_after}, delivery_jitter={self.delivery_jitter}, seed={self.seed}, "
            f"api_keys={keys})"
        )
