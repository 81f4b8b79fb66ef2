"""Issue 16, point 5: limits that were per process or missing, attacked through the real server
(``magictoolbox run``), each with a bystander reading their own execution meanwhile.

- rotating ``X-Forwarded-For`` does not buy an anonymous client more than its 3/hour;
- with ``TRUSTED_PROXIES=1`` the last ``X-Forwarded-For`` entry (the proxy's) names the client;
- two server processes sharing Redis share one limit (anonymous, and a user's submits);
- 40 wrong passwords, then the right one: still refused, on the UI's login and the admin's;
- a run from the UI form, a UI re-run and API submits, replays and retries count as submits;
- an owner's retry of a final failure answers 409, however often;
- a replay of a 200 MB input takes no time in proportion: the store holds a link, not a copy.

The rate limits count in fixed windows of their period, here an hour; a test that needs its
requests in one window waits for a fresh one when the hour is nearly over (``fresh_window``).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.e2e.contained import Server, client, create_users, png, server_env, wait_finished
from tests.e2e.edge import PACE, Bystander, paced, repeat
from tests.web.support import run_cli

pytestmark = [pytest.mark.timeout(300), pytest.mark.timed]

REDIS = "redis://127.0.0.1:6379"
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
LOCKED = "Too many failed sign-ins"
MB = 1024 * 1024


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis database no one else is using now (the counters' keys name no test), emptied
    after the test."""
    for number in range(15, 0, -1):
        connection = redis.Redis.from_url(f"{REDIS}/{number}")
        if connection.dbsize() == 0:
            connection.set("test-edge-limits", "taken", ex=600)
            try:
                yield f"{REDIS}/{number}"
            finally:
                connection.flushdb()
            return
    pytest.fail("no empty Redis database among 1-15")


def start(tmp_path: Path, database_url: str, name: str = "server", **extra: str) -> Server:
    env = server_env(tmp_path, database_url, **extra)
    migrated = run_cli("migrate", **env)
    assert migrated.returncode == 0, migrated.stderr
    return Server(env, tmp_path / f"{name}.log")


def fresh_window(needed: float = 25.0) -> None:
    """Wait for the next hour if less than ``needed`` seconds of this one are left."""
    left = 3600 - time.time() % 3600
    if left < needed:
        time.sleep(left + 0.2)


_anonymous: dict[str, httpx.Client] = {}


def anonymous_tools(url: str, forwarded_for: str | None = None, pause: float = 0.0) -> int:
    """An anonymous read of the tools (``pause``: then wait, as a paced client would), on one
    kept-alive client per server: a new client each time costs the test's machine more than the
    server its answer."""
    if url not in _anonymous:
        _anonymous[url] = httpx.Client(timeout=30)
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    status = _anonymous[url].get(f"{url}/api/v1/tools/", headers=headers).status_code
    time.sleep(pause)
    return status


def watched(server: Server, token: str) -> Bystander:
    bystander = Bystander(server.url, token)
    bystander.measure_idle()
    return bystander


# -- the client's address ------------------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the address, not the store
def test_rotating_x_forwarded_for_does_not_bypass_the_anonymous_limit(
    tmp_path: Path, database_url: str
) -> None:
    server = start(tmp_path, database_url, API_THROTTLE_ANON="3/hour")
    try:
        bystander = watched(server, create_users(server.env, "bystander")["bystander"])
        fresh_window()
        counter = iter(range(10**6))
        with bystander.watching():
            # Paced: the bypass needs no flood, only a new address each time.
            statuses = repeat(
                lambda: anonymous_tools(server.url, f"10.9.{next(counter)}.1", pause=0.05)
            )
    finally:
        server.stop()
    print(f"{len(statuses)} anonymous requests, each with a new X-Forwarded-For")
    assert statuses[:3] == [200, 200, 200]
    assert set(statuses[3:]) == {429}, statuses[:10]
    bystander.check()


