"""The dispatcher (gameserver/dispatch/dispatcher.py) driven with a recording session: no sockets, a real event loop.

Replies are awaited, never timed: each test waits for the reply it expects (PROTOCOL.md, "Gate").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.exceptions
import sqlalchemy.exc

from gameserver.bus.sessions import Session, Sessions
from gameserver.dispatch.dispatcher import BUSY_MESSAGE, INTERNAL_MESSAGE, Dispatcher
from gameserver.dispatch.registry import Handler, compile_entry
from gameserver.errors import GameError, Unauthorized
from gameserver.features.identity.tokens import Claims
from gameserver.protocol.codec import Format, encode_json, encode_msgpack
from gameserver.ratelimit import TokenBucket

RESOURCES = {"config": "the-config", "db": "the-db", "redis": "the-redis", "push": "the-push"}
INJECTABLE = set(RESOURCES) | {"uid", "session", "log", "args", "claims"}
SECRET = "s3cr3t-detail"
TOKENS = {"good": 7}


class RecordingSession(Session):
    """A connection that encodes what it is sent (as the drivers do) and keeps it."""

    kind = "test"

    def __init__(self, *, burst: int = 1_000_000, rate: float = 1e6) -> None:
        super().__init__(Sessions(), TokenBucket(rate, burst, time.monotonic()))
        self.sent: list[dict[str, Any]] = []
        self.formats: list[Format] = []
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def send(self, message: dict[str, Any], fmt: Format) -> None:
        encode_msgpack(message) if fmt is Format.MSGPACK else encode_json(message)  # raises like a driver
        self.sent.append(message)
        self.formats.append(fmt)
        self._queue.put_nowait(message)

    def close(self, code: int = 1000, reason: str = "") -> None:
        pass

    async def reply(self) -> dict[str, Any]:
        async with asyncio.timeout(5):
            return await self._queue.get()


class NameTaken(GameError):
    code = "family_name_taken"
    message = "that name is taken"


def authenticate(token: str) -> Claims:
    if token not in TOKENS:
        raise Unauthorized("invalid token")
    return Claims(TOKENS[token], issued_ms=1_700_000_000_000, auth_time=1_700_000_000)


async def my_claims(*, claims: Claims | None) -> list[int] | None:
    return None if claims is None else [claims.uid, claims.issued_ms]


async def add(a: int, b: int = 0) -> int:
    return a + b


async def whoami(*, uid: int) -> int:
    return uid


async def crash() -> None:
    raise RuntimeError(f"boom: {SECRET}")


CRASH_LINE = crash.__code__.co_firstlineno + 1  # the raise


async def taken() -> None:
    raise NameTaken()


async def hang() -> None:
    await asyncio.Event().wait()


async def unencodable() -> Any:
    return {"value": object()}


async def raw_bytes() -> Any:
    return {"value": b"\x00"}  # fine in msgpack, no JSON form


async def redis_down() -> None:
    raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


async def redis_slow() -> None:
    raise redis.exceptions.TimeoutError("Timeout reading from socket")


async def mysql_down() -> None:
    orig = Exception(2003, "Can't connect to MySQL server on '127.0.0.1' ([Errno 111] Connection refused)")
    raise sqlalchemy.exc.OperationalError("SELECT 1", {}, orig)


async def mysql_deadlock() -> None:
    """What db.run() raises when a transaction lost a deadlock on its last attempt."""
    orig = Exception(1213, "Deadlock found when trying to get lock; try restarting transaction")
    raise sqlalchemy.exc.OperationalError("UPDATE inventory", {}, orig)


async def mysql_syntax() -> None:
    orig = Exception(1064, "You have an error in your SQL syntax")
    raise sqlalchemy.exc.ProgrammingError("SELEC 1", {}, orig)


async def stray_cancel() -> None:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    future.cancel()
    await future  # a CancelledError that does not come from cancelling this request


async def loses_a_cancel() -> None:
    """Swallows its first cancel and waits on, as a redis-py command under Python 3.11's wait_for can."""
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        pass
    await asyncio.Event().wait()


