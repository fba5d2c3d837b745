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


def test_an_e164_number_is_masked_as_the_same_number_written_with_spaces() -> None:
    """Numbers in E.164 form take a quicker way through ``mask_phone``, with the same result."""
    import random

    rng = random.Random(11)
    for _ in range(3000):
        digits = str(rng.randint(1, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(rng.randint(4, 14)))
        spaced = f"+{digits[:2]} {digits[2:]}"
        assert mask_phone(f"+{digits}") == mask_phone(spaced), digits


def test_every_country_calling_code_is_kept_whole() -> None:
    """The code is found by its digits alone; every code phonenumbers knows is kept, in ASCII or in
    other decimal digits (Arabic-Indic here), and nothing longer is taken for one."""
    from phonenumbers import COUNTRY_CODE_TO_REGION_CODE

    arabic = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
    for code in COUNTRY_CODE_TO_REGION_CODE:
        number = f"+{code}5550001234"
        assert mask_phone(number).startswith(f"+{code}*"), number
        assert mask_phone(number.translate(arabic)).startswith(f"+{str(code).translate(arabic)}*"), number


def test_server_text_gives_identifiers_back_as_the_full_path_would() -> None:
    """The shortcut for one-word identifiers returns exactly what collapsing and masking would."""
    import random

    from airflow_provider_octopods.api import masking

    rng = random.Random(7)

    def hex_group(n: int) -> str:  # digit-heavy: many have nine digits in a row, as a phone number has
        return "".join(rng.choice("0123456789" if rng.random() < 0.6 else "0123456789abcdefABCDEF") for _ in range(n))

    uuids = [  # request ids, and words nearly shaped as one
        "-".join(hex_group(n) for n in groups)
        for groups in [(8, 4, 4, 4, 12)] * 2000 + [(8, 4, 4, 12), (9, 4, 4, 4, 12), (8, 4, 4, 4, 13)] * 200
    ]
    words = ["req-", "SM", "a", "_", "-", "--", "---", "0", "12345678", "123456789", "4829174", "+"]
    samples = [
        "c5b0e6d2-1f7e-4d8a-9d3e-6f1b2a3c4d5e",
        "12345678-1234-1234-1234-123456789012",
        "1234-5678-9",
        "447700900123",
        "x447700900123",
        *uuids,
        *(f"{u} {u}" for u in uuids[:50]),
        *(f"{u}{around}" for u in uuids[:50] for around in ("\n", "\t", " +447700900123", "447700900123")),
        *(f"{around}{u}" for u in uuids[:50] for around in (" ", "+1 ", "x")),
        *(u[:8] + u[9:20] + "-" + u[20:] for u in uuids[:200]),  # 36 characters, a dash moved
        *("".join(rng.choice(words) for _ in range(rng.randint(1, 6))) for _ in range(3000)),
    ]
    for text in samples:
        slow = masking.mask_phones_in(" ".join(text.split()))
        assert masking.server_text(text, limit=200) == slow, text
    for u in uuids[:100]:  # a limit under an identifier's length still cuts it
        for limit in (20, 35):
            shown = masking.server_text(u, limit=limit)
            assert shown.endswith("…"), (u, shown)
            assert len(shown) <= limit, (u, shown)


@pytest.mark.parametrize(
    "text",
    [
        "c5b0e6d2-1f7e-4d8a-9d3e-6f1b2a3c4d5e +447700900123",  # a UUID, then a number
        "c5b0e6d2-1f7e-4d8a-9d3e-6f1b2a3c4d5e\n447700900123",
        "abcdef-447700900123-abcdef-ab-abcdef",  # as long as a UUID, another shape
        "abcdefgh-ijkl-mnop-qrst-447700900123",  # a UUID's shape, letters past f
    ],
)
def test_server_text_masks_a_number_in_or_after_what_only_looks_like_a_request_id(text: str) -> None:
    from airflow_provider_octopods.api.masking import server_text

    assert "447700900123" not in server_text(text, limit=200)
    assert "447700900123" not in server_text(text, limit=60)
