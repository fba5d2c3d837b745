"""The synchronous client: ``requests`` underneath, the API layer's rules on top.

``requests`` has no limit on a whole exchange, only on each wait for bytes: an answer trickling
one byte a second never times out, in its head or its body. Each try therefore runs under a
deadline (``ClientSettings.try_timeout``, as in the async client) kept by a timer thread, which
shuts the try's socket down when it expires and so ends any read in progress.

The timer finds the socket through urllib3's public extension points: the sessions this client
creates mount an ``HTTPAdapter`` whose pool managers make connection pools of this module
(``pool_classes_by_scheme``), whose connections (``ConnectionCls``) hand themselves to the
thread's deadline in their public ``connect()`` and ``request()``. A deadline that passes before
the request is written ends the try as not sent.

Nothing is repeated by ``requests`` or urllib3 (``requests`` mounts its adapters with no retries);
:mod:`airflow_provider_octopods.api.decision` alone decides what is retried.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from airflow_provider_octopods.api import protocol
from airflow_provider_octopods.api.errors import OctopodsError
from airflow_provider_octopods.api.models import MessageId, MessageStatus, SendRequest, SendResult
from airflow_provider_octopods.api.retry import RetryingCall, RetryPolicy, Wait, try_events
from airflow_provider_octopods.api.settings import ClientSettings
from airflow_provider_octopods.api.transport import deadline_passed, failure_from_exception

if TYPE_CHECKING:
    import requests
    from requests.adapters import HTTPAdapter

log = logging.getLogger(__name__)
T = TypeVar("T")
_CHUNK_BYTES = 64 * 1024
# The deadline of the try the current thread is making, for the pools below to find.
_current = threading.local()


class OctopodsClient:
    """Sends SMS and reads statuses over one reused ``requests.Session``.

    The API key travels in each request's headers, never on the session, so a session passed
    in and shared with other code never carries it to another host.

    :param settings: base URL, key, timeouts and CA bundle (see ``api.settings.settings_from_connection``).
    :param retry_policy: how often and how long to retry what is safe to retry.
    :param session: a session to use instead of a new one (tests, custom adapters). Its adapters
        are left as they are, so a try's deadline is then checked only between reads of the body.
    :param sleep: the waiting function (tests pass a recorder).
    :param observer: called with the name of what each try counts as (see ``api.retry.try_events``):
        the hook passes the provider's metrics.
    """

    def __init__(
        self,
        settings: ClientSettings,
        *,
        retry_policy: RetryPolicy | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        observer: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.retry_policy = retry_policy or RetryPolicy()
        self._sleep = sleep
        self.observer = observer
        self.session = session or _new_session()
        self._headers = protocol.request_headers(settings.api_key)
        self._verify: str | bool = settings.ca_bundle or True

    def send(self, request: SendRequest) -> SendResult:
        """Send one SMS. See :mod:`airflow_provider_octopods.api.decision` for what is retried."""
        return self.run(protocol.send_call(self.settings.base_url, request, conn_id=self.settings.conn_id))

    def get_status(self, message_id: MessageId) -> MessageStatus:
        """Read a message's delivery status."""
        return self.run(protocol.status_call(self.settings.base_url, message_id, conn_id=self.settings.conn_id))

    def close(self) -> None:
        self.session.close()

    def run(self, call: protocol.ApiCall[T]) -> T:
        """Make ``call`` under the retry policy."""
        retrying = RetryingCall(self.retry_policy, call)
        while True:
            try:
                response, failure = self._once(call), None
            except OctopodsError as err:
                response, failure = None, err
            if self.observer is not None:
                for event in try_events(call, response, failure):
                    self.observer(event)
            outcome = retrying.settle(response, failure)
            if not isinstance(outcome, Wait):
                return outcome
            log_retry(call.what, retrying.attempt, self.retry_policy.max_attempts, outcome.error, outcome.delay)
            self._sleep(outcome.delay)

    def _once(self, call: protocol.ApiCall[Any]) -> protocol.RawResponse:
        import http.client

        import requests

        with _Deadline(self.settings.try_timeout) as deadline:
            try:
                with self.session.request(
                    call.method,
                    call.url,
                    data=call.body,
                    headers=self._headers,
                    timeout=(self.settings.connect_timeout, self.settings.read_timeout),
                    allow_redirects=False,
                    verify=self._verify,
                    stream=True,
                ) as response:
                    body, complete = _read_capped(response, deadline)
                    status, headers = response.status_code, dict(response.headers)
            except (requests.RequestException, OSError, http.client.HTTPException) as exc:
                if deadline.expired and not deadline.before_request:
                    raise deadline_passed(call.operation, deadline.seconds) from None
                # Connecting (TLS included) used up the try's time: nothing was written.
                failure = TimeoutError("the try's deadline passed while connecting") if deadline.expired else exc
                raise failure_from_exception(
                    call.operation,
                    failure,
                    host=urlsplit(call.url).netloc,
                    connecting=deadline.before_request or _while_connecting(exc),
                    hint=self.settings.scheme_hint,
                ) from None
        return protocol.capped_answer(call.operation, status, body, headers, complete=complete)


