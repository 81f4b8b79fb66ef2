"""The REST API under load: what ``make run`` serves, driven by asyncio clients over HTTP/1.1.

A temp-dir deployment (SQLite, local blobs) is migrated, given a user and an API token through the
``magictoolbox`` CLI, then served as ``make run`` serves it: one uvicorn process that also runs the
projector and the Functions host. Rate limits are raised out of the way (this measures speed, not
the limiter). After seeding executions with sync submits, each scenario (GET the status of a random
seeded execution; a sync ``base64-encode`` submit) runs at each client count twice: closed loop
(each client sends again as soon as it is answered: the saturation throughput) and with a locust-
style think time between requests. Every client has its own keep-alive connection; a request counts
if it starts inside the timed window after the warm-up, and every answer is checked (the requested
id; 201 and completed with the right result), anything else counted as an error with its body. The
server's CPU time comes from ``/proc/<pid>/stat``. ``tests.bench.api_report`` prints the figures.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.bench.http_client import Answer, Connection
from tests.bench.pipeline_bench import MachineLoad, Progress, cpu_times, machine_load, settle
from tests.web.support import (
    ROOT,
    cli_command,
    cli_env,
    embedded_env,
    free_port,
    run_cli,
    wait_healthy,
)

RATE_LIMIT = "1000000/min"
PASSWORD = "bench-password-not-secret"
TEXT = ("MagicToolbox API load test: base64 of about a hundred bytes. " * 2)[:100]
EXPECTED = base64.b64encode(TEXT.encode()).decode()
SEED_CLIENTS = 10
EXAMPLE_CHARS = 400  # of an unexpected answer's body, kept to print
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class ApiPlan:
    clients: tuple[int, ...] = (50, 200)
    warmup: float = 2.0  # seconds each row runs before its timed window
    duration: float = 10.0  # the timed window
    seed: int = 200  # executions submitted before measuring; the GETs pick among them
    think: tuple[float, float] = (0.5, 1.5)  # uniform pause between a client's requests (s)
    settle_limit: float = 15.0  # at most this long waiting for idle CPUs before each row


FULL_API_PLAN = ApiPlan()
QUICK_API_PLAN = ApiPlan(warmup=1.0, duration=3.0)


@dataclass(frozen=True, slots=True)
class Scenario:
    label: str
    target_ms: float  # the p95 the issue asks for


STATUS = Scenario("GET /executions/{id}/", 50.0)
SUBMIT = Scenario("POST /executions/", 200.0)
MODES = ("closed", "think")


@dataclass(frozen=True, slots=True)
class Row:
    scenario: Scenario
    clients: int
    mode: str
    seconds: float  # the timed window
    latency_ms: tuple[float, ...]  # of the correct answers
    errors: Counter[str]
    examples: dict[str, str]  # an answer of each error kind, cut short
    server_cpu: float  # seconds of CPU the server used over the window (and its stragglers)
    client_cpu: float  # the same for this process, which drives every client
    idle_at_start: float | None

    @property
    def requests(self) -> int:
        return len(self.latency_ms) + sum(self.errors.values())

    @property
    def per_second(self) -> float:
        return len(self.latency_ms) / self.seconds


@dataclass
class ApiFigures:
    plan: ApiPlan
    rows: list[Row] = field(default_factory=list)
    seeded: int = 0
    seed_seconds: float = 0.0
    server_exit: int | None = None
    server_errors: list[str] = field(default_factory=list)  # ERROR / Traceback lines in its log
    server_fds: tuple[int, int] = (0, 0)  # its open file descriptors once up, and at the end
    machine: MachineLoad | None = None


# -- the deployment ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Server:
    url: str
    token: str
    pid: int


def _checked(*args: str, env: dict[str, str]) -> str:
    done = run_cli(*args, timeout=120, **env)
    if done.returncode != 0:
        raise RuntimeError(f"magictoolbox {' '.join(args)} failed: {done.stderr[-2000:]}")
    return done.stdout


@contextmanager
def deployment(figures: ApiFigures, progress: Progress) -> Iterator[Server]:
    """``make run`` in a temp dir, with a user and token; stopped by SIGINT however this ends."""
    with tempfile.TemporaryDirectory(prefix="mt-api-bench-") as tmp:
        root = Path(tmp)
        env = {
            **embedded_env(root),
            "FUNCTIONS_IN_PROCESS": "1",
            "API_THROTTLE_USER": RATE_LIMIT,
            "API_THROTTLE_SUBMIT": RATE_LIMIT,
            "API_THROTTLE_ANON": RATE_LIMIT,
        }
        progress("api: migrating a temp-dir deployment, creating a user and a token")
        _checked("migrate", "--no-input", env=env)
        _checked(
            "createsuperuser", "--noinput", "--username", "bench", "--email", "b@example.com",
            env={**env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD},
        )  # fmt: skip
        token = _checked("drf_create_token", "bench", env=env).split()[2]
        port = free_port()
        uvicorn = Path(cli_command()[0]).with_name("uvicorn")
        log = root / "server.log"
        with log.open("wb") as out:  # a file, not a pipe: nobody drains a pipe while we load
            process = subprocess.Popen(
                [str(uvicorn), "web.asgi:application", "--host", "127.0.0.1", "--port", str(port)],
                cwd=ROOT, env=cli_env(**env), stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            progress(f"api: waiting for {url}/healthz")
            wait_healthy(url, process, log=log)
            up = open_fds(process.pid)
            yield Server(url, token, process.pid)
            figures.server_fds = up, open_fds(process.pid)
        finally:
            process.send_signal(signal.SIGINT)
            try:
                figures.server_exit = process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                figures.server_exit = process.wait()
            lines = log.read_text(errors="replace").splitlines()
            figures.server_errors = [
                line for line in lines if line.startswith("ERROR") or "Traceback" in line
            ]


def server_cpu_seconds(pid: int) -> float:
    """User + system CPU of the process (all its threads) so far, from ``/proc/<pid>/stat``."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()  # after the command name, which may hold ")"
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14, 15)


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


