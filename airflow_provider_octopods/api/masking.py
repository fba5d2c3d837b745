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
    """The country calling code at the start of an E.164 number. Calling codes are prefix-free,
    so the first prefix that is one is the code (a dict lookup; parsing the number costs 40 µs)."""
    from phonenumbers import COUNTRY_CODE_TO_REGION_CODE

    digits = "".join(_DIGITS.findall(e164))
    for length in (1, 2, 3):
        if digits[:length] and int(digits[:length]) in COUNTRY_CODE_TO_REGION_CODE:
            return digits[:length]
    return digits[:1]


# A phone number inside free text: 9 to 15 digits, maybe a leading "+", spaces, dots, dashes or
# brackets between them, standing alone (not part of a word, a hyphenated id such as a UUID, a time).
_PHONE_IN_TEXT = re.compile(r"(?<![\w+\-:])\+?\(?\d(?:[ .()\-]{0,2}\d){8,14}(?![\w\-:])")
SERVER_TEXT_LIMIT = 300


def mask_phones_in(text: str) -> str:
    """``text`` with every phone number in it masked as :func:`mask_phone` does."""
    return _PHONE_IN_TEXT.sub(lambda match: mask_phone(match.group()), text)


def server_text(text: str, *, limit: int = SERVER_TEXT_LIMIT) -> str:
    """Text that came from a server, made safe to put in an error or a log line.

    Whitespace runs (line breaks included) become one space, phone numbers are masked, and the
    result is cut to ``limit`` characters (the last one then an ellipsis).
    """
    # Enough margin that a number starting before the cut is masked whole before cutting.
    head = " ".join(text[: limit + 64].split())
    masked = mask_phones_in(head)
    if len(masked) <= limit and len(text) <= limit + 64:
        return masked
    cut = masked[: limit - 1].rstrip()
    return f"{cut}…" if cut else ""