def test_with_one_trusted_proxy_the_last_forwarded_entry_is_the_client(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'app.sqlite3'}"
    server = start(tmp_path, database_url, API_THROTTLE_ANON="3/hour", TRUSTED_PROXIES="1")
    try:
        bystander = watched(server, create_users(server.env, "bystander")["bystander"])
        fresh_window()
        counter = iter(range(10**6))
        with bystander.watching():
            # The client makes up the left entry each time; the proxy appends what it saw.
            statuses = repeat(
                lambda: anonymous_tools(
                    server.url, f"10.9.{next(counter)}.1, 203.0.113.7", pause=0.05
                )
            )
        another_client = anonymous_tools(server.url, "10.9.0.1, 203.0.113.8")
        the_proxy_itself = anonymous_tools(server.url)  # no header: the peer, 127.0.0.1
    finally:
        server.stop()
    assert statuses[:3] == [200, 200, 200]
    assert set(statuses[3:]) == {429}, statuses[:10]
    assert (another_client, the_proxy_itself) == (200, 200)
    bystander.check()


# -- one limit for every process -----------------------------------------------------------------


def ui_session(url: str, username: str, password: str) -> httpx.Client:
    """A browser's session, signed in through the login form."""
    browser = httpx.Client(base_url=url, timeout=60)
    answer = login(browser, "/accounts/login/", username, password)
    assert answer.status_code == 302, answer.text[:2000]
    return browser


def form_token(browser: httpx.Client, path: str) -> str:
    """The CSRF token of the login form at ``path`` (its cookie stays in ``browser``)."""
    page = browser.get(path)
    token = CSRF.search(page.text)
    assert token, page.text[:2000]
    return token.group(1)


def sign_in(
    browser: httpx.Client, path: str, token: str, username: str, password: str
) -> httpx.Response:
    form = {"username": username, "password": password, "csrfmiddlewaretoken": token}
    return browser.post(path, data=form)


def login(browser: httpx.Client, path: str, username: str, password: str) -> httpx.Response:
    return sign_in(browser, path, form_token(browser, path), username, password)


def ui_post(browser: httpx.Client, path: str, data: dict[str, str]) -> httpx.Response:
    token = browser.cookies.get("csrftoken")
    assert token
    return browser.post(path, data={**data, "csrfmiddlewaretoken": token})


HASH_FORM = {"params-text": "hello", "params-algorithm": "md5"}


def test_two_servers_sharing_redis_share_one_limit(
    tmp_path: Path, pg_store_url: str, redis_url: str
) -> None:
    limits = {
        "API_THROTTLE_ANON": "3/hour",
        "API_THROTTLE_SUBMIT": "3/hour",
        "CACHE_REDIS": redis_url,
    }
    first = start(tmp_path, pg_store_url, "first", **limits)
    second = None
    try:
        second = Server(first.env, tmp_path / "second.log")
        tokens = create_users(first.env, "bystander", "dana")
        bystander = watched(first, tokens["bystander"])
        browser = ui_session(first.url, "dana", "dana-pw")  # signed in before: not the attack
        api = client(second.url, tokens["dana"])
        with client(second.url, tokens["bystander"]) as warm:  # the second's tool workers too
            hashed = {"tool": "hash-text", "params": {"text": "warm"}}
            assert warm.post("/api/v1/executions/", json=hashed).status_code == 201
        fresh_window(40)
        # Dana's three allowed submits, split across both servers and across the UI and the
        # API: the limit's allowance, used up before the attack (three sync runs are ordinary
        # work, which the contained-runs tests weigh).
        ran = paced(ui_post(browser, "/tools/hash-text/", HASH_FORM))
        assert ran.status_code == 302, ran.text[:2000]
        execution_page = ran.headers["location"]
        execution_id = execution_page.rstrip("/").rsplit("/", 1)[-1]
        rerun = paced(ui_post(browser, f"/executions/{execution_id}/replay/", {}))
        assert rerun.status_code == 302, rerun.text[:2000]
        made = paced(
            api.post("/api/v1/executions/", json={"tool": "hash-text", "params": {"text": "x"}})
        )
        assert made.status_code in (201, 202), made.text
        with bystander.watching():
            # The attack: anonymous requests split across both servers (three in all, not
            # three each), and Dana's submits past the limit, wherever they come from.
            anonymous = [anonymous_tools(s.url, pause=PACE) for s in (first, second) * 4]

            def over_the_limit() -> list[httpx.Response]:
                return [
                    paced(ui_post(browser, "/tools/hash-text/", HASH_FORM)),
                    paced(ui_post(browser, f"/executions/{execution_id}/replay/", {})),
                    paced(
                        api.post(
                            "/api/v1/executions/",
                            json={"tool": "hash-text", "params": {"text": "y"}},
                        )
                    ),
                    paced(api.post(f"/api/v1/executions/{execution_id}/replay/")),
                    paced(api.post(f"/api/v1/executions/{execution_id}/retry/")),
                ]

            rounds = repeat(over_the_limit, seconds=3.0)
            browser.close()
            api.close()
    finally:
        if second is not None:
            second.stop()
        first.stop()
    assert sorted(anonymous) == [200] * 3 + [429] * 5, anonymous
    for over_ui, over_rerun, over_api, over_replay, over_retry in rounds:
        for refused in (over_ui, over_rerun):
            assert refused.status_code == 429
            assert int(refused.headers["Retry-After"]) > 0
            assert "too many runs" in refused.text
        assert over_api.status_code == 429 and over_api.json()["code"] == "throttled"
        assert over_replay.status_code == 429, over_replay.text
        assert over_retry.status_code == 429, over_retry.text
    bystander.check(minimum_reads=10)


