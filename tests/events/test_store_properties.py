"""Property: any interleaving of appends with random expected versions keeps every stream whole.

Given any sequence of appends to a few streams, each with an expected version that may be right,
stale, ahead or "any", every stream holds exactly the events of the appends that succeeded, with
versions 0, 1, 2, … and nothing lost or duplicated, and read_all returns all of them in position
order. Run against both backends; a threaded variant races real writers on one store.
"""

from __future__ import annotations

import random
import threading
import time
import uuid

from hypothesis import HealthCheck, given, settings, strategies as st

from events.errors import WrongExpectedVersion
from events.store import ANY, EventStore
from tests.events.factories import progress

EXPECTED = st.one_of(
    st.just("right"), st.just("any"), st.just("stale"), st.just("ahead"), st.just("no_stream")
)
OPS = st.lists(st.tuples(st.integers(0, 3), st.integers(1, 4), EXPECTED), min_size=1, max_size=25)


def expected_for(choice: str, actual: int) -> int:
    return {
        "right": actual,
        "any": ANY,
        "stale": actual - 1 if actual >= 0 else 5,
        "ahead": actual + 1,
        "no_stream": -1,
    }[choice]


def read_feed(store: EventStore, prefix: str, count: int) -> list:
    """The prefix's events from the feed, as a tailing reader gets them, waiting up to 30 s.

    On PostgreSQL the feed stops below the oldest running write transaction of the whole server
    (that is what keeps it from skipping late commits), so a foreign long transaction can delay,
    but never reorder or drop, what a reader sees.
    """
    feed: list = []
    deadline = time.monotonic() + 30
    while True:
        after = feed[-1].position if feed else 0
        feed += store.read_all(after, limit=100_000, stream_prefix=prefix)
        if len(feed) >= count or time.monotonic() > deadline:
            return feed
        store.wait_for(store.head_position(), timeout=0.2)


def check_streams(store: EventStore, prefix: str, model: dict[str, list[uuid.UUID]]) -> None:
    feed = read_feed(store, prefix, sum(len(ids) for ids in model.values()))
    positions = [e.position for e in feed]
    assert positions == sorted(set(positions)), "feed out of order or duplicated"
    for stream, ids in model.items():
        read = store.read_stream(stream)
        assert [e.version for e in read] == list(range(len(ids))), "versions not contiguous"
        assert [e.id for e in read] == ids, "an accepted event is missing or extra"
        assert [e.id for e in feed if e.stream == stream] == ids
    assert sorted(e.id for e in feed) == sorted(i for ids in model.values() for i in ids)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=OPS)
def test_sequential_appends_keep_streams_contiguous(store: EventStore, ops: list) -> None:
    prefix = f"p{uuid.uuid4().hex[:10]}-"
    model: dict[str, list[uuid.UUID]] = {}
    for index, size, choice in ops:
        stream = f"{prefix}{index}"
        actual = len(model.get(stream, [])) - 1
        expected = expected_for(choice, actual)
        events = progress(size)
        try:
            result = store.append(stream, events, expected)
        except WrongExpectedVersion as err:
            assert expected not in (ANY, actual)
            assert err.actual == actual
        else:
            assert expected in (ANY, actual)
            assert result.first_version == actual + 1
            model.setdefault(stream, []).extend(e.id for e in events)
    check_streams(store, prefix, model)


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=st.integers(0, 2**32 - 1))
def test_concurrent_writers_keep_streams_contiguous(store: EventStore, seed: int) -> None:
    """Four threads race on three streams, each reading the version and appending at it."""
    prefix = f"c{uuid.uuid4().hex[:10]}-"
    accepted: list[tuple[str, list[uuid.UUID], int]] = []
    lock = threading.Lock()

    def writer(worker: int) -> None:
        rng = random.Random(seed + worker)
        for _ in range(15):
            stream = f"{prefix}{rng.randrange(3)}"
            events = progress(rng.randint(1, 3))
            expected = ANY if rng.random() < 0.3 else store.stream_version(stream)
            try:
                result = store.append(stream, events, expected)
            except WrongExpectedVersion:
                continue
            with lock:
                accepted.append((stream, [e.id for e in events], result.first_version))

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    model: dict[str, list[uuid.UUID]] = {}
    for stream, ids, _first in sorted(accepted, key=lambda a: a[2]):
        model.setdefault(stream, []).extend(ids)
    check_streams(store, prefix, model)
