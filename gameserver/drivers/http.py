"""The HTTP listener (port 8000): health, metrics, and the routes the roles add (auth, config, ...).

Every error is JSON ``{"error": {"code", "message"}}`` with the fitting status (PROTOCOL.md, "HTTP"). A
:class:`GameError` may set ``status`` and ``headers`` (e.g. ``Retry-After``) for its HTTP answer. Bodies
are capped at ``http.max_body``; a handler's crash answers 500 ``internal`` / ``programming error`` and
logs the traceback. Behind a reverse proxy listed in ``http.trusted_proxies``, ``request.remote`` is the
client's address from ``X-Forwarded-For`` (``gameserver/drivers/forwarded.py``), so per-address limits see players,
not the proxy.

The limits every listener has (gameserver/drivers/listener.py), here on aiohttp's terms: :class:`HttpListener`
closes connections over ``http.max_connections``, or over ``http.max_per_address`` from one address (trusted
proxies exempt), at accept; aiohttp closes a connection that has not sent a
whole request head ``http.header_timeout`` seconds after it opened or got its previous response (a slow or
idle client); each client address gets ``http.rate`` requests a second, ``http.burst`` saved up (429
``rate_limited`` with ``Retry-After`` beyond); a route gets ``http.handler_timeout`` seconds, reading the body
included (504 ``timeout``), unless it sets its own with :func:`timeout`. What aiohttp answers by itself, before
any route or middleware (a request head over its limits, bytes that are not HTTP), is JSON too
(:class:`HttpConnection`).
"""

from __future__ import annotations

import asyncio
import errno
import hmac
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar, TypeVar

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gameserver import metrics
from gameserver.dispatch.dispatcher import INTERNAL_MESSAGE
from gameserver.drivers.connection import peer_name
from gameserver.drivers.forwarded import HEADER, Network, client_address
from gameserver.drivers.listener import DEFAULT_BACKLOG, AddressCounts, Refusals
from gameserver.errors import BadRequest, Forbidden, GameError, PortInUse, Throttled, Timeout, Unauthorized
from gameserver.ratelimit import KeyedBuckets
from gameserver.storage.errors import backend_fault, is_unavailable

log = logging.getLogger("gameserver.drivers.http")

Health = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]
RouteHandler = TypeVar("RouteHandler", bound=Callable[..., Awaitable[web.StreamResponse]])

NAME = "http"  # the listener's name in logs and in gameserver_connections{listener}
RATE_ADDRESSES = 65_536  # client addresses with a token bucket at once (16 MB at most); past it the oldest goes
TIMEOUT_ATTRIBUTE = "_gameserver_timeout"
MAX_ERROR_MESSAGE = 200  # characters of aiohttp's own message about a bad request head kept in the answer
SHUTDOWN_TIMEOUT = 1.0  # seconds HTTP handlers still running at stop get to finish
HTTP_CLIENT_ERRORS = range(400, 500)

STATUS_OF_CODE = {
    "bad_request": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "unknown_function": 404,
    "not_found": 404,
    "method_not_allowed": 405,
    "conflict": 409,
    "too_big": 413,
    "rate_limited": 429,
    "internal": 500,
    "unavailable": 503,
    "outcome_unknown": 503,
    "overloaded": 503,
    "timeout": 504,
}


def json_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status, headers=headers)


@web.middleware
async def errors_as_json(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
    try:
        return await handler(request)
    except GameError as exc:
        status = getattr(exc, "status", STATUS_OF_CODE.get(exc.code, 400))
        return json_error(status, exc.code, exc.message, getattr(exc, "headers", None))
    except web.HTTPRequestEntityTooLarge as exc:
        return json_error(413, "too_big", exc.text or "body too large")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "bad_request")
        allow = exc.headers.get("Allow")  # a 405 must say which methods the route takes (RFC 9110, 15.5.6)
        return json_error(exc.status, code, exc.reason, {"Allow": allow} if allow is not None else None)
    except Exception as exc:
        if is_unavailable(exc):
            log.warning("%s %s: backend unavailable: %s", request.method, request.path, backend_fault(exc))
            return json_error(503, "unavailable", "a backend is unavailable")
        log.exception("internal error in %s %s", request.method, request.path)
        return json_error(500, "internal", INTERNAL_MESSAGE)


def forwarded_for(proxies: Sequence[Network]) -> Middleware:
    """A middleware that hands the handlers a request whose ``remote`` is the client behind ``proxies``."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        peer = request.remote or ""
        client = client_address(peer, request.headers.getall(HEADER, ()), proxies)
        return await handler(request if client == peer else request.clone(remote=client))

    return middleware


class AddressThrottled(Throttled):
    """A client address over ``http.rate`` requests a second."""

    message = "too many requests from this address; slow down"


def rate_limit(buckets: KeyedBuckets) -> Middleware:
    """A middleware that answers 429 ``rate_limited`` to a client address whose bucket is empty.

    It runs after :func:`forwarded_for`, so that behind a trusted proxy each player has a bucket of their own.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        wait = buckets.take(request.remote or "", time.monotonic())
        if wait:
            raise AddressThrottled(math.ceil(wait))
        return await handler(request)

    return middleware