# -- one request of each scenario: None when the answer is right, else (kind, body) --------------

Problem = tuple[str, str] | None
Call = Callable[[Connection, random.Random], Awaitable[Problem]]


def _problem(kind: str, answer: Answer) -> Problem:
    return kind, f"HTTP {answer.status_code}: {answer.text[:EXAMPLE_CHARS]}"


async def submit_once(client: Connection) -> tuple[Problem, str]:
    """A sync base64-encode submit: the problem (if any) and the new execution's id."""
    answer = await client.post(
        "/api/v1/executions/", json={"tool": "base64-encode", "params": {"text": TEXT}}
    )
    if answer.status_code != 201:
        return _problem(f"HTTP {answer.status_code}", answer), ""
    body = answer.json()
    if body.get("status") != "completed":
        return _problem(f"status {body.get('status')!r}", answer), ""
    if body.get("result") != EXPECTED:
        return _problem("wrong result", answer), ""
    return None, str(body.get("id"))


def status_call(ids: list[str]) -> Call:
    async def call(client: Connection, rng: random.Random) -> Problem:
        wanted = rng.choice(ids)
        answer = await client.get(f"/api/v1/executions/{wanted}/")
        if answer.status_code != 200:
            return _problem(f"HTTP {answer.status_code}", answer)
        if answer.json().get("id") != wanted:
            return _problem("wrong id", answer)
        return None

    return call


async def submit_call(client: Connection, rng: random.Random) -> Problem:
    return (await submit_once(client))[0]


# -- the load ------------------------------------------------------------------------------------


def _client(server: Server, stack: AsyncExitStack) -> Awaitable[Connection]:
    return stack.enter_async_context(
        Connection(server.url, {"Authorization": f"Token {server.token}"})
    )