release = asyncio.Event()  # (created outside a loop: Python 3.10+ binds it on first use)


async def ignores_cancel() -> None:
    """Swallows every cancel until ``release`` is set: a handler stuck in a thread (SQLite's busy wait)."""
    while not release.is_set():
        try:
            await release.wait()
        except asyncio.CancelledError:
            pass


async def echo(*, args: dict[str, Any]) -> dict[str, Any]:
    return args


HANDLERS: dict[str, Handler] = {
    "t.add": Handler(add, login=False),
    "t.whoami": Handler(whoami),
    "t.claims": Handler(my_claims, login=False),
    "t.crash": Handler(crash, login=False),
    "t.taken": Handler(taken, login=False),
    "t.hang": Handler(hang, login=False, timeout=0.01),
    "t.wait": Handler(hang, login=False, timeout=60),
    "t.unencodable": Handler(unencodable, login=False),
    "t.raw_bytes": Handler(raw_bytes, login=False),
    "t.redis_down": Handler(redis_down, login=False),
    "t.redis_slow": Handler(redis_slow, login=False),
    "t.mysql_down": Handler(mysql_down, login=False),
    "t.mysql_deadlock": Handler(mysql_deadlock, login=False),
    "t.mysql_syntax": Handler(mysql_syntax, login=False),
    "t.stray_cancel": Handler(stray_cancel, login=False),
    "t.loses_a_cancel": Handler(loses_a_cancel, login=False, timeout=60),
    "t.echo": Handler(echo, login=False, any_args=True),
    "t.ignores_cancel": Handler(ignores_cancel, login=False, timeout=60),
}

OUTCOME_UNKNOWN = "the server stopped before the request finished; it may have been applied"

MakeDispatcher = Callable[..., Dispatcher]


@pytest.fixture
async def make_dispatcher() -> AsyncIterator[MakeDispatcher]:
    made: list[Dispatcher] = []

    def make(extra: dict[str, Handler] | None = None, *, max_inflight: int = 100, **settings: Any) -> Dispatcher:
        table = {
            name: compile_entry(name, spec, injectable=INJECTABLE, default_timeout=5.0)
            for name, spec in {**HANDLERS, **(extra or {})}.items()
        }
        dispatcher = Dispatcher(
            table, RESOURCES, max_inflight=max_inflight, node="node1", sweep_period=0.005, **settings
        )
        dispatcher.authenticate = authenticate
        made.append(dispatcher)
        return dispatcher

    yield make
    for dispatcher in made:
        await dispatcher.cancel_all(5.0)


@pytest.fixture
def dispatcher(make_dispatcher: MakeDispatcher) -> Dispatcher:
    return make_dispatcher()


async def call(
    dispatcher: Dispatcher,
    message: dict[str, Any],
    session: RecordingSession | None = None,
    fmt: Format = Format.MSGPACK,
) -> dict[str, Any]:
    session = session or RecordingSession()
    dispatcher.dispatch(message, session, fmt)
    return await session.reply()


def error(request_id: int | None, code: str, message: str) -> dict[str, Any]:
    return {"id": request_id, "ok": False, "error": {"code": code, "message": message}}


def internal(request_id: int, cid: str) -> dict[str, Any]:
    """The production answer to a crash: ``programming error`` and the log line's correlation id."""
    return {"id": request_id, "ok": False, "error": {"code": "internal", "message": INTERNAL_MESSAGE, "cid": cid}}


def without_cid(reply: dict[str, Any]) -> dict[str, Any]:
    assert reply["error"]["cid"].startswith("node1-"), reply
    return {**reply, "error": {k: v for k, v in reply["error"].items() if k != "cid"}}


