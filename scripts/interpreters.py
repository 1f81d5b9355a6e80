#!/usr/bin/env python3
"""The CPython builds a benchmark can run the server under.

The checkout's ``.venv`` uses whatever ``python3`` set-up found. CPython
builds differ in speed for the same version: a build with a shared
``libpython`` and without ``--enable-optimizations`` (pyenv's default) runs
Python code markedly slower than one with ``libpython`` linked into the
executable and built with profile-guided optimisation (python.org's and
Debian's builds). ``scripts/bench_writes.py`` measures the same tree under a
second build of the same minor version, when the machine has one, so that
docs/benchmarks.md shows what the interpreter choice is worth (the
operator quickstart's advice, 'Which Python to run it on', rests on it).

:func:`server_venv` installs the checkout (not editable: the compiled
accelerator is built for that interpreter, and the checkout's own build is
left alone) with the ``server`` extra into ``.bench-cache/venv-<name>``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".bench-cache"
CANDIDATES = ("/usr/bin/python3.{minor}", "/usr/local/bin/python3.{minor}")

_DESCRIBE = r"""
import json, os, platform, subprocess, sys, sysconfig
exe = os.path.realpath(sys.executable)
ldd = subprocess.run(["ldd", exe], capture_output=True, text=True).stdout
args = sysconfig.get_config_var("CONFIG_ARGS") or ""
print(json.dumps({
    "executable": exe, "version": platform.python_version(),
    "libpython": "shared library" if "libpython" in ldd else "linked into the executable",
    "configure": [a.strip("'") for a in args.split() if a.strip("'").startswith("--")],
}))
"""


def describe(python: str) -> dict:
    """Version, real path, how libpython is linked and the configure flags."""
    out = subprocess.run([python, "-c", _DESCRIBE], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


SPEED_FLAGS = ("--enable-optimizations", "--with-lto")


def build_text(info: dict) -> str:
    """One line for a table: version, path, how libpython is linked and
    which of the speed-related configure flags were recorded."""
    flags = [f for f in info["configure"] if f.split("=")[0] in SPEED_FLAGS]
    recorded = ", ".join(flags) or "no --enable-optimizations or --with-lto in its configure flags"
    return (f"CPython {info['version']}, {info['executable']} (libpython "
            f"{info['libpython']}; {recorded})")


def other_interpreter() -> str | None:
    """A CPython of this minor version that is not the one ``.venv`` is
    built on, or None."""
    mine = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    for pattern in CANDIDATES:
        path = pattern.format(minor=sys.version_info.minor)
        if os.access(path, os.X_OK) and os.path.realpath(path) != mine:
            return path
    return None


def server_venv(python: str, info: dict) -> str:
    """A venv on ``python`` (``info``: its :func:`describe`) with this
    checkout installed (``server`` extra); returns its interpreter.
    Reinstalls the checkout every call (it may have changed since); the
    dependencies are kept."""
    venv = CACHE / f"venv-{Path(info['executable']).name}-{info['version']}"
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", f"{ROOT}[server]"], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall",
                    str(ROOT)], check=True)
    return str(py)


if __name__ == "__main__":
    for p in filter(None, (sys.executable, other_interpreter())):
        print(build_text(describe(p)))
