"""One WebSocket connection: authenticate, then serve subscriptions and commands until either side closes.

Authentication happens here, not in the HTTP middleware: browsers cannot put headers on a WebSocket handshake, so the
token comes as a subprotocol (`bearer.<token>`, offered next to `odin.v1`), as an `Authorization` header (other
clients), as the console's session cookie (from a page of this site), or in a first `{"type": "auth"}` message within
`ws_auth_timeout` seconds. A connection lives no longer than its token's authority: it is closed (4401) when the token
expires, and the token is checked again against the store — at once when this server changes its user (disabled,
logged out, new password), every `RECHECK_SESSION` seconds for a login session otherwise (changes made through another
replica), every `RECHECK_API_TOKEN` seconds for an API token (revocations). Each command is authorised by the user's
role at that moment, so a demotion applies to the next command.

Commands run one at a time per connection, in worker threads (they read git and write the store); events keep
flowing meanwhile, from the hub through the connection's queue, which is the only writer to the socket.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import anyio
import anyio.to_thread
import msgspec
from litestar import WebSocket, websocket
from litestar.di import NamedDependency
from litestar.exceptions import WebSocketDisconnect
from litestar.types.asgi_types import WebSocketSendEvent

from odin.api.auth.cookies import cookie_token, same_origin
from odin.api.auth.middleware import Authenticator, Principal
from odin.api.auth.tokens import TokenInvalid
from odin.api.auth.users import Role
from odin.api.context import AppContext
from odin.api.errors import classify
from odin.api.inputs import control_character
from odin.api.schemas import RunSummary
from odin.api.services import actions
from odin.api.ws import protocol as p
from odin.api.ws.hub import Connection, EventHub, EventJson, Subscription, event_message, wrap

log = logging.getLogger(__name__)

RECHECK_API_TOKEN = 60.0
RECHECK_SESSION = 15.0


def _token_from_handshake(socket: WebSocket[Any, Any, Any]) -> str | None:
    for offered in socket.scope.get("subprotocols") or []:
        if offered.startswith(p.BEARER_PREFIX):
            return offered[len(p.BEARER_PREFIX) :]
    scheme, _, token = socket.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    # The console's pages: their session cookie, from a page of this very site (browsers always send Origin on a
    # WebSocket handshake; one from another site is not trusted with the cookie).
    session = cookie_token(socket.cookies)
    if session is not None and socket.headers.get("origin") and same_origin(socket.headers):
        return session
    return None


async def _send(socket: WebSocket[Any, Any, Any], message: p.ServerMessage) -> None:
    await socket.send_data(p.encode(message).decode(), mode="text")


async def _close(socket: WebSocket[Any, Any, Any], code: int, detail: str) -> None:
    try:
        await _send(socket, p.Error(status=code, detail=detail))
        await socket.close(code=code, reason=detail[:120])
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the client is already gone


async def _receive(socket: WebSocket[Any, Any, Any]) -> str | bytes | None:
    """The next message's payload; None once the client disconnected."""
    event = await socket.receive()
    if event["type"] == "websocket.disconnect":
        return None
    text: str | None = event.get("text")  # type: ignore[assignment]
    return text if text is not None else event.get("bytes") or b""  # type: ignore[return-value]


@websocket("/v1/ws", exclude_from_auth=True)
async def ws_endpoint(
    socket: WebSocket[Any, Any, Any],
    ctx: NamedDependency[AppContext],
    hub: NamedDependency[EventHub],
    authenticator: NamedDependency[Authenticator],
) -> None:
    try:
        await _serve(socket, ctx, hub, authenticator)
    except Exception:
        log.exception("websocket connection from %s failed", _peer(socket))
        raise


