"""The benchmark page tells the truth about what was measured (issue 19, item 3).

- every result records its provenance (commit, dirty tree, CPU and flags,
  cores, Python, load, dates) through one function, write_result();
- a section is stale when the code it measures changed since its commit
  (checked here on a throwaway git repository), or when it has no commit;
- a quick result never replaces a full one and says it is quick;
- the page renders from the JSONs in docs/bench/;
- a profile share is never negative ("not sampled" when its frame is not);
- the client benchmark names the fold it really runs; the audit columns
  read the keys ``tlog-client audit --json`` writes;
- the soak's "flat" rule for RSS and file descriptors, on synthetic series;
- the hostile-load section renders when its JSON exists, and is absent when
  it does not.

These tests measure nothing: benchmarks never run in the test suite.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
sys.path.insert(0, str(SCRIPTS))

import profiling  # noqa: E402
import render_benchmarks as rb  # noqa: E402
import soakrules  # noqa: E402

NEGATIVE = re.compile(r"(?<![\w.])[-−]\s?\d")  # "-26%", "−26 %" (not "2^-1", "p-99")


# ------------------------------------------------------------------ git helpers


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                         check=True)
    return out.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> dict:
    """A throwaway repository: commit 1 adds a/x.py and b/y.py; commit 2
    changes b/y.py only; commit 3 changes a/x.py."""
    r = tmp_path / "repo"
    r.mkdir()
    git(r, "init", "-q")
    git(r, "config", "user.email", "bench@example.com")
    git(r, "config", "user.name", "bench")
    git(r, "config", "commit.gpgsign", "false")
    (r / "a").mkdir()
    (r / "b").mkdir()
    (r / "a" / "x.py").write_text("x = 1\n")
    (r / "b" / "y.py").write_text("y = 1\n")
    git(r, "add", ".")
    git(r, "commit", "-q", "-m", "one")
    c1 = git(r, "rev-parse", "HEAD")
    (r / "b" / "y.py").write_text("y = 2\n")
    git(r, "commit", "-q", "-am", "two")
    c2 = git(r, "rev-parse", "HEAD")
    return {"path": r, "c1": c1, "c2": c2}


# ------------------------------------------------------------------ staleness


def test_not_stale_when_the_measured_paths_did_not_change(repo):
    r = repo["path"]
    assert rb.stale_reason({"commit": repo["c1"], "dirty": False}, ["a/"], r) is None
    assert rb.stale_reason({"commit": repo["c2"], "dirty": False}, ["a/", "b/"], r) is None
    assert rb.stale_reason({"commit": repo["c1"], "dirty": False}, ["a/*.py"], r) is None


def test_stale_when_a_measured_path_changed_since_the_commit(repo):
    r = repo["path"]
    reason = rb.stale_reason({"commit": repo["c1"], "dirty": False}, ["b/"], r)
    assert reason is not None and "changed since" in reason and "b/y.py" in reason
    assert rb.stale_reason({"commit": repo["c1"]}, ["a/", "b/"], r) is not None
    assert rb.stale_reason({"commit": repo["c1"]}, ["b/*.py"], r) is not None
    # git diff --quiet agrees
    assert subprocess.run(["git", "-C", str(r), "diff", "--quiet", repo["c1"], "HEAD", "--",
                           "b/"]).returncode == 1


def test_a_later_commit_makes_an_earlier_result_stale(repo):
    r = repo["path"]
    prov = {"commit": repo["c2"], "dirty": False}
    assert rb.stale_reason(prov, ["a/"], r) is None
    (r / "a" / "x.py").write_text("x = 3\n")
    git(r, "commit", "-q", "-am", "three")
    assert "changed since" in rb.stale_reason(prov, ["a/"], r)
    assert rb.stale_reason(prov, ["b/"], r) is None


def test_stale_without_a_commit_or_with_an_unknown_one(repo):
    r = repo["path"]
    assert "no commit" in rb.stale_reason({}, ["a/"], r)
    assert "no commit" in rb.stale_reason(None, ["a/"], r)
    assert "no commit" in rb.stale_reason({"commit": None, "dirty": None}, ["a/"], r)
    assert "not in this repository" in rb.stale_reason({"commit": "ab" * 20}, ["a/"], r)


def test_stale_when_measured_with_uncommitted_changes_to_its_paths(repo):
    r = repo["path"]
    dirty = {"commit": repo["c2"], "dirty": True, "dirty_paths": ["a/x.py"]}
    assert "uncommitted" in rb.stale_reason(dirty, ["a/"], r)
    assert rb.stale_reason(dirty, ["b/"], r) is None  # the change was elsewhere
    # dirty, but which paths is not known: stale
    assert "uncommitted" in rb.stale_reason({"commit": repo["c2"], "dirty": True}, ["b/"], r)


def test_stale_when_head_moved_during_the_run(repo):
    r = repo["path"]
    prov = {"commit": repo["c1"], "dirty": False, "commit_at_end": repo["c2"]}
    assert "moved" in rb.stale_reason(prov, ["b/"], r)


def test_code_state_sees_dirty_paths_but_not_results(repo):
    r = repo["path"]
    state = rb.code_state(r)
    assert state == {"commit": repo["c2"], "dirty": False, "dirty_paths": []}
    (r / "docs" / "bench").mkdir(parents=True)
    (r / "docs" / "bench" / "x.json").write_text("{}")
    (r / "docs" / "benchmarks.md").write_text("# page")
    (r / ".bench-cache").mkdir()
    (r / ".bench-cache" / "log").write_text("")
    assert rb.code_state(r)["dirty"] is False
    (r / "a" / "x.py").write_text("x = 9\n")
    (r / "a" / "new.py").write_text("")
    state = rb.code_state(r)
    assert state["dirty"] is True and state["dirty_paths"] == ["a/new.py", "a/x.py"]


def test_code_state_outside_git(tmp_path):
    state = rb.code_state(tmp_path)
    assert state["commit"] is None
    assert "no commit" in rb.stale_reason(state, ["a/"], tmp_path)


def test_every_benchmark_declares_what_it_measures():
    scripts = {"crash": "crash.py", "soak": "soak.py", "soak-from-empty": "soak.py"}
    names = [p.stem.removeprefix("bench_") for p in SCRIPTS.glob("bench_*.py")]
    assert {"hashing", "writes", "reads", "client", "growth"} <= set(names)
    for name in [*names, *scripts]:
        assert (SCRIPTS / scripts.get(name, f"bench_{name}.py")).exists()
        assert name in rb.MEASURES, f"{name}: declare the paths it measures in MEASURES"
        for spec in rb.measured_paths(name):  # every declared path exists in this tree
            assert list(ROOT.glob(spec.rstrip("/"))), (name, spec)
    assert "client/_bulk*" in rb.MEASURES["hashing"]
    assert {"tlog/", "client/"} <= set(rb.MEASURES["reads"])


# ------------------------------------------------------------------ provenance


def test_write_result_records_provenance(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["scripts/bench_x.py"])
    machine = rb.machine_info(extra_fact="yes")
    path = rb.write_result({"benchmark": "hashing", "title": "T", "machine": machine}, tmp_path)
    assert path == tmp_path / "hashing.json"
    out = json.loads(path.read_text())
    prov = out["provenance"]
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    assert prov["commit"] == head
    assert isinstance(prov["dirty"], bool) and isinstance(prov["dirty_paths"], list)
    assert prov["quick"] is False and prov["measures"] == rb.MEASURES["hashing"]
    assert prov["started"] and prov["finished"] and out["generated"]
    m = out["machine"]
    assert "_start" not in m
    assert m["cpu"] and m["cores"] and m["extra_fact"] == "yes"
    assert set(m["cpu_flags"]) >= {"sha_ni", "avx2", "aes"}
    assert all(isinstance(v, bool) for v in m["cpu_flags"].values())
    assert m["python"].startswith(("CPython", "PyPy")) and m["python_executable"]
    assert "libpython" in m["python_build"]
    assert "load_average_at_start" in m and "load_average_at_end" in m


def test_quick_results_go_elsewhere_and_say_so(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["scripts/bench_x.py"])
    full = rb.write_result({"benchmark": "crash", "title": "Crash", "targets": [
        {"target": "t", "measured": "full figure", "met": True}]}, tmp_path)
    monkeypatch.setattr(sys, "argv", ["scripts/bench_x.py", "--quick"])  # detected
    quick = rb.write_result({"benchmark": "crash", "title": "Crash", "targets": [
        {"target": "t", "measured": "quick figure", "met": True}]}, tmp_path)
    assert quick == tmp_path / "quick" / "crash.json" != full
    assert json.loads(full.read_text())["provenance"]["quick"] is False
    assert json.loads(quick.read_text())["provenance"]["quick"] is True
    page = rb.render(tmp_path, tmp_path / "page.md")
    assert "full figure" in page.read_text() and "quick figure" not in page.read_text()
    quick_page = rb.render(tmp_path / "quick", tmp_path / "quick" / "page.md").read_text()
    assert "quick figure" in quick_page and "**Quick run**" in quick_page


def test_a_rereport_keeps_the_old_provenance(tmp_path):
    old = {"benchmark": "client", "title": "Client", "generated": "2026-01-01T00:00:00Z"}
    path = rb.write_result({"benchmark": "client", "title": "Client"}, tmp_path,
                           rereport_of=old)
    out = json.loads(path.read_text())
    assert out["generated"] == "2026-01-01T00:00:00Z"
    assert out["provenance"]["commit"] is None and out["provenance"]["rereported"]["date"]


def test_legacy_commit_string():
    prov = rb.legacy_provenance({"commit": "0123456789abcdef0123456789abcdef01234567 "
                                           "(with uncommitted changes)"})
    assert prov["commit"].startswith("0123456") and prov["dirty"] is True
    assert rb.legacy_provenance({})["commit"] is None


# ------------------------------------------------------------------ the page


@pytest.fixture
def bench_copy(tmp_path: Path) -> Path:
    """docs/bench/*.json (and the images they name) copied, so that rendering
    draws its plots there and not into the working tree."""
    out = tmp_path / "bench"
    out.mkdir()
    for path in (ROOT / "docs" / "bench").glob("*.json"):
        shutil.copy(path, out)
    for path in (ROOT / "docs" / "bench").glob("*.png"):
        shutil.copy(path, out)
    return out


def test_the_page_renders_from_the_committed_results(bench_copy, tmp_path):
    results = sorted(bench_copy.glob("*.json"))
    assert results
    page = rb.render(bench_copy, tmp_path / "benchmarks.md").read_text()
    sections = page.count("\n## ")
    assert sections == len(results)
    for path in results:
        data = json.loads(path.read_text())
        title = data.get("title")
        if title:
            assert f"## {title}\n" in page
        reason = rb.stale_reason(rb.provenance_of(data),
                                 rb.measured_paths(data.get("benchmark", path.stem)))
        section = page.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0] if title else ""
        if title:
            assert "*Measured" in section and "CPU:" in section  # commit and CPU stated
            assert ("> **Stale**" in section) == (reason is not None), title
    assert NEGATIVE.search(_shares(page)) is None


def _shares(page: str) -> str:
    """The profile sentences and tables of a page (where shares are)."""
    return "\n".join(line for line in page.splitlines()
                     if "Profile" in line or "% of samples" in line or "besides" in line)


def test_results_without_a_commit_are_stale(bench_copy, tmp_path):
    for path in bench_copy.glob("*.json"):
        data = json.loads(path.read_text())
        data.pop("provenance", None)
        data.pop("commit", None)
        path.write_text(json.dumps(data))
    results = rb.load_results(bench_copy)
    assert results and all(r["_stale"] for r in results)


def test_hostile_section_renders_when_its_json_exists(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["scripts/bench_hostile.py"])
    assert "Under hostile load" not in rb.render(tmp_path, tmp_path / "p.md").read_text()
    result = hostile_result()
    rb.write_result(result, tmp_path)
    page = rb.render(tmp_path, tmp_path / "p.md").read_text()
    assert "## Under hostile load" in page
    section = page.split("## Under hostile load", 1)[1]
    assert "p99 <= 50 ms" in section and "RSS <=" in section
    assert "| idle |" in section and "| all |" in section


def hostile_result() -> dict:
    """What scripts/bench_hostile.py writes, from its own report() when the
    script is there, for synthetic figures."""
    phases = [{"phase": p, "seconds": 5.0, "reads": 400, "reads_failed": 0, "p50_ms": 1.5,
               "p99_ms": 9.0 + i, "max_ms": 20.0, "by_read": {}, "peak_rss_mib": 210.0 + i,
               "statuses": {"submission: 201": 10}}
              for i, p in enumerate(("idle", "submissions", "abandoned searches",
                                     "waiting searches", "all"))]
    data = {"phases": phases, "rss_start_mib": 180.0, "peak_rss_mib": 214.0,
            "server_alive_after": 200, "fsck": [0, "ok"], "log_size": 4000}
    if (SCRIPTS / "bench_hostile.py").exists():
        import bench_hostile
        from types import SimpleNamespace
        args = SimpleNamespace(phase_s=5.0, workers=2)
        return bench_hostile.report(args, data, rb.machine_info())
    return {"benchmark": "hostile", "title": "Under hostile load: an unrelated read",
            "targets": [{"target": "unrelated read p99 <= 50 ms in every phase",
                         "measured": "worst phase p99 13.0 ms", "met": True},
                        {"target": "server RSS <= 600 MiB (--workers 2)",
                         "measured": "peak 214 MiB", "met": True}],
            "tables": [{"columns": ["phase", "p99 ms"],
                        "rows": [[p["phase"], p["p99_ms"]] for p in phases]}],
            "machine": rb.machine_info(), "data": data}


# ------------------------------------------------------------------ profile shares


def _raw(tmp_path: Path, stacks: dict[str, int]) -> Path:
    path = tmp_path / "profile.txt"
    path.write_text("".join(f"{stack} {n}\n" for stack, n in stacks.items()))
    return path


HANDLER = ("run (runners.py:1);RequestHandler._handle_request (web_protocol.py:2);"
           "LogApi.create_entry (api.py:3)")
CHECK = "_bootstrap (threading.py:1);Offload._run (offload.py:2)"


def test_shares_are_counted_from_stacks_and_never_negative(tmp_path):
    import bench_writes
    stacks = {
        HANDLER: 10,
        "run (runners.py:1);RequestHandler._handle_request (web_protocol.py:2)": 10,
        CHECK + ";_run_check (api.py:3);<lambda> (entrytypes.py:4);_verify_ecdsa (keys.py:5)": 30,
        CHECK + ";_prepare_entry (api.py:3);prepare_proposed (entrytypes.py:4);"
                "expect_object (jsonstrict.py:5)": 5,
        CHECK + ";_run_check (api.py:3);<lambda> (entrytypes.py:4);_proposed (entrytypes.py:6)": 5,
        "w (threading.py:1);Sequencer._integrate (sequencer.py:2);sign_sets (integrate.py:3)": 4,
        "w (threading.py:1);Sequencer._integrate (sequencer.py:2);"
        "insert_entries (storage.py:3)": 16,
        "w (threading.py:1);_worker (thread.py:2)": 1000,  # waiting: not counted
    }
    out = profiling.summarise(_raw(tmp_path, stacks), bench_writes.WRITE_FRAMES,
                              derived=bench_writes.WRITE_DERIVED)
    assert out["samples"] == 80
    d = out["derived"]
    assert d["parsing and canonicalisation besides the signature check"] == 12.5  # 10 / 80
    assert d["aiohttp request handling outside the create_entry handler"] == 12.5
    assert d["sequencer batch besides the SET signatures"] == 20.0
    assert out["named"]["ECDSA P-256 verify of the entry signature"] == 37.5
    # The frame the old arithmetic subtracted from is not nested around the
    # signature check here: inclusive parse (50%) - verify (37.5%) would be
    # right only by accident; counted, it is 12.5%.
    note = bench_writes.profile_note({**out, "clients": 128})
    assert "besides the signature check 12%" in note or "besides the signature check 13%" in note
    assert NEGATIVE.search(note) is None


def test_a_frame_off_the_path_is_not_sampled_never_negative(tmp_path):
    import bench_writes
    stacks = {HANDLER: 10,
              CHECK + ";renamed_check (api.py:3);_verify_ecdsa (keys.py:5)": 30,
              "w (threading.py:1);Sequencer._integrate (sequencer.py:2)": 10}
    out = profiling.summarise(_raw(tmp_path, stacks), bench_writes.WRITE_FRAMES,
                              derived=bench_writes.WRITE_DERIVED)
    assert out["named"]["entry parsing and checks (prepare_proposed and its check)"] is None
    assert out["derived"]["parsing and canonicalisation besides the signature check"] is None
    assert out["derived"]["sequencer batch besides the SET signatures"] == 20.0
    note = bench_writes.profile_note({**out, "clients": 128})
    assert "besides the signature check not sampled" in note
    assert NEGATIVE.search(note) is None


def test_profile_tables_and_notes_of_the_committed_writes_result():
    """The write profile of docs/bench/writes.json, re-presented: no share
    is negative (it printed −26 % before)."""
    import bench_writes
    data = json.loads((ROOT / "docs" / "bench" / "writes.json").read_text())
    profile = data["data"].get("profile")
    if profile is None:
        pytest.fail("docs/bench/writes.json holds no profile")
    note = bench_writes.profile_note(profile)
    assert NEGATIVE.search(note) is None
    for para in data["notes"]:
        if para.startswith("Profile"):
            assert NEGATIVE.search(para) is None, para


def test_share_text():
    assert profiling.share_text(None) == "not sampled"
    assert profiling.share_text(25.5) == "26%"
    assert profiling.share_text(0.4) == "0.4%"
    assert profiling.share_text(0.0) == "0%"
    with pytest.raises(ValueError):
        profiling.share_text(-26.0)


def test_read_profile_note_counts_too(tmp_path):
    import bench_reads
    stacks = {"r (runners.py:1);RequestHandler._handle_request (web_protocol.py:2)": 18,
              "r (runners.py:1);RequestHandler._handle_request (web_protocol.py:2);"
              "LogApi.get_entry_by_index (api.py:3);ReadTxn.read_hashes (storage.py:4)": 14}
    out = profiling.summarise(_raw(tmp_path, stacks), bench_reads.READ_FRAMES,
                              derived=bench_reads.READ_DERIVED)
    note = bench_reads.read_profile_note(out, 10**7)
    assert "outside the handler 56%" in note and "proof node reads 44%" in note
    assert "leaf hash re-check not sampled" in note
    assert NEGATIVE.search(note) is None


# ------------------------------------------------------------------ client benchmark


def test_client_label_names_the_fold_that_runs(monkeypatch):
    import bench_client
    from tlog_client import bulk
    backend = bench_client.verification_backend()
    if bulk._fold_path is bulk._py_fold_path:
        assert backend["fold"] == "python" and "hashlib" in backend["text"]
    else:
        assert backend["fold"] == "c" and "_bulk.fold_path" in backend["text"]
        assert "hashlib" not in backend["text"]
    monkeypatch.setattr(bulk, "_fold_path", bulk._py_fold_path)
    assert bench_client.verification_backend()["fold"] == "python"


def test_client_audit_columns_read_the_audit_reports_keys():
    import bench_client
    from types import SimpleNamespace

    from tlog_client.audit import AuditReport
    report_json = AuditReport(1000, b"\0" * 32, 1000, 7, 4, 0.5).to_json()
    rows = [{"size": s, "inclusion_per_s": 100000, "consistency_per_s": 50000,
             "inclusion_hashes": 30.0, "consistency_hashes": 30.0,
             "inclusion_runs": [1], "consistency_runs": [1]} for s in bench_client.SIZES]
    aud = {"size": 1000, "build": None, "runs": {
        label: {"wall_s": 1.0, "entries_per_s": 1000, "all_s": [1.0], "report": report_json}
        for label in ("server CPU 0, client CPU 1", "both unpinned")}}
    args = SimpleNamespace(repeat=1, cases=10, audit_repeat=1)
    backend = bench_client.verification_backend()
    result = bench_client.report({"tlog_bulk_backend": "c"}, args, rows, aud, backend)
    audit_table = next(t for t in result["tables"] if "audit" in t["title"])
    for row in audit_table["rows"]:
        assert row[3:] == [7, 4], row  # tiles compared, entry bundles checked
    assert "pure Python, hashlib" not in " ".join(result["method"])
    assert backend["text"] in result["method"][0]


def test_committed_client_result_has_audit_figures():
    data = json.loads((ROOT / "docs" / "bench" / "client.json").read_text())
    audit_table = next(t for t in data["tables"] if "audit" in t["title"])
    assert all(None not in row for row in audit_table["rows"])
    assert "pure Python, hashlib" not in " ".join(data["method"])


# ------------------------------------------------------------------ the soak's flat rule


def noisy(base: float, n: int, spread: float, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [base + rng.uniform(-spread, spread) for _ in range(n)]


def test_flat_series_pass():
    assert soakrules.fds_flat([40] * 100)["flat"]
    assert soakrules.fds_flat([round(v) for v in noisy(40, 100, 3)])["flat"]
    assert soakrules.rss_flat(noisy(150, 100, 1.5), [90] * 100, prefilled=True)["flat"]
    # falling is flat
    assert soakrules.fds_flat(list(range(140, 40, -1)))["flat"]
    # one outlier at the end (a burst): the median does not move
    assert soakrules.fds_flat([40] * 95 + [40, 40, 40, 40, 300])["flat"]


def test_a_leak_is_not_flat():
    leak = [40 + i // 2 for i in range(100)]  # one file descriptor every other sample
    verdict = soakrules.fds_flat(leak)
    assert not verdict["flat"] and verdict["growth"] > verdict["tolerance"]
    assert not soakrules.rss_flat([150 + 0.2 * i for i in range(100)], [90] * 100,
                                  prefilled=True)["flat"]


def test_a_step_that_stays_is_not_flat():
    # the recorded 10-minute soak: 43 descriptors, then 242 and more from
    # 50 s after the warm-up to the end (and its RSS from 153 to 168 MB)
    fds = [40] * 5 + [43] * 4 + [242, 268, 268] + [250] * 84
    assert len(fds) == 96
    assert not soakrules.fds_flat(fds)["flat"]
    rss = [151] * 5 + [153] * 5 + [168] * 86
    assert not soakrules.rss_flat(rss, [100] * 96, prefilled=True)["flat"]
    # within the tolerance: flat
    assert soakrules.fds_flat([40] * 10 + [46] * 86)["flat"]
    assert soakrules.rss_flat([150] * 10 + [158] * 86, [100] * 96, prefilled=True)["flat"]


def test_the_first_window_is_the_baseline_and_the_last_the_end():
    a, b = soakrules.windows(list(range(100)))
    assert a == list(range(10)) and b == list(range(90, 100))
    verdict = soakrules.flat([10] * 10 + [30] * 80 + [10] * 10, abs_tol=5, rel_tol=0)
    assert verdict["flat"]  # back where it started at the end


def test_too_few_samples_are_not_flat():
    verdict = soakrules.fds_flat([40] * 5)
    assert verdict["flat"] is False and "too few" in verdict["reason"]


def test_rss_from_empty_may_grow_with_the_page_caches():
    db = [10 + 0.2 * i for i in range(100)]  # the database grows 20 MB
    rss = [80 + 0.3 * i for i in range(100)]  # RSS 30 MB: within 2 MB per MB
    assert not soakrules.rss_flat(rss, db, prefilled=True)["flat"]
    verdict = soakrules.rss_flat(rss, db, prefilled=False)
    assert verdict["flat"] and verdict["allowance"] > 0
    assert not soakrules.rss_flat([80 + 0.8 * i for i in range(100)], db,
                                  prefilled=False)["flat"]


def test_soak_ok_requires_both_flat():
    """scripts/soak.py's summary: ok only when RSS and descriptors are flat."""
    import soak
    warmup = 60

    def run(fds: list[int], rss: list[float]) -> dict:
        samples = [{"t": 5.0 * (i + 1), "rss_mb": r, "db_mb": 100.0, "fds": f, "threads": 3,
                    "latency": {"read": {"n": 10, "p99_ms": 5.0}}}
                   for i, (f, r) in enumerate(zip(fds, rss))]
        result = {"samples": samples, "errors": [], "skipped": {}, "tree_size": 10,
                  "statuses": {"read": {"200": 100}}, "prefill": {"entries": 1}}
        run = {"minutes": 5, "warmup_minutes": 1, "sample_s": 5, "rates_per_s": {},
               "final": {"fds": fds[-1], "threads": 3}, "tracebacks": 0, "fsck_ok": True,
               "fsck_entries": 10}
        return soak.summarize(result, run, warmup, 10.0)

    n = 72
    assert run([40] * n, [150.0] * n)["ok"]
    assert not run([40] * 30 + [167] * 42, [150.0] * n)["ok"]  # descriptors grow
    assert not run([40] * n, [150.0] * 30 + [190.0] * 42)["ok"]  # RSS grows
