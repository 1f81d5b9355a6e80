"""tlog/turnbatch.py: items handed over in one event-loop turn run together,
in order, each caller getting its own result or exception."""

from __future__ import annotations

import asyncio

import pytest

from tlog.turnbatch import TurnBatch


def _double_or_raise(item: int) -> int:
    if item < 0:
        raise ValueError(f"negative: {item}")
    return item * 2


@pytest.mark.parametrize("items", [[1], [1, 2, 3], [4, -1, 5], [-2, -3], list(range(50))])
async def test_each_caller_gets_its_own_outcome(items):
    batch = TurnBatch(_double_or_raise)
    futures = [batch.run(i) for i in items]
    outcomes = await asyncio.gather(*futures, return_exceptions=True)
    for item, outcome in zip(items, outcomes):
        if item < 0:
            assert isinstance(outcome, ValueError) and str(outcome) == f"negative: {item}"
        else:
            assert outcome == item * 2
    assert (batch.turns, batch.items) == (1, len(items))


@pytest.mark.parametrize("turns", [1, 2, 5])
async def test_one_flush_per_turn_in_arrival_order(turns):
    seen: list[int] = []
    batch = TurnBatch(lambda item: seen.append(item) or item)
    results = []
    for turn in range(turns):
        futures = [batch.run(turn * 10 + k) for k in range(3)]
        results += await asyncio.gather(*futures)
    assert seen == results == [t * 10 + k for t in range(turns) for k in range(3)]
    assert (batch.turns, batch.items) == (turns, 3 * turns)


async def test_items_from_concurrent_handlers_share_a_turn():
    batch = TurnBatch(_double_or_raise)

    async def handler(item: int) -> int:
        return await batch.run(item)

    assert await asyncio.gather(*(handler(i) for i in range(8))) == [i * 2 for i in range(8)]
    assert batch.turns == 1


async def test_a_cancelled_caller_is_skipped():
    calls: list[int] = []
    batch = TurnBatch(lambda item: calls.append(item) or item)
    first, second = batch.run(1), batch.run(2)
    first.cancel()
    assert await second == 2
    assert calls == [2] and first.cancelled()


@pytest.mark.parametrize("count, max_items, runs", [
    (10, 0, 1), (10, 16, 1), (16, 16, 1), (17, 16, 2), (40, 16, 3), (40, 1, 40), (7, 3, 3)])
async def test_runs_are_bounded_by_max_items(count, max_items, runs):
    seen: list[int] = []
    batch = TurnBatch(lambda item: seen.append(item) or -item, max_items=max_items)
    results = await asyncio.gather(*(batch.run(i) for i in range(count)))
    assert results == [-i for i in range(count)] and seen == list(range(count))
    assert (batch.turns, batch.items) == (runs, count)


async def test_callers_of_a_run_go_on_before_the_next_run():
    """What the first run's callers queue when they resume (in the server:
    the link's write to the sequencer) runs before the second run."""
    order: list[str] = []
    batch = TurnBatch(lambda item: order.append(f"run {item}") or item, max_items=2)

    async def caller(item: int) -> None:
        await batch.run(item)
        asyncio.get_running_loop().call_soon(order.append, f"sent {item}")

    await asyncio.gather(*(caller(i) for i in range(5)))
    await asyncio.sleep(0)
    assert order == ["run 0", "run 1", "sent 0", "sent 1", "run 2", "run 3",
                     "sent 2", "sent 3", "run 4", "sent 4"]


# -- two passes (then) ---------------------------------------------------------------

def _then_or_raise(first: int) -> int:
    if first == 0:
        raise KeyError("zero after the first pass")
    return first + 1


@pytest.mark.parametrize("items", [[1], [1, 2, 3], [4, -1, 0, 5], [-2, 0], list(range(-3, 30))])
async def test_then_gives_each_caller_its_own_outcome(items):
    """A caller gets then(fn(item)); an exception from either pass reaches
    that caller only (fn's: then never runs for it)."""
    batch = TurnBatch(_double_or_raise, then=_then_or_raise)
    outcomes = await asyncio.gather(*(batch.run(i) for i in items), return_exceptions=True)
    for item, outcome in zip(items, outcomes):
        if item < 0:
            assert isinstance(outcome, ValueError)
        elif item == 0:
            assert isinstance(outcome, KeyError)
        else:
            assert outcome == item * 2 + 1


@pytest.mark.parametrize("count, max_items", [(1, 0), (5, 0), (20, 16), (7, 3)])
async def test_then_runs_after_every_first_pass_of_the_run(count, max_items):
    """Within a run, every item's first pass comes before any second pass
    (the server's signature checks back to back), each in arrival order."""
    order: list[str] = []
    batch = TurnBatch(lambda item: order.append(f"fn {item}") or item, max_items=max_items,
                      then=lambda first: order.append(f"then {first}") or -first)
    assert await asyncio.gather(*(batch.run(i) for i in range(count))) == \
        [-i for i in range(count)]
    run = max_items or count
    expected = []
    for start in range(0, count, run):
        chunk = range(start, min(count, start + run))
        expected += [f"fn {i}" for i in chunk] + [f"then {i}" for i in chunk]
    assert order == expected


async def test_then_skips_a_caller_cancelled_meanwhile():
    """A caller cancelled while the first pass runs gets no second pass."""
    seconds: list[int] = []
    futures = []

    def first(item: int) -> int:
        if item == 1:
            futures[2].cancel()  # the third caller goes away mid-run
        return item

    batch = TurnBatch(first, then=lambda f: seconds.append(f) or f)
    futures.extend(batch.run(i) for i in range(4))
    done = await asyncio.gather(*futures, return_exceptions=True)
    assert seconds == [0, 1, 3]
    assert done[:2] == [0, 1] and done[3] == 3
    assert futures[2].cancelled()


# -- in an offload thread ----------------------------------------------------------------

async def test_with_an_offload_runs_happen_in_its_thread():
    import threading

    from tlog.offload import Offload

    threads: set[int] = set()

    def first(item: int) -> int:
        threads.add(threading.get_ident())
        return _double_or_raise(item)

    offload = Offload("t", max_items=100)
    batch = TurnBatch(first, max_items=3, then=_then_or_raise, offload=offload)
    items = [1, -1, 0, 2, 3, 4, 5]
    outcomes = await asyncio.gather(*(batch.run(i) for i in items), return_exceptions=True)
    assert threads and threading.get_ident() not in threads
    assert outcomes[0] == 3 and isinstance(outcomes[1], ValueError)
    assert isinstance(outcomes[2], KeyError) and outcomes[3:] == [5, 7, 9, 11]
    assert (batch.turns, batch.items) == (3, 7) and offload.waiting == 0
    offload.stop()


async def test_with_a_full_offload_run_refuses_at_once():
    from tlog.offload import BusyError, Offload

    offload = Offload("t", max_items=2, max_bytes=10)
    batch = TurnBatch(lambda item: item, offload=offload, size_of=len)
    a, b = batch.run(b"x"), batch.run(b"y")
    with pytest.raises(BusyError):
        batch.run(b"z")
    assert await asyncio.gather(a, b) == [b"x", b"y"]
    assert offload.waiting == 0
    assert await batch.run(b"0123456789") == b"0123456789"
    offload.stop()


async def test_with_an_offload_a_cancelled_caller_is_skipped():
    from tlog.offload import Offload

    calls: list[int] = []
    batch = TurnBatch(lambda item: calls.append(item) or item, offload=Offload("t", max_items=8))
    first, second = batch.run(1), batch.run(2)
    first.cancel()
    assert await second == 2
    assert calls == [2]
