#!/usr/bin/env python3
"""Render docs/benchmarks.md (and its PNG plots) from every docs/bench/*.json.

Each benchmark script (scripts/bench_*.py, scripts/crash.py, scripts/soak.py)
measures one area and writes one JSON file, docs/bench/<name>.json; this
script knows nothing about how a figure was measured and only renders what
the files say. It also holds the helpers the benchmark scripts share
(:func:`machine_info`, :func:`write_result`), so that every file has the same
shape:

    {
      "schema": 2,
      "benchmark": "hashing",              # also the file's stem
      "title": "Bulk hashing",
      "order": 10,                         # position in benchmarks.md
      "generated": "2026-01-01T00:00:00Z", # when the result was written
      "command": "scripts/bench_hashing.py",
      "provenance": {                      # write_result(): what code was measured
        "commit": "<40 hex>", "dirty": false, "dirty_paths": [],
        "started": "...", "finished": "...", "quick": false,
        "argv": ["scripts/bench_hashing.py"], "measures": ["client/bulk.py", ...]},
      "machine": {...},                    # machine_info(): CPU and flags, cores,
                                           # Python, load average at start and end
      "method": ["paragraph", ...],        # how it was measured (markdown)
      "targets": [{"target": "...", "measured": "...", "met": true,
                   "best_runs": "..."}],          # best_runs optional
      "tables": [{"title": "...", "columns": ["...", ...],
                  "rows": [["cell", ...], ...], "notes": ["..."]}],
      "plots": [{"file": "hashing-root.png", "title": "...", "kind": "line" | "bar",
                 "xlabel": "...", "ylabel": "...", "xscale": "log", "yscale": "log",
                 "series": [{"label": "...", "x": [...], "y": [...]}]}],
      "images": [{"file": "soak.png", "title": "..."}],  # drawn by the script itself
      "notes": ["paragraph", ...],         # findings, limits, profiles
      "data": {...}                        # raw figures (all samples), free-form
    }

Only "benchmark" and "title" are required; every other key is optional and
rendered generically. A benchmark that needs more than tables and plots can
register a function in SECTIONS (benchmark name -> function returning
markdown lines) that replaces the generic body of its section.

Quick runs (``--quick``: a smoke run for a working session) are written to
docs/bench/quick/<name>.json, never over a full result, and rendered to
docs/bench/quick/benchmarks.md.

A section is **stale** when the code it measures (:data:`MEASURES`) changed
between the commit its JSON records and HEAD (``git diff --quiet <commit>
HEAD -- <paths>``), when it was measured with uncommitted changes to those
paths, when HEAD moved during the run, or when the JSON records no commit
(:func:`stale_reason`).

Usage: scripts/render_benchmarks.py [--bench-dir docs/bench] [--out docs/benchmarks.md]
       scripts/render_benchmarks.py --quick     (docs/bench/quick -> docs/bench/quick/benchmarks.md)
"""

from __future__ import annotations

import argparse
import datetime as _dt
import fnmatch
import json
import os
import platform
import ssl
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "docs" / "bench"
QUICK = "quick"  # quick results: <bench dir>/quick/<name>.json
OUT = ROOT / "docs" / "benchmarks.md"
SCHEMA = 2

# Paths whose uncommitted changes do not make a measured tree dirty: the
# results and the page themselves, and the benchmarks' caches.
NOT_CODE = ("docs/bench/", "docs/benchmarks.md", ".bench-cache/")

# What each benchmark measures: git pathspecs (a directory ends with "/";
# "*" matches any characters, "/" included, as in git). A change to any of
# them after a result's commit makes its section stale. The benchmark's own
# scripts are in it (they define the method); the renderer is not.
_SERVER = ["tlog/", "client/", "setup.py", "pyproject.toml"]
_HTTP = ["scripts/benchserver.py", "scripts/loadgen.py", "scripts/wrk_get.lua",
         "scripts/wrk_post.lua"]
