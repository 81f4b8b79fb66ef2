"""Long polls at scale: 500 concurrent ``GET /api/v1/events/?wait=`` from 50 users on PostgreSQL.

A real ``magictoolbox run`` on a fresh schema; 50 users each hold 10 long polls (the default
``LONG_POLLS_PER_USER``) open at once, renewed as they end. Meanwhile 10 other users read their
executions and submit, from a process of their own (the pollers' client keeps its loop busy),
and the figures say whether they noticed: errors, and the p95 of their reads beside the same
reads with nobody waiting (measured first). The
server's PostgreSQL connections are sampled throughout (``application_name``) and printed beside
the bound the server states at startup: the sizes of its connection pools (the event store's,
the read models', Django's) and the store's LISTEN/NOTIFY pair, whatever the number of threads
or waiters. The server's ``max_connections`` is printed too. Nothing is asserted.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import re
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

from tests.bench.places import PostgresSchemas
from tests.e2e.contained import Server, create_users, server_env

Progress = Callable[[str], None]


@dataclass(frozen=True)
class LongPollPlan:
    users: int = 50
    polls_per_user: int = 10
    others: int = 10
    seconds: float = 30.0
    wait: float = 20.0


FULL_LONGPOLL_PLAN = LongPollPlan()
QUICK_LONGPOLL_PLAN = LongPollPlan(users=10, polls_per_user=5, others=3, seconds=8.0, wait=5.0)


@dataclass
class LongPollFigures:
    plan: LongPollPlan
    max_connections: int = 0
    pool_connections: int = 0  # the server's own bound (its pools' sizes)
    pool_parts: str = ""
    peak_connections: int = 0
    polls_answered: int = 0
    poll_errors: int = 0
    poll_error_kinds: dict[str, int] = field(default_factory=dict)
    most_waiting: int = 0
    other_reads: int = 0
    other_errors: list[str] = field(default_factory=list)
    idle_p95: float = 0.0
    busy_p95: float = 0.0
    wake_p50: float = 0.0

    def failed(self, kind: str) -> None:
        """One poll failed: counted, by kind (an exception's name or a status)."""
        self.poll_errors += 1
        self.poll_error_kinds[kind] = self.poll_error_kinds.get(kind, 0) + 1


def _p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[18] if len(samples) > 1 else float("nan")


class _Connections:
    def __init__(self, url: str, application: str) -> None:
        self.url = url
        self.application = application
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def count(self) -> int:
        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                (self.application,),
            ).fetchone()[0]

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.count())
            self._stop.wait(0.1)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def _client(url: str) -> httpx.AsyncClient:
    """One client for many users (a token per request): making a client costs an SSL context,
    tens of ms of the benchmark's own loop each."""
    limits = httpx.Limits(max_connections=2000, max_keepalive_connections=2000)
    return httpx.AsyncClient(base_url=url, timeout=60, limits=limits)


class _As:
    """A user's requests through the shared client."""

    def __init__(self, api: httpx.AsyncClient, token: str) -> None:
        self.api = api
        self.headers = {"Authorization": f"Token {token}"}

    async def get(self, path: str, **kwargs: object) -> httpx.Response:
        return await self.api.get(path, headers=self.headers, **kwargs)  # type: ignore[arg-type]

    async def post(self, path: str, **kwargs: object) -> httpx.Response:
        return await self.api.post(path, headers=self.headers, **kwargs)  # type: ignore[arg-type]


def others_apart(url: str, tokens: list[str], seconds: float) -> tuple[list[float], list[str]]:
    """The other users' reads and submits, from a process of their own (the pollers' client
    keeps this one's loop busy): their read times and errors."""
    samples: list[float] = []
    errors: list[str] = []
    asyncio.run(_others(url, tokens, seconds, samples, errors))
    return samples, errors


async def _others(
    url: str, tokens: list[str], seconds: float, samples: list[float], errors: list[str]
) -> None:
    async with _client(url) as shared:
        await asyncio.gather(*(_other(_As(shared, t), seconds, samples, errors) for t in tokens))