# -- login lockouts ------------------------------------------------------------------------------


def create_staff(env: dict[str, str], name: str) -> None:
    script = (
        "from django.contrib.auth import get_user_model;"
        f"get_user_model().objects.create_user({name!r}, password={name + '-pw'!r}, "
        "is_staff=True, is_superuser=True)"
    )
    made = run_cli("shell", "-c", script, **env)
    assert made.returncode == 0, made.stderr


# The lockout is kept in the database: each login on one backend, both backends in all.
@pytest.mark.parametrize(
    ("database_url", "path"),
    [("sqlite", "/accounts/login/"), ("postgres", "/admin/login/")],
    indirect=["database_url"],
    ids=["sqlite-ui", "postgres-admin"],
)
def test_forty_wrong_passwords_then_the_right_one_is_still_refused(
    tmp_path: Path, database_url: str, path: str
) -> None:
    server = start(tmp_path, database_url)  # LOGIN_FAILURE_LIMIT 5, 15 minutes: the defaults
    try:
        tokens = create_users(server.env, "bystander", "erin")
        create_staff(server.env, "root")
        bystander = watched(server, tokens["bystander"])
        attacker = httpx.Client(base_url=server.url, timeout=60)
        token = form_token(attacker, path)  # a script guessing passwords reads the form once
        with bystander.watching():
            wrong = [sign_in(attacker, path, token, "root", f"guess-{n}") for n in range(40)]
            right = sign_in(attacker, path, token, "root", "root-pw")
            signed_in = attacker.get("/admin/", follow_redirects=False)
        # Another account from the same address is not locked out by root's lockout.
        neighbour = httpx.Client(base_url=server.url, timeout=60)
        erin = login(neighbour, "/accounts/login/", "erin", "erin-pw")
    finally:
        server.stop()
    statuses = [answer.status_code for answer in wrong]
    assert statuses[:4] == [200] * 4, statuses  # the form again, "wrong password"
    assert set(statuses[4:]) == {429}, statuses
    assert right.status_code == 429
    assert LOCKED in right.text and "15 minutes" in right.text
    # The time left: 15 minutes from the failure that locked the pair, less the attempts since.
    assert 14 * 60 <= int(right.headers["Retry-After"]) <= 15 * 60
    assert signed_in.status_code == 302 and "/login/" in signed_in.headers["location"]
    assert erin.status_code == 302
    bystander.check()


# -- retries and replays -------------------------------------------------------------------------