_LOGS = ["scripts/build_synthetic_log.py", "scripts/signed_entries.py"]
MEASURES: dict[str, list[str]] = {
    "hashing": ["client/bulk.py", "client/hashing.py", "client/_bulk*", "setup.py",
                "scripts/bench_hashing.py", "scripts/benchserver.py"],
    "writes": [*_SERVER, "scripts/bench_writes.py", *_HTTP, "scripts/signed_entries.py",
               "scripts/profiling.py", "scripts/interpreters.py"],
    "reads": [*_SERVER, "scripts/bench_reads.py", *_HTTP, *_LOGS, "scripts/profiling.py"],
    "client": [*_SERVER, "scripts/bench_client.py", *_HTTP, *_LOGS],
    "growth": [*_SERVER, "scripts/bench_growth.py", "scripts/bench_reads.py",
               "scripts/bench_writes.py", *_HTTP, *_LOGS],
    "hostile": [*_SERVER, "scripts/bench_hostile.py", *_HTTP, "scripts/signed_entries.py"],
    "crash": [*_SERVER, "scripts/crash.py", "tests/crashsuite.py", "tests/serverproc.py"],
    "soak": [*_SERVER, "scripts/soak.py", "tests/serverproc.py", "tests/server/helpers.py",
             "tests/client/attestation_samples.py"],
}
MEASURES["soak-from-empty"] = MEASURES["soak"]
DEFAULT_MEASURES = [*_SERVER, "scripts/", "tests/"]


def measured_paths(benchmark: str) -> list[str]:
    """The paths a benchmark measures (:data:`MEASURES`; everything that
    could matter for one not listed)."""
    return list(MEASURES.get(benchmark, DEFAULT_MEASURES))


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- git


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)


def dirty_paths(repo: Path = ROOT) -> list[str] | None:
    """Paths ``git status --porcelain`` lists (modified, staged, deleted,
    untracked; both sides of a rename), outside :data:`NOT_CODE`; None
    without git."""
    out = _git(repo, "status", "--porcelain=v1", "-z", "--untracked-files=all")
    if out.returncode:
        return None
    paths: list[str] = []
    fields = out.stdout.split("\0")
    i = 0
    while i < len(fields):
        entry = fields[i]
        i += 1
        if len(entry) < 4:
            continue
        paths.append(entry[3:])
        if entry[0] in "RC" and i < len(fields):  # the rename's or copy's source
            paths.append(fields[i])
            i += 1
    return sorted({p for p in paths if not p.startswith(NOT_CODE)})


def code_state(repo: Path = ROOT) -> dict:
    """The commit checked out (HEAD) and whether the tree differs from it
    outside :data:`NOT_CODE` (``dirty_paths``: which paths, at most 200)."""
    head = _git(repo, "rev-parse", "--verify", "HEAD")
    if head.returncode:
        return {"commit": None, "dirty": None, "dirty_paths": [],
                "git_error": (head.stderr.strip() or "not a git checkout")[:200]}
    dirty = dirty_paths(repo) or []
    state = {"commit": head.stdout.strip(), "dirty": bool(dirty), "dirty_paths": dirty[:200]}
    if len(dirty) > 200:
        state["dirty_paths_truncated"] = len(dirty)
    return state


def _within(path: str, spec: str) -> bool:
    """Whether ``path`` is matched by the pathspec ``spec`` (see MEASURES)."""
    if spec in (".", ""):
        return True
    if any(c in spec for c in "*?["):
        return fnmatch.fnmatchcase(path, spec) or fnmatch.fnmatchcase(path, spec.rstrip("/") + "/*")
    return path == spec.rstrip("/") or path.startswith(spec.rstrip("/") + "/")