async def _other(api: _As, seconds: float, samples: list[float], errors: list[str]) -> None:
    made = await api.post(
        "/api/v1/executions/", json={"tool": "hash-text", "params": {"text": "x"}}
    )
    if made.status_code != 201:
        errors.append(f"submit {made.status_code}")
        return
    path = f"/api/v1/executions/{made.json()['id']}/"
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        started = time.perf_counter()
        try:
            answer = await api.get(path)
        except httpx.HTTPError as exc:
            errors.append(type(exc).__name__)
            continue
        if answer.status_code == 200:
            samples.append(time.perf_counter() - started)
        else:
            errors.append(f"read {answer.status_code}")
        await asyncio.sleep(0.05)


async def _pollers(
    url: str, tokens: list[str], plan: LongPollPlan, figures: LongPollFigures
) -> list[float]:
    """Every user's polls open at once, renewed until the time is up; wake delays observed."""
    wakes: list[float] = []
    waiting = 0
    ends = time.monotonic() + plan.seconds

    async def poll_loop(api: _As, after: int) -> None:
        nonlocal waiting
        while time.monotonic() < ends:
            waiting += 1
            figures.most_waiting = max(figures.most_waiting, waiting)
            try:
                answer = await api.get(
                    "/api/v1/events/", params={"after": after, "wait": plan.wait}
                )
            except httpx.HTTPError as exc:
                figures.failed(type(exc).__name__)
                continue
            finally:
                waiting -= 1
            if answer.status_code != 200:
                figures.failed(str(answer.status_code))
                await asyncio.sleep(1)
                continue
            figures.polls_answered += 1
            body = answer.json()
            for event in body["events"]:
                sent = event.get("data", {}).get("params", {}).get("text", "")
                if sent.startswith("t="):
                    wakes.append(time.time() - float(sent[2:]))
            after = body["next_after"]

    async def nudger(api: _As) -> None:
        """Each user submits now and then: their own polls wake."""
        await asyncio.sleep(2)
        while time.monotonic() < ends - 2:
            made = await api.post(
                "/api/v1/executions/",
                json={"tool": "hash-text", "params": {"text": f"t={time.time()}"}},
            )
            if made.status_code != 201:
                figures.failed(f"submit {made.status_code}")
            await asyncio.sleep(plan.seconds / 3)

    async with _client(url) as shared:
        users = [_As(shared, t) for t in tokens]
        head = (await users[0].get("/api/v1/events/")).json()["head"]
        loops = [poll_loop(u, head) for u in users for _ in range(plan.polls_per_user)]
        await asyncio.gather(*loops, *(nudger(u) for u in users))
    return wakes


