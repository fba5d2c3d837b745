"""Checks on user input, run before any request is made.

Each failure raises :class:`OctopodsValidationError` naming the field and what is wrong with
the value, never echoing anything secret.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

from airflow_provider_octopods.api.errors import OctopodsMalformedAnswerError, OctopodsValidationError
from airflow_provider_octopods.api.masking import mask_phone
from airflow_provider_octopods.api.models import message_id_from_answer

MAX_BODY_CHARS = 1600
MAX_CONN_ID_CHARS = 250  # Airflow's own limit

_EXTENSION_PROBLEM = "has an extension; an SMS cannot be sent to an extension"
_TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
_FALSE_WORDS = frozenset({"false", "0", "no", "off"})
_REGION = re.compile(r"^[A-Za-z]{2}$")
_MAX_ID_DIGITS = 19  # 2**63 - 1, the largest id, has 19
_SHOWN_CHARS = 60
# Extension markers written by people: "ext 9", "ext. 9", "extension 9", "x9", ";ext=9", "#9".
_PLAIN_E164 = re.compile(r"\+[0-9]{1,20}")
_EXTENSION = re.compile(r"#\s*\d|;\s*ext\b|\bext(?:ension|n)?\b|(?<![^\W\d_])x\.?\s*:?\s*\d", re.IGNORECASE)
# Never sent: C0 and C1 controls (a body may hold line breaks and tabs), the bidirectional
# controls that make text display in another order than it is read (U+202E...), and lone
# surrogates, which are not text and cannot be encoded.
_CONTROLS = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNSAFE_IN_BODY = re.compile(f"[{_CONTROLS}{_BIDI}\ud800-\udfff]")
_UNSAFE_IN_LINE = re.compile(f"[\t\n\r{_CONTROLS}{_BIDI}\ud800-\udfff]")
# Text that shows nothing: whitespace, zero-width characters, the byte order mark, fillers and
# variation selectors. Such a body counts as blank.
_INVISIBLE = re.compile(
    "[\\s\u00ad\u034f\u115f\u1160\u180e\u200b-\u200d\u2060-\u2064\u2800\u3164\ufe00-\ufe0f"
    "\ufeff\uffa0\U000e0000-\U000e007f\U000e0100-\U000e01ef]*"
)


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
    if _PLAIN_E164.fullmatch(text):  # "+" and digits only: none of the checks below can fail
        return _possible_e164(phonenumbers, text, region, field)
    check_characters(text, field=field, line=True)
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
    return _possible_e164(phonenumbers, text, region, field)


def _possible_e164(phonenumbers: Any, text: str, region: str | None, field: str) -> str:
    """``text`` parsed by phonenumbers, checked to be a possible number, as E.164."""
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
        raise OctopodsValidationError(field, f"must be a two-letter region code such as 'US', got {shown(value)}")
    import phonenumbers

    region = value.strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise OctopodsValidationError(
            field, f"{region!r} is not a known region code (ISO 3166-1 alpha-2, such as 'US' or 'GB')"
        )
    return region


def validate_body(value: object, *, field: str = "body") -> str:
    """Return ``value`` unchanged if it is a string of 1 to 1,600 characters that shows something.

    Line breaks and tabs are allowed; other control characters, bidirectional controls and lone
    surrogates are refused (see :func:`check_characters`). A body of only whitespace and
    invisible characters (zero-width space, byte order mark...) counts as blank.
    """
    if not isinstance(value, str):
        raise OctopodsValidationError(field, f"must be a string, got {type(value).__name__}")
    if len(value) > MAX_BODY_CHARS:
        raise OctopodsValidationError(
            field, f"is {len(value)} characters long; the API accepts at most {MAX_BODY_CHARS}"
        )
    check_characters(value, field=field)
    if is_blank(value):
        raise OctopodsValidationError(field, "is empty or blank (nothing visible)")
    return value


def is_blank(text: str) -> bool:
    """Whether ``text`` shows nothing: only whitespace and invisible characters, or nothing at all."""
    return _INVISIBLE.fullmatch(text) is not None


def check_characters(text: str, *, field: str, line: bool = False) -> None:
    """Refuse characters that must never reach the API or a phone screen.

    Refused everywhere: C0 and C1 control characters (NUL, BEL, ESC, DEL...), bidirectional
    controls (U+061C, U+200E, U+200F, U+202A to U+202E, U+2066 to U+2069) and lone surrogates.
    A body may hold line breaks (LF, CR) and tabs; a one-line value (``line=True``: a phone, a
    name) may not. The error names the code point and its position, never the text.
    """
    found = (_UNSAFE_IN_LINE if line else _UNSAFE_IN_BODY).search(text)
    if found is None:
        return
    code = ord(found.group())
    where = f"U+{code:04X} at position {found.start() + 1}"
    if 0xD800 <= code <= 0xDFFF:
        problem = f"contains a lone surrogate ({where}), which is not valid Unicode text"
    elif found.group() in "\t\n\r":
        problem = f"contains a line break or tab ({where}); it must be a single line"
    elif code < 0x20 or 0x7F <= code <= 0x9F:
        allowed = "" if line else "; only line breaks and tabs are allowed"
        problem = f"contains the control character {where}{allowed}"
    else:
        problem = (
            f"contains a bidirectional control character ({where}), which makes text display in "
            "another order than it is read"
        )
    raise OctopodsValidationError(field, problem)


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
    raise OctopodsValidationError(field, f"must be a boolean (true/false, 1/0, yes/no, on/off), got {shown(value)}")


def optional_text(value: object, *, field: str, max_chars: int = 255) -> str | None:
    """Return a stripped optional string, None for None or blank, or raise naming ``field``."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > 4 * max_chars:  # str() of a huge int would take long, then fail
            raise OctopodsValidationError(field, f"is a number longer than {max_chars} digits")
        value = str(value)
    if not isinstance(value, str):
        raise OctopodsValidationError(field, f"must be a string, got {type(value).__name__}")
    text = value.strip()
    if len(text) > max_chars:
        raise OctopodsValidationError(field, f"is {len(text)} characters long; at most {max_chars} allowed")
    check_characters(text, field=field, line=True)
    return None if is_blank(text) else text


