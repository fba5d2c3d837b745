from __future__ import annotations

import pytest

from airflow_provider_octopods.api.segments import Encoding, count_segments


@pytest.mark.parametrize(
    ("body", "segments", "encoding", "units"),
    [
        ("a" * 160, 1, Encoding.GSM7, 160),
        ("a" * 161, 2, Encoding.GSM7, 161),
        ("a" * 306, 2, Encoding.GSM7, 306),
        ("a" * 307, 3, Encoding.GSM7, 307),
        ("€" * 80, 1, Encoding.GSM7, 160),  # extension characters count twice
        ("€" * 81, 2, Encoding.GSM7, 162),
        ("Grüße, Ñandù! £5 @ 10:00", 1, Encoding.GSM7, 24),
        ("Ñandú", 1, Encoding.UCS2, 5),  # ú (acute) is not GSM-7, ù (grave) is
        ("ç" * 70, 1, Encoding.UCS2, 70),  # lower-case ç is not GSM-7
        ("ç" * 71, 2, Encoding.UCS2, 71),
        ("a" * 134 + "✓", 3, Encoding.UCS2, 135),
        ("🙂" * 35, 1, Encoding.UCS2, 70),  # an emoji is two UTF-16 units
        ("🙂" * 36, 2, Encoding.UCS2, 72),
        ("`" + "a" * 69, 1, Encoding.UCS2, 70),  # the backtick is the one printable ASCII character GSM-7 lacks
        ("`" + "a" * 70, 2, Encoding.UCS2, 71),
        ("a\tb", 1, Encoding.UCS2, 3),  # so is a tab
        ("[x]\f" + "a" * 153, 1, Encoding.GSM7, 160),  # brackets and form feed count two
        ("[x]\f" + "a" * 154, 2, Encoding.GSM7, 161),
        ("Line one\r\nline two", 1, Encoding.GSM7, 18),
        ("\x1b", 1, Encoding.GSM7, 1),  # escape is a GSM-7 control character
    ],
)
def test_segments(body: str, segments: int, encoding: Encoding, units: int) -> None:
    info = count_segments(body)
    assert (info.segments, info.encoding, info.units) == (segments, encoding, units)


@pytest.mark.parametrize(
    "alphabet",
    ["aZ09 @£ÄñÑ\n^{}\\[~]|€\fçú✓🙂", "".join(map(chr, range(128))), "aZ09 .,!?:\n^{}\\[~]|\f"],
    ids=["mixed", "every-ascii-character", "ascii-gsm7"],
)
def test_segments_agree_with_counting_character_by_character(alphabet: str) -> None:
    """The counting by character sets (by patterns for ASCII texts) gives what counting each character gives."""
    import random

    rng = random.Random(7)
    for _ in range(2000):
        body = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 400)))
        info = count_segments(body)
        assert (info.segments, info.encoding, info.units) == _counted_one_by_one(body), body


def _counted_one_by_one(body: str) -> tuple[int, Encoding, int]:
    from airflow_provider_octopods.api.segments import is_gsm7

    if all(is_gsm7(c) for c in body):
        units = sum(2 if c in "^{}\\[~]|€\f" else 1 for c in body)
        return (1 if units <= 160 else -(-units // 153)), Encoding.GSM7, units
    units = len(body.encode("utf-16-le")) // 2
    return (1 if units <= 70 else -(-units // 67)), Encoding.UCS2, units


@pytest.mark.parametrize("code", range(128))
def test_each_ascii_character_counts_as_counting_it_alone_says(code: int) -> None:
    """Every ASCII character, alone, at the one-segment edge and repeated: the scans that count an
    ASCII text agree with the character-by-character count."""
    char = chr(code)
    for body in (char, "a" * 159 + char, "a" * 160 + char, char * 81):
        info = count_segments(body)
        assert (info.segments, info.encoding, info.units) == _counted_one_by_one(body), repr(body)
