#!/usr/bin/env python3
"""Render docs/benchmarks.md (and its PNG plots) from every docs/bench/*.json.

Each benchmark script (scripts/bench_*.py) measures one area and writes one
JSON file, docs/bench/<name>.json; this script knows nothing about how a
figure was measured and only renders what the files say. It also holds the
helpers the benchmark scripts share (:func:`machine_info`, :func:`write_result`),
so that every file has the same shape:

    {
      "schema": 1,
      "benchmark": "hashing",              # also the file's stem
      "title": "Bulk hashing",
      "order": 10,                         # position in benchmarks.md
      "generated": "2026-01-01T00:00:00Z",
      "command": "scripts/bench_hashing.py",
      "machine": {...},                    # machine_info(): CPU, cores, versions
      "method": ["paragraph", ...],        # how it was measured (markdown)
      "targets": [{"target": "...", "measured": "...", "met": true,
                   "best_runs": "..."}],          # best_runs optional
      "tables": [{"title": "...", "columns": ["...", ...],
                  "rows": [["cell", ...], ...], "notes": ["..."]}],
      "plots": [{"file": "hashing-root.png", "title": "...", "kind": "line" | "bar",
                 "xlabel": "...", "ylabel": "...", "xscale": "log", "yscale": "log",
                 "series": [{"label": "...", "x": [...], "y": [...]}]}],
      "notes": ["paragraph", ...],         # findings, limits, profiles
      "data": {...}                        # raw figures (all samples), free-form
    }

Only "benchmark" and "title" are required; every other key is optional and
rendered generically. A benchmark that needs more than tables and plots can
register a function in SECTIONS (benchmark name -> function returning
markdown lines) that replaces the generic body of its section.

Usage: scripts/render_benchmarks.py [--bench-dir docs/bench] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import ssl
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "docs" / "bench"
OUT = ROOT / "docs" / "benchmarks.md"
SCHEMA = 1

# ---------------------------------------------------------------- helpers for bench_*.py


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


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


def machine_info(**extra) -> dict:
    """What the figures were measured on; ``extra`` adds benchmark-specific
    facts (for example the OpenSSL a compiled module was linked with)."""
    flags = _cpu_flags()
    info = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cpu_flags": sorted(flags & {"sha_ni", "avx2", "avx512f", "aes"}),
        "memory_mib": _mem_total_mib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "openssl": ssl.OPENSSL_VERSION,
        "load_average_at_start": load_average(),
    }
    info.update(extra)
    return info


def write_result(result: dict, bench_dir: Path = BENCH_DIR) -> Path:
    """Write one benchmark's JSON (docs/bench/<benchmark>.json)."""
    for key in ("benchmark", "title"):
        if key not in result:
            raise ValueError(f"benchmark result needs {key!r}")
    result = {"schema": SCHEMA,
              "generated": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
              **result}  # a "generated" in result (a re-report) is kept
    bench_dir.mkdir(parents=True, exist_ok=True)
    path = bench_dir / f"{result['benchmark']}.json"
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


def machine_lines(machine: dict) -> list[str]:
    if not machine:
        return []
    names = {"cpu": "CPU", "cores": "cores", "cpu_flags": "CPU features", "memory_mib":
             "memory (MiB)", "os": "OS", "python": "Python", "openssl": "OpenSSL (Python's ssl)",
             "load_average_at_start": "load average at start",
             "load_average_at_end": "load average at end",
             "tlog_bulk_backend": "tlog_client.bulk backend",
             "tlog_bulk_openssl": "OpenSSL linked by tlog_client._bulk"}
    rows = []
    for key, value in machine.items():
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value) or "none"
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
    rows = [[f"[{r['title']}](#{_anchor(r['title'])})", t["target"], t["measured"], t["met"]]
            for r in results for t in r.get("targets", [])]
    if not rows:
        return []
    return (["**All targets at a glance** (details, method and profiles in each section):",
             ""] + table(["benchmark", "target", "measured (medians)", "met"], rows) + [""])


def render(bench_dir: Path = BENCH_DIR, out: Path = OUT) -> Path:
    results = []
    for path in sorted(bench_dir.glob("*.json")):
        result = json.loads(path.read_text())
        if not isinstance(result, dict):
            print(f"{path}: not a JSON object, skipped", file=sys.stderr)
            continue
        if "benchmark" not in result or "title" not in result:
            result = foreign_result(path, result)
        results.append(result)
    results.sort(key=lambda r: (r.get("order", 1000), r["benchmark"]))

    lines = [
        "# Benchmarks",
        "",
        "<!-- Generated by scripts/render_benchmarks.py from docs/bench/*.json;"
        " do not edit by hand. -->",
        "",
        "Regenerate everything (measurements, this page, the plots) with one command:",
        "",
        "```sh",
        "scripts/run-benchmarks",
        "```",
        "",
        "It installs the `bench` extra into `.venv`, runs every `scripts/bench_*.py`"
        " (each writes `docs/bench/<name>.json`) and renders this page. Figures are"
        " medians of several runs on the machine stated in each section; the targets"
        " are those of SPEC §8 and issue 6. Benchmarks never run in the test suite.",
        "",
    ]
    if results:
        lines += ["| benchmark | measured | command |", "|---|---|---|"]
        for r in results:
            command = f"`{r['command']}`" if r.get("command") else "–"
            lines.append(f"| [{r['title']}](#{_anchor(r['title'])}) | "
                         f"{r.get('generated', '–')} | {command} |")
        lines.append("")
        lines += summary_lines(results)
    for r in results:
        lines += [f"## {r['title']}", ""]
        if r.get("description"):
            lines += [r["description"], ""]
        if r.get("machine"):
            lines += machine_lines(r["machine"]) + [""]
        body = SECTIONS.get(r["benchmark"], generic_section)
        lines += body(r, bench_dir, out.parent)
    out.write_text("\n".join(lines).rstrip() + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bench-dir", type=Path, default=BENCH_DIR)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    path = render(args.bench_dir, args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
