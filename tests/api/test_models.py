from __future__ import annotations

import json

from airflow_provider_octopods.api import build_send_request
from airflow_provider_octopods.api.models import SendResult


def test_send_result_for_xcom_masks_the_phone_number() -> None:
    request = build_send_request("+15551234567", "Hello")
    result = SendResult.from_response(
        {"request_id": "r1", "message_id": 42, "phone_number": "+15551234567"},
        phone=request.phone,
        segments=request.segment_info,
    )
    summary = result.to_dict()
    assert summary == {
        "request_id": "r1",
        "message_id": 42,
        "phone": "+1*******567",
        "segments": 1,
        "encoding": "GSM-7",
        "channel_message_id": None,
    }
    assert "5551234567" not in json.dumps(summary)
    assert result.phone == "+15551234567"  # the object itself keeps the number it sent to
