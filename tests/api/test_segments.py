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
    ],
)
def test_segments(body: str, segments: int, encoding: Encoding, units: int) -> None:
    info = count_segments(body)
    assert (info.segments, info.encoding, info.units) == (segments, encoding, units)
