"""The asynchronous client, for triggers, notifiers and batch sends: aiohttp underneath, the API
layer's rules on top, the same rules as the sync client.

Every call, straight to the API or through a proxy, goes over one ``aiohttp.ClientSession`` of
the client, used through aiohttp's public API only:

* Nothing is repeated by aiohttp itself: :mod:`airflow_provider_octopods.api.decision` alone
  decides what is retried. aiohttp re-sends an idempotent request (a status read) once when its
  connection fails with ``ServerDisconnectedError`` or ``ClientOSError``, as happens when a
  kept-alive connection turns out closed. Its re-send loop calls the request's client middlewares
  on every attempt (the ``on_request_start`` trace hook only once per call, before the loop); so
  each try of a status read passes a middleware (:class:`_OneAttempt`) that lets the request go
  out once and answers a second attempt with the first attempt's error. A send (POST) is never
  re-sent by aiohttp and goes without it.
* Calls queue on this client's own semaphore for a free connection, so every timeout starts
  when a connection is free: ``connect_timeout`` to connect (TLS included), ``read_timeout``
  between two reads, ``connect_timeout + read_timeout`` for the whole try (the answer's head
  and body included).
* An answer is read up to :data:`MAX_ANSWER_BYTES` after decompression (aiohttp decompresses as
  the body is read, in bounded pieces), then reading stops and the connection is closed.
* A paced call waits for its slot from the client's rate limiter, and the limiter is told when the
  request is written (an aiohttp ``TraceConfig``, only on a paced client's session): its
  one-second window then holds for the requests as they left, not only as they were let start.
* Redirects are answers, never followed. Certificates are always checked: against the
  connection's ``ca_bundle``, else ``SSL_CERT_FILE``/``SSL_CERT_DIR``, else certifi's roots.
* The proxy comes from ``HTTP(S)_PROXY``/``ALL_PROXY``/``NO_PROXY``, read here and passed as
  ``proxy=``; the session does not trust the environment otherwise, so ``.netrc`` is never read.
  The session and its connections open on first use (they need the running event loop), not in
  ``__init__``.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from airflow_provider_octopods.api import protocol
from airflow_provider_octopods.api.decision import Stage, transport_error
from airflow_provider_octopods.api.errors import OctopodsError, OctopodsRateLimitError
from airflow_provider_octopods.api.models import MessageId, MessageStatus, SendRequest, SendResult
from airflow_provider_octopods.api.pacing import Booking, RateLimiter
from airflow_provider_octopods.api.protocol import MAX_ANSWER_BYTES
from airflow_provider_octopods.api.retry import RetryingCall, RetryPolicy, Wait, try_events
from airflow_provider_octopods.api.settings import ClientSettings
from airflow_provider_octopods.api.transport import deadline_passed, failure_from_exception
from airflow_provider_octopods.clients.sync import log_retry

if TYPE_CHECKING:
    import aiohttp

__all__ = ["MAX_ANSWER_BYTES", "AsyncOctopodsClient"]

T = TypeVar("T")


class AsyncOctopodsClient:
    """Async twin of :class:`~airflow_provider_octopods.clients.sync.OctopodsClient`.

    Use it as ``async with AsyncOctopodsClient(settings) as client:``, or call :meth:`aclose`.
    Inside Airflow, get it from the hook: ``await OctopodsHook(conn_id).aget_async_client()``.

    :param settings: base URL, key, timeouts and CA bundle. Each try may take ``connect_timeout``
        to connect (TLS included), ``read_timeout`` between two reads, and
        ``connect_timeout + read_timeout`` (``settings.try_timeout``) in all.
    :param retry_policy: retries of what is safe to retry (see ``api.retry``).
    :param max_connections: the most requests in flight at once over the shared connection pool;
        further calls wait for a free connection, and their timeouts start only then.
    :param sleep: the waiting coroutine (tests pass a recorder).
    :param observer: called with the name of what each try counts as (see ``api.retry.try_events``):
        the hook passes the provider's metrics.
    :param rate_limiter: paces every try (first ones and retries) of every call sharing it; a 429
        that is retried pauses them all for its wait (``Retry-After``), not only this call.
    :param stop: when it returns True, a try that has not started yet (waiting for its pacing slot
        or a retry) is given up as not sent; tries already sent finish.
    """

    def __init__(
        self,
        settings: ClientSettings,
        *,
        retry_policy: RetryPolicy | None = None,
        max_connections: int = 10,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        observer: Callable[[str], None] | None = None,
        rate_limiter: RateLimiter | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> None:
        self.settings = settings
        self.stop = stop
        self.retry_policy = retry_policy or RetryPolicy()
        self.rate_limiter = rate_limiter
        self.max_connections = max_connections
        self._sleep = sleep
        self.observer = observer
        self._headers = protocol.request_headers(settings.api_key)
        self._proxy = _proxy_from_environment(settings.base_url)
        self._slots = asyncio.Semaphore(max_connections)
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AsyncOctopodsClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the session and its connections (a client may be closed more than once)."""
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def send(self, request: SendRequest) -> SendResult:
        """Send one SMS. See :mod:`airflow_provider_octopods.api.decision` for what is retried."""
        return await self.run(protocol.send_call(self.settings.base_url, request, conn_id=self.settings.conn_id))

    async def get_status(self, message_id: MessageId) -> MessageStatus:
        """Read a message's delivery status."""
        return await self.run(protocol.status_call(self.settings.base_url, message_id, conn_id=self.settings.conn_id))

    async def run(self, call: protocol.ApiCall[T]) -> T:
        """Make ``call`` under the retry policy (and the rate limiter, if any)."""
        retrying = RetryingCall(self.retry_policy, call)
        while True:
            booking = await self._paced(self.rate_limiter) if self.rate_limiter is not None else None
            if self.stop is not None and self.stop():
                raise transport_error(call.operation, Stage.NOT_SENT, "stopped before this request was sent")
            try:
                response, failure = await self._once(call, booking), None
            except OctopodsError as err:
                response, failure = None, err
            if self.observer is not None:
                for event in try_events(call, response, failure):
                    self.observer(event)
            outcome = retrying.settle(response, failure)
            if not isinstance(outcome, Wait):
                return outcome
            if self.rate_limiter is not None and isinstance(outcome.error, OctopodsRateLimitError):
                self.rate_limiter.slow_down(outcome.delay)
            log_retry(call.what, retrying.attempt, self.retry_policy.max_attempts, outcome.error, outcome.delay)
            await self._sleep(outcome.delay)

    async def _paced(self, limiter: RateLimiter) -> Booking:
        """Wait for a start slot. Woken up late (the event loop was busy), the request starts if
        the limiter can still count it as made (see ``RateLimiter.started_late``), else another
        slot is booked: late starts must not bunch up with on-time ones as the server counts them.
        When the request is written, the session's trace tells the limiter (``RateLimiter.count_written``)."""
        while True:
            booking = limiter.book()
            pause = booking.start - limiter.now()
            if pause > 0:
                await self._sleep(pause)
            if limiter.may_start(booking):
                return booking

    def _session(self) -> aiohttp.ClientSession:
        """The session, opened on first use (aiohttp needs the running event loop)."""
        if self._http is None:
            import aiohttp

            # Loading CA certificates takes a while: only for an https host.
            https = urlsplit(self.settings.base_url).scheme == "https"
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self.max_connections, ssl=_tls_context(self.settings.ca_bundle) if https else True
                ),
                timeout=aiohttp.ClientTimeout(
                    total=self.settings.try_timeout,
                    connect=self.settings.connect_timeout,
                    sock_read=self.settings.read_timeout,
                ),
                cookie_jar=aiohttp.DummyCookieJar(),  # the API sets no cookies; none are kept or sent
                trust_env=False,  # the proxy is passed per request; .netrc is never read
                trace_configs=None if self.rate_limiter is None else [_write_times(self.rate_limiter)],
            )
        return self._http

    async def _once(self, call: protocol.ApiCall[Any], booking: Booking | None = None) -> protocol.RawResponse:
        """One try of ``call``: one request, written at most once (in ``booking``'s slot, if paced)."""
        import aiohttp

        session = self._session()
        async with self._slots:
            try:
                async with session.request(
                    call.method,
                    call.url,
                    data=call.body,
                    headers=self._headers,
                    allow_redirects=False,
                    proxy=self._proxy,
                    # aiohttp re-sends only idempotent methods: a send (POST) needs no guard.
                    middlewares=None if call.method == "POST" else (_OneAttempt(),),
                    trace_request_ctx=booking,
                ) as response:
                    body, complete = await _read_capped(response.content)
                    if not complete:
                        response.close()  # the rest of the answer is never read: the connection goes
                    status, headers = response.status, response.headers
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                if type(exc) in (asyncio.TimeoutError, TimeoutError):
                    # aiohttp's own timeouts are subclasses (and a total timeout while connecting
                    # is a ConnectionTimeoutError); the bare class is the try's total, once sent.
                    raise deadline_passed(call.operation, self.settings.try_timeout) from None
                raise self._failure(call, exc, connecting=_while_connecting(exc)) from None
            except ValueError as exc:
                # aiohttp refuses a header it cannot write (a line break...) while preparing the
                # request, before connecting; the message may quote the header: only the type.
                raise transport_error(
                    call.operation, Stage.NOT_SENT, f"the request could not be written: {type(exc).__name__}"
                ) from None
        return protocol.capped_answer(call.operation, status, body, headers, complete=complete)

    def _failure(self, call: protocol.ApiCall[Any], exc: BaseException, *, connecting: bool) -> OctopodsError:
        # aiohttp finishes connecting, TLS handshake included, before it writes a byte.
        return failure_from_exception(
            call.operation,
            exc,
            host=urlsplit(call.url).netloc,
            connecting=connecting,
            hint=self.settings.scheme_hint,
            handshake_done=not connecting,
        )


