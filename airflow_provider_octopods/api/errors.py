"""The exception tree users catch by meaning.

Every error carries ``error_code`` (the API's numeric code, when it gave one), ``request_id``
(the API's trace id, when it gave one) and ``http_status``. No error ever carries the API key.

Whether an error may be retried, in the call or by Airflow, is decided in one place:
:func:`airflow_provider_octopods.api.decision.decide`.
"""

from __future__ import annotations

from typing import Any


class OctopodsError(Exception):
    """Base class of every error raised by this provider.

    :param message: what went wrong, for a human; never the key, phone numbers masked.
    :param error_code: the API's numeric error code (1 to 5), when it gave one.
    :param request_id: the API's trace id, when it gave one: quote it to Octopods support.
    :param http_status: the HTTP status of the answer, when there was one.
    """

    def __init__(
        self,
        message: str,
        *,
        error_code: int | None = None,
        request_id: str | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error_code = error_code
        self.request_id = request_id
        self.http_status = http_status

    def __reduce__(self) -> tuple[object, ...]:
        # Subclasses take other constructor arguments; rebuild from the fields instead.
        return _rebuild, (type(self), self.args, self.__dict__)

    def __str__(self) -> str:
        details = []
        if self.http_status is not None:
            details.append(f"HTTP {self.http_status}")
        if self.error_code is not None:
            details.append(f"error_code={self.error_code}")
        if self.request_id:
            details.append(f"request_id={self.request_id}")
        return f"{self.message} ({', '.join(details)})" if details else self.message


class OctopodsValidationError(OctopodsError, ValueError):
    """A parameter was rejected before any request was made; ``field`` names it.

    :param field: the parameter (or row field) refused.
    :param problem: why, without the value when it may be personal data.
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class OctopodsConfigurationError(OctopodsError):
    """The Airflow connection is missing or unusable (no key, bad host, bad extras)."""


class OctopodsAPIError(OctopodsError):
    """The API answered with an error the more specific classes do not cover."""


class OctopodsArgumentMissingError(OctopodsAPIError):
    """Error code 1 (ARGUMENT_MISSING): a required field was missing from the request."""


class OctopodsNotFoundError(OctopodsAPIError):
    """The message id does not exist for this channel (HTTP 404, or error code 1 on a status read)."""


class OctopodsEmptyBodyError(OctopodsAPIError):
    """Error code 2 (EMPTY_BODY): the body was missing or blank."""


class OctopodsInvalidPhoneError(OctopodsAPIError):
    """Error code 3 (PHONE_INVALID): the destination failed the API's E.164 validation."""


class OctopodsSmsRejectedError(OctopodsAPIError):
    """Error code 4 (SMS_ERROR): the SMS provider rejected the send. May succeed later."""


class OctopodsAuthError(OctopodsAPIError):
    """The API key was refused (HTTP 401/403).

    Its text ends with what to do, naming the Airflow connection the key came from when
    ``conn_id`` is set: the API layer knows no connections, the hook's clients set it. Neither the
    text nor any field holds the key.

    :param message: see :class:`OctopodsError`.
    :param conn_id: the Airflow connection the key came from; the text names it.
    :param fields: ``error_code``, ``request_id``, ``http_status``, as for :class:`OctopodsError`.
    """

    advice = "check the API key in the password field of {connection}"

    def __init__(self, message: str, *, conn_id: str | None = None, **fields: Any) -> None:
        super().__init__(message, **fields)
        self.conn_id = conn_id

    def __str__(self) -> str:
        connection = f"connection {self.conn_id!r}" if self.conn_id else "the connection"
        return f"{super().__str__()}; {self.advice.format(connection=connection)}"


class OctopodsDeprecatedKeyError(OctopodsAuthError):
    """Error code 5 (DEPRECATED_API_KEY): the key was rotated or revoked; fetch the current one."""

    advice = "put the current key in the password field of {connection}"


class OctopodsRateLimitError(OctopodsAPIError):
    """HTTP 429: too many requests. ``retry_after`` is the server's wait hint in seconds, if any.

    :param message: see :class:`OctopodsError`.
    :param retry_after: the server's ``Retry-After`` in seconds, if it gave one.
    :param kwargs: ``error_code``, ``request_id``, ``http_status``, as for :class:`OctopodsError`.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class OctopodsServerError(OctopodsAPIError):
    """HTTP 5xx, or a response that is not the JSON the API documents."""


class OctopodsMalformedAnswerError(OctopodsServerError):
    """A 2xx answer whose content breaks the documented shape: a ``message_id`` that is not an id
    (null, a boolean, a huge string), or a status answer about another message. The clients
    report it like any unreadable answer: a status read is retried, a send's outcome is unknown."""


class OctopodsTransportError(OctopodsError):
    """The request never reached the API (connection refused, DNS, connect timeout, TLS failure)."""


class OctopodsWindowClosedError(OctopodsTransportError):
    """A batch row's send window closed before its turn came: it was not sent, and waits for the
    window's next opening."""


class OctopodsTLSError(OctopodsTransportError):
    """TLS verification of the API host failed: nothing was sent. Retrying cannot help; fix the
    host's certificate or trust its CA with the connection's ``ca_bundle`` extra."""


class OctopodsUnknownOutcomeError(OctopodsError):
    """A send may or may not have been processed (read timeout, connection lost after sending).

    It is never retried automatically: retrying could deliver the SMS twice. Check the
    recipient or the Octopods dashboard before sending again.
    """


def _rebuild(cls: type[OctopodsError], args: tuple[object, ...], fields: dict[str, object]) -> OctopodsError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(fields)
    return error


class OctopodsSupersededError(OctopodsError):
    """A later try of the same task instance has started (Airflow gave this one up while it still
    ran): this try sends nothing more, so that no SMS goes out twice. Never retried."""