async def _serve(
    socket: WebSocket[Any, Any, Any], ctx: AppContext, hub: EventHub, authenticator: Authenticator
) -> None:
    offered = socket.scope.get("subprotocols") or []
    await socket.accept(subprotocols=p.PROTOCOL if p.PROTOCOL in offered else None)
    authenticated = await _authenticate(socket, authenticator, ctx.settings.ws_auth_timeout)
    if authenticated is None:
        return
    principal, token = authenticated
    await _send(socket, p.Welcome(protocol=p.PROTOCOL, user=principal.name, role=principal.role.value))
    conn = hub.connect(ctx.settings.ws_queue_size)
    ending: tuple[int, str] | None = None
    try:
        async with anyio.create_task_group() as tg:

            async def closing(code: int, detail: str) -> None:
                """Stop every task first (the pump included), then close: nothing is sent after the close."""
                nonlocal ending
                ending = ending or (code, detail)
                tg.cancel_scope.cancel()

            tg.start_soon(_pump, socket, conn)
            tg.start_soon(_watch_slow, conn, closing)
            tg.start_soon(_watch_token, principal, token, authenticator, closing)
            session = _Session(socket, ctx, hub, conn, principal, lambda: authenticator.authenticate(token))
            while True:
                payload = await _receive(socket)
                if payload is None:
                    break
                await session.handle(payload)
            tg.cancel_scope.cancel()
    except* (WebSocketDisconnect, OSError):
        pass  # the client went away while something was being sent to it
    finally:
        hub.disconnect(conn)
    if ending is not None:
        code, detail = ending
        log.log(
            logging.WARNING if code == p.CLOSE_TOO_SLOW else logging.INFO,
            "websocket of %s from %s closed (%d): %s",
            principal.name,
            _peer(socket),
            code,
            detail,
        )
        await _close(socket, code, detail)


def _peer(socket: WebSocket[Any, Any, Any]) -> str:
    return (socket.client or ("-",))[0]


async def _authenticate(
    socket: WebSocket[Any, Any, Any], authenticator: Authenticator, timeout: float
) -> tuple[Principal, str] | None:
    token = _token_from_handshake(socket)
    if token is None:
        try:
            with anyio.fail_after(timeout):
                payload = await _receive(socket)
        except TimeoutError:
            await _close(socket, p.CLOSE_UNAUTHENTICATED, f"no auth message within {timeout:g} seconds")
            return None
        if payload is None:
            return None
        try:
            message = p.decode(payload)
        except (msgspec.ValidationError, msgspec.DecodeError) as e:
            await _close(socket, p.CLOSE_UNAUTHENTICATED, f"the first message must be {{'type': 'auth'}}: {e}")
            return None
        if not isinstance(message, p.Auth):
            await _close(socket, p.CLOSE_UNAUTHENTICATED, "authenticate first: send {'type': 'auth', 'token': ...}")
            return None
        refused = p.bad_characters(message)
        if refused is not None:
            await _close(socket, p.CLOSE_UNAUTHENTICATED, f"invalid token: {refused}")
            return None
        token = message.token
    try:
        return await authenticator.authenticate(token), token
    except TokenInvalid as e:
        log.info("websocket from %s refused (%d): %s", _peer(socket), p.CLOSE_UNAUTHENTICATED, e)
        await _close(socket, p.CLOSE_UNAUTHENTICATED, str(e))
        return None
    except Exception as e:  # the store is down (API tokens): say so, never a stack trace
        failure = classify(e)
        await _close(socket, 1011, failure.detail if failure else "authentication failed")
        return None


MAX_BATCH = 200


def _text(data: str) -> WebSocketSendEvent:
    return {"type": "websocket.send", "text": data, "bytes": None}


async def _pump(socket: WebSocket[Any, Any, Any], conn: Connection) -> None:
    """The only writer to the socket once the connection is set up. Events waiting together leave together."""
    send = socket.send  # the ASGI send: one call per WebSocket message
    while True:
        batch: list[EventJson] = []
        for item in await conn.take(MAX_BATCH):
            if isinstance(item, EventJson):
                batch.append(item)
                continue
            if batch:
                await send(_text(wrap(batch)))
                batch = []
            await send(_text(item))
        if batch:
            await send(_text(wrap(batch)))


