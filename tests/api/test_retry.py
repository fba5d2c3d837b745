"""The retry loop's counting of tries."""

from __future__ import annotations

import pytest


def test_rate_limited_answers_can_be_counted_apart_from_other_failures() -> None:
    from airflow_provider_octopods.api.errors import OctopodsRateLimitError, OctopodsServerError
    from airflow_provider_octopods.api.models import SendRequest
    from airflow_provider_octopods.api.protocol import send_call
    from airflow_provider_octopods.api.retry import RetryingCall, RetryPolicy, Wait

    call = send_call("https://app.octopods.io", SendRequest("+15005550100", "hi"))
    too_many = OctopodsRateLimitError("slow down", http_status=429)
    down = OctopodsServerError("busy", http_status=503)
    plain = RetryingCall(RetryPolicy(max_attempts=3), call)
    assert isinstance(plain.settle(None, too_many), Wait)
    assert isinstance(plain.settle(None, too_many), Wait)
    with pytest.raises(OctopodsRateLimitError):
        plain.settle(None, too_many)  # 429s use up the ordinary tries
    patient = RetryingCall(RetryPolicy(max_attempts=2, max_rate_limited=10), call)
    for _ in range(9):
        assert isinstance(patient.settle(None, too_many), Wait)
    with pytest.raises(OctopodsRateLimitError):
        patient.settle(None, too_many)
    other = RetryingCall(RetryPolicy(max_attempts=2, max_rate_limited=10), call)
    assert isinstance(other.settle(None, too_many), Wait)
    assert isinstance(other.settle(None, down), Wait)
    with pytest.raises(OctopodsServerError):
        other.settle(None, down)
