from __future__ import annotations

import pytest

from airflow_provider_octopods.api.masking import mask_phone


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("+15551234567", "+1*******567"),
        ("+447700900123", "+44*******123"),
        ("+353838000000", "+353******000"),
        ("07700900123", "********123"),
        ("123", "***"),
        (None, "***"),
        (15551234567, "***"),
    ],
)
def test_mask_phone_keeps_country_code_and_last_digits(phone: object, masked: str) -> None:
    assert mask_phone(phone) == masked