async def test_ok_reply(dispatcher: Dispatcher) -> None:
    assert await call(dispatcher, {"id": 1, "fn": "t.add", "args": {"a": 2, "b": 3}}) == {
        "id": 1,
        "ok": True,
        "data": 5,
    }


async def test_reply_goes_out_in_the_request_format(dispatcher: Dispatcher) -> None:
    session = RecordingSession()
    await call(dispatcher, {"id": 1, "fn": "t.add", "args": {"a": 1}}, session, Format.JSON)
    await call(dispatcher, {"id": 2, "fn": "nope"}, session, Format.JSON)
    assert session.formats == [Format.JSON, Format.JSON]


async def test_args_null_means_empty(dispatcher: Dispatcher) -> None:
    reply = await call(dispatcher, {"id": 1, "fn": "t.echo", "args": None})
    assert reply == {"id": 1, "ok": True, "data": {}}


# PROTOCOL.md: envelope -> unknown_function -> unauthorized -> arguments; the first failure answers.


async def test_envelope_is_checked_first(dispatcher: Dispatcher) -> None:
    reply = await call(dispatcher, {"id": "7", "fn": "nope", "args": []})
    assert reply == error(None, "bad_request", "id must be an integer")


async def test_missing_id_is_answered_with_id_null(dispatcher: Dispatcher) -> None:
    assert await call(dispatcher, {"fn": "t.add"}) == error(None, "bad_request", "id must be an integer")


async def test_bool_id_is_answered_with_id_null(dispatcher: Dispatcher) -> None:
    assert (await call(dispatcher, {"id": True, "fn": "t.add"}))["id"] is None


async def test_missing_fn(dispatcher: Dispatcher) -> None:
    assert await call(dispatcher, {"id": 3}) == error(3, "bad_request", "fn must be a string")


async def test_args_not_a_map(dispatcher: Dispatcher) -> None:
    reply = await call(dispatcher, {"id": 3, "fn": "nope", "args": [1]})
    assert reply == error(3, "bad_request", "args must be a map")


async def test_token_not_a_string(dispatcher: Dispatcher) -> None:
    reply = await call(dispatcher, {"id": 3, "fn": "nope", "token": 5})
    assert reply == error(3, "bad_request", "token must be a string")


async def test_unknown_function_before_login(dispatcher: Dispatcher) -> None:
    reply = await call(dispatcher, {"id": 2, "fn": "t.nope", "args": {"x": 1}})
    assert reply == error(2, "unknown_function", "no function t.nope")


async def test_login_before_arguments(dispatcher: Dispatcher) -> None:
    reply = await call(dispatcher, {"id": 4, "fn": "t.whoami", "args": {"bogus": 1}})
    assert reply == error(4, "unauthorized", "login required")


async def test_bad_token_before_arguments(dispatcher: Dispatcher) -> None:
    reply = await call(dispatcher, {"id": 4, "fn": "t.whoami", "args": {"bogus": 1}, "token": "forged"})
    assert reply == error(4, "unauthorized", "invalid token")


async def test_arguments_last(dispatcher: Dispatcher) -> None:
    reply = await call(dispatcher, {"id": 5, "fn": "t.whoami", "args": {"bogus": 1}, "token": "good"})
    assert reply == error(5, "bad_request", "unknown argument bogus for t.whoami")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({}, "missing argument a for t.add"),
        ({"a": "1"}, "a must be an integer"),
        ({"a": True}, "a must be an integer"),
        ({"a": 1, "c": 2}, "unknown argument c for t.add"),
    ],
)
async def test_bad_arguments(dispatcher: Dispatcher, args: dict[str, Any], message: str) -> None:
    assert await call(dispatcher, {"id": 6, "fn": "t.add", "args": args}) == error(6, "bad_request", message)


async def test_token_logs_in(dispatcher: Dispatcher) -> None:
    reply = await call(dispatcher, {"id": 1, "fn": "t.whoami", "token": "good"})
    assert reply == {"id": 1, "ok": True, "data": 7}


