"""App config: ``magictoolbox migrate`` also installs the event store schema."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _setup_event_store(**kwargs: Any) -> None:
    from web.bootstrap import event_store

    event_store().setup()
    if kwargs.get("verbosity", 1) >= 1:
        print("  Event store schema is up to date.")


class CoreConfig(AppConfig):
    name = "web.core"
    label = "core"
    verbose_name = "MagicToolbox core"

    def ready(self) -> None:
        # sender=self: Django sends post_migrate once per app, so this runs once per migrate.
        post_migrate.connect(_setup_event_store, sender=self, dispatch_uid="core.setup_event_store")