def stale_reason(provenance: dict | None, paths: list[str], repo: Path = ROOT,
                 head: str = "HEAD") -> str | None:
    """Why a result no longer describes the code at ``head`` (None: it
    does). The rule: stale if the result records no commit, if its commit is
    not in the repository, if it was measured with uncommitted changes to
    ``paths`` (or an unknown set of them), if HEAD moved under the run and
    the move touched ``paths``, or if ``git diff --quiet <commit> <head> --
    <paths>`` finds a difference."""
    prov = provenance or {}
    commit = prov.get("commit")
    if not commit:
        return "its JSON records no commit, so the code it measured is unknown"
    if _git(repo, "cat-file", "-e", f"{commit}^{{commit}}").returncode:
        return f"its commit {commit[:12]} is not in this repository"
    if prov.get("dirty"):
        dirty = [p for p in prov.get("dirty_paths") or [] if any(_within(p, s) for s in paths)]
        if dirty or not prov.get("dirty_paths") or prov.get("dirty_paths_truncated"):
            shown = ", ".join(f"`{p}`" for p in dirty[:5]) or "paths not recorded"
            more = f" and {len(dirty) - 5} more" if len(dirty) > 5 else ""
            return (f"it was measured on {commit[:12]} with uncommitted changes to the code it "
                    f"measures ({shown}{more})")
    end = prov.get("commit_at_end")
    if end and end != commit:
        moved = _git(repo, "diff", "--quiet", commit, end, "--", *paths)
        if moved.returncode != 0:
            return f"HEAD moved from {commit[:12]} to {end[:12]} during the run"
    diff = _git(repo, "diff", "--quiet", commit, head, "--", *paths)
    if diff.returncode == 0:
        return None
    if diff.returncode != 1:
        return f"git diff failed ({diff.stderr.strip()[:120]})"
    log = _git(repo, "log", "--format=%h", f"{commit}..{head}", "--", *paths)
    n = len(log.stdout.split()) if log.returncode == 0 else 0
    changed = _git(repo, "diff", "--name-only", commit, head, "--", *paths).stdout.split()
    shown = ", ".join(f"`{p}`" for p in changed[:5])
    more = f" and {len(changed) - 5} more files" if len(changed) > 5 else ""
    commits = f" in {n} commit{'s' if n != 1 else ''}" if n else ""
    return (f"the code it measures changed since its commit {commit[:12]}{commits} "
            f"({shown}{more})")


def legacy_provenance(result: dict) -> dict:
    """The provenance of a result written before write_result() recorded it:
    a top-level "commit" string if the script wrote one (``<sha>`` or
    ``<sha> (with uncommitted changes)``), else none."""
    commit = result.get("commit")
    if isinstance(commit, str) and commit.split():
        sha = commit.split()[0]
        if all(c in "0123456789abcdef" for c in sha) and len(sha) >= 7:
            dirty = "uncommitted" in commit
            return {"commit": sha, "dirty": dirty, "dirty_paths": []}
    return {"commit": None, "dirty": None, "dirty_paths": []}


def provenance_of(result: dict) -> dict:
    prov = result.get("provenance")
    return prov if isinstance(prov, dict) else legacy_provenance(result)


# ---------------------------------------------------------------- helpers for bench_*.py


def _cpuinfo_field(name: str) -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":", 1)[0].strip() == name:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _cpu_model() -> str:
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def _cpu_flags() -> set[str]:
    return set((_cpuinfo_field("flags") or "").split())


CPU_FLAGS = ("sha_ni", "avx2", "aes", "avx512f")


def _mem_total_mib() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def python_build() -> str:
    """How this interpreter was built (cheap: sysconfig only): libpython
    shared or linked in, and the speed-related configure flags."""
    args = [a.strip("'\"") for a in (sysconfig.get_config_var("CONFIG_ARGS") or "").split()]
    speed = [a for a in args if a.split("=")[0] in ("--enable-optimizations", "--with-lto")]
    shared = "shared library" if sysconfig.get_config_var("Py_ENABLE_SHARED") else \
        "linked into the executable"
    return (f"libpython {shared}; "
            + (", ".join(speed) if speed else
               "no --enable-optimizations or --with-lto in its configure flags"))


def machine_info(**extra) -> dict:
    """What the figures were measured on, taken when the measuring starts:
    CPU model and flags, cores, memory, Python (version, executable, build),
    OpenSSL, the load average, and (under "_start", for
    :func:`write_result`) the date and the code checked out. ``extra`` adds
    benchmark-specific facts (for example the OpenSSL a compiled module was
    linked with)."""
    flags = _cpu_flags()
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = None
    info = {
        "cpu": _cpu_model(),
        "cpu_flags": {f: f in flags for f in CPU_FLAGS},
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "memory_mib": _mem_total_mib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "python_executable": sys.executable,
        "python_build": python_build(),
        "openssl": ssl.OPENSSL_VERSION,
        "load_average_at_start": load_average(),
        "_start": {"date": utc_now(), **code_state()},
    }
    info.update(extra)
    return info


def result_dir(quick: bool, bench_dir: Path = BENCH_DIR) -> Path:
    """Where a result goes: ``bench_dir``, or its quick/ subdirectory for a
    quick run (so that a smoke run never replaces a full result)."""
    bench_dir = Path(bench_dir)
    return bench_dir / QUICK if quick and bench_dir.name != QUICK else bench_dir