async def test_bound_session_needs_no_token(dispatcher: Dispatcher) -> None:
    session = RecordingSession()
    session.bind(9)
    assert (await call(dispatcher, {"id": 1, "fn": "t.whoami"}, session))["data"] == 9


async def test_claims_of_the_token_else_of_the_binding(dispatcher: Dispatcher) -> None:
    session = RecordingSession()
    assert (await call(dispatcher, {"id": 1, "fn": "t.claims"}, session))["data"] is None
    session.bind(9, Claims(9, issued_ms=5, auth_time=0))
    assert (await call(dispatcher, {"id": 2, "fn": "t.claims"}, session))["data"] == [9, 5]
    reply = await call(dispatcher, {"id": 3, "fn": "t.claims", "token": "good"}, session)
    assert reply["data"] == [7, 1_700_000_000_000]  # the request's own token wins, as it does for uid


async def test_bad_token_on_a_function_without_login_is_served(dispatcher: Dispatcher) -> None:
    reply = await call(dispatcher, {"id": 1, "fn": "t.add", "args": {"a": 1}, "token": "forged"})
    assert reply == {"id": 1, "ok": True, "data": 1}


async def test_without_an_auth_role_login_functions_are_unauthorized(make_dispatcher: MakeDispatcher) -> None:
    dispatcher = make_dispatcher()
    dispatcher.authenticate = Dispatcher(  # the default check of a process without the auth role
        {}, {}, max_inflight=1
    ).authenticate
    reply = await call(dispatcher, {"id": 1, "fn": "t.whoami", "token": "good"})
    assert reply["error"]["code"] == "unauthorized"


# Load: rate, requests in flight, deadlines.


async def test_rate_limited(dispatcher: Dispatcher) -> None:
    session = RecordingSession(burst=2, rate=1e-9)
    await call(dispatcher, {"id": 1, "fn": "t.add", "args": {"a": 1}}, session)
    await call(dispatcher, {"id": "bad"}, session)  # an envelope error costs no token
    await call(dispatcher, {"id": 2, "fn": "t.add", "args": {"a": 1}}, session)
    reply = await call(dispatcher, {"id": 3, "fn": "t.add", "args": {"a": 1}}, session)
    assert reply == error(3, "rate_limited", "over the connection's request rate")
    other = RecordingSession(burst=1, rate=1e-9)  # the limit is per connection
    assert (await call(dispatcher, {"id": 4, "fn": "t.add", "args": {"a": 1}}, other))["ok"] is True


async def test_overloaded_at_max_inflight(make_dispatcher: MakeDispatcher) -> None:
    dispatcher = make_dispatcher(max_inflight=2)
    session = RecordingSession()
    dispatcher.dispatch({"id": 1, "fn": "t.wait"}, session, Format.MSGPACK)
    dispatcher.dispatch({"id": 2, "fn": "t.wait"}, session, Format.MSGPACK)
    assert dispatcher.inflight == 2
    assert await call(dispatcher, {"id": 3, "fn": "t.add", "args": {"a": 1}}) == error(
        3, "overloaded", "server overloaded, retry later"
    )
    await dispatcher.cancel_all(5.0)
    assert dispatcher.inflight == 0
    assert (await call(dispatcher, {"id": 4, "fn": "t.add", "args": {"a": 1}}))["ok"] is True


async def test_deadline_answers_timeout(dispatcher: Dispatcher) -> None:
    session = RecordingSession()
    reply = await call(dispatcher, {"id": 1, "fn": "t.hang"}, session)
    assert reply == error(1, "timeout", "no result within the deadline")
    assert dispatcher.inflight == 0
    assert (await call(dispatcher, {"id": 2, "fn": "t.add", "args": {"a": 1}}, session))["ok"] is True
    assert len(session.sent) == 2  # exactly one reply each