def measure_longpolls(pg_url: str, plan: LongPollPlan, progress: Progress) -> LongPollFigures:
    figures = LongPollFigures(plan)
    schemas = PostgresSchemas(pg_url)
    root = Path(tempfile.mkdtemp(prefix="bench-longpoll-"))
    application = f"{schemas.prefix}_longpoll"
    try:
        schema = schemas.new("longpoll")
        separator = "&" if "?" in pg_url else "?"
        url = f"{pg_url}{separator}schema={schema}&application_name={application}"
        env = server_env(root, url)
        progress(f"long polls: starting a server on {schema}")
        server = Server(env, root / "server.log")
        try:
            names = [f"poller{i}" for i in range(plan.users)]
            others = [f"other{i}" for i in range(plan.others)]
            tokens = create_users(env, *names, *others)
            watch = _Connections(pg_url, application)
            with psycopg.connect(pg_url, autocommit=True) as conn:
                figures.max_connections = int(conn.execute("SHOW max_connections").fetchone()[0])
            # Use every thread once (quick feed reads and listings, submits, many at a time).
            progress("long polls: warming every thread")

            async def warm() -> None:
                headers = {"Authorization": f"Token {tokens[names[0]]}"}
                async with httpx.AsyncClient(
                    base_url=server.url, headers=headers, timeout=30
                ) as api:
                    # the feed's watcher (started by the first wait) keeps a connection too
                    await api.get("/api/v1/events/", params={"after": 10**9, "wait": 0.2})
                    paths = ["/api/v1/executions/", "/api/v1/events/"] * 200
                    for start in range(0, len(paths), 50):
                        await asyncio.gather(*(api.get(p) for p in paths[start : start + 50]))
                    # and the runs' threads: submits, many at a time, run to their end
                    runs = {"tool": "hash-text", "params": {"text": "warm"}}
                    made = await asyncio.gather(
                        *(api.post("/api/v1/executions/", json=runs) for _ in range(40))
                    )
                    for answer in made:
                        while not (await api.get(answer.headers["location"])).json()["finished"]:
                            await asyncio.sleep(0.1)

            asyncio.run(warm())
            figures.pool_connections, figures.pool_parts = stated_bound(root / "server.log")

            progress("long polls: other users' reads with nobody waiting")
            other_tokens = [tokens[o] for o in others]
            spawn = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(1, mp_context=spawn) as apart:
                idle, _ = apart.submit(others_apart, server.url, other_tokens, 5.0).result()
                figures.idle_p95 = _p95(idle)

                progress(
                    f"long polls: {plan.users * plan.polls_per_user} polls from {plan.users} "
                    f"users for {plan.seconds:g} s"
                )
                watch.start()
                reading = apart.submit(others_apart, server.url, other_tokens, plan.seconds)
                wakes = asyncio.run(_pollers(server.url, [tokens[n] for n in names], plan, figures))
                busy, figures.other_errors = reading.result()
            watch.stop()
            figures.peak_connections = watch.peak
            figures.other_reads = len(busy)
            figures.busy_p95 = _p95(busy)
            figures.wake_p50 = statistics.median(wakes) if wakes else float("nan")
        finally:
            server.stop()
    finally:
        schemas.drop_all()
    return figures


BOUND = re.compile(r"PostgreSQL connections: at most (\d+) \((.*)\)")


def stated_bound(log: Path) -> tuple[int, str]:
    """The most connections the server says it opens (``web.runtime.postgres_connections``,
    logged at startup) and how that adds up."""
    found = BOUND.search(log.read_text(errors="replace"))
    if found is None:
        raise RuntimeError(f"the server did not state its connection bound in {log}")
    return int(found.group(1)), found.group(2)


def render(figures: LongPollFigures) -> str:
    plan = figures.plan
    polls = plan.users * plan.polls_per_user
    ratio = figures.busy_p95 / figures.idle_p95 if figures.idle_p95 else float("nan")
    return "\n".join(
        [
            "",
            f"Long polls on PostgreSQL (max_connections={figures.max_connections}): {polls} "
            f"concurrent `GET /api/v1/events/?wait={plan.wait:g}` from {plan.users} users for "
            f"{plan.seconds:g} s, beside {plan.others} other users reading and submitting",
            "| figure | value | target |",
            "|---|---|---|",
            f"| polls waiting at once (most) | {figures.most_waiting} | {polls} |",
            f"| polls answered / failed | {figures.polls_answered} / {figures.poll_errors} "
            f"{figures.poll_error_kinds or ''} | - / 0 |",
            f"| other users' errors | {len(figures.other_errors)} | 0 |",
            f"| server connections, peak | {figures.peak_connections} | ≤ the server's bound, "
            f"{figures.pool_connections} ({figures.pool_parts}) |",
            f"| other users' read p95, idle → under the polls | {figures.idle_p95 * 1000:.1f} → "
            f"{figures.busy_p95 * 1000:.1f} ms (x{ratio:.2f}, {figures.other_reads} reads) | "
            "≤ x2 |",
            f"| a user's event to their polls' answer, median | {figures.wake_p50 * 1000:.0f} ms "
            "| - |",
        ]
    )
