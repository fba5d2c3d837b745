"""Magic phone numbers that force each outcome, like a payment provider's test cards.

Every other valid number is delivered: queued, then sent, then delivered.
"""

from __future__ import annotations

from dataclasses import dataclass

from airflow_provider_octopods.api.models import DeliveryStatus


@dataclass(frozen=True)
class Scenario:
    """What happens to a message sent to one number.

    ``error_code`` set: the send is refused with that API error code. Otherwise the message is
    accepted and ends in ``final_status`` (``None``: stays ``sent`` forever).

    :ivar description: what happens, in words.
    :ivar final_status: the status the message ends in; None: it stays ``sent``.
    :ivar failure_reason: the carrier's reason given with a failed status.
    :ivar error_code: the API error code the send is refused with, if any.
    :ivar error_text: the text of that refusal.
    """

    description: str
    final_status: DeliveryStatus | None = DeliveryStatus.DELIVERED
    failure_reason: str | None = None
    error_code: int | None = None
    error_text: str | None = None


DELIVERED = Scenario("delivered (any number that is not listed here)")

MAGIC_NUMBERS: dict[str, Scenario] = {
    "+15005550100": DELIVERED,
    "+15005550101": Scenario(
        "failed: not a valid mobile subscriber",
        DeliveryStatus.FAILED,
        failure_reason="The destination is not a valid mobile subscriber.",
    ),
    "+15005550102": Scenario(
        "undelivered: handset out of coverage too long",
        DeliveryStatus.UNDELIVERED,
        failure_reason="The handset was out of coverage for longer than the carrier's retry window.",
    ),
    "+15005550103": Scenario("sent, never delivered (carrier without receipts)", None),
    "+15005550104": Scenario("refused with error 3 PHONE_INVALID", error_code=3, error_text="Invalid Phone number."),
    "+15005550105": Scenario(
        "refused with error 4 SMS_ERROR", error_code=4, error_text="The SMS provider rejected the message."
    ),
    "+15005550106": Scenario(
        "refused with error 5 DEPRECATED_API_KEY",
        error_code=5,
        error_text="The API key has been rotated or revoked.",
    ),
}


def scenario_for(phone: str) -> Scenario:
    return MAGIC_NUMBERS.get(phone, DELIVERED)
