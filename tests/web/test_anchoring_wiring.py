"""Where the anchors come from in a deployment: the key from the settings, the web's background
anchorer, and the Functions' relay timer catching up behind it."""

from __future__ import annotations

import time

from events.anchor_check import check
from events.anchors import AnchorKey
from events.database import Database
from events.store import EventStore
from handlers.anchoring import audit_key
from handlers.bootstrap import bootstrap
from handlers.function_app import relay_and_anchor
from handlers.settings import Settings
from tests.web.support import submit
from web.runtime import Background


def settings_for(store_url: str, **changes: str) -> Settings:
    return Settings.from_env().but(EVENTSTORE_URL=store_url, **changes)


def test_the_key_is_the_audit_key_or_one_derived_from_the_secret_key() -> None:
    given = Settings.from_env().but(AUDIT_KEY="from key vault", SECRET_KEY="django's")
    derived = given.but(AUDIT_KEY="")

    assert audit_key(given) == AnchorKey(b"from key vault")
    assert audit_key(derived) == AnchorKey.derived_from("django's")
    assert audit_key(derived).secret != b"django's"  # never the same bytes as Django's key
    assert audit_key(derived.but(SECRET_KEY="another")) != audit_key(derived)
    assert "from key vault" not in repr(audit_key(given))


def test_the_relay_timer_anchors_what_is_new(store: EventStore, store_url: str) -> None:
    settings = settings_for(store_url, AUDIT_KEY="k", EVENTGRID_TOPIC_ENDPOINT="")
    parts = bootstrap(settings, store=store)
    submit(store)
    submit(store)

    assert relay_and_anchor(parts) == 0  # no topic: nothing to publish, but anchored
    with Database(store_url) as db:
        report = check(db, AnchorKey(b"k"))
    assert report.ok and report.unanchored == 0
    assert report.feed is not None and report.feed.events == 6


def test_the_web_process_anchors_as_the_feed_advances(store: EventStore, store_url: str) -> None:
    settings = settings_for(store_url, AUDIT_KEY="k", FUNCTIONS_IN_PROCESS="0")
    parts = bootstrap(settings, store=store)
    background = Background.from_settings(parts)
    assert background is not None and "audit anchors" in background.parts()
    assert background.anchorer is not None
    background.anchorer.interval = 0.01
    background.start()
    try:
        submit(store)
        deadline = time.monotonic() + 20
        with Database(store_url) as db:
            while check(db, AnchorKey(b"k")).unanchored and time.monotonic() < deadline:
                time.sleep(0.05)
            report = check(db, AnchorKey(b"k"))
    finally:
        background.stop()
        parts.close()
    assert report.ok and report.unanchored == 0
    assert report.feed is not None and report.feed.events == 3


def test_with_the_relay_beside_the_web_its_timer_is_not_run_in_the_web(
    store: EventStore, store_url: str
) -> None:
    """The web's relay runs as ``magictoolbox relay`` in its own process, and the web's anchorer
    anchors: the local host in the web leaves out the relay timer, which would publish (and hold
    the web's GIL doing it) in the web process."""
    topic = "http://127.0.0.1:9/api/events"
    settings = settings_for(
        store_url, EVENTGRID_TOPIC_ENDPOINT=topic, FUNCTIONS_IN_PROCESS="1", RELAY_NICE="12"
    )
    parts = bootstrap(settings, store=store)
    try:
        background = Background.from_settings(parts)
        assert background is not None and background.host is not None
        assert background.relay is not None and background.anchorer is not None
        assert background.relay.argv[-1] == "relay" and background.relay.nice == 12
        timers = {timer.name for timer in background.host.timers}
        assert "relay" not in timers and {"sweep", "retention", "webhooks"} <= timers

        # The Functions host on its own (``magictoolbox functions``) keeps the relay timer.
        alone = Background(parts, projector=False)
        assert alone.host is not None and "relay" in {t.name for t in alone.host.timers}
    finally:
        parts.close()
