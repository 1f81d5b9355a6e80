"""``tlog serve --workers N``: N HTTP worker processes in front of the one
sequencer (SPEC §4 I7: one writer; issue 6: more than one core).

This process opens the log and runs its sequencer, exactly as in one
process, and serves the sequencer link (:mod:`tlog.seqlink`) on a socket in
a private directory. It starts N worker processes (``spawn``: fresh
interpreters, no state shared by fork), each listening on the same port
(``SO_REUSEPORT``: the kernel spreads connections over them) with the full
HTTP API: a worker parses and verifies submissions and forwards the
canonical entries over the link, and serves every read from its own
read-only SQLite snapshots. A worker that dies is restarted; when this
process goes away (even by kill -9) the link breaks and the workers exit,
so nothing is acknowledged that the sequencer did not make durable.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from . import eventloop
from .config import Config
from .seqlink import RemoteSequencer, SequencerServer

log = logging.getLogger(__name__)

RESTART_DELAY_S = 1.0


def _worker_main(config: Config, link: str, sequencer_pid: int) -> None:
    """Entry point of a worker process."""
    logging.basicConfig(level=os.environ.get("TLOG_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s[worker]: %(message)s")
    try:
        eventloop.run(_worker(config, Path(link), sequencer_pid))
    except KeyboardInterrupt:
        pass


async def _worker(config: Config, link: Path, sequencer_pid: int,
                  clock: Callable[[], float] = time.time) -> None:
    from .api import PARSE_RUN
    from .app import (build_http_app, start_http, stop_event, stop_http, trusted_head,
                      tune_gc, warm_node_cache)
    from .identity import load_or_create
    from .published import PublishedRecord
    from .storage import Storage

    # The record first, then the database: a head row behind the record
    # read before it is a rollback (the sequencer writes the record after
    # each commit), never a race.
    record = PublishedRecord(config.data_dir).read()
    storage = Storage.open(config.db_path)
    try:
        identity = load_or_create(config, storage, create=False)
        stop = stop_event()
        remote = RemoteSequencer(link, storage, trusted_head(identity, record),
                                 on_lost=stop.set)
        await remote.start(gone=lambda: os.getppid() != sequencer_pid)
        app = build_http_app(config, storage, identity, remote, clock, parse_run=PARSE_RUN)
        tune_gc()
        runner, server = await start_http(app, config, reuse_port=True)
        warm_node_cache(storage)
        await stop.wait()
        await stop_http(runner, server)
        await remote.stop()
    finally:
        storage.close()


class _Workers:
    """Starts, watches and stops the worker processes."""

    def __init__(self, config: Config, link: Path) -> None:
        self._config = config
        self._link = link
        self._ctx = multiprocessing.get_context("spawn")
        self._procs: list[multiprocessing.Process | None] = [None] * config.workers

    def _spawn(self, i: int) -> None:
        proc = self._ctx.Process(target=_worker_main,
                                 args=(self._config, str(self._link), os.getpid()),
                                 name=f"tlog-worker-{i}")
        proc.start()
        self._procs[i] = proc

    def start(self) -> None:
        for i in range(len(self._procs)):
            self._spawn(i)

    def restart_dead(self) -> None:
        for i, proc in enumerate(self._procs):
            if proc is not None and not proc.is_alive():
                log.error("worker %d exited with %s; restarting it", i, proc.exitcode)
                self._spawn(i)

    def stop(self, timeout: float = 20.0) -> None:
        for proc in self._procs:
            if proc is not None and proc.is_alive():
                proc.terminate()  # SIGTERM: finish open requests, then exit
        deadline = time.monotonic() + timeout
        for proc in self._procs:
            if proc is not None:
                proc.join(max(0.0, deadline - time.monotonic()))
                if proc.is_alive():
                    proc.kill()
                    proc.join()


async def serve_with_workers(config: Config, clock: Callable[[], float] = time.time) -> None:
    """Run the sequencer here and ``config.workers`` HTTP workers until
    SIGINT or SIGTERM."""
    from .app import close_log, open_log, stop_event, tune_gc

    storage, identity, sequencer = await open_log(config, clock)
    tune_gc()
    private = Path(tempfile.mkdtemp(prefix="tlog-seq-"))  # mode 0700
    link = SequencerServer(sequencer, private / "sequencer.sock")
    workers = _Workers(config, link.path)
    try:
        await link.start()
        stop = stop_event()
        workers.start()
        print(f"tlog: serving {identity.origin} on http://{config.host}:{config.port} "
              f"(tree size {sequencer.head.size}, data in {config.data_dir}; "
              f"{config.workers} HTTP worker processes, sequencer pid {os.getpid()})",
              flush=True)
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), RESTART_DELAY_S)
            except TimeoutError:
                workers.restart_dead()
    finally:
        # Workers first: they stop taking requests and finish what they
        # forwarded while the sequencer still answers.
        await asyncio.get_running_loop().run_in_executor(None, workers.stop)
        await link.stop()
        await sequencer.stop()
        close_log(config, storage)
        shutil.rmtree(private, ignore_errors=True)
