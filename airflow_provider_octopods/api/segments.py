"""SMS segment counting (what a message is billed as)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache

# GSM 03.38 basic character set; the extension characters below cost two septets each.
_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")
_GSM7 = _GSM7_BASIC | _GSM7_EXTENSION
# The same sets for an ASCII text, as patterns: scanning with them beats making a set of its characters.
_ASCII_OUTSIDE_GSM7 = re.compile(f"[^{re.escape(''.join(sorted(c for c in _GSM7 if c.isascii())))}]")
_ASCII_EXTENSION = re.compile(f"[{re.escape(''.join(sorted(c for c in _GSM7_EXTENSION if c.isascii())))}]")


def is_gsm7(char: str) -> bool:
    """Whether ``char`` can be sent without switching the message to UCS-2."""
    return char in _GSM7


class Encoding(str, Enum):
    """How the network carries the text: GSM-7 (160 per SMS) or UCS-2 (70 per SMS)."""

    GSM7 = "GSM-7"
    UCS2 = "UCS-2"


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """How a body will be billed: ``segments`` parts in ``encoding``, ``units`` characters long."""

    segments: int
    encoding: Encoding
    units: int


def count_segments(body: str) -> SegmentInfo:
    """Count the SMS parts ``body`` is split into.

    GSM-7: 160 septets in one SMS, 153 per part when split (extension characters count two).
    Any character outside GSM-7 switches the whole message to UCS-2: 70 in one SMS, 67 per part,
    counted in UTF-16 code units (an emoji is two).
    """
    if body.isascii():
        if _ASCII_OUTSIDE_GSM7.search(body) is None:
            return _info(len(body) + len(_ASCII_EXTENSION.findall(body)), Encoding.GSM7)
        return _info(len(body), Encoding.UCS2)  # one UTF-16 unit per ASCII character
    characters = set(body)
    if characters <= _GSM7:
        units = len(body) + sum(body.count(c) for c in characters & _GSM7_EXTENSION)
        return _info(units, Encoding.GSM7)
    return _info(len(body.encode("utf-16-le")) // 2, Encoding.UCS2)


@lru_cache(maxsize=4096)
def _info(units: int, encoding: Encoding) -> SegmentInfo:
    """One shared (immutable) instance per length and encoding: a batch's rows hold few distinct ones."""
    if encoding is Encoding.GSM7:
        return SegmentInfo(_parts(units, 160, 153), encoding, units)
    return SegmentInfo(_parts(units, 70, 67), encoding, units)


def _parts(units: int, single: int, per_part: int) -> int:
    if units <= single:
        return 1
    return -(-units // per_part)
