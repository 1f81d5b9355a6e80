"""Assembles the server: storage, identity, sequencer, API; runs it.

The only place the parts are wired together; configuration and the clock are
passed in (SPEC §2: time is injected, never monkeypatched).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import threading
import time
from collections.abc import Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from .api import LogApi, add_routes, make_request_middleware
from .config import Config
from .connguard import ConnectionGuard
from .identity import LogIdentity, load_or_create
from .integrate import entry_set_signer
from .metrics import Metrics
from .datalock import hold_serving_lock, release_serving_lock
from .published import PublishedHead, PublishedRecord
from .sequencer import Sequencer
from .storage import Storage, StorageError, StoredCheckpoint
from .trustedhead import TrustedHead

log = logging.getLogger(__name__)


class _ClientProtocolErrors(logging.Filter):
    """aiohttp logs every malformed HTTP request (the client's fault, already
    answered with a 4xx) at ERROR with a traceback. Make those one INFO line,
    so no client can fill the log with tracebacks; real errors are untouched."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and 400 <= (exc.code or 500) < 500:
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.msg = "refused a malformed HTTP request from %s: %s"
            record.args = (remote, str(exc.message).splitlines()[0][:200])
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


# Typed application keys (aiohttp's web.AppKey): the handlers and the slow-client guard.
API_KEY = web.AppKey("api", LogApi)
GUARD_KEY = web.AppKey("connection_guard", ConnectionGuard)


async def open_log(config: Config, clock: Callable[[], float] = time.time
                   ) -> tuple[Storage, LogIdentity, Sequencer]:
    """Open (or create) the log described by ``config`` and start its
    sequencer (the one writer)."""
    # One serving process per SQLite file (U4): locked before this process
    # opens any SQLite connection, held until it exits (see tlog.datalock).
    hold_serving_lock(config.db_path)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    storage = Storage.open(config.db_path)
    published = PublishedRecord(config.data_dir)
    try:
        # Before anything is created or signed: a database behind (or not
        # consistent with) the last published checkpoint is refused.
        with storage.snapshot() as snap:
            record = published.check(snap, storage.get_meta().get("origin"))
        identity = load_or_create(config, storage)
    except BaseException:
        close_log(config, storage)
        raise
    heads = trusted_head(identity, record)
    sequencer = Sequencer(storage, identity.sign_checkpoint, clock, heads,
                          batch_size=config.batch_size, pool_size=config.pool_size,
                          batch_delay_ms=config.batch_delay_ms,
                          on_publish=lambda cp: published.publish(identity.origin, cp),
                          before_sign=published.require_extended,
                          sign_sets=entry_set_signer(identity.sign_set, identity.log_id),
                          seal_key=identity.seal_key)
    try:
        head = await sequencer.start()
    except BaseException:
        close_log(config, storage)
        raise
    published.publish(identity.origin, head)
    log.info("log %s (treeID %d, logID %s) at size %d", identity.origin, identity.tree_id,
             identity.log_id, head.size)
    return storage, identity, sequencer


def close_log(config: Config, storage: Storage) -> None:
    """Close the log's database, then let go of the serving lock (after:
    closing the lock's descriptor first would drop SQLite's own locks)."""
    storage.close()
    release_serving_lock(config.db_path)


def trusted_head(identity: LogIdentity, record: PublishedHead | None) -> TrustedHead:
    """What this process trusts at start: nothing yet, or the record of the
    last published checkpoint kept outside the database (if its note
    verifies), so that the first head read from storage is checked against
    it (SPEC §10 U1)."""
    heads = TrustedHead(identity.verifiers(), identity.origin)
    if record is not None and record.size:
        try:
            heads.seed(StoredCheckpoint(record.size, record.root, record.note.encode(), 0))
        except StorageError as exc:  # evidence damaged; its size and root were checked
            log.warning("the published-checkpoint record's note does not verify (%s); "
                        "it is not used as a verified copy", exc)
    return heads


