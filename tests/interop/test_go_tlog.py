"""Go's reference transparency-log code verifies ours (SPEC §3; issues 2 and 3).

tests/go/tlogcheck is built against golang.org/x/mod/sumdb/tlog and
sumdb/note (GOPATH mode, Debian's golang-golang-x-mod-dev) and checks:

* pure core: inclusion and consistency proofs made by ``tlog_client.proof``
  over a synthetic tree pass ``tlog.CheckRecord`` / ``tlog.CheckTree`` (and
  corrupted ones fail), and our roots equal ``tlog.TreeHash``;
* tiles made by our code for a synthetic 70,000-leaf tree (three tile levels,
  a full level-1 tile) and checkpoints signed by our code: ``note.Open``
  opens them under the verifier key string our code formats, every tile
  authenticates through ``tlog.TileHashReader`` and equals Go's own tile of
  the entries, and the proofs Go derives from the tiles equal ours;
* a real server grown through sizes 1, 2, 3, 255, 256, 257 and 600: every
  checkpoint it signed opens with ``note.Open``, every tile of every
  checkpoint's tree authenticates, the entry bundles rebuild the same tree,
  and the inclusion and consistency proofs of the JSON API pass Go's checks
  and equal the ones Go computes from the tiles.

Skipped only when the ``go`` toolchain or the x/mod sources are absent
(.ci/run installs both).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from itertools import combinations_with_replacement
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from tlog_client import bulk
from tlog_client.checkpoint import Checkpoint, sign_checkpoint
from tlog_client.compact import CompactRange
from tlog_client.hashedrekord import build_proposed
from tlog_client.notekeys import Ed25519Verifier, log_signers
from tlog_client.proof import consistency_nodes, inclusion_nodes
from tlog_client.tiles import (
    EntryBundle,
    encode_entry_bundle,
    encode_tile,
    tile_path,
    tiles_for_size,
)

GOPATH = Path("/usr/share/gocode")
X_MOD = GOPATH / "src/golang.org/x/mod"
SOURCE = Path(__file__).resolve().parents[1] / "go" / "tlogcheck"

pytestmark = pytest.mark.skipif(
    shutil.which("go") is None or not (X_MOD / "sumdb/tlog").is_dir(),
    reason="needs the go toolchain and golang-golang-x-mod-dev",
)


@pytest.fixture(scope="module")
def tlogcheck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The compiled Go checker."""
    tmp = tmp_path_factory.mktemp("tlogcheck")
    binary = tmp / "tlogcheck"
    env = dict(os.environ, GOPATH=str(GOPATH), GO111MODULE="off", GOFLAGS="",
               GOCACHE=str(tmp / "cache"))
    # Go's default cgo setting links Debian's precompiled net/http (about a
    # second); CGO_ENABLED=0 rebuilds it (about ten), so it is the fallback.
    for extra in ({}, {"CGO_ENABLED": "0"}):
        proc = subprocess.run(["go", "build", "-o", str(binary), "."], cwd=SOURCE,
                              env={**env, **extra}, capture_output=True, text=True, timeout=300)
        if proc.returncode == 0:
            return binary
    pytest.fail(f"go build failed: {proc.stderr}")


def go_ok(binary: Path, *args: str | Path, stdin: str | None = None) -> dict:
    """Run the checker; it must succeed. Returns its JSON report."""
    proc = subprocess.run([str(binary), *map(str, args)], input=stdin, capture_output=True,
                          text=True, timeout=120)
    if proc.returncode != 0:
        pytest.fail(f"Go rejected it: {proc.stderr.strip()[-3000:]}")
    return json.loads(proc.stdout)


