"""Run a real ``tlog serve`` process for tests (SPEC: a test that needs a
server starts the real one)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A ``tlog serve`` subprocess on a free loopback port."""

    def __init__(self, data_dir: Path, *args: str, port: int | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.args = list(args)
        self.port = port or free_port()
        self.env = env or {}
        self.proc: subprocess.Popen | None = None
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> "ServerProcess":
        cmd = [sys.executable, "-m", "tlog.cli", "serve", "--data-dir", str(self.data_dir),
               "--port", str(self.port), *self.args]
        env = {**os.environ, "TLOG_LOG_LEVEL": "WARNING", **self.env}
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.output()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"server did not start: {self.output()}")

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=20)
        if getattr(self, "_log", None):
            self._log.close()

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def fsck(self) -> dict:
        out = subprocess.run([sys.executable, "-m", "tlog.cli", "fsck", "--json",
                              "--data-dir", str(self.data_dir)], capture_output=True, text=True)
        report = json.loads(out.stdout)
        report["exit_code"] = out.returncode
        return report
