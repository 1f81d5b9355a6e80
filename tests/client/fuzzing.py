"""Shared scaffolding for the property-based fuzz tests (SPEC §9), client
and server: hypothesis settings, JSON values to put anywhere in a document,
the paths into a document and a copy with one path replaced, and the
"a result or a typed error, nothing else" harness.

Client-only: tlog_client, pytest and hypothesis, no server import (the server
tests import it as ``..client.fuzzing``)."""

from __future__ import annotations

import copy
import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tlog_client.errors import TlogError


# TLOG_FUZZ_SCALE=N runs N times the examples (a deeper run than CI's, e.g.
# nightly); the default keeps the suite's time bounded.
SCALE = max(1, int(os.environ.get("TLOG_FUZZ_SCALE", "1") or 1))


def fuzz_settings(max_examples: int, *also_suppress: HealthCheck, **kwargs) -> settings:
    """Bounded examples (times ``TLOG_FUZZ_SCALE``), no deadline, and no
    too-slow health check (the samples are signed documents);
    ``also_suppress`` adds health checks."""
    return settings(max_examples=max_examples * SCALE, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, *also_suppress], **kwargs)


def json_values(max_leaves: int = 8) -> st.SearchStrategy:
    """Any JSON value (big integers and non-finite floats included), nested."""
    return st.recursive(
        st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
        | st.text(max_size=20),
        lambda children: st.lists(children, max_size=3)
        | st.dictionaries(st.text(max_size=8), children, max_size=3),
        max_leaves=max_leaves)


def paths(obj, prefix=()):
    """Every path (a tuple of keys and indexes) into ``obj``, ``()`` first."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from paths(v, prefix + (i,))


def replaced(obj, path, value, delete=False):
    """A deep copy of ``obj`` with ``value`` at ``path`` (or, with ``delete``
    and a path inside an object, that member removed)."""
    if not path:
        return value
    out = copy.deepcopy(obj)
    node = out
    for step in path[:-1]:
        node = node[step]
    if delete and isinstance(node, dict):
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


def mutated(data: st.DataObject, doc, value, delete: bool):
    """``doc`` with a path drawn from ``data`` (any member or element, or the
    whole) set to ``value`` or, with ``delete``, removed (see :func:`replaced`)."""
    path = data.draw(st.sampled_from(list(paths(doc))))
    return replaced(doc, path, value, delete)


def typed_or_valid(fn, *args, **kwargs):
    """Call ``fn``: a result, or None after a typed error. Any other
    exception fails the test (hypothesis shrinks and reports it)."""
    try:
        return fn(*args, **kwargs)
    except TlogError:
        return None