def validate_conn_id(value: object, *, field: str = "octopods_conn_id") -> str:
    """Return ``value`` if it can name an Airflow connection: a one-line string of 1 to 250 characters."""
    if not isinstance(value, str) or not value.strip():
        raise OctopodsValidationError(field, f"must be a connection id such as 'octopods_default', got {shown(value)}")
    if len(value) > MAX_CONN_ID_CHARS:
        raise OctopodsValidationError(field, f"is {len(value)} characters long; at most {MAX_CONN_ID_CHARS} allowed")
    check_characters(value, field=field, line=True)
    return value


def validate_message_id(value: object, *, field: str = "message_id") -> int | str:
    """Return a message id usable in a URL path: a positive integer (digits become an int) or a
    short token, by the same rule as an id in an answer (``models.message_id_from_answer``).

    None (or a template that rendered it as "None") means the send returned no id, as on
    HubSpot workspaces; the error says so.
    """
    if value is None or (isinstance(value, str) and value.strip() in ("", "None", "null")):
        raise OctopodsValidationError(
            field,
            "is empty: the send returned no message_id (HubSpot workspaces return none, so their "
            "delivery cannot be tracked)",
        )
    candidate = value.strip() if isinstance(value, str) else value
    if isinstance(candidate, str) and candidate.isascii() and candidate.isdigit() and len(candidate) <= _MAX_ID_DIGITS:
        candidate = int(candidate)
    try:
        return message_id_from_answer(candidate)
    except OctopodsMalformedAnswerError:
        raise OctopodsValidationError(
            field, f"{shown(value)} is not a message id (expected a positive number such as 4829174)"
        ) from None


def positive_number(value: object, *, field: str) -> float:
    """Return ``value`` as a float if it is a positive number (strings like "10" accepted)."""
    if isinstance(value, bool):
        raise OctopodsValidationError(field, f"must be a positive number, got {shown(value)}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        raise OctopodsValidationError(field, f"must be a positive number, got {shown(value)}") from None
    if not number > 0 or number == float("inf"):
        raise OctopodsValidationError(field, f"must be a positive number, got {shown(value)}")
    return number


def shown(value: object) -> str:
    """``value`` as an error message shows it: its repr, cut short. Never raises, whatever the value
    (``repr`` fails on an int of more than 4,300 digits and on a list nested too deep)."""
    try:
        text = repr(value)
    except Exception:  # a hostile __repr__, or a structure nested too deep to print
        return f"a {type(value).__name__}"
    return text if len(text) <= _SHOWN_CHARS else f"{text[: _SHOWN_CHARS - 3]}..."


def rendered_list(text: str) -> list[Any] | None:
    """The list a template rendered to text (``"[1, 2]"``: JSON or a Python list's repr, as Jinja
    renders an XCom list), or None if ``text`` is not one."""
    stripped = text.strip()
    if not stripped.startswith("["):
        return None
    try:
        value = json.loads(stripped)
    except (ValueError, RecursionError):
        try:
            value = ast.literal_eval(stripped)
        except (ValueError, SyntaxError, RecursionError, MemoryError):
            # Nesting too deep for Python's parser is reported as RecursionError or MemoryError.
            return None
    return value if isinstance(value, list) else None


def flag(value: object, *, field: str) -> bool:
    """``value`` as True or False: a bool, or the text "true"/"false" (what a rendered template gives)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise OctopodsValidationError(field, f"must be True or False, got {shown(value)}")


def whole_number(value: object, *, field: str, minimum: int = 1) -> int:
    """``value`` if it is a whole number (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise OctopodsValidationError(field, f"must be a whole number of at least {minimum}, got {shown(value)}")
    return value


def ratio(value: object, *, field: str) -> float:
    """``value`` as a share between 0 and 1 (a number, not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise OctopodsValidationError(field, f"must be a number, got {shown(value)}")
    if not 0 <= value <= 1:
        raise OctopodsValidationError(field, f"must be between 0 and 1, got {shown(value)}")
    return float(value)


def optional_string(value: object, *, field: str) -> None:
    """Refuse ``value`` unless it is None or a string."""
    if value is not None and not isinstance(value, str):
        raise OctopodsValidationError(field, f"must be a string, got {type(value).__name__}")


def campaign_name(value: object) -> str | None:
    """A batch campaign's name, or None: a non-empty line of at most 200 characters."""
    optional_string(value, field="campaign")
    if value is None:
        return None
    name = str(value)
    if not name.strip() or len(name) > 200 or not name.isprintable():
        raise OctopodsValidationError("campaign", "must be a non-empty name of at most 200 characters on one line")
    return name