async def _watch_slow(conn: Connection, closing: Callable[[int, str], Awaitable[None]]) -> None:
    await conn.too_slow.wait()
    await closing(
        p.CLOSE_TOO_SLOW,
        f"too slow: more than {conn.maxsize} events waiting; reconnect and subscribe with since=<last event id>",
    )


async def _watch_token(
    principal: Principal, token: str, authenticator: Authenticator, closing: Callable[[int, str], Awaitable[None]]
) -> None:
    """Close the connection once its token no longer authenticates: expired, or its user changed in the store."""
    with authenticator.standings.watch(principal.name) as changed:
        while True:
            wait = RECHECK_API_TOKEN if principal.kind == "api" else RECHECK_SESSION
            if principal.expires_at is not None:
                wait = min(wait, max(0.0, (principal.expires_at - datetime.now(UTC)).total_seconds()))
            with anyio.move_on_after(wait):
                await changed.wait()
            changed.clear()
            if principal.expires_at is not None and principal.expires_at <= datetime.now(UTC):
                await closing(p.CLOSE_UNAUTHENTICATED, "the token expired; reconnect with a new one")
                return
            try:
                await authenticator.authenticate(token)
            except TokenInvalid as e:
                await closing(p.CLOSE_UNAUTHENTICATED, str(e))
                return
            except Exception as e:  # the store is unreachable right now: keep the connection, check again later
                log.warning("websocket: cannot re-check the token of %s (%s)", principal.name, e)