def _read_capped(response: requests.Response, deadline: _Deadline) -> tuple[bytes, bool]:
    """The body, decompressed, up to :data:`protocol.MAX_ANSWER_BYTES`; and whether that was all."""
    read = protocol.CappedBody()
    for chunk in response.iter_content(_CHUNK_BYTES):
        if deadline.expired:
            raise TimeoutError("the try's deadline passed")
        if not read.add(chunk):
            return read.body, False
    if deadline.expired:
        # The socket was shut down mid-answer: what was read may look complete but is not.
        raise TimeoutError("the try's deadline passed")
    return read.body, True


class _Deadline:
    """The end of one try: when it passes, the try's socket is shut down, which ends any read.

    The connections of :func:`_watched_adapter_class` report to it: :meth:`connecting` before
    they connect, :meth:`sending` before they write the request. With a session passed in, no
    connection reports, and the deadline is only checked between reads of the body.

    :param seconds: how long the try may take in all.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        # True from the moment a connection of this try starts connecting until it starts
        # writing the request: a failure in between means nothing was sent.
        self.before_request = False
        self._connection: object = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        _current.deadline = self
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        with self._lock:  # a timer firing now must not shut a connection back in the pool
            self._connection = None
        _current.deadline = None

    def connecting(self, connection: object) -> None:
        """``connection`` is about to connect: shut its socket down when the deadline passes.

        :raises TimeoutError: the deadline has passed already; nothing was sent.
        """
        self._watch(connection, before_request=True)

    def sending(self, connection: object) -> None:
        """``connection`` is about to write the request: shut its socket down when the deadline
        passes.

        :raises TimeoutError: the deadline has passed already; the request is not written.
        """
        self._watch(connection, before_request=False)

    def _watch(self, connection: object, *, before_request: bool) -> None:
        with self._lock:
            if self.expired:
                raise TimeoutError("the try's deadline passed before the request was written")
            self._connection = connection
            self.before_request = before_request

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            self._shut_down()

    def _shut_down(self) -> None:
        sock = getattr(self._connection, "sock", None)
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _new_session() -> requests.Session:
    import requests

    session = requests.Session()
    adapter = _watched_adapter_class()()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _deadline() -> _Deadline | None:
    """The deadline of the try the current thread is making, if any."""
    deadline: _Deadline | None = getattr(_current, "deadline", None)
    return deadline


@cache
def _watched_adapter_class() -> type[HTTPAdapter]:
    """An ``HTTPAdapter`` whose connections report to the current try's deadline.

    Built on first use: ``requests`` is not imported when this module is. Only urllib3's public
    extension points are used: ``pool_classes_by_scheme`` of the adapter's pool managers, and
    ``ConnectionCls`` of the pools, whose ``connect()`` and ``request()`` are public.
    """
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    def watched(base: Any) -> Any:
        class Watched(base):
            def connect(self) -> None:
                deadline = _deadline()
                if deadline is not None:
                    deadline.connecting(self)
                super().connect()

            def request(self, *args: Any, **kwargs: Any) -> None:
                deadline = _deadline()
                if deadline is not None:
                    if self.is_closed:
                        self.connect()  # as http.client would on the first write, but before it
                    deadline.sending(self)
                super().request(*args, **kwargs)

        return Watched

    WatchedHTTPConnection = watched(HTTPConnection)
    WatchedHTTPSConnection = watched(HTTPSConnection)

    class WatchedHTTPPool(HTTPConnectionPool):
        ConnectionCls = WatchedHTTPConnection

    class WatchedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = WatchedHTTPSConnection

    pools = {"http": WatchedHTTPPool, "https": WatchedHTTPSPool}

    class WatchedAdapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = dict(pools)

        def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
            manager = super().proxy_manager_for(proxy, **proxy_kwargs)
            if manager.pool_classes_by_scheme.get("https") is HTTPSConnectionPool:  # not SOCKS pools
                manager.pool_classes_by_scheme = dict(pools)
            return manager

    return WatchedAdapter


def log_retry(what: str, attempt: int, max_attempts: int, error: object, delay: float) -> None:
    log.warning("Octopods %s failed on try %d/%d (%s); retrying in %.2fs", what, attempt, max_attempts, error, delay)


def _while_connecting(exc: BaseException) -> bool:
    """Whether ``requests`` failed before the request left this machine."""
    import requests
    from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

    if isinstance(
        exc,
        (
            requests.ConnectTimeout,
            requests.exceptions.InvalidURL,
            requests.exceptions.InvalidSchema,
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidHeader,
        ),
    ):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError, NameResolutionError))
