"""Masking of personal data for log lines."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

_DIGITS = re.compile(r"\d")


def mask_phone(phone: object, *, keep_last: int = 3) -> str:
    """Mask a phone number for logs: keep a leading country code and the last digits.

    ``+15551234567`` becomes ``+1*******567``; ``+447700900123`` becomes ``+44*******123``.
    Anything that is not a string is masked whole.
    """
    if not isinstance(phone, str) or not phone:
        return "***"
    text = phone.strip()
    if text[:1] == "+" and text[1:].isdecimal() and text.isascii():  # E.164, as every number sent
        digits: Sequence[str] = text[1:]
    else:
        digits = [c for c in text if c.isdigit()]
    if len(digits) <= keep_last + 1:
        return "*" * len(text)
    country = _country_code(text) if text.startswith("+") else ""
    middle = len(digits) - len(country) - keep_last
    return f"{'+' if country else ''}{country}{'*' * max(middle, 1)}{''.join(digits[-keep_last:])}"


def _country_code(e164: str) -> str:
    """The country calling code at the start of an E.164 number. Calling codes are prefix-free,
    so the first prefix that is one is the code (a set lookup, without parsing the number)."""
    digits = e164[1:] if e164[1:].isdecimal() and e164.isascii() else "".join(_DIGITS.findall(e164))
    codes = _calling_codes()
    ascii_digits = digits[:3] if digits[:3].isascii() else "".join(str(int(d)) for d in digits[:3])
    for length in (1, 2, 3):
        if ascii_digits[:length] in codes:
            return digits[:length]
    return digits[:1]


@functools.cache
def _calling_codes() -> frozenset[str]:
    from phonenumbers import COUNTRY_CODE_TO_REGION_CODE  # heavy metadata: loaded on first use

    return frozenset(str(code) for code in COUNTRY_CODE_TO_REGION_CODE)


# In free text, left to right: a UUID or an ISO date-time is kept as it is; otherwise a phone
# number is 9 to 15 digits, maybe a leading "+", with spaces, dots, dashes or brackets between
# them, not inside a longer word or number ("phone:+1555...", "+1555...: invalid" are numbers).
_UUID = r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}"
_KEPT_OR_PHONE = re.compile(
    rf"(?P<kept>{_UUID}"
    r"|\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?)"
    r"|(?P<phone>(?<![\w+])\+?\(?\d(?:[ .()\-]{0,2}\d){8,14}(?!\w))"
)
SERVER_TEXT_LIMIT = 300
_SCANNED_CHARS = 64 * 1024
# One word of ASCII letters, digits, "_" and "-" (request ids, UUIDs) holds a phone number only if
# it has 9 digits apart by at most two dashes, as the phone pattern above needs.
_TOKEN = re.compile(r"[0-9A-Za-z_-]+")
_NINE_DIGITS = re.compile(r"[0-9](?:-{0,2}[0-9]){8}")
_WHOLE_UUID = re.compile(_UUID)  # kept as it is by the pattern above, digits and all


def mask_phones_in(text: str) -> str:
    """``text`` with every phone number in it masked as :func:`mask_phone` does."""
    return _KEPT_OR_PHONE.sub(lambda m: m.group() if m.group("kept") else mask_phone(m.group()), text)


def server_text(text: str, *, limit: int = SERVER_TEXT_LIMIT) -> str:
    """Text that came from a server, made safe to put in an error or a log line.

    Whitespace runs (line breaks included) become one space, phone numbers are masked, and the
    result is cut to ``limit`` characters (the last one then an ellipsis).
    """
    if len(text) <= limit and (
        _WHOLE_UUID.fullmatch(text) or (_TOKEN.fullmatch(text) and not _NINE_DIGITS.search(text))
    ):
        return text  # an identifier: nothing to collapse, mask or cut
    head = " ".join(text[:_SCANNED_CHARS].split())
    # Masked with a margin past the cut, so that a number across the cut is masked whole first.
    masked = mask_phones_in(head[: limit + 64])
    if len(head) <= limit and len(text) <= _SCANNED_CHARS:
        return masked
    cut = masked[: limit - 1].rstrip()
    return f"{cut}…" if cut else ""