def go_fails(binary: Path, *args: str | Path, stdin: str | None = None) -> str:
    """Run the checker; it must report a verification failure. Returns stderr."""
    proc = subprocess.run([str(binary), *map(str, args)], input=stdin, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1, (proc.returncode, proc.stdout[-500:], proc.stderr[-500:])
    return proc.stderr


class Levels:
    """A tree held as whole levels (our bulk code); a HashReader for proofs."""

    def __init__(self, entries: list[bytes]) -> None:
        self.levels = [bulk.leaf_hashes(entries)]
        while len(self.levels[-1]) > 32:
            self.levels.append(bulk.parent_level(self.levels[-1]))

    def node(self, level: int, index: int) -> bytes:
        h = self.levels[level][32 * index:32 * index + 32]
        assert len(h) == 32, (level, index)
        return h

    def read_hashes(self, addresses):
        return [self.node(level, index) for level, index in addresses]

    def root(self, size: int) -> bytes:
        return bulk.root_of_level(self.levels[0][:32 * size])


def corrupt(hashes: list[str], which: int) -> list[str]:
    """Flip one bit of one proof hash."""
    out = list(hashes)
    b = bytearray(bytes.fromhex(out[which]))
    b[which % 32] ^= 1 << (which % 8)
    out[which] = b.hex()
    return out


# --------------------------------------------------------------------------
# Pure core: proofs of tlog_client.proof checked by CheckRecord / CheckTree

SYNTHETIC = 300
INCLUSION_SIZES = [1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 127,
                   128, 129, 255, 256, 257, 299, 300]
CONSISTENCY_ALL_UP_TO = 40  # every pair 1 <= m <= n <= 40
CONSISTENCY_SIZES = [63, 64, 65, 127, 128, 129, 255, 256, 257, 300]  # every m <= n


def test_go_checks_core_proofs(tlogcheck):
    entries = [b"leaf %d" % i for i in range(SYNTHETIC)]
    tree = Levels(entries)
    roots = {n: tree.root(n) for n in range(1, SYNTHETIC + 1)}
    compact = CompactRange()
    for n, leaf in enumerate(bulk.split_level(tree.levels[0]), start=1):
        compact.append(leaf)
        assert compact.root() == roots[n]

    inclusion, consistency = [], []
    for n in INCLUSION_SIZES:
        for i in range(n):
            proof = [h.hex() for h in inclusion_nodes(i, n).read(tree)]
            vec = {"index": i, "size": n, "root": roots[n].hex(), "hashes": proof}
            inclusion.append(vec)
            if proof:
                inclusion.append({**vec, "hashes": corrupt(proof, i % len(proof)), "valid": False})
                inclusion.append({**vec, "hashes": proof[:-1], "valid": False})
            inclusion.append({**vec, "hashes": proof + [roots[n].hex()], "valid": False})
            if i + 1 < n:
                inclusion.append({**vec, "index": i + 1, "valid": False,
                                  "leaf": hashlib.sha256(b"\0leaf %d" % i).hexdigest()})
    pairs = set(combinations_with_replacement(range(1, CONSISTENCY_ALL_UP_TO + 1), 2))
    pairs |= {(m, n) for n in CONSISTENCY_SIZES for m in range(1, n + 1)}
    for m, n in sorted(pairs):
        proof = [h.hex() for h in consistency_nodes(m, n).read(tree)]
        vec = {"size1": m, "root1": roots[m].hex(), "size2": n, "root2": roots[n].hex(),
               "hashes": proof}
        consistency.append(vec)
        if proof:
            consistency.append({**vec, "hashes": corrupt(proof, m % len(proof)), "valid": False})
            consistency.append({**vec, "hashes": proof[1:], "valid": False})
        if m < n:
            consistency.append({**vec, "root1": roots[n].hex(), "valid": False})
    vectors = {"synthetic": {"format": "leaf %d", "count": SYNTHETIC},
               "inclusion": inclusion, "consistency": consistency}
    report = go_ok(tlogcheck, "proofs", stdin=json.dumps(vectors))
    valid_inc = sum(1 for v in inclusion if v.get("valid", True))
    valid_con = sum(1 for v in consistency if v.get("valid", True))
    assert report["inclusion_checked"] == valid_inc
    assert report["consistency_checked"] == valid_con
    assert report["invalid_rejected"] == len(inclusion) + len(consistency) - valid_inc - valid_con
    assert report["roots_recomputed"] == valid_inc + 2 * valid_con


# --------------------------------------------------------------------------
# Tiles made by our code for a synthetic 70,000-leaf tree, read by Go

BIG = 70_000
BIG_OLD_SIZES = [1, 2, 255, 256, 257, 511, 65535, 65536, 65537, 69999]
BIG_INDEXES = [0, 1, 2, 254, 255, 256, 257, 511, 512, 65279, 65280, 65535, 65536, 65537,
               69887, 69888, 69998, 69999]
ORIGIN = "example.com/tlog/go-interop"


@pytest.fixture(scope="module")
def tile_dir(tmp_path_factory):
    """Checkpoints, tiles and entry bundles of a synthetic tree, written with
    our code (the node hashes come from CompactRange, as in the sequencer)."""
    root_dir = tmp_path_factory.mktemp("tiles")
    entries = [b"entry %d " % i + b"x" * (i % 37) for i in range(BIG)]
    leaves = bulk.split_level(bulk.leaf_hashes(entries))
    nodes: list[tuple[int, int, bytes]] = []
    compact = CompactRange()
    sizes = sorted({*BIG_OLD_SIZES, BIG})
    roots = {}
    for n, leaf in enumerate(leaves, start=1):
        compact.append(leaf, nodes)
        if n in sizes:
            roots[n] = compact.root()
    by_level: dict[int, list[bytes]] = {}
    for level, index, h in nodes:
        if level % 8 == 0:
            row = by_level.setdefault(level, [])
            assert index == len(row)
            row.append(h)
    levels = Levels(entries)
    assert roots[BIG] == levels.root(BIG)

    key = ed25519.Ed25519PrivateKey.generate()
    signers = log_signers(key, ORIGIN)
    notes = {n: sign_checkpoint(Checkpoint(ORIGIN, n, roots[n]), signers).decode()
             for n in sizes}
    for n in sizes:
        for tile in tiles_for_size(n):
            start = tile.index * 256
            data = encode_tile(by_level[8 * tile.level][start:start + tile.width])
            path = root_dir / tile_path(tile)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            if tile.level == 0:
                bundle = root_dir / tile_path(EntryBundle(tile.index, tile.width))
                bundle.parent.mkdir(parents=True, exist_ok=True)
                bundle.write_bytes(encode_entry_bundle(entries[start:start + tile.width]))
    (root_dir / "checkpoint").write_text(notes[BIG])
    old = root_dir.parent / "old-checkpoints.json"
    old.write_text(json.dumps([notes[n] for n in BIG_OLD_SIZES]))
    vkey = Ed25519Verifier(ORIGIN, key.public_key()).verifier_key()
    return SimpleNamespace(dir=root_dir, old=old, vkey=vkey, roots=roots, sizes=sizes,
                           tree=levels, key=key, notes=notes)


def test_go_verifies_our_tiles(tlogcheck, tile_dir, tmp_path):
    pairs = [[i, n] for n in BIG_OLD_SIZES for i in BIG_INDEXES if i < n]
    prove = tmp_path / "prove.json"
    prove.write_text(json.dumps(pairs))
    report = go_ok(tlogcheck, "log", "-vkey", tile_dir.vkey, "-old", tile_dir.old,
                   "-index", ",".join(map(str, BIG_INDEXES)), "-prove", prove, "-entries",
                   tile_dir.dir)
    assert report["origin"] == ORIGIN
    assert report["size"] == BIG
    assert report["checkpoints"] == [{"size": n, "root": tile_dir.roots[n].hex()}
                                     for n in tile_dir.sizes]
    # Go's tile set of each tree (from tlog.NewTiles) is ours, and Go
    # authenticated and byte-compared every one of them.
    for n in tile_dir.sizes:
        assert report["tile_sets"][str(n)] == [tile_path(t) for t in tiles_for_size(n)]
    n_tiles = sum(len(tiles_for_size(n)) for n in tile_dir.sizes)
    assert report["tiles_checked"] == report["tiles_compared"] == n_tiles
    assert any(p.startswith("tile/2/") for p in report["tile_sets"][str(BIG)])
    assert "tile/1/000" in report["tile_sets"][str(BIG)]
    assert report["hashes_compared"] == 2 * BIG - bin(BIG).count("1")
    # The proofs Go derives from the tiles are the ones our code makes.
    tree = tile_dir.tree
    for i in BIG_INDEXES:
        pairs.append([i, BIG])
    assert len(report["inclusion"]) == len(pairs)
    for i, n in pairs:
        assert report["inclusion"][f"{i}/{n}"] == [h.hex() for h in inclusion_nodes(i, n).read(tree)]
    sizes = tile_dir.sizes
    assert len(report["consistency"]) == len(sizes) * (len(sizes) + 1) // 2
    for m, n in combinations_with_replacement(sizes, 2):
        assert report["consistency"][f"{m}/{n}"] == \
            [h.hex() for h in consistency_nodes(m, n).read(tree)]


def test_go_rejects_corrupted_tiles(tlogcheck, tile_dir, tmp_path):
    """The checks above have teeth: one flipped bit anywhere is caught."""
    def copy() -> Path:  # hard links: files are replaced, never written in place
        d = tmp_path / f"copy{len(list(tmp_path.iterdir()))}"
        shutil.copytree(tile_dir.dir, d, copy_function=os.link)
        return d

    def flip(path: Path, offset: int) -> None:
        data = bytearray(path.read_bytes())
        data[offset] ^= 0x01
        path.unlink()
        path.write_bytes(bytes(data))

    args = ("log", "-vkey", tile_dir.vkey, "-index", "0,65536")
    for tile in ("tile/1/000", "tile/0/017", "tile/0/273.p/112", "tile/1/001.p/17",
                 "tile/2/000.p/1"):
        d = copy()
        flip(d / tile, 40 if tile != "tile/2/000.p/1" else 7)
        assert "inconsistent tile" in go_fails(tlogcheck, *args, d)
    d = copy()
    flip(d / "tile/entries/005", 5)
    assert "root of the entries" in go_fails(tlogcheck, *args, "-entries", d)
    # A checkpoint whose signature or text was altered, or another key.
    d = copy()
    note = (d / "checkpoint").read_text()
    (d / "checkpoint").unlink()
    (d / "checkpoint").write_text(note.replace(f"\n{BIG}\n", f"\n{BIG - 1}\n"))
    assert "note.Open" in go_fails(tlogcheck, *args, d)
    other = Ed25519Verifier(ORIGIN, ed25519.Ed25519PrivateKey.generate().public_key())
    assert "note.Open" in go_fails(tlogcheck, "log", "-vkey", other.verifier_key(),
                                   tile_dir.dir)
    # A checkpoint signed by the right key over a wrong root.
    d = copy()
    bad = sign_checkpoint(Checkpoint(ORIGIN, BIG, tile_dir.roots[BIG - 1]),
                          log_signers(tile_dir.key, ORIGIN))
    (d / "checkpoint").unlink()
    (d / "checkpoint").write_bytes(bad)
    assert "inconsistent tile" in go_fails(tlogcheck, *args, d)


# --------------------------------------------------------------------------
# A real server: checkpoints, tiles, entry bundles, API proofs

WAVES = [1, 2, 3, 255, 256, 257, 600]  # tree sizes the log passes through
KEY_SIZES = WAVES  # every leaf index is proved at each of these sizes
ALL_PAIRS_UP_TO = 80  # checkpoint sizes: beyond this many, sample the pairs


def consistency_pairs(sizes: list[int]) -> list[tuple[int, int]]:
    """Every pair of checkpoint sizes (m <= n) when there are at most
    ALL_PAIRS_UP_TO of them (the usual case: batching gives about 50);
    otherwise every pair among WAVES and an even sample, every pair of
    neighbours, and each size with the first and the last."""
    if len(sizes) <= ALL_PAIRS_UP_TO:
        return list(combinations_with_replacement(sizes, 2))
    step = -(-len(sizes) // (ALL_PAIRS_UP_TO - len(WAVES)))
    keep = sorted({*WAVES, *sizes[::step]})
    pairs = set(combinations_with_replacement(keep, 2))
    pairs |= set(zip(sizes, sizes[1:]))
    pairs |= {(sizes[0], n) for n in sizes} | {(m, sizes[-1]) for m in sizes}
    return sorted(pairs)


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as r:
        assert r.status == 200, url
        return r.read()


def _get_json(url: str):
    return json.loads(_get(url))


@pytest.fixture(scope="module")
def served_log(tmp_path_factory):
    """A real server grown to 600 entries in waves that end at the sizes of
    WAVES, with every 201 response kept."""
    from ..serverproc import ServerProcess
    server = ServerProcess(tmp_path_factory.mktemp("golog") / "log").start()
    try:
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)

        def submit(i: int) -> dict:
            digest = hashlib.sha256(b"go interop artifact %d" % i).digest()
            signature = key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
            body = json.dumps(build_proposed("sha256", digest, signature, pem)).encode()
            req = urllib.request.Request(server.url + "/api/v1/log/entries", data=body,
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=60) as r:
                assert r.status == 201
                ((uuid, entry),) = json.loads(r.read()).items()
            return {"uuid": uuid, **entry}

        responses = []
        # Many concurrent submitters: the sequencer batches them, so the log
        # signs some 50 checkpoints on the way rather than one per entry.
        with ThreadPoolExecutor(64) as pool:
            for target in WAVES:
                responses += pool.map(submit, range(len(responses), target))
                head = _get_json(server.url + "/api/v1/log")
                assert head["treeSize"] == target, head
        notes: dict[int, str] = {}
        for r in responses:
            proof = r["verification"]["inclusionProof"]
            note = proof["checkpoint"]
            assert notes.setdefault(proof["treeSize"], note) == note, "two notes for one size"
        latest = _get(server.url + "/checkpoint").decode()
        assert notes.setdefault(600, latest) == latest
        origin = latest.split("\n", 1)[0]
        public = serialization.load_pem_public_key(_get(server.url + "/api/v1/log/publicKey"))
        vkey = Ed25519Verifier(origin, public).verifier_key()
        assert set(WAVES) <= set(notes)
        yield SimpleNamespace(server=server, url=server.url, responses=responses, notes=notes,
                              vkey=vkey, origin=origin,
                              pairs=consistency_pairs(sorted(notes)))
    finally:
        server.kill()


@pytest.fixture(scope="module")
def go_log_report(tlogcheck, served_log, tmp_path_factory):
    """Go's verification of the served log, from /checkpoint and /tile/."""
    tmp = tmp_path_factory.mktemp("golog-run")
    old = tmp / "old.json"
    old.write_text(json.dumps(list(served_log.notes.values())))
    pairs = {(r["logIndex"], r["verification"]["inclusionProof"]["treeSize"])
             for r in served_log.responses}
    pairs |= {(i, n) for n in KEY_SIZES for i in range(n)}
    prove = tmp / "prove.json"
    prove.write_text(json.dumps(sorted(pairs)))
    sizes = tmp / "pairs.json"
    sizes.write_text(json.dumps(served_log.pairs))
    return go_ok(tlogcheck, "log", "-vkey", served_log.vkey, "-old", old, "-prove", prove,
                 "-pairs", sizes, "-entries", served_log.url)


def test_go_verifies_served_checkpoints_and_tiles(served_log, go_log_report):
    report = go_log_report
    sizes = sorted(served_log.notes)
    assert report["origin"] == served_log.origin
    assert report["size"] == 600
    # note.Open accepted every checkpoint the server signed, and each states
    # the root Go recomputed from the tiles and from the entry bundles.
    assert [c["size"] for c in report["checkpoints"]] == sizes
    for c in report["checkpoints"]:
        assert c["root"] == base64.b64decode(served_log.notes[c["size"]].split("\n")[2]).hex()
    n_tiles = sum(len(tiles_for_size(n)) for n in sizes)
    assert report["tiles_checked"] == report["tiles_compared"] == n_tiles
    for n in sizes:
        assert report["tile_sets"][str(n)] == [tile_path(t) for t in tiles_for_size(n)]
    assert report["hashes_compared"] == 2 * 600 - bin(600).count("1")
    assert report["bundles_checked"] >= 3


@pytest.fixture(scope="module")
def api_proofs(served_log):
    """The JSON API's proofs as vectors for ``tlogcheck proofs``: inclusion
    proofs from every POST response and from GET by logIndex at the head,
    consistency proofs from /api/v1/log/proof between every pair of
    checkpoint sizes (see consistency_pairs); each with the signed checkpoint
    it is against."""
    def vector(entry: dict) -> dict:
        proof = entry["verification"]["inclusionProof"]
        assert proof["logIndex"] == entry["logIndex"]
        return {"index": entry["logIndex"], "size": proof["treeSize"],
                "root": proof["rootHash"], "entry": entry["body"],
                "leaf": entry["uuid"][-64:], "hashes": proof["hashes"],
                "checkpoint": proof["checkpoint"]}

    def by_index(i: int) -> dict:
        ((uuid, entry),) = _get_json(
            f"{served_log.url}/api/v1/log/entries?logIndex={i}").items()
        return vector({"uuid": uuid, **entry})

    def consistency(pair: tuple[int, int]) -> dict:
        m, n = pair
        got = _get_json(f"{served_log.url}/api/v1/log/proof?firstSize={m}&lastSize={n}")
        return {"size1": m, "root1": _note_root(served_log.notes[m]), "size2": n,
                "root2": got["rootHash"], "hashes": got["hashes"],
                "checkpoint": served_log.notes[n]}

    with ThreadPoolExecutor(16) as pool:
        at_head = list(pool.map(by_index, HEAD_INDEXES))
        cons = list(pool.map(consistency, served_log.pairs))
    assert all(v["size"] == 600 for v in at_head)
    for v in cons:
        assert v["root2"] == _note_root(served_log.notes[v["size2"]])
    return SimpleNamespace(inclusion=[vector(r) for r in served_log.responses] + at_head,
                           consistency=cons)


HEAD_INDEXES = [0, 1, 2, 3, 127, 254, 255, 256, 257, 300, 511, 512, 598, 599]


def _note_root(note: str) -> str:
    return base64.b64decode(note.split("\n")[2]).hex()


def test_go_computes_the_api_proofs_from_tiles(served_log, go_log_report, api_proofs):
    """Proofs the API served equal, byte for byte, the ones Go derives from
    the tiles (and Go checked those with CheckRecord / CheckTree)."""
    for v in api_proofs.inclusion:
        key = f"{v['index']}/{v['size']}"
        assert go_log_report["inclusion"][key] == v["hashes"], key
    assert len(go_log_report["consistency"]) == len(api_proofs.consistency) \
        == len(served_log.pairs)
    for v in api_proofs.consistency:
        key = f"{v['size1']}/{v['size2']}"
        assert go_log_report["consistency"][key] == v["hashes"], key


def test_go_checks_api_proofs(tlogcheck, served_log, api_proofs):
    """The API's proofs pass CheckRecord / CheckTree against the roots of
    checkpoints that note.Open accepts (Go also hashes each entry body to
    the leaf); corrupted copies fail."""
    inclusion, consistency = api_proofs.inclusion, api_proofs.consistency
    bad = [{**v, "hashes": corrupt(v["hashes"], k % len(v["hashes"])), "valid": False}
           for k, v in enumerate(inclusion[::7]) if v["hashes"]]
    bad += [{**v, "index": (v["index"] + 1) % v["size"], "valid": False}
            for v in inclusion[::11] if v["size"] > 1]
    bad_con = [{**v, "hashes": corrupt(v["hashes"], k % len(v["hashes"])), "valid": False}
               for k, v in enumerate(consistency[::5]) if v["hashes"]]
    report = go_ok(tlogcheck, "proofs", "-vkey", served_log.vkey, stdin=json.dumps(
        {"inclusion": inclusion + bad, "consistency": consistency + bad_con}))
    assert report["inclusion_checked"] == len(inclusion)
    assert report["consistency_checked"] == len(consistency)
    assert report["invalid_rejected"] == len(bad) + len(bad_con)
    assert report["checkpoints_opened"] == len(inclusion) + len(consistency)