def test_retry_of_a_final_failure_answers_409_every_time(tmp_path: Path) -> None:
    server = start(tmp_path, f"sqlite:///{tmp_path / 'app.sqlite3'}")
    try:
        tokens = create_users(server.env, "bystander", "frank")
        bystander = watched(server, tokens["bystander"])
        with client(server.url, tokens["frank"]) as api:
            broken = png(8, 8)[:60]  # a PNG signature, then nothing an image library can read
            made = api.post(
                "/api/v1/executions/",
                data={"tool": "image-rotate", "params": json.dumps({})},
                files={"file": ("broken.png", broken)},
            )
            assert made.status_code in (201, 202), made.text
            execution_id = made.json()["id"]
            failed = wait_finished(api, [execution_id], timeout=60)[execution_id]
            assert failed["status"] == "failed" and failed["error"]["retryable"] is False
            assert "retry" not in failed["actions"]
            with bystander.watching():
                answers = repeat(lambda: api.post(f"/api/v1/executions/{execution_id}/retry/"))
            after = api.get(f"/api/v1/executions/{execution_id}/").json()
    finally:
        server.stop()
    print(f"{len(answers)} retries of a final failure")
    assert {a.status_code for a in answers} == {409}
    assert {a.json()["code"] for a in answers} == {"not_retryable"}
    assert (after["status"], after["attempt"]) == ("failed", 1)
    bystander.check()


def test_replay_of_a_200_mb_input_links_the_blob_instead_of_copying_it(tmp_path: Path) -> None:
    # No Functions host: the replayed runs stay queued, so what the bystander feels is the
    # replay requests themselves (running 200 MB tools is the workers' business, not theirs).
    database_url = f"sqlite:///{tmp_path / 'app.sqlite3'}"
    server = start(tmp_path, database_url, FUNCTIONS_IN_PROCESS="0")
    big = tmp_path / "big.zip"
    with big.open("wb") as out:  # 200 MiB (pdf-merge's limit): a zip's signature, then noise
        out.write(b"PK\x03\x04" + os.urandom(MB - 4))
        for _ in range(199):
            out.write(os.urandom(MB))
    uploads = tmp_path / "blobs" / "uploads"
    try:
        tokens = create_users(server.env, "bystander", "gina")
        bystander = watched(server, tokens["bystander"])
        with client(server.url, tokens["gina"], timeout=300) as api:
            with big.open("rb") as source:
                made = api.post(
                    "/api/v1/executions/",
                    data={"tool": "pdf-merge", "params": json.dumps({})},
                    files={"file": ("big.zip", source)},
                )
            assert made.status_code in (201, 202), made.text
            original_id = made.json()["id"]
            [original] = list((uploads / original_id).rglob("big.zip"))
            stored_before = disk_usage(uploads)
            took: list[float] = []

            def replay() -> str:
                started = time.perf_counter()
                answer = api.post(f"/api/v1/executions/{original_id}/replay/")
                took.append(time.perf_counter() - started)
                assert answer.status_code in (200, 201, 202), answer.text
                return answer.json()["id"]

            with bystander.watching():
                # A user re-running, not a flood (that is the submit limit's business): the
                # size is the attack here.
                replays = repeat(replay, seconds=2.5, pause=0.25)
            copies = [next((uploads / r).rglob("big.zip")) for r in replays]
            stored_after = disk_usage(uploads)
    finally:
        server.stop()
    print(
        f"{len(replays)} replays of a 200 MiB input: slowest {max(took) * 1000:.0f} ms; "
        f"uploads {stored_before / MB:.0f} MiB before, {stored_after / MB:.0f} MiB after"
    )
    inode = original.stat().st_ino
    assert all(copy.stat().st_ino == inode for copy in copies)
    assert stored_after < stored_before + 10 * MB  # no second 200 MB, whatever the replays
    assert max(took) < 1.0  # a link, not 200 MB read and written (~1 s or more)
    bystander.check(minimum_reads=10)


def disk_usage(folder: Path) -> int:
    """Bytes on disk under ``folder``, each file once however many names it has (like du)."""
    seen: set[int] = set()
    total = 0
    for path in folder.rglob("*"):
        stat = path.stat()
        if path.is_file() and stat.st_ino not in seen:
            seen.add(stat.st_ino)
            total += stat.st_blocks * 512
    return total
