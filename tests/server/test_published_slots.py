"""The published-checkpoint record's two slots (tlog/published.py): each
batch overwrites the older slot in place; a torn slot is ignored and the
other one read; the whole-file format of older versions is read and
converted; nothing ever moves the record backwards."""

from __future__ import annotations

import hashlib
import json
import zlib

import pytest

from tlog.published import SLOT, PublishedRecord, RollbackError
from tlog.records import StoredCheckpoint

ORIGIN = "tlog.test/slots"


def checkpoint(size: int, note: str = "") -> StoredCheckpoint:
    root = hashlib.sha256(size.to_bytes(8, "big")).digest()
    text = note or f"{ORIGIN}\n{size}\n{root.hex()}\n\n— {ORIGIN} sig{size}\n"
    return StoredCheckpoint(size, root, text.encode(), 1_700_000_000 + size)


def slot_sizes(path) -> list[int | None]:
    """The size recorded in each slot, None for a slot that is not whole."""
    data = path.read_bytes()
    assert len(data) == 2 * SLOT
    out = []
    for i in (0, 1):
        slot = data[i * SLOT:(i + 1) * SLOT]
        digest, _, rest = slot.partition(b"\n")
        body = rest.rstrip(b" ")
        whole = b"%08x" % zlib.crc32(body) == digest
        out.append(json.loads(body)["size"] if whole else None)
    return out


@pytest.fixture
def record(tmp_path):
    return PublishedRecord(tmp_path)


def test_each_publish_overwrites_the_older_slot(record):
    record.publish(ORIGIN, checkpoint(1))
    assert record.path.stat().st_size == 2 * SLOT
    assert slot_sizes(record.path) == [1, 1]  # created whole, atomically
    for size in range(2, 8):
        record.publish(ORIGIN, checkpoint(size))
        sizes = slot_sizes(record.path)
        assert sorted(sizes) == [size - 1, size]
        assert record.read() == PublishedRecord(record.path.parent).read()
        assert record.read().size == size
    assert record.read().to_json() == {
        "origin": ORIGIN, "size": 7, "root": checkpoint(7).root.hex(),
        "note": checkpoint(7).note.decode()}


def _tear(data: bytes, slot: int, how: str) -> bytes:
    start = slot * SLOT
    if how == "zeros":
        torn = bytes(SLOT)
    elif how == "first sector only":  # the new record's first 512 bytes, then the old slot
        torn = b"0" * 512 + data[start + 512:start + SLOT]
    elif how == "blank":
        torn = b" " * SLOT
    elif how == "garbage":
        torn = bytes(range(256)) * (SLOT // 256)
    elif how == "one bit":
        torn = bytearray(data[start:start + SLOT])
        torn[100] ^= 1
        torn = bytes(torn)
    else:
        raise AssertionError(how)
    return data[:start] + torn + data[start + SLOT:]


@pytest.mark.parametrize("how", ["zeros", "first sector only", "blank", "garbage", "one bit"])
def test_a_torn_slot_is_ignored_and_the_other_read(record, how):
    for size in (1, 2, 3):
        record.publish(ORIGIN, checkpoint(size))
    newest = slot_sizes(record.path).index(3)
    data = record.path.read_bytes()
    record.path.write_bytes(_tear(data, newest, how))
    assert record.read().size == 2  # the previous record: a crash mid-write
    # The next batch writes the torn slot, not the good one.
    fresh = PublishedRecord(record.path.parent)
    fresh.publish(ORIGIN, checkpoint(4))
    assert sorted(slot_sizes(record.path)) == [2, 4]
    # Both torn: unreadable, refused (never silently replaced by a reader).
    data = record.path.read_bytes()
    record.path.write_bytes(_tear(_tear(data, 0, how), 1, "zeros"))
    with pytest.raises(RollbackError, match="unreadable"):
        record.read()


def test_a_whole_slot_with_a_bad_record_is_refused(record):
    record.publish(ORIGIN, checkpoint(1))
    body = b'{"origin": "x", "size": -1}\n'
    slot = (b"%08x" % zlib.crc32(body) + b"\n" + body).ljust(SLOT, b" ")
    record.path.write_bytes(slot + record.path.read_bytes()[SLOT:])
    with pytest.raises(RollbackError, match="unreadable"):
        record.read()


def test_the_whole_file_format_is_read_and_converted(record):
    legacy = PublishedRecord(record.path.parent)
    legacy.path.write_text('{"origin": "%s", "size": 5, "root": "%s", "note": "n"}\n'
                           % (ORIGIN, checkpoint(5).root.hex()))
    assert record.read().size == 5
    record.publish(ORIGIN, checkpoint(4))  # smaller: nothing changes
    assert record.path.read_bytes()[:1] == b"{"
    record.publish(ORIGIN, checkpoint(6))
    assert slot_sizes(record.path) == [6, 6]
    assert record.read().size == 6


def test_a_record_too_big_for_a_slot_is_a_whole_file(record):
    record.publish(ORIGIN, checkpoint(1))
    big = checkpoint(2, note="x" * (SLOT + 10))
    record.publish(ORIGIN, big)
    assert record.path.read_bytes()[:1] == b"{"
    assert record.read().note == big.note.decode()
    record.publish(ORIGIN, checkpoint(3))
    assert slot_sizes(record.path) == [3, 3]


def test_the_record_never_moves_backwards(tmp_path):
    first, second = PublishedRecord(tmp_path), PublishedRecord(tmp_path)
    first.publish(ORIGIN, checkpoint(5))
    second.publish(ORIGIN, checkpoint(3))  # another process, behind: ignored
    second.publish(ORIGIN, checkpoint(4))
    assert sorted(slot_sizes(first.path)) == [5, 5]
    assert first.read().size == 5


@pytest.mark.parametrize("steps", [
    [("a", 1), ("a", 2), ("b", 3), ("a", 4), ("b", 5), ("a", 6)],  # taking turns
    [("a", 1), ("b", 9), ("a", 2), ("a", 3), ("b", 10), ("a", 11)],  # a falls behind
    [("a", 1), ("a", 2), ("b", 3), ("b", 4), ("a", 3), ("a", 5)],  # a repeats a size
])
def test_two_writers_each_see_the_others_records(tmp_path, steps):
    """A process does not decode the file again while it holds exactly what
    that process last wrote: another process's write must still be seen."""
    writers = {"a": PublishedRecord(tmp_path), "b": PublishedRecord(tmp_path)}
    newest = 0
    for who, size in steps:
        writers[who].publish(ORIGIN, checkpoint(size))
        newest = max(newest, size)
        assert PublishedRecord(tmp_path).read().size == newest
        assert max(s for s in slot_sizes(writers[who].path) if s is not None) == newest