async def test_deadline_of_one_request_spares_the_others(dispatcher: Dispatcher) -> None:
    session = RecordingSession()
    dispatcher.dispatch({"id": 1, "fn": "t.wait"}, session, Format.MSGPACK)
    assert (await call(dispatcher, {"id": 2, "fn": "t.hang"}, session))["error"]["code"] == "timeout"
    assert dispatcher.inflight == 1
    await dispatcher.cancel_all(5.0)
    assert (await session.reply())["id"] == 1


async def test_drain(dispatcher: Dispatcher) -> None:
    assert await dispatcher.drain(0)
    session = RecordingSession()
    dispatcher.dispatch({"id": 1, "fn": "t.wait"}, session, Format.MSGPACK)
    assert not await dispatcher.drain(0.01)


# Exceptions -> replies.


async def test_game_error_becomes_its_code(dispatcher: Dispatcher) -> None:
    assert await call(dispatcher, {"id": 1, "fn": "t.taken"}) == error(1, "family_name_taken", "that name is taken")


async def test_crash_answers_internal_and_logs_the_traceback(
    dispatcher: Dispatcher, caplog: pytest.LogCaptureFixture
) -> None:
    session = RecordingSession()
    with caplog.at_level(logging.ERROR, logger="gameserver.dispatch.dispatcher"):
        reply = await call(dispatcher, {"id": 11, "fn": "t.crash"}, session)
    correlation_id = f"node1-{session.id}-11"
    # Production: the message exactly, and the correlation id in a field of its own so that support finds the line.
    assert reply == internal(11, correlation_id)
    assert INTERNAL_MESSAGE == "programming error"
    assert SECRET not in repr(session.sent) and "RuntimeError" not in repr(session.sent)
    (record,) = [r for r in caplog.records if r.name == "gameserver.dispatch.dispatcher"]
    assert correlation_id in record.getMessage() and record.cid == correlation_id  # type: ignore[attr-defined]
    assert "test_dispatch.py" not in repr(session.sent)
    assert record.exc_info is not None and SECRET in str(record.exc_info[1])
    assert "Traceback" in caplog.text and "in crash" in caplog.text


async def test_in_development_a_crash_answers_its_exception_and_where(make_dispatcher: MakeDispatcher) -> None:
    dispatcher = make_dispatcher(dev=True)
    session = RecordingSession()
    reply = await call(dispatcher, {"id": 12, "fn": "t.crash"}, session)
    line = CRASH_LINE
    assert reply == {
        "id": 12,
        "ok": False,
        "error": {
            "code": "internal",
            "message": f"programming error: RuntimeError: boom: {SECRET} (at tests/unit/test_dispatch.py:{line})",
            "cid": f"node1-{session.id}-12",
            "exception": {
                "type": "RuntimeError",
                "message": f"boom: {SECRET}",
                "file": "tests/unit/test_dispatch.py",
                "line": line,
            },
        },
    }


@pytest.mark.parametrize(("fn", "fmt"), [("t.unencodable", Format.MSGPACK), ("t.raw_bytes", Format.JSON)])
async def test_reply_that_cannot_be_encoded_answers_internal(
    dispatcher: Dispatcher, caplog: pytest.LogCaptureFixture, fn: str, fmt: Format
) -> None:
    with caplog.at_level(logging.ERROR, logger="gameserver.dispatch.dispatcher"):
        assert without_cid(await call(dispatcher, {"id": 1, "fn": fn}, fmt=fmt)) == error(
            1, "internal", INTERNAL_MESSAGE
        )
    assert "correlation id node1-" in caplog.text


async def test_bytes_are_fine_in_msgpack(dispatcher: Dispatcher) -> None:
    assert (await call(dispatcher, {"id": 1, "fn": "t.raw_bytes"}))["data"] == {"value": b"\x00"}


