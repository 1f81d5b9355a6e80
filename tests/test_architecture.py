"""SPEC §2 import rules, checked by parsing every module's imports."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CLIENT, SERVER = ROOT / "client", ROOT / "tlog"

# Pure modules: formats and maths, no I/O, no event loop, no database.
PURE = {"errors", "encoding", "hashing", "bulk", "proof", "verify", "compact", "note",
        "notekeys", "checkpoint", "tiles", "jsonstrict", "keys", "rekor", "hashedrekord",
        "dsse", "intoto", "intoto002",
        # the client's verification recipes (issue 4): pure too
        "trust", "bindings", "entryverify", "bundle", "tileverify", "match", "signing",
        # attestations (issue 5): the DSSE recipe and the release policy
        "dsseverify", "policy"}
IO_MODULES = {"asyncio", "aiohttp", "sqlite3", "sqlite_utils", "socket", "urllib", "http",
              "subprocess", "threading", "requests", "shutil", "tempfile"}
MERKLE_NAMES = {"leaf_hash", "node_hash", "verify_inclusion", "verify_consistency",
                "inclusion_nodes", "consistency_nodes", "parse_checkpoint", "open_note",
                "sign_note", "root_of_level", "parent_level"}


def modules(directory: Path):
    return sorted(p for p in directory.rglob("*.py") if "__pycache__" not in p.parts)


def imports(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports (absolute or relative)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the package
                found.add("." * node.level + (node.module or ""))
            else:
                found.add(node.module)
    return found


def roots(names: set[str]) -> set[str]:
    return {n.split(".")[0] for n in names if not n.startswith(".")}


@pytest.mark.parametrize("path", modules(CLIENT), ids=lambda p: p.name)
def test_client_never_imports_the_server(path):
    assert "tlog" not in roots(imports(path)), f"{path.name} imports the server package"


@pytest.mark.parametrize("path", [p for p in modules(CLIENT) if p.stem in PURE],
                         ids=lambda p: p.name)
def test_pure_modules_do_no_io(path):
    bad = roots(imports(path)) & IO_MODULES
    assert not bad, f"pure module {path.name} imports {bad}"
    assert "open(" not in re.sub(r"#.*", "", path.read_text()).replace("_open(", "").replace(
        ".open(", ""), f"pure module {path.name} opens files"


@pytest.mark.parametrize("path", modules(SERVER), ids=lambda p: p.name)
def test_only_storage_talks_to_the_database(path):
    if path.stem == "storage":
        return
    bad = roots(imports(path)) & {"sqlite3", "sqlite_utils"}
    assert not bad, f"{path.name} imports {bad}; only tlog/storage.py may"


@pytest.mark.parametrize("path", modules(SERVER) + modules(CLIENT), ids=lambda p: p.name)
def test_only_the_app_layer_imports_aiohttp_web(path):
    names = imports(path)
    uses_web = "aiohttp.web" in names or any(
        isinstance(n, ast.ImportFrom) and n.module == "aiohttp" and
        any(a.name == "web" for a in n.names)
        for n in ast.walk(ast.parse(path.read_text())))
    if uses_web:
        assert path.parent == SERVER and path.stem in {"api", "app"}, \
            f"{path} imports aiohttp.web; only tlog/api.py and tlog/app.py may"


@pytest.mark.parametrize("path", modules(SERVER), ids=lambda p: p.name)
def test_merkle_and_note_code_exists_once_in_the_client(path):
    defined = {n.name for n in ast.walk(ast.parse(path.read_text()))
               if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    assert not defined & MERKLE_NAMES, f"{path.name} redefines {defined & MERKLE_NAMES}"
    # tlog/seal.py: a keyed BLAKE2b checksum of stored rows (a MAC only the
    # server can compute, SPEC §10 U2), not Merkle or note hashing.
    if path.stem != "seal":
        assert "hashlib" not in roots(imports(path)), \
            f"{path.name} hashes by itself; use tlog_client"


def test_every_package_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    mapping = config["package-dir"]
    for name, directory in mapping.items():
        for init in (ROOT / directory).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / directory)
            package = ".".join([name, *rel.parts])
            assert package in listed, f"{package} is not listed in pyproject packages"


def test_client_is_never_importable_as_bare_client():
    assert not (ROOT / "client.py").exists()
    import tlog_client
    assert Path(tlog_client.__file__).parent.name == "client"
