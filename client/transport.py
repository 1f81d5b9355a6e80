"""HTTP transport of the client (aiohttp's client only).

One session, bounded concurrency, bounded answer sizes, retries on network
errors and on 503 (honouring ``Retry-After``), and typed errors: the log could
not be reached (:class:`LogUnavailableError`) or answered with an HTTP error
(:class:`LogAPIError`, :class:`EntryNotFoundError` for 404). Nothing here
interprets an answer: verification is the caller's.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import aiohttp

from .errors import TlogError

__all__ = ["ClientError", "EntryNotFoundError", "HttpTransport", "LogAPIError",
           "LogUnavailableError", "MAX_RESPONSE"]

MAX_RESPONSE = 16 << 20


class ClientError(TlogError):
    """The log could not be asked: network failure or an HTTP error answer."""


class LogUnavailableError(ClientError):
    """No answer (connection refused, timeout, reset)."""


class LogAPIError(ClientError):
    """The log answered with an HTTP error; ``status`` and ``message``."""

    def __init__(self, status: int, message: str, what: str) -> None:
        super().__init__(f"{what}: HTTP {status}: {message}")
        self.status = status
        self.message = message


class EntryNotFoundError(LogAPIError):
    """The log says it has no such entry (404)."""


class HttpTransport:
    """Requests to one base URL. The session is created lazily inside the
    running event loop (or an existing ``session`` is used and not closed)."""

    def __init__(self, url: str, *, timeout: float = 30.0, concurrency: int = 16,
                 retries: int = 4, session: aiohttp.ClientSession | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self._concurrency = concurrency
        self._session = session
        self._own_session = session is None
        self._sem: asyncio.Semaphore | None = None

    async def close(self) -> None:
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"User-Agent": "tlog-client/0.1"})
        if self._sem is None:
            self._sem = asyncio.Semaphore(self._concurrency)
        return self._session

    async def request(self, method: str, path: str, *, params: dict[str, str] | None = None,
                      body: object = None, ok: Sequence[int] = (200,)
                      ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) of an answer whose status is in ``ok``."""
        session = self._get_session()
        assert self._sem is not None
        data = json.dumps(body).encode("utf-8") if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        what = f"{method} {self.url}{path}"
        for attempt in range(self.retries + 1):
            try:
                async with self._sem:
                    async with session.request(method, self.url + path, params=params,
                                               data=data, headers=headers,
                                               allow_redirects=False) as resp:
                        status, rheaders = resp.status, dict(resp.headers)
                        payload = await _read_limited(resp, what)
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                if attempt < self.retries:
                    await asyncio.sleep(0.2 * 2 ** attempt)
                    continue
                raise LogUnavailableError(f"{what}: {type(exc).__name__}: {exc}") from None
            if status == 503 and attempt < self.retries:
                await asyncio.sleep(_retry_after(rheaders.get("Retry-After"), attempt))
                continue
            if status in ok:
                return status, rheaders, payload
            error = EntryNotFoundError if status == 404 else LogAPIError
            raise error(status, _error_message(payload), what)
        raise AssertionError("unreachable")


async def _read_limited(resp: aiohttp.ClientResponse, what: str) -> bytes:
    if resp.content_length is not None and resp.content_length > MAX_RESPONSE:
        raise LogAPIError(resp.status, f"answer of {resp.content_length} bytes is too large",
                          what)
    data = bytearray()
    async for chunk in resp.content.iter_chunked(1 << 16):
        data += chunk
        if len(data) > MAX_RESPONSE:
            raise LogAPIError(resp.status, "answer is too large", what)
    return bytes(data)


def _retry_after(value: str | None, attempt: int) -> float:
    try:
        seconds = float(value) if value is not None else 0.5
    except ValueError:
        seconds = 0.5
    return min(max(seconds, 0.05) * (1 + attempt), 10.0)


def _error_message(payload: bytes) -> str:
    try:
        obj = json.loads(payload)
        if isinstance(obj, dict) and isinstance(obj.get("message"), str):
            return obj["message"][:500]
    except ValueError:
        pass
    return payload[:200].decode("utf-8", "replace") or "(no message)"
