"""Masking of personal data for log lines."""

from __future__ import annotations

import re

_DIGITS = re.compile(r"\d")


def mask_phone(phone: object, *, keep_last: int = 3) -> str:
    """Mask a phone number for logs: keep a leading country code and the last digits.

    ``+15551234567`` becomes ``+1*******567``; ``+447700900123`` becomes ``+44*******123``.
    Anything that is not a string is masked whole.
    """
    if not isinstance(phone, str) or not phone:
        return "***"
    text = phone.strip()
    digits = [c for c in text if c.isdigit()]
    if len(digits) <= keep_last + 1:
        return "*" * len(text)
    country = _country_code(text) if text.startswith("+") else ""
    middle = len(digits) - len(country) - keep_last
    return f"{'+' if country else ''}{country}{'*' * max(middle, 1)}{''.join(digits[-keep_last:])}"


def _country_code(e164: str) -> str:
    # Lazy import: phonenumbers' metadata is large and only needed when a number is masked.
    import phonenumbers

    try:
        return str(phonenumbers.parse(e164, None).country_code)
    except phonenumbers.NumberParseException:
        return "".join(_DIGITS.findall(e164))[:1]