def timeout(seconds: float | None) -> Callable[[RouteHandler], RouteHandler]:
    """Give a route its own deadline instead of ``http.handler_timeout``; None: none at all (operators' routes
    whose work cannot be stopped halfway)."""

    def mark(route: RouteHandler) -> RouteHandler:
        setattr(route, TIMEOUT_ATTRIBUTE, seconds)
        return route

    return mark


def deadline(default: float) -> Middleware:
    """A middleware that cancels a route still running after its deadline and answers 504 ``timeout``."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        seconds = getattr(request.match_info.handler, TIMEOUT_ATTRIBUTE, default)
        if seconds is None:
            return await handler(request)
        scope = asyncio.timeout(seconds)
        try:
            async with scope:
                return await handler(request)
        except TimeoutError:
            if not scope.expired():
                raise  # the route's own timeout (a backend's): not the deadline
            log.warning("%s %s from %s: no answer within %gs", request.method, request.path, request.remote, seconds)
            raise Timeout(f"no answer within {seconds:g}s") from None

    return middleware


def build_http_app(
    health: Health,
    routes: Sequence[web.RouteDef],
    *,
    max_body: int,
    rate: float,
    burst: int,
    handler_timeout: float,
    trusted_proxies: Sequence[Network] = (),
) -> web.Application:
    """The routing table: health and metrics, then whatever the started roles contribute; the middlewares
    answer errors as JSON, find the client behind a trusted proxy, limit each address's rate and each
    route's run time, in that order."""

    async def healthz(request: web.Request) -> web.Response:
        healthy, details = await health()
        return web.json_response(
            {"status": "ok" if healthy else "unhealthy", **details}, status=200 if healthy else 503
        )

    async def prometheus(request: web.Request) -> web.Response:
        body = generate_latest(metrics.REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    middlewares: list[Middleware] = [errors_as_json]
    if trusted_proxies:
        middlewares.append(forwarded_for(trusted_proxies))
    middlewares += [rate_limit(KeyedBuckets(rate, burst, max_keys=RATE_ADDRESSES)), deadline(handler_timeout)]
    app = web.Application(middlewares=middlewares, client_max_size=max_body)
    app.add_routes([web.get("/healthz", healthz), web.get("/metrics", prometheus), *routes])
    return app


class HttpConnection(web.RequestHandler):
    """aiohttp's protocol for one HTTP connection, with what the listener adds.

    The connection's count in ``http.max_per_address`` is given back when it closes. The errors aiohttp answers by
    itself, before any middleware runs (a request line or header over its limits or malformed: 400; an exception
    outside the middlewares: 500), get the JSON error body of PROTOCOL.md's "HTTP" instead of plain text, with
    aiohttp's logging and status unchanged.
    """

    __slots__ = ("addresses", "counted_as")

    def __init__(self, manager: web.Server, addresses: AddressCounts, counted_as: str, **settings: Any) -> None:
        super().__init__(manager, **settings)
        self.addresses = addresses
        self.counted_as: str | None = counted_as

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        counted, self.counted_as = self.counted_as, None
        if counted is not None:
            self.addresses.remove(counted)

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """aiohttp logs every request it refuses with a traceback at ERROR; a malformed request (a 4xx it answers by
        itself: a head over its limits, bytes that are not HTTP) is the client's fault, handled: one line at INFO."""
        exc = kw.get("exc_info")
        if isinstance(exc, HttpProcessingError) and HTTP_CLIENT_ERRORS.start <= exc.code < HTTP_CLIENT_ERRORS.stop:
            peer = args[1] if len(args) > 1 else "?"
            message = " ".join(str(exc.message or type(exc).__name__).split())[:MAX_ERROR_MESSAGE]
            log.info("%s: bad request from %s answered %d: %s", NAME, peer, exc.code, message)
            return
        super().log_exception(*args, **kw)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        plain = super().handle_error(request, status, exc, message)  # logs; raises once a response is on its way
        if status == 504:
            response = json_error(status, "timeout", "no answer in time")
        elif status >= 500:
            response = json_error(status, "internal", INTERNAL_MESSAGE)
        else:
            response = json_error(status, "bad_request", (message or plain.reason)[:MAX_ERROR_MESSAGE])
        response.force_close()
        return response


class Admission(asyncio.Protocol):
    """Each accepted socket's protocol for an instant: closed at once while the listener is full or its address
    has ``http.max_per_address`` connections open, otherwise handed to a new :class:`HttpConnection`
    (``transport.set_protocol``), which from then on gets its bytes."""

    def __init__(self, listener: HttpListener) -> None:
        self.listener = listener

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        listener = self.listener
        peer = peer_name(transport)
        if len(listener.connections) >= listener.limit:
            listener.refusals.refused(peer, time.monotonic())
            transport.close()
            return
        address = peer.rpartition(":")[0] or peer
        refusal = listener.addresses.add(address)
        if refusal is not None:
            listener.refusals.refused(peer, time.monotonic(), refusal)
            transport.close()
            return
        settings = listener.handler_settings
        handler = HttpConnection(
            listener.web_server, listener.addresses, address, loop=asyncio.get_running_loop(), **settings
        )
        transport.set_protocol(handler)
        handler.connection_made(transport)


class HttpListener:
    """The HTTP port: aiohttp serving ``app`` on a socket of our own, with the limits every listener has.

    aiohttp's ``web.Server`` keeps the open connections (``connections``), which is what the cap counts and
    ``gameserver_connections{listener="http"}`` shows. aiohttp's ``keepalive_timeout`` is armed when a connection
    opens and after each response, and closes the connection if no whole request head has arrived by then: it is
    ``header_timeout``, for a slow client and an idle one alike.

    Args:
        app: the application (:func:`build_http_app`).
        max_connections: more are accepted and closed at once.
        header_timeout: seconds from accept, or from the previous response, to a complete request head.
        max_per_address: connections from one TCP peer address (0: no cap); more are closed at once. The
            ``trusted_proxies`` are exempt: they carry many clients (whose own requests ``http.rate`` limits).
        backlog: connections the kernel queues before they are accepted (``server.backlog``).
    """

    live: ClassVar[set[HttpListener]] = set()  # every started one: the gauge is their sum, as for Listener

    def __init__(
        self,
        app: web.Application,
        *,
        max_connections: int,
        header_timeout: float,
        max_per_address: int = 0,
        trusted_proxies: Sequence[Network] = (),
        backlog: int = DEFAULT_BACKLOG,
    ) -> None:
        self.limit = max_connections
        self.backlog = backlog
        self.addresses = AddressCounts(max_per_address, trusted_proxies)
        # aiohttp's per-connection settings: its runner's server would build the handlers with them; Admission does.
        self.handler_settings: dict[str, Any] = {"access_log": None, "keepalive_timeout": header_timeout}
        self.runner = web.AppRunner(
            app, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT, **self.handler_settings
        )
        self.refusals = Refusals(NAME, max_connections)
        self.server: asyncio.Server | None = None
        self.port = 0

    @property
    def web_server(self) -> web.Server:
        """aiohttp's low-level server: the factory of the connections' protocols, and their bookkeeping."""
        assert self.runner.server is not None, "the listener is not started"
        return self.runner.server

    @property
    def connections(self) -> list[web.RequestHandler]:
        return self.web_server.connections if self.runner.server is not None else []

    async def start(self, host: str, port: int, setting: str = "http.port") -> int:
        await self.runner.setup()
        loop = asyncio.get_running_loop()
        try:
            self.server = await loop.create_server(
                lambda: Admission(self), host, port, reuse_address=True, backlog=self.backlog
            )
        except BaseException as exc:  # the port is taken, say: the app's start fails, with aiohttp's side closed
            await self.runner.cleanup()
            if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
                raise PortInUse(NAME, host, port, setting) from exc
            raise
        self.port = self.server.sockets[0].getsockname()[1]
        HttpListener.live.add(self)
        log.info("%s listening on %s:%d", NAME, host, self.port)
        return self.port

    async def close(self) -> None:
        """Stop accepting, then aiohttp's graceful stop: idle connections close, running handlers finish."""
        if self.server is not None:
            self.server.close()
        await self.runner.cleanup()
        if self.server is not None:
            await self.server.wait_closed()
        HttpListener.live.discard(self)


metrics.CONNECTIONS.labels(NAME).set_function(lambda: sum(len(each.connections) for each in list(HttpListener.live)))


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request's JSON object, or :class:`BadRequest` saying what is wrong with it."""
    try:
        body = await request.json()
    except ValueError:
        raise BadRequest("body must be JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


def check_admin_key(request: web.Request, expected: str, setting: str) -> None:
    """Let an operator's request through: ``Authorization: Bearer <key>`` or ``X-Admin-Key: <key>``.

    Raises:
        Forbidden: no key is configured (``setting`` names where to set it): the route is off.
        Unauthorized: the request carries no key, or another one (compared in constant time).
    """
    if not expected:
        raise Forbidden(
            f"{setting} is not set: set it in config.toml or GAMESERVER_{setting.upper().replace('.', '__')}"
        )
    given = request.headers.get("X-Admin-Key", "")
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if not given and scheme.lower() == "bearer":
        given = token.strip()
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise Unauthorized(f"a valid admin key is required (Authorization: Bearer <{setting}>)")