@pytest.mark.parametrize("fn", ["t.redis_down", "t.redis_slow", "t.mysql_down"])
async def test_backend_down_answers_unavailable(
    dispatcher: Dispatcher, caplog: pytest.LogCaptureFixture, fn: str
) -> None:
    with caplog.at_level(logging.WARNING, logger="gameserver.dispatch.dispatcher"):
        assert await call(dispatcher, {"id": 1, "fn": fn}) == error(1, "unavailable", "a backend is unavailable")
    assert "backend unavailable" in caplog.text


async def test_a_lost_lock_conflict_answers_unavailable_with_a_warning(
    dispatcher: Dispatcher, caplog: pytest.LogCaptureFixture
) -> None:
    """Not a bug: nothing was written and the client may try again (PROTOCOL.md, `unavailable`)."""
    with caplog.at_level(logging.WARNING, logger="gameserver.dispatch.dispatcher"):
        assert await call(dispatcher, {"id": 1, "fn": "t.mysql_deadlock"}) == error(1, "unavailable", BUSY_MESSAGE)
    (record,) = [r for r in caplog.records if r.name == "gameserver.dispatch.dispatcher"]
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert "t.mysql_deadlock: database busy (lock conflict)" in record.getMessage() and "1213" in record.getMessage()


async def test_other_database_errors_are_bugs(dispatcher: Dispatcher) -> None:
    assert without_cid(await call(dispatcher, {"id": 1, "fn": "t.mysql_syntax"})) == error(
        1, "internal", INTERNAL_MESSAGE
    )


async def test_a_request_after_the_shutdown_began_is_answered_unavailable_and_not_run(dispatcher: Dispatcher) -> None:
    session = RecordingSession()
    dispatcher.stop_taking()
    dispatcher.dispatch({"id": 1, "fn": "t.wait"}, session, Format.MSGPACK)
    assert await session.reply() == error(1, "unavailable", "the server is shutting down; the request was not run")
    assert dispatcher.inflight == 0


async def test_shutdown_cancels_with_a_reply_and_propagates(dispatcher: Dispatcher) -> None:
    session = RecordingSession()
    dispatcher.dispatch({"id": 1, "fn": "t.wait"}, session, Format.MSGPACK)
    (task,) = list(dispatcher._deadlines)
    await dispatcher.cancel_all(5.0)
    assert await session.reply() == error(1, "outcome_unknown", OUTCOME_UNKNOWN)
    assert task.cancelled()  # CancelledError is not swallowed
    assert dispatcher.inflight == 0 and await dispatcher.drain(0)


async def test_cancel_all_returns_within_its_timeout_and_leaves_a_handler_that_will_not_end(
    dispatcher: Dispatcher,
) -> None:
    session = RecordingSession()
    dispatcher.dispatch({"id": 1, "fn": "t.ignores_cancel"}, session, Format.MSGPACK)
    (task,) = list(dispatcher._deadlines)
    await dispatcher.cancel_all(0.2)  # the handler swallows every cancel: cancel_all must not wait for it
    assert not task.done() and dispatcher.inflight == 0 and await dispatcher.drain(0)
    release.set()
    await task


async def test_shutdown_cancels_again_a_handler_that_lost_the_cancel(dispatcher: Dispatcher) -> None:
    session = RecordingSession()
    dispatcher.dispatch({"id": 1, "fn": "t.loses_a_cancel"}, session, Format.MSGPACK)
    async with asyncio.timeout(10):  # a lost cancel waited on forever before; this bounds the failure, not the speed
        await dispatcher.cancel_all(5.0)
    assert await session.reply() == error(1, "outcome_unknown", OUTCOME_UNKNOWN)
    assert dispatcher.inflight == 0


async def test_a_stray_cancelled_error_is_a_bug_not_a_shutdown(dispatcher: Dispatcher) -> None:
    assert without_cid(await call(dispatcher, {"id": 1, "fn": "t.stray_cancel"})) == error(
        1, "internal", INTERNAL_MESSAGE
    )


