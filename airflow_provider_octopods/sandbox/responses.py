"""Response bodies in each documented variant's shape."""

from __future__ import annotations

from typing import Any

from airflow_provider_octopods.api.models import DeliveryStatus
from airflow_provider_octopods.api.protocol import ERROR_CODE_NAMES
from airflow_provider_octopods.sandbox.config import SandboxConfig, Variant
from airflow_provider_octopods.sandbox.store import AcceptedMessage, Progress

_LEGACY_MESSAGES = {
    DeliveryStatus.QUEUED: "Your message is queued.",
    DeliveryStatus.SENT: "Your message has been sent to the carrier.",
    DeliveryStatus.DELIVERED: "Your message has been delivered successfully.",
}


def send_body(config: SandboxConfig, message: AcceptedMessage) -> dict[str, Any]:
    if config.variant is Variant.HUBSPOT:
        return {"request_id": message.request_id}
    plus = config.plus_in_phone if config.plus_in_phone is not None else config.variant is not Variant.LEGACY
    body: dict[str, Any] = {
        "request_id": message.request_id,
        "message_id": message.message_id,
        "phone_number": message.phone if plus else message.phone.lstrip("+"),
    }
    if config.channel_message_id:
        body["channel_message_id"] = f"SM{message.message_id:032x}"
    return body


def gateway_page(status: int) -> str:
    """The HTML a load balancer shows when the application behind it fails."""
    title = {500: "500 Internal Server Error", 502: "502 Bad Gateway", 503: "503 Service Temporarily Unavailable"}
    text = title.get(status, str(status))
    lines = ["<html>", f"<head><title>{text}</title></head>", "<body>", f"<center><h1>{text}</h1></center>"]
    return "\r\n".join([*lines, "</body>", "</html>", ""])


def status_body(variant: Variant, message: AcceptedMessage, state: Progress, request_id: str) -> dict[str, Any]:
    if variant is Variant.LEGACY:
        return {
            "message_id": message.message_id,
            "status": state.status.value.upper(),
            "status_message": _LEGACY_MESSAGES.get(state.status, message.scenario.failure_reason),
            "last_updated": _iso(state.updated_at),
            "request_id": request_id,
        }
    return {
        "request_id": request_id,
        "message_id": message.message_id,
        "status": state.status.value,
        "phone_number": message.phone,
        "sent_at": _iso(state.sent_at) if state.sent_at else None,
        "delivered_at": _iso(state.final_at) if state.status is DeliveryStatus.DELIVERED and state.final_at else None,
        "failure_reason": message.scenario.failure_reason if state.status.is_failure else None,
    }


def error_body(code: int, text: str, request_id: str) -> dict[str, Any]:
    return {"request_id": request_id, "error_code": code, "error": text or ERROR_CODE_NAMES[code]}


def _iso(moment: Any) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