def build_http_app(config: Config, storage: Storage, identity: LogIdentity, sequencer,
                   clock: Callable[[], float] = time.time, *,
                   parse_run: int = 0) -> web.Application:
    """The HTTP application over an open log; ``sequencer`` is the
    :class:`Sequencer` or, in a worker process, its stand-in
    (:class:`tlog.seqlink.RemoteSequencer`), each with the process's
    :class:`TrustedHead` (``sequencer.heads``); ``parse_run``: see
    :class:`tlog.api.LogApi`."""
    metrics = Metrics()
    heads = sequencer.heads
    heads.on_damage = metrics.count_damage
    heads.on_halt(metrics.set_halted)
    guard = ConnectionGuard(config.header_timeout_s)
    app = web.Application(client_max_size=config.max_body,
                          middlewares=[make_request_middleware(metrics, guard)])
    api = LogApi(config, storage, identity, sequencer, metrics, heads, clock,
                 parse_run=parse_run)
    add_routes(app, api)
    app[API_KEY] = api
    app[GUARD_KEY] = guard
    return app


async def build_app(config: Config, clock: Callable[[], float] = time.time) -> web.Application:
    """Open (or create) the log described by ``config`` and build its app."""
    storage, identity, sequencer = await open_log(config, clock)
    app = build_http_app(config, storage, identity, sequencer, clock)

    async def shutdown(app: web.Application) -> None:
        await sequencer.stop()
        close_log(config, storage)

    app.on_cleanup.append(shutdown)
    return app


async def start_http(app: web.Application, config: Config, *, reuse_port: bool = False):
    """Listen on ``config.host:config.port``; returns what :func:`stop_http`
    needs. ``reuse_port``: several worker processes share the port."""
    logging.getLogger("aiohttp.server").addFilter(_ClientProtocolErrors())
    # auto_decompress=False: request bodies with a Content-Encoding are
    # refused (415, SPEC §6), so the parser must never decode one: no
    # decompression bombs, no decoder errors before the handler can answer.
    # handler_cancellation: a client that goes away cancels its handler, so
    # its search or not-yet-run signature check is skipped (SPEC §10 U5; a
    # submission already queued to the sequencer is integrated regardless).
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True,
                           max_line_size=8190, max_field_size=8190,
                           max_headers=config.max_headers, auto_decompress=False)
    await runner.setup()
    loop = asyncio.get_running_loop()
    # Not web.TCPSite: every connection's protocol is wrapped by the
    # slow-client guard (a header timeout aiohttp does not have).
    guard = app[GUARD_KEY]
    server = await loop.create_server(guard.wrap(runner.server), config.host, config.port,
                                      backlog=1024, reuse_port=reuse_port or None)
    return runner, server


async def stop_http(runner: web.AppRunner, server: asyncio.AbstractServer) -> None:
    server.close()  # stop accepting; then finish and close the open connections
    await runner.cleanup()


def warm_node_cache(storage: Storage) -> threading.Thread:
    """Fill the storage's node cache in a background thread (SQLite and the
    joins release the GIL for most of it), so that startup does not wait
    for it and the first proofs are as fast as the later ones."""
    def warm() -> None:
        started = time.perf_counter()
        try:
            count = storage.warm_node_cache()
        except Exception:  # an optimisation: proofs read through it anyway
            log.exception("could not fill the node cache")
            return
        log.info("node cache: %d upper-level hashes read in %.2f s", count,
                 time.perf_counter() - started)
    thread = threading.Thread(target=warm, name="tlog-node-cache", daemon=True)
    thread.start()
    return thread


def tune_gc() -> None:
    """Once the server is built: move everything allocated so far (modules,
    the app) out of the cyclic collector's way (``gc.freeze``), and collect
    young objects every 50,000 allocations instead of 700. A request makes
    hundreds of short-lived containers that reference counting frees; the
    default thresholds ran the collector every few requests and a full
    collection over every module's objects now and then: about 8-10 % of a
    core under write load (benchmarks, before/after)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def stop_event() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def serve(config: Config, clock: Callable[[], float] = time.time) -> None:
    """Run the log until SIGINT or SIGTERM (with ``config.workers``: the
    sequencer here and HTTP in worker processes, see tlog.workers)."""
    if config.workers:
        from .workers import serve_with_workers
        await serve_with_workers(config, clock)
        return
    app = await build_app(config, clock)
    tune_gc()
    runner, server = await start_http(app, config)
    api = app[API_KEY]
    warm_node_cache(api.storage)
    print(f"tlog: serving {api.identity.origin} on http://{config.host}:{config.port} "
          f"(tree size {api.sequencer.head.size}, data in {config.data_dir})", flush=True)
    await stop_event().wait()
    await stop_http(runner, server)