async def test_a_failing_token_hook_answers_internal(dispatcher: Dispatcher, caplog: pytest.LogCaptureFixture) -> None:
    def broken(token: str) -> int:
        raise KeyError(SECRET)

    dispatcher.authenticate = broken
    session = RecordingSession()
    with caplog.at_level(logging.ERROR, logger="gameserver.dispatch.dispatcher"):
        reply = await call(dispatcher, {"id": 1, "fn": "t.whoami", "token": "good"}, session)
    assert without_cid(reply) == error(1, "internal", INTERNAL_MESSAGE)
    assert SECRET not in repr(session.sent) and SECRET in caplog.text
    assert (await call(dispatcher, {"id": 2, "fn": "t.add", "args": {"a": 1}}, session))["ok"] is True


async def test_request_log(make_dispatcher: MakeDispatcher, caplog: pytest.LogCaptureFixture) -> None:
    dispatcher = make_dispatcher(log_requests=True)
    with caplog.at_level(logging.INFO, logger="gameserver.access"):
        await call(dispatcher, {"id": 1, "fn": "t.add", "args": {"a": 1}})
        await call(dispatcher, {"id": 2, "fn": "t.nope"})
    lines = [r.getMessage() for r in caplog.records if r.name == "gameserver.access"]
    assert lines[0].startswith("fn=t.add uid=None ms=") and lines[0].endswith(" outcome=ok")
    assert lines[1].startswith("fn=(unknown) uid=None ms=") and lines[1].endswith(" outcome=unknown_function")


# Injection: the declared names only, or everything with **kwargs (seed 003's kwargs bag).


async def test_declared_names_only(make_dispatcher: MakeDispatcher) -> None:
    seen: dict[str, Any] = {}

    async def declared(a: int, *, uid: int | None, session: Session, args: Any, log: Any, db: Any) -> None:
        seen.update(a=a, uid=uid, session=session, args=args, log=log, db=db)

    dispatcher = make_dispatcher({"t.declared": Handler(declared, login=False)})
    session = RecordingSession()
    await call(dispatcher, {"id": 1, "fn": "t.declared", "args": {"a": 1}, "token": "good"}, session)
    assert seen == {
        "a": 1,
        "uid": 7,
        "session": session,
        "args": {"a": 1},
        "log": logging.getLogger(__name__),
        "db": "the-db",
    }


async def test_kwargs_gets_everything(make_dispatcher: MakeDispatcher) -> None:
    seen: dict[str, Any] = {}

    async def bag(a: int = 0, **kwargs: Any) -> None:
        seen.update(kwargs, a=a)

    dispatcher = make_dispatcher({"t.bag": Handler(bag, login=False)})
    session = RecordingSession()
    session.bind(3)
    await call(dispatcher, {"id": 1, "fn": "t.bag", "args": {"a": 2}}, session)
    assert seen == {
        **RESOURCES,
        "a": 2,
        "uid": 3,
        "session": session,
        "args": {"a": 2},
        "claims": None,
        "log": logging.getLogger(__name__),
    }


async def test_anonymous_uid_is_none(make_dispatcher: MakeDispatcher) -> None:
    seen: list[Any] = []

    async def anonymous(*, uid: int | None) -> None:
        seen.append(uid)

    dispatcher = make_dispatcher({"t.anon": Handler(anonymous, login=False)})
    await call(dispatcher, {"id": 1, "fn": "t.anon"})
    assert seen == [None]


async def test_handler_defaults_apply(dispatcher: Dispatcher) -> None:
    assert (await call(dispatcher, {"id": 1, "fn": "t.add", "args": {"a": 4}}))["data"] == 4


async def test_many_outstanding_requests_are_answered_by_id(dispatcher: Dispatcher) -> None:
    session = RecordingSession()
    for i in range(50):
        dispatcher.dispatch({"id": i, "fn": "t.add", "args": {"a": i, "b": i}}, session, Format.MSGPACK)
    replies = [await session.reply() for _ in range(50)]
    assert sorted((r["id"], r["data"]) for r in replies) == [(i, 2 * i) for i in range(50)]
