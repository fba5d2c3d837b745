"""The pure Octopods API layer: models, validation, wire protocol, retry rules.

Nothing here imports Airflow or does I/O; the hook, the clients and the sandbox build on it.
"""

from __future__ import annotations

from airflow_provider_octopods.api.delivery import DeliveryTarget, Outcome, describe
from airflow_provider_octopods.api.errors import (
    OctopodsAPIError,
    OctopodsArgumentMissingError,
    OctopodsAuthError,
    OctopodsConfigurationError,
    OctopodsDeprecatedKeyError,
    OctopodsEmptyBodyError,
    OctopodsError,
    OctopodsInvalidPhoneError,
    OctopodsMalformedAnswerError,
    OctopodsNotFoundError,
    OctopodsRateLimitError,
    OctopodsServerError,
    OctopodsSmsRejectedError,
    OctopodsSupersededError,
    OctopodsTLSError,
    OctopodsTransportError,
    OctopodsUnknownOutcomeError,
    OctopodsValidationError,
)
from airflow_provider_octopods.api.models import (
    DeliveryStatus,
    MessageId,
    MessageStatus,
    SendRequest,
    SendResult,
)
from airflow_provider_octopods.api.segments import Encoding, SegmentInfo, count_segments
from airflow_provider_octopods.api.settings import ClientSettings
from airflow_provider_octopods.api.validation import (
    coerce_bool,
    normalize_phone,
    optional_text,
    validate_body,
)


def build_send_request(
    phone: object,
    body: object,
    *,
    default_region: str | None = None,
    destination_user_name: object = None,
    open_intercom_conversation: object = None,
    intercom_teammate_id: object = None,
) -> SendRequest:
    """Validate every send parameter and return a :class:`SendRequest` ready for the wire."""
    return SendRequest(
        phone=normalize_phone(phone, default_region=default_region),
        body=validate_body(body),
        destination_user_name=optional_text(destination_user_name, field="destination_user_name"),
        open_intercom_conversation=coerce_bool(open_intercom_conversation, field="open_intercom_conversation"),
        intercom_teammate_id=optional_text(intercom_teammate_id, field="intercom_teammate_id"),
    )


__all__ = [
    "ClientSettings",
    "DeliveryStatus",
    "DeliveryTarget",
    "Encoding",
    "MessageId",
    "MessageStatus",
    "OctopodsAPIError",
    "OctopodsArgumentMissingError",
    "OctopodsAuthError",
    "OctopodsConfigurationError",
    "OctopodsDeprecatedKeyError",
    "OctopodsEmptyBodyError",
    "OctopodsError",
    "OctopodsInvalidPhoneError",
    "OctopodsMalformedAnswerError",
    "OctopodsNotFoundError",
    "OctopodsRateLimitError",
    "OctopodsServerError",
    "OctopodsSmsRejectedError",
    "OctopodsSupersededError",
    "OctopodsTLSError",
    "OctopodsTransportError",
    "OctopodsUnknownOutcomeError",
    "OctopodsValidationError",
    "Outcome",
    "SegmentInfo",
    "SendRequest",
    "SendResult",
    "build_send_request",
    "count_segments",
    "describe",
]
