"""The asynchronous client, for triggers and batch sends. Same rules as the sync client.

Its requests go over :mod:`~airflow_provider_octopods.clients.http1`, this package's own HTTP/1.1
on asyncio, when they go straight to the API, and over aiohttp when the environment names a
proxy for the API's host. Measured against the sandbox on a 2-core machine: httpx's ceiling was
about 1,000-1,500 requests/s and fell to 360-560 at 64 in flight; bare aiohttp spends 86-168 µs of
CPU per request at 64 in flight, and the whole batch operator over ``http1`` 111-158 µs
(``benchmarks/batch.py``, (d) and (c)); a trigger's status read costs 0.50-0.64 ms of CPU instead
of 0.62-0.90 (``benchmarks/track_many.py``).

Rules both transports keep:

* Nothing is repeated by the transport itself (aiohttp repeats a GET when a kept-alive
  connection drops; that is switched off): :mod:`airflow_provider_octopods.api.decision` alone
  decides what is retried.
* Calls queue on this client's own semaphore for a free connection, so every timeout starts
  when a connection is free: ``connect_timeout`` to connect (TLS included), ``read_timeout``
  between two reads, ``connect_timeout + read_timeout`` for the whole try.
* An answer is read up to :data:`MAX_ANSWER_BYTES` after decompression, then reading stops.
* Proxy and CA settings come from the same environment variables httpx read
  (``HTTP(S)_PROXY``/``ALL_PROXY``/``NO_PROXY``, ``SSL_CERT_FILE``/``SSL_CERT_DIR``, else
  certifi's CA bundle), never ``.netrc``. Sessions and connections open on first use (they need
  the running event loop), not in ``__init__``.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from airflow_provider_octopods.api import protocol
from airflow_provider_octopods.api.decision import Stage, transport_error
from airflow_provider_octopods.api.errors import OctopodsError, OctopodsRateLimitError
from airflow_provider_octopods.api.models import MessageId, MessageStatus, SendRequest, SendResult
from airflow_provider_octopods.api.protocol import MAX_ANSWER_BYTES
from airflow_provider_octopods.api.retry import RetryingCall, RetryPolicy, Wait
from airflow_provider_octopods.api.settings import ClientSettings
from airflow_provider_octopods.api.transport import deadline_passed, failure_from_exception
from airflow_provider_octopods.clients.http1 import BadAnswer, ConnectFailed, DeadlinePassed, Http1Pool
from airflow_provider_octopods.clients.sync import log_retry

if TYPE_CHECKING:
    import aiohttp

    from airflow_provider_octopods.api.pacing import RateLimiter

T = TypeVar("T")


class AsyncOctopodsClient:
    """Async twin of :class:`~airflow_provider_octopods.clients.sync.OctopodsClient`.

    Use it as ``async with AsyncOctopodsClient(settings) as client:``, or call :meth:`aclose`.

    :param settings: base URL, key, timeouts and CA bundle. Each try may take ``connect_timeout``
        to connect (TLS included), ``read_timeout`` between two reads, and
        ``connect_timeout + read_timeout`` (``settings.try_timeout``) in all.
    :param retry_policy: retries of what is safe to retry (see ``api.retry``).
    :param max_connections: the most requests in flight at once over the shared connection pool;
        further calls wait for a free connection, and their timeouts start only then.
    :param sleep: the waiting coroutine (tests pass a recorder).
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
        rate_limiter: RateLimiter | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> None:
        self.settings = settings
        self.stop = stop
        self.retry_policy = retry_policy or RetryPolicy()
        self.rate_limiter = rate_limiter
        self.max_connections = max_connections
        self._sleep = sleep
        self._headers = protocol.request_headers(settings.api_key)
        self._proxy = _proxy_from_environment(settings.base_url)
        self._slots = asyncio.Semaphore(max_connections)
        self._http: aiohttp.ClientSession | None = None
        self._direct: Http1Pool | None = None

    async def __aenter__(self) -> AsyncOctopodsClient:
        if self._proxy is not None:
            self._session()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._direct is not None:
            self._direct.close()
        if self._http is not None:
            await self._http.close()

    async def send(self, request: SendRequest) -> SendResult:
        """Send one SMS. See :mod:`airflow_provider_octopods.api.decision` for what is retried."""
        return await self.run(protocol.send_call(self.settings.base_url, request))

    async def get_status(self, message_id: MessageId) -> MessageStatus:
        """Read a message's delivery status."""
        return await self.run(protocol.status_call(self.settings.base_url, message_id))

    async def run(self, call: protocol.ApiCall[T]) -> T:
        """Make ``call`` under the retry policy (and the rate limiter, if any)."""
        retrying = RetryingCall(self.retry_policy, call)
        while True:
            if self.rate_limiter is not None:
                await self._paced(self.rate_limiter)
            if self.stop is not None and self.stop():
                raise transport_error(call.operation, Stage.NOT_SENT, "stopped before this request was sent")
            try:
                response, failure = await self._once(call), None
            except OctopodsError as err:
                response, failure = None, err
            outcome = retrying.settle(response, failure)
            if not isinstance(outcome, Wait):
                return outcome
            if self.rate_limiter is not None and isinstance(outcome.error, OctopodsRateLimitError):
                self.rate_limiter.slow_down(outcome.delay)
            log_retry(call.what, retrying.attempt, self.retry_policy.max_attempts, outcome.error, outcome.delay)
            await self._sleep(outcome.delay)

    async def _paced(self, limiter: RateLimiter) -> None:
        """Wait for a start slot. Woken up late (the event loop was busy), the request starts if
        the limiter can still count it as made (see ``RateLimiter.started_late``), else another
        slot is booked: late starts must not bunch up with on-time ones as the server counts them."""
        while True:
            booking = limiter.book()
            pause = booking.start - limiter.now()
            if pause > 0:
                await self._sleep(pause)
            if limiter.may_start(booking):
                return

    def _pool(self) -> Http1Pool:
        """The direct connections' pool, made on first use (CA certificates only for https)."""
        if self._direct is None:
            https = urlsplit(self.settings.base_url).scheme == "https"
            self._direct = Http1Pool(
                self.settings.base_url,
                self._headers,
                ssl_context=_tls_context(self.settings.ca_bundle) if https else None,
                connect_timeout=self.settings.connect_timeout,
                read_timeout=self.settings.read_timeout,
                try_timeout=self.settings.try_timeout,
                max_body=MAX_ANSWER_BYTES,
                limit=self.max_connections,
            )
        return self._direct

    async def _once_direct(self, call: protocol.ApiCall[Any]) -> protocol.RawResponse:
        try:
            pool = self._pool()
        except ValueError as exc:  # a host name or header that cannot be sent: nothing was
            raise self._failure(call, exc, connecting=True) from None
        async with self._slots:
            try:
                status, headers, body, complete = await pool.request(call.method, call.url, call.body)
            except ConnectFailed as exc:
                raise self._failure(call, exc, connecting=True) from None
            except DeadlinePassed:
                raise deadline_passed(call.operation, self.settings.try_timeout) from None
            except (OSError, BadAnswer) as exc:
                raise self._failure(call, exc, connecting=False) from None
        return protocol.capped_answer(call.operation, status, body, headers, complete=complete)

    def _failure(self, call: protocol.ApiCall[Any], exc: BaseException, *, connecting: bool) -> OctopodsError:
        # Both transports finish connecting, TLS handshake included, before they write a byte.
        return failure_from_exception(
            call.operation,
            exc,
            host=urlsplit(call.url).netloc,
            connecting=connecting,
            hint=self.settings.scheme_hint,
            handshake_done=not connecting,
        )

    def _session(self) -> aiohttp.ClientSession:
        """The session, opened on first use (aiohttp needs the running event loop)."""
        if self._http is None:
            import aiohttp

            # Loading CA certificates takes tens of milliseconds: only for an https host.
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
            )
            if hasattr(self._http, "_retry_connection"):
                self._http._retry_connection = False  # no hidden retries: see the module docstring
        return self._http

    async def _once(self, call: protocol.ApiCall[Any]) -> protocol.RawResponse:
        if self._proxy is None:
            return await self._once_direct(call)
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
                ) as response:
                    body, complete = await _read_capped(response.content)
                    if not complete:
                        response.close()
                    status, headers = response.status, response.headers
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                if type(exc) in (asyncio.TimeoutError, TimeoutError):
                    # aiohttp's own timeouts are subclasses; the bare class is the try's total.
                    raise deadline_passed(call.operation, self.settings.try_timeout) from None
                raise self._failure(call, exc, connecting=_while_connecting(exc)) from None
        return protocol.capped_answer(call.operation, status, body, headers, complete=complete)


async def _read_capped(content: aiohttp.StreamReader) -> tuple[bytes, bool]:
    """The body, up to :data:`MAX_ANSWER_BYTES`; and whether that was all of it."""
    read = protocol.CappedBody()
    while chunk := await content.readany():
        if not read.add(chunk):
            return read.body, False
    return read.body, True


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
    """Certificate checks always on: the connection's CA bundle, else the same roots as httpx."""
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