def write_result(result: dict, bench_dir: Path | None = None, *, quick: bool | None = None,
                 rereport_of: dict | None = None) -> Path:
    """Write one benchmark's JSON: docs/bench/<benchmark>.json, or
    docs/bench/quick/<benchmark>.json for a quick run (``quick``; by default
    whether the script was started with ``--quick``).

    Records the provenance: the commit checked out when the measuring
    started (machine_info()'s "_start"; now, without it) and whether the tree
    was dirty then or now, the dates, the command line, the paths the
    benchmark measures, and the load average at the end. ``rereport_of``:
    the old JSON whose figures ``result`` re-presents (no new measurement):
    its provenance and date are kept, and the re-report is noted."""
    for key in ("benchmark", "title"):
        if key not in result:
            raise ValueError(f"benchmark result needs {key!r}")
    if quick is None:
        quick = "--quick" in sys.argv[1:]
    result = dict(result)
    machine = dict(result.get("machine") or {})
    start = machine.pop("_start", None)
    now = utc_now()
    if rereport_of is not None:
        prov = dict(provenance_of(rereport_of))
        prov.setdefault("quick", bool(quick))
        state = code_state()
        prov["rereported"] = {"date": now, "commit": state["commit"], "dirty": state["dirty"]}
        result["generated"] = rereport_of.get("generated")
        quick = bool(prov.get("quick"))
    else:
        if start is None:  # measured without machine_info(): the state now
            start = {"date": now, **code_state()}
        end = code_state()
        machine.setdefault("load_average_at_end", load_average())
        prov = {"commit": start.get("commit"),
                "dirty": bool(start.get("dirty") or end.get("dirty")),
                "dirty_paths": sorted(set(start.get("dirty_paths") or [])
                                      | set(end.get("dirty_paths") or []))[:200],
                "started": start.get("date"), "finished": now, "quick": bool(quick),
                "argv": [os.path.relpath(sys.argv[0], ROOT) if sys.argv and sys.argv[0]
                         else "", *sys.argv[1:]],
                "measures": measured_paths(result["benchmark"])}
        if start.get("dirty_paths_truncated") or end.get("dirty_paths_truncated"):
            prov["dirty_paths_truncated"] = True
        if end.get("commit") != start.get("commit"):
            prov["commit_at_end"] = end.get("commit")
        if start.get("git_error"):
            prov["git_error"] = start["git_error"]
    result["machine"] = machine
    result["provenance"] = prov
    result = {"schema": SCHEMA, "generated": now, **result}  # a re-report keeps its date
    out_dir = result_dir(quick, BENCH_DIR if bench_dir is None else Path(bench_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{result['benchmark']}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    return path


# ---------------------------------------------------------------- rendering

# benchmark name -> function(result, bench_dir, md_dir) -> markdown lines;
# replaces the generic body (method, targets, tables, plots, notes) of that
# section. Plots go to bench_dir; links are relative to md_dir.
SECTIONS: dict[str, Callable[[dict, Path, Path], list[str]]] = {}


def _cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(columns: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(_cell(c) for c in columns) + " |",
           "|" + "|".join("---" for _ in columns) + "|"]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out


def _flags_text(flags) -> str:
    if isinstance(flags, dict):
        present = [f for f, on in flags.items() if on]
        absent = [f for f, on in flags.items() if not on]
        return (", ".join(present) or "none of " + ", ".join(flags)) + \
            (f" (no {', '.join(absent)})" if present and absent else "")
    if isinstance(flags, list):
        return ", ".join(str(f) for f in flags) or "none"
    return str(flags)


def machine_lines(machine: dict) -> list[str]:
    if not machine:
        return []
    names = {"cpu": "CPU", "cores": "cores", "cores_usable": "cores this process may use",
             "cpu_flags": "CPU features", "memory_mib":
             "memory (MiB)", "os": "OS", "python": "Python",
             "python_executable": "Python executable", "python_build": "Python build",
             "openssl": "OpenSSL (Python's ssl)",
             "load_average_at_start": "load average at start",
             "load_average_at_end": "load average at end",
             "tlog_bulk_backend": "tlog_client.bulk backend",
             "tlog_bulk_openssl": "OpenSSL linked by tlog_client._bulk"}
    rows = []
    for key, value in machine.items():
        if key.startswith("_"):
            continue
        if key == "cpu_flags":
            value = _flags_text(value)
        elif isinstance(value, list):
            value = ", ".join(str(v) for v in value) or "none"
        elif isinstance(value, dict):
            value = json.dumps(value, separators=(", ", ": "))
        rows.append([names.get(key, key.replace("_", " ")), value])
    return table(["machine", ""], rows)


def render_plot(plot: dict, bench_dir: Path) -> str | None:
    """Draw one plot into bench_dir; return its file name (None without matplotlib)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: plots not drawn", file=sys.stderr)
        return None
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    series = plot.get("series", [])
    if plot.get("kind") == "bar":
        # x: category labels shared by all series; one group of bars per category
        cats = [str(c) for c in series[0]["x"]] if series else []
        width = 0.8 / max(1, len(series))
        for i, s in enumerate(series):
            xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(cats))]
            bars = ax.bar(xs, s["y"], width, label=s["label"])
            ax.bar_label(bars, labels=[_cell(v) for v in s["y"]], fontsize=7, padding=2)
        ax.set_xticks(range(len(cats)), cats, fontsize=8)
    else:
        for s in series:
            ax.plot(s["x"], s["y"], marker="o", label=s["label"])
    for key, setter in (("xscale", ax.set_xscale), ("yscale", ax.set_yscale)):
        if plot.get(key):
            setter(plot[key])
    for hline in plot.get("hlines", []):
        ax.axhline(hline["y"], linestyle="--", linewidth=1, color=hline.get("color", "grey"),
                   label=hline.get("label"))
    ax.set_xlabel(plot.get("xlabel", ""))
    ax.set_ylabel(plot.get("ylabel", ""))
    ax.set_title(plot.get("title", ""), fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if series:
        ax.legend(fontsize=8)
    fig.tight_layout()
    name = plot["file"]
    fig.savefig(bench_dir / name)
    plt.close(fig)
    return name


def generic_section(result: dict, bench_dir: Path, md_dir: Path) -> list[str]:
    out: list[str] = []
    if result.get("method"):
        out += ["**Method.**", ""]
        for para in result["method"]:
            out += [para, ""]
    if result.get("targets"):
        out += ["**Targets.**", ""]
        cols = ["target", "measured (medians)", "met"]
        extra = any("best_runs" in t for t in result["targets"])
        if extra:
            cols.append("best runs (minimums)")
        out += table(cols, [[t["target"], t["measured"], t["met"]]
                            + ([t.get("best_runs")] if extra else [])
                            for t in result["targets"]])
        out.append("")
    for tab in result.get("tables", []):
        if tab.get("title"):
            out += [f"**{tab['title']}**", ""]
        out += table(tab["columns"], tab["rows"])
        out.append("")
        for note in tab.get("notes", []):
            out += [note, ""]
    for plot in result.get("plots", []):
        name = render_plot(plot, bench_dir)
        if name:
            rel = os.path.relpath(bench_dir / name, md_dir)
            out += [f"![{plot.get('title', name)}]({rel})", ""]
    for image in result.get("images", []):
        if (bench_dir / image["file"]).exists():
            rel = os.path.relpath(bench_dir / image["file"], md_dir)
            out += [f"![{image.get('title', image['file'])}]({rel})", ""]
    if result.get("notes"):
        out += ["**Findings.**", ""]
        for para in result["notes"]:
            out += [para, ""]
    return out


def foreign_result(path: Path, data: dict) -> dict:
    """A JSON file in docs/bench/ that does not follow the schema: show its
    summary (or its top-level fields) as found, so that nothing is hidden."""
    summary = data.get("summary") if isinstance(data.get("summary"), dict) else data
    rows = []
    for key, value in summary.items():
        if isinstance(value, (dict, list)):
            value = json.dumps(value, separators=(", ", ": "))
            value = value if len(value) <= 160 else value[:157] + "..."
        rows.append([key, value])
    return {"benchmark": path.stem, "title": path.stem.replace("_", " ").replace("-", " ").capitalize(),
            "order": 900,
            "description": f"From `docs/bench/{path.name}`, written by a script that does not "
                           "use the schema of scripts/render_benchmarks.py: its summary as found.",
            "tables": [{"columns": ["field", "value"], "rows": rows}]}


def _anchor(title: str) -> str:
    anchor = title.lower().replace(" ", "-")
    return "".join(c for c in anchor if c.isalnum() or c in "-_")


def summary_lines(results: list[dict]) -> list[str]:
    """Every target of every benchmark in one table, met or not."""
    rows = [[f"[{r['title']}](#{_anchor(r['title'])})", t["target"], t["measured"], t["met"],
             _status(r)]
            for r in results for t in r.get("targets", [])]
    if not rows:
        return []
    return (["**All targets at a glance** (details, method and profiles in each section; "
             "a stale figure describes older code):", ""]
            + table(["benchmark", "target", "measured (medians)", "met", "result"], rows) + [""])


def _short(commit: str | None) -> str:
    return f"`{commit[:12]}`" if commit else "none recorded"


def _status(result: dict) -> str:
    status = "**stale**" if result.get("_stale") else "current"
    return status + (", quick run" if provenance_of(result).get("quick") else "")


def cpu_text(machine: dict) -> str:
    """The CPU line of a section: model, cores, the flags that matter here."""
    if not machine:
        return "not recorded"
    cpu = machine.get("cpu") or machine.get("platform") or "not recorded"
    cores = machine.get("cores") or machine.get("cpus")
    parts = [str(cpu)]
    if cores:
        parts.append(f"{cores} cores")
    if "cpu_flags" in machine:
        parts.append(_flags_text(machine["cpu_flags"]))
    return ", ".join(parts)


def provenance_lines(result: dict, repo: Path) -> list[str]:
    """The lines under a section's title: when, which commit, which CPU,
    and whether the figures are stale or from a quick run."""
    prov = provenance_of(result)
    machine = result.get("machine") or {}
    tree = ("" if not prov.get("commit") else
            " (tree dirty: uncommitted changes when measured)" if prov.get("dirty") else
            " (clean tree)" if prov.get("dirty") is False else "")
    python = machine.get("python")
    python = (python if str(python).startswith(("CPython", "PyPy")) else f"Python {python}") \
        if python else "not recorded"
    commit = f"at commit {_short(prov['commit'])}" if prov.get("commit") else \
        "at an unrecorded commit"
    text = (f"Measured {result.get('generated') or 'at an unrecorded date'} {commit}{tree}; "
            f"CPU: {cpu_text(machine)}; {python}")
    if prov.get("rereported"):
        text += (f"; tables and notes re-rendered from the same figures on "
                 f"{prov['rereported']['date']}")
    lines = [f"*{text}.*", ""]
    if prov.get("quick"):
        lines += ["> **Quick run** (`--quick`): a smoke run with fewer and shorter runs, to "
                  "check the benchmark works; its figures are not the page's and are not "
                  "comparable with the targets.", ""]
    if result.get("_stale"):
        lines += [f"> **Stale**: {result['_stale']}. Re-measure with "
                  f"`scripts/run-benchmarks {result['benchmark']}`.", ""]
    return lines


INTRO = [
    "Regenerate everything (measurements, this page, the plots) with one command, "
    "from a fresh clone on an otherwise idle machine:",
    "",
    "```sh",
    "scripts/run-benchmarks            # every benchmark, full length (hours: the 10^7 "
    "logs, the soaks)",
    "scripts/run-benchmarks reads soak # only these, then render the page",
    "scripts/run-benchmarks --quick    # smoke run of every benchmark (minutes)",
    "```",
    "",
    "It installs the `bench` extra into `.venv`, runs every `scripts/bench_*.py`, the crash "
    "suite (`scripts/crash.py`) and the soaks (`scripts/soak.py`, prefilled and from an "
    "empty log); each writes `docs/bench/<name>.json`, and this page is rendered from those "
    "files by `scripts/render_benchmarks.py`: every figure here is in one of them. Figures "
    "are medians of several runs on the machine stated in each section; the targets are "
    "those of SPEC §8 and issue 6. Benchmarks never run in the test suite.",
    "",
    "**Provenance.** Every JSON records the commit measured and whether the tree had "
    "uncommitted changes then (`git status --porcelain`, `docs/bench/`, `docs/benchmarks.md` "
    "and `.bench-cache/` aside, with the paths), the CPU model and its sha_ni, avx2, aes "
    "and avx512f flags, the cores, the Python (version, executable, build), the load "
    "average at start and end, and the dates (`provenance` and `machine` in the JSON). "
    "Each section states its commit and CPU.",
    "",
    "**Stale sections.** Each benchmark declares the paths it measures (`MEASURES` in "
    "`scripts/render_benchmarks.py`: its scripts and the code under test). A section is "
    "marked **stale** when its JSON records no commit, when `git diff --quiet <commit> "
    "HEAD -- <paths>` finds a change to those paths since its commit, when it was measured "
    "with uncommitted changes to them, or when HEAD moved during the run. A stale figure "
    "describes older code: re-run that benchmark.",
    "",
    "**Quick runs.** `scripts/run-benchmarks --quick` runs every benchmark short (a smoke "
    "run for a working session). Its results are marked `\"quick\": true` in the JSON and "
    "go to `docs/bench/quick/<name>.json`, rendered to `docs/bench/quick/benchmarks.md`: "
    "a quick result never replaces a full one on this page, and a section rendered from "
    "one says so.",
    "",
]


def load_results(bench_dir: Path, repo: Path = ROOT) -> list[dict]:
    """Every result in bench_dir (the schema, or a foreign file's summary),
    each with "_stale" set to why it is stale (None: current), in page order."""
    results = []
    for path in sorted(bench_dir.glob("*.json")):
        result = json.loads(path.read_text())
        if not isinstance(result, dict):
            print(f"{path}: not a JSON object, skipped", file=sys.stderr)
            continue
        if "benchmark" not in result or "title" not in result:
            result = foreign_result(path, result)
        result["_stale"] = stale_reason(provenance_of(result),
                                        measured_paths(result["benchmark"]), repo)
        results.append(result)
    results.sort(key=lambda r: (r.get("order", 1000), r["benchmark"]))
    return results


def _shown_path(path: Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def render(bench_dir: Path = BENCH_DIR, out: Path = OUT, repo: Path = ROOT) -> Path:
    results = load_results(bench_dir, repo)
    quick_page = bench_dir.name == QUICK
    head = code_state(repo).get("commit")
    lines = [
        "# Benchmarks" + (" (quick runs)" if quick_page else ""),
        "",
        "<!-- Generated by scripts/render_benchmarks.py from "
        + _shown_path(bench_dir) + "/*.json; do not edit by hand. -->",
        "",
    ]
    if quick_page:
        lines += ["Results of `scripts/run-benchmarks --quick`: smoke runs, fewer and shorter "
                  "than the full benchmarks, to check that each works. They are not the "
                  "figures of [the benchmark page](../../benchmarks.md).", ""]
    else:
        lines += INTRO
    if results:
        stale = sum(1 for r in results if r["_stale"])
        lines += [f"Staleness checked against HEAD {_short(head)}: {stale} of {len(results)} "
                  "sections stale.", ""]
        lines += ["| benchmark | measured | commit | CPU | result | command |",
                  "|---|---|---|---|---|---|"]
        for r in results:
            command = f"`{r['command']}`" if r.get("command") else "–"
            lines.append(f"| [{r['title']}](#{_anchor(r['title'])}) | "
                         f"{r.get('generated') or '–'} | "
                         f"{_short(provenance_of(r).get('commit'))} | "
                         f"{_cell(cpu_text(r.get('machine') or {}))} | {_status(r)} | "
                         f"{command} |")
        lines.append("")
        lines += summary_lines(results)
    for r in results:
        lines += [f"## {r['title']}", ""]
        lines += provenance_lines(r, repo)
        if r.get("description"):
            lines += [r["description"], ""]
        if r.get("machine"):
            lines += machine_lines(r["machine"]) + [""]
        body = SECTIONS.get(r["benchmark"], generic_section)
        lines += body(r, bench_dir, out.parent)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines).rstrip() + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bench-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--quick", action="store_true",
                        help="render the quick results (docs/bench/quick) to "
                             "docs/bench/quick/benchmarks.md")
    args = parser.parse_args(argv)
    bench_dir = args.bench_dir or result_dir(args.quick)
    out = args.out or (bench_dir / "benchmarks.md" if bench_dir.name == QUICK else OUT)
    path = render(bench_dir, out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
