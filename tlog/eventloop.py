"""The event loop the server runs on: uvloop when installed, else asyncio's.

uvloop (libuv, in C) makes the transport layer under aiohttp cheaper: socket
reads and writes, timers and callbacks cost a fraction of the pure-Python
selector loop's, which is most of the per-request overhead outside our
handlers (SPEC §8, docs/benchmarks.md). ``TLOG_EVENT_LOOP=asyncio`` forces
the standard loop (a fallback that behaves the same, only slower).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop constructor, or None for asyncio's default."""
    if os.environ.get("TLOG_EVENT_LOOP", "") == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """``asyncio.run`` on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(coro)
