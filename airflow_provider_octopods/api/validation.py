"""Checks on user input, run before any request is made.

Each failure raises :class:`OctopodsValidationError` naming the field and what is wrong with
the value, never echoing anything secret.
"""

from __future__ import annotations

import re

from airflow_provider_octopods.api.errors import OctopodsValidationError
from airflow_provider_octopods.api.masking import mask_phone

MAX_BODY_CHARS = 1600

_EXTENSION_PROBLEM = "has an extension; an SMS cannot be sent to an extension"
_TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
_FALSE_WORDS = frozenset({"false", "0", "no", "off"})
_REGION = re.compile(r"^[A-Za-z]{2}$")
_MESSAGE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Extension markers written by people: "ext 9", "ext. 9", "extension 9", "x9", ";ext=9", "#9".
_EXTENSION = re.compile(r"#\s*\d|;\s*ext\b|\bext(?:ension|n)?\b|(?<![^\W\d_])x\.?\s*:?\s*\d", re.IGNORECASE)


def normalize_phone(value: object, *, default_region: str | None = None, field: str = "phone") -> str:
    """Return ``value`` as an E.164 number (``+15551234567``).

    National formats (``07700 900123``) need ``default_region`` (ISO 3166 code such as ``GB``).
    Numbers that cannot exist (wrong length, no country code) are rejected, and so are letters
    (``+1555CALLNOW`` is not read as keypad digits) and extensions (an SMS cannot reach one).
    Numbers of a plausible shape are accepted even if the local numbering plan metadata does not
    know their range: the API itself only checks E.164 form, and its own examples use such numbers.

    :param value: the number as the user wrote it.
    :param default_region: region for numbers written without ``+country``; must be one that
        phonenumbers knows, else the error names ``default_region``.
    :param field: the name used in error messages.
    :raises OctopodsValidationError: naming ``field`` (the number masked), or ``default_region``.
    """
    import phonenumbers  # heavy metadata: imported only when a number is checked

    if not isinstance(value, str):
        raise OctopodsValidationError(field, f"must be a string, got {type(value).__name__}")
    text = value.strip()
    if not text:
        raise OctopodsValidationError(field, "is empty")
    region = validate_region(default_region) if default_region else None
    if region is not None and region not in phonenumbers.SUPPORTED_REGIONS:
        raise OctopodsValidationError(
            "default_region", f"{region!r} is not a known region code (ISO 3166-1 alpha-2, such as 'US' or 'GB')"
        )
    if _EXTENSION.search(text):
        raise OctopodsValidationError(field, f"{mask_phone(text)} {_EXTENSION_PROBLEM}")
    if any(c.isalpha() for c in text):
        raise OctopodsValidationError(
            field,
            f"{mask_phone(text)} contains letters; write the number with digits only "
            "(letters are not converted to keypad digits)",
        )
    if not text.startswith("+") and region is None:
        raise OctopodsValidationError(
            field,
            f"{mask_phone(text)} has no country code; write it in E.164 form (+<country><number>) "
            "or set default_region",
        )
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as err:
        raise OctopodsValidationError(field, f"{mask_phone(text)} is not a phone number ({err})") from None
    if parsed.extension:
        raise OctopodsValidationError(field, f"{mask_phone(text)} {_EXTENSION_PROBLEM}")
    reason = phonenumbers.is_possible_number_with_reason(parsed)
    if reason != phonenumbers.ValidationResult.IS_POSSIBLE:
        problems = {
            phonenumbers.ValidationResult.TOO_SHORT: "is too short for its country",
            phonenumbers.ValidationResult.TOO_LONG: "is too long for its country",
            phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "has an unknown country code",
            phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "is a local number: add the area code",
        }
        problem = problems.get(reason, "has the wrong length for its country")
        raise OctopodsValidationError(field, f"{mask_phone(text)} {problem}; not a possible phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def validate_region(value: object, *, field: str = "default_region") -> str:
    """Return an upper-case two-letter region code, or raise naming ``field``."""
    if not isinstance(value, str) or not _REGION.match(value.strip()):
        raise OctopodsValidationError(field, f"must be a two-letter region code such as 'US', got {value!r}")
    import phonenumbers

    region = value.strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise OctopodsValidationError(
            field, f"{region!r} is not a known region code (ISO 3166-1 alpha-2, such as 'US' or 'GB')"
        )
    return region


def validate_body(value: object, *, field: str = "body") -> str:
    """Return ``value`` unchanged if it is a non-blank string of at most 1,600 characters."""
    if not isinstance(value, str):
        raise OctopodsValidationError(field, f"must be a string, got {type(value).__name__}")
    if not value.strip():
        raise OctopodsValidationError(field, "is empty or blank")
    if len(value) > MAX_BODY_CHARS:
        raise OctopodsValidationError(
            field, f"is {len(value)} characters long; the API accepts at most {MAX_BODY_CHARS}"
        )
    return value


def coerce_bool(value: object, *, field: str) -> bool | None:
    """Accept the API's boolean spellings (true/false, 1/0, yes/no, on/off) or None."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    raise OctopodsValidationError(field, f"must be a boolean (true/false, 1/0, yes/no, on/off), got {value!r}")


def optional_text(value: object, *, field: str, max_chars: int = 255) -> str | None:
    """Return a stripped optional string, None for None or blank, or raise naming ``field``."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise OctopodsValidationError(field, f"must be a string, got {type(value).__name__}")
    text = value.strip()
    if len(text) > max_chars:
        raise OctopodsValidationError(field, f"is {len(text)} characters long; at most {max_chars} allowed")
    return text or None


def validate_message_id(value: object, *, field: str = "message_id") -> int | str:
    """Return a message id usable in a URL path: a positive integer or a short token.

    None (or a template that rendered it as "None") means the send returned no id, as on
    HubSpot workspaces; the error says so.
    """
    if value is None or (isinstance(value, str) and value.strip() in ("", "None", "null")):
        raise OctopodsValidationError(
            field,
            "is empty: the send returned no message_id (HubSpot workspaces return none, so their "
            "delivery cannot be tracked)",
        )
    if isinstance(value, bool):
        raise OctopodsValidationError(field, f"must be a message id returned by a send, got {value!r}")
    if isinstance(value, int):
        if value <= 0:
            raise OctopodsValidationError(field, f"must be positive, got {value}")
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit() and int(text) > 0:
            return int(text)
        if _MESSAGE_ID.match(text):
            return text
        raise OctopodsValidationError(field, f"{value!r} is not a message id (expected a number such as 4829174)")
    raise OctopodsValidationError(field, f"must be an int or str, got {type(value).__name__}")


def positive_number(value: object, *, field: str) -> float:
    """Return ``value`` as a float if it is a positive number (strings like "10" accepted)."""
    if isinstance(value, bool):
        raise OctopodsValidationError(field, f"must be a positive number, got {value!r}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise OctopodsValidationError(field, f"must be a positive number, got {value!r}") from None
    if not number > 0 or number == float("inf"):
        raise OctopodsValidationError(field, f"must be a positive number, got {value!r}")
    return number
