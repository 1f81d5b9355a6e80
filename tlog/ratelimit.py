"""Per-client rate limit on writes: one token bucket per client address.

Each client may submit ``burst`` entries at once, then ``rate`` per second
sustained; above that ``POST /api/v1/log/entries`` answers 429 with a
``Retry-After`` of the whole seconds until its next token. Reads are never
limited here (they are cheap, cacheable, and a monitor must be able to
follow the log).

A client is its peer address as the server sees it: an IPv4 address, or the
/64 network of an IPv6 address (one host usually owns a whole /64, so
limiting single IPv6 addresses limits nothing). Behind a reverse proxy every
client shares the proxy's address: rate-limit at the proxy instead (the
server never trusts ``X-Forwarded-For``).

Memory is bounded: at most ``max_clients`` buckets, least recently used
dropped first (a dropped client starts again with a full bucket, which is
what an idle one would have anyway). The clock is injected (monotonic
seconds). Pure: no I/O, no event loop; called from the event loop thread.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable

MAX_CLIENTS = 65536


def client_key(remote: str | None) -> str:
    """The bucket of a peer address (``request.remote``)."""
    if not remote:
        return "unknown"
    try:
        address = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return remote[:64]  # not an IP (a Unix socket path): one bucket per name
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class WriteRateLimiter:
    """Token buckets by client; ``rate == 0`` disables the limit."""

    def __init__(self, rate: float, burst: int, *,
                 clock: Callable[[], float] = time.monotonic,
                 max_clients: int = MAX_CLIENTS) -> None:
        if rate < 0 or burst < 1 or max_clients < 1:
            raise ValueError("rate must be >= 0, burst and max_clients >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._max_clients = max_clients
        # client -> (tokens, time of the last update)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self.refused = 0

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, remote: str | None) -> int | None:
        """Spend one token of ``remote``'s bucket. None: allowed; otherwise
        refused, and the whole seconds (at least 1) until a token is back."""
        if not self.enabled:
            return None
        key = client_key(remote)
        now = self._clock()
        tokens, last = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + max(0.0, now - last) * self.rate)
        if tokens >= 1:
            tokens -= 1
            wait = None
        else:
            self.refused += 1
            wait = max(1, math.ceil((1 - tokens) / self.rate))
        self._buckets[key] = (tokens, now)  # most recently used last
        while len(self._buckets) > self._max_clients:
            self._buckets.popitem(last=False)
        return wait