class _Session:
    """Handles one connection's messages after authentication."""

    def __init__(
        self,
        socket: WebSocket[Any, Any, Any],
        ctx: AppContext,
        hub: EventHub,
        conn: Connection,
        who: Principal,
        current: Callable[[], Awaitable[Principal]],
    ) -> None:
        self.socket = socket
        self.ctx = ctx
        self.hub = hub
        self.conn = conn
        self.who = who
        self.current = current  # the principal as the store says now (role changes apply to the next command)
        self._next_subscription = 0

    def reply(self, message: p.ServerMessage) -> None:
        self.conn.send(p.encode(message).decode())

    def error(self, request_id: str | None, status: int, detail: str, extra: Any = None) -> None:
        self.reply(
            p.Error(id=request_id, status=status, detail=detail, extra=msgspec.UNSET if extra is None else extra)
        )

    async def handle(self, payload: str | bytes) -> None:
        try:
            message = p.decode(payload)
        except (msgspec.ValidationError, msgspec.DecodeError) as e:
            self.error(None, 400, f"invalid message: {e}")
            return
        refused = p.bad_characters(message)
        if refused is not None:  # as over HTTP: nothing with a NUL reaches the store, no control character a name
            echoed = message.id if message.id is not None and control_character(message.id) is None else None
            self.error(echoed, 400, refused)
            return
        if isinstance(message, p.Ping):
            self.reply(p.Pong(id=message.id))
        elif isinstance(message, p.Auth):
            self.error(message.id, 400, "already authenticated")
        elif isinstance(message, p.Subscribe):
            await self.subscribe(message)
        elif isinstance(message, p.Unsubscribe):
            found = self.conn.subscriptions.pop(message.subscription, None) is not None
            if found:
                self.reply(p.Unsubscribed(id=message.id, subscription=message.subscription))
            else:
                self.error(message.id, 404, f"no subscription {message.subscription!r}")
        else:
            await self.command(message)

    async def subscribe(self, m: p.Subscribe) -> None:
        """Start a subscription from the store's truth: replay (since, position] or start at the store's last id,
        while live events above the hub's position wait, so the client sees each event once, in id order."""
        chosen = sum([m.run is not None, m.commit is not None, m.all])
        if chosen != 1:
            self.error(m.id, 400, "subscribe to exactly one of: run, commit, all")
            return
        self._next_subscription += 1
        sub_id = m.id or f"s{self._next_subscription}"
        if sub_id in self.conn.subscriptions:
            self.error(m.id, 409, f"subscription {sub_id!r} exists; unsubscribe first or use another id")
            return
        sub = Subscription(sub_id, run=m.run, commit=m.commit.lower() if m.commit else None, all=m.all)
        self.conn.hold(sub)  # live events wait while the store is read, so nothing is missed or reordered
        try:
            start = await self._start(sub, m.since)
        except Exception as e:
            self.conn.release()
            failure = classify(e)
            if failure is None:
                log.exception("websocket: subscribing %s failed", self.who.name)
            self.error(m.id, failure.status if failure else 500, failure.detail if failure else "subscribe failed")
            return
        if start is None:
            self.conn.release()
            self.error(m.id, 404, f"no run {m.run!r}; subscribe to its commit to see runs that do not exist yet")
            return
        after, events, truncated = start
        self.conn.subscriptions[sub_id] = replace(sub, after=after)
        reply = p.Subscribed(id=m.id, subscription=sub_id)
        if m.since is not None:
            reply.replayed, reply.truncated = len(events), truncated
        self.reply(reply)
        for event in events:
            self.conn.deliver(int(event["id"]), event_message(event))
        self.conn.release()

    async def _start(self, sub: Subscription, since: int | None) -> tuple[int, list[dict[str, Any]], bool] | None:
        """Where `sub` starts and what it replays; None when it names a run that does not exist."""
        position = await self.hub.ready()  # live events above it are held (the caller holds before awaiting)
        if sub.run is not None and not await anyio.to_thread.run_sync(self.hub.run_exists, sub.run):
            return None
        if since is None:
            return max(position, await anyio.to_thread.run_sync(self.hub.last_id)), [], False
        await self.hub.catch_up()  # everything committed before this request is replayed, not left to the next tail
        position = await self.hub.ready()
        events, truncated = await anyio.to_thread.run_sync(self.hub.replay, sub, since, position)
        return max(position, since), events, truncated

    async def command(self, m: p.Start | p.Rerun | p.Cancel) -> None:
        try:
            self.who = await self.current()
        except TokenInvalid as e:  # the token watcher closes the connection too
            self.error(m.id, p.CLOSE_UNAUTHENTICATED, str(e))
            return
        except Exception as e:
            failure = classify(e)
            self.error(
                m.id, failure.status if failure else 500, failure.detail if failure else "cannot check the token"
            )
            return
        if not self.who.role.allows(Role.MEMBER):
            self.error(m.id, 403, f"this needs the member role; you are {self.who.role.value}")
            return
        by = self.who.name
        call: Callable[[], RunSummary]
        if isinstance(m, p.Start):

            def call() -> RunSummary:
                return actions.start(
                    self.ctx, by=by, pipeline=m.pipeline, ref=m.ref, params=m.params, no_cache=m.no_cache
                )

        elif isinstance(m, p.Rerun):

            def call() -> RunSummary:
                return actions.rerun(
                    self.ctx,
                    by=by,
                    run_id=m.run,
                    latest=m.latest,
                    failed_only=m.failed_only,
                    task=m.task,
                    params=m.params,
                    no_cache=m.no_cache,
                )

        else:

            def call() -> RunSummary:
                return actions.cancel(self.ctx, by=by, run_id=m.run)

        try:
            run = await anyio.to_thread.run_sync(call)
        except Exception as e:
            failure = classify(e)
            if failure is None:
                log.exception("websocket: %s failed unexpectedly", type(m).__name__.lower())
                self.error(m.id, 500, "internal error; the server log has the details")
            else:
                self.error(m.id, failure.status, failure.detail, failure.extra)
            return
        self.reply(p.Result(id=m.id, status=202 if isinstance(m, p.Cancel) else 201, run=run))
