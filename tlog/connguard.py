"""Slow-client guard: a connection must send each request head in time.

aiohttp bounds the size of a request head (line, field and header-count
limits) but not the time it takes to arrive: a client trickling its headers
one byte at a time ("slowloris") holds a connection, and its memory, for as
long as it likes, and a few thousand such clients hold them all. The
request body has its own timeout (``--read-timeout-s``, 408, in the API).

This guard sits between asyncio and aiohttp's protocol, at the transport
level, so it needs nothing from aiohttp's internals: each connection's
protocol is wrapped in :class:`_GuardedProtocol`, which forwards every call
and arms a timer when the connection opens. The application tells the guard
when a request starts (its head was parsed and dispatched: the timer stops)
and when it ends (the timer restarts for the next request on the
connection). When the timer fires the connection is aborted: it spent
``header_timeout`` seconds without delivering a request head, whether it
sent nothing, trickled bytes, idled between keep-alive requests, or did not
read the previous response. Other connections are never affected: the
timers are per connection and cost one scheduled callback each.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


class ConnectionGuard:
    """Timers for every open connection; see the module docstring."""

    def __init__(self, header_timeout: float) -> None:
        if not header_timeout > 0:
            raise ValueError("header_timeout must be positive")
        self.header_timeout = header_timeout
        self._open: dict[object, _GuardedProtocol] = {}
        self.dropped = 0

    def wrap(self, make_protocol: Callable[[], asyncio.Protocol]
             ) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for ``loop.create_server`` (e.g. an aiohttp
        ``web.Server``) whose connections are guarded."""
        return lambda: _GuardedProtocol(self, make_protocol())

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def request_started(self, transport: object) -> None:
        """A request head arrived on ``transport``: stop its timer."""
        guarded = self._open.get(transport)
        if guarded is not None:
            guarded.in_flight += 1
            guarded.disarm()

    def request_finished(self, transport: object) -> None:
        """A response was handed over: the next head must come in time."""
        guarded = self._open.get(transport)
        if guarded is not None:
            guarded.in_flight -= 1
            if guarded.in_flight <= 0:
                guarded.in_flight = 0
                guarded.arm()


class _GuardedProtocol(asyncio.Protocol):
    """Forwards everything to ``inner``; aborts the transport on timeout."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self._guard = guard
        self._inner = inner
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None  # None: disarmed
        self.in_flight = 0

    # Arming and disarming only move the deadline; the one timer, when it
    # fires, re-schedules itself for a later deadline. So a keep-alive
    # connection costs one timer per timeout period, not a new timer per
    # request (that churn was a few per cent of a core under load).

    def arm(self) -> None:
        if self._transport is not None:
            loop = asyncio.get_running_loop()
            self._deadline = loop.time() + self._guard.header_timeout
            if self._timer is None:
                self._timer = loop.call_at(self._deadline, self._expire)

    def disarm(self) -> None:
        self._deadline = None

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        transport = self._transport
        if transport is None or self.in_flight or self._deadline is None:
            return  # arm() schedules again when the request is done
        loop = asyncio.get_running_loop()
        if loop.time() < self._deadline:  # re-armed since: wait for the new deadline
            self._timer = loop.call_at(self._deadline, self._expire)
            return
        self._guard.dropped += 1
        peer = transport.get_extra_info("peername")
        log.info("closed a connection from %s: no request head within %g s", peer,
                 self._guard.header_timeout)
        transport.abort()

    # -- asyncio.Protocol, forwarded --------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._guard._open[transport] = self
        self.arm()
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.disarm()
        self._cancel_timer()
        self._guard._open.pop(self._transport, None)
        self._transport = None
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()
