"""App config: ``magictoolbox migrate`` also installs the event store schema and the read models."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _setup_event_store(**kwargs: Any) -> None:
    from django.conf import settings

    from events.database import Database
    from projections.projector import Projector
    from services.webhooks import tables
    from web.bootstrap import event_store

    store = event_store()
    store.setup()
    projector = Projector(store, settings.DATABASE_URL)
    try:
        projector.setup()
    finally:
        projector.close()
    with Database(settings.DATABASE_URL) as db:
        tables.setup(db)
    if kwargs.get("verbosity", 1) >= 1:
        print("  Event store schema and read models are up to date.")


class CoreConfig(AppConfig):
    name = "web.core"
    label = "core"
    verbose_name = "MagicToolbox core"

    def ready(self) -> None:
        # sender=self: Django sends post_migrate once per app, so this runs once per migrate.
        post_migrate.connect(_setup_event_store, sender=self, dispatch_uid="core.setup_event_store")