class _OneAttempt:
    """A client middleware that lets one request go out at most once.

    aiohttp calls a request's middlewares on each attempt of its re-send loop; the first call goes
    on, any later one raises the error the first attempt ended with, so the failure reaches the
    retry decision as it happened. One instance per try.
    """

    __slots__ = ("_failure", "_started")

    def __init__(self) -> None:
        self._started = False
        self._failure: BaseException | None = None

    async def __call__(
        self, request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        if self._started:
            raise self._failure or RuntimeError("aiohttp tried to send a request a second time")
        self._started = True
        try:
            return await handler(request)
        except BaseException as exc:
            self._failure = exc
            raise


async def _read_capped(content: aiohttp.StreamReader) -> tuple[bytes, bool]:
    """The body, up to :data:`MAX_ANSWER_BYTES`; and whether that was all of it."""
    read = protocol.CappedBody()
    while chunk := await content.readany():
        if not read.add(chunk):
            return read.body, False
    return read.body, True


def _write_times(limiter: RateLimiter) -> aiohttp.TraceConfig:
    """Tells ``limiter`` when each paced request is written: its head is handed to the
    connection, then its body with the head still buffered, when there is one (the later counts)."""
    import aiohttp

    async def written(_session: aiohttp.ClientSession, context: SimpleNamespace, _params: object) -> None:
        booking = context.trace_request_ctx
        if isinstance(booking, Booking):
            limiter.count_written(booking, limiter.now())

    trace = aiohttp.TraceConfig()
    trace.on_request_headers_sent.append(written)
    trace.on_request_chunk_sent.append(written)
    return trace


def _while_connecting(exc: BaseException) -> bool:
    """Whether aiohttp failed before the request left this machine.

    Connector errors (refused, DNS, TLS, proxy) and a connect timeout (TLS handshake included)
    happen before any byte of the request is written. Any other timeout, including aiohttp's
    ``ServerTimeoutError`` and ``SocketTimeoutError``, may come after the request went out.
    """
    import aiohttp

    return isinstance(
        exc,
        (
            aiohttp.ClientConnectorError,
            aiohttp.ConnectionTimeoutError,
            aiohttp.ClientHttpProxyError,
            aiohttp.InvalidURL,
            aiohttp.NonHttpUrlClientError,
        ),
    )


def _tls_context(ca_bundle: str | None) -> ssl.SSLContext:
    """Certificate checks always on: the connection's CA bundle, else the environment's, else certifi's."""
    if ca_bundle:
        return ssl.create_default_context(cafile=ca_bundle)
    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def _proxy_from_environment(base_url: str) -> str | None:
    """The proxy the environment names for ``base_url`` (``HTTPS_PROXY``, ``NO_PROXY``...), if any."""
    import urllib.request

    parts = urlsplit(base_url)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    # With proxies in the environment, proxy_bypass reads NO_PROXY (on every platform).
    if not proxy or not parts.hostname or urllib.request.proxy_bypass(parts.hostname):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"