@dataclass
class Tally:
    start: float  # the timed window, on perf_counter
    end: float
    samples: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def record(self, started: float, problem: Problem) -> None:
        if started < self.start:
            return
        if problem is None:
            self.samples.append((time.perf_counter() - started) * 1000)
            return
        kind, body = problem
        self.errors[kind] += 1
        self.examples.setdefault(kind, body)


async def _user(
    client: Connection, call: Call, tally: Tally, think: tuple[float, float] | None
) -> None:
    rng = random.Random()
    if think is not None:  # users arrive spread out, not all at once
        await asyncio.sleep(rng.uniform(0, think[1]))
    while (started := time.perf_counter()) < tally.end:
        try:
            problem = await call(client, rng)
        except Exception as exc:  # a refused or dropped connection is the server's answer too
            problem = type(exc).__name__, str(exc)[:EXAMPLE_CHARS]
        tally.record(started, problem)
        if think is not None:
            pause = min(rng.uniform(*think), tally.end - time.perf_counter())
            await asyncio.sleep(max(0.0, pause))


async def _load(
    server: Server, call: Call, clients: int, plan: ApiPlan, think: bool
) -> tuple[Tally, float, float]:
    """The tally of the timed window, and the server's and this process's CPU over it."""
    async with AsyncExitStack() as stack:
        users = [await _client(server, stack) for _ in range(clients)]
        begin = time.perf_counter()
        tally = Tally(begin + plan.warmup, begin + plan.warmup + plan.duration)
        tasks = [
            asyncio.ensure_future(_user(u, call, tally, plan.think if think else None))
            for u in users
        ]
        await asyncio.sleep(tally.start - time.perf_counter())
        cpu = server_cpu_seconds(server.pid), time.process_time()
        await asyncio.gather(*tasks)
        return tally, server_cpu_seconds(server.pid) - cpu[0], time.process_time() - cpu[1]


async def _seed(server: Server, count: int) -> list[str]:
    ids: list[str] = []
    remaining = iter(range(count))

    async def seeder(client: Connection) -> None:
        for _ in remaining:
            problem, execution_id = await submit_once(client)
            if problem is not None:
                raise RuntimeError(f"a seeding submit failed ({problem[0]}): {problem[1]}")
            ids.append(execution_id)

    async with AsyncExitStack() as stack:
        clients = [await _client(server, stack) for _ in range(SEED_CLIENTS)]
        await asyncio.gather(*(seeder(c) for c in clients))
    return ids


def measure_row(
    server: Server, scenario: Scenario, call: Call, clients: int, mode: str, plan: ApiPlan
) -> Row:
    idle, _ = settle(limit=plan.settle_limit)
    tally, server_cpu, client_cpu = asyncio.run(
        _load(server, call, clients, plan, think=mode == "think")
    )
    return Row(
        scenario,
        clients,
        mode,
        plan.duration,
        tuple(tally.samples),
        tally.errors,
        tally.examples,
        server_cpu,
        client_cpu,
        idle,
    )


def measure_api(plan: ApiPlan, progress: Progress = lambda step: None) -> ApiFigures:
    """Seed, then every scenario at every client count, closed loop and with think time."""
    figures = ApiFigures(plan)
    load_before, cpu_before = os.getloadavg()[0], cpu_times()
    with deployment(figures, progress) as server:
        progress(f"api: seeding {plan.seed} executions by sync submits")
        started = time.perf_counter()
        ids = asyncio.run(_seed(server, plan.seed))
        figures.seeded, figures.seed_seconds = len(ids), time.perf_counter() - started
        for scenario, call in ((STATUS, status_call(ids)), (SUBMIT, submit_call)):
            for clients in plan.clients:
                for mode in MODES:
                    progress(f"api: {scenario.label}, {clients} clients, {mode}")
                    row = measure_row(server, scenario, call, clients, mode, plan)
                    figures.rows.append(row)
    figures.machine = machine_load(load_before, cpu_before)
    return figures
