"""App config: ``magictoolbox migrate`` also installs the event store schema and the read models."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _setup_event_store(**kwargs: Any) -> None:
    from events.database import Database
    from services.webhooks import tables
    from web.parts import parts

    deployment = parts()
    deployment.store.setup()
    projector = deployment.projector()
    try:
        projector.setup()
    finally:
        projector.close()
    with Database(deployment.read_models_url) as db:
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
