"""Every projection by name: what the projector runs and ``rebuild`` accepts."""

from __future__ import annotations

from projections import history, status, tool_stats
from projections.projection import Projection

ALL: dict[str, Projection] = {
    p.name: p for p in (status.PROJECTION, history.PROJECTION, tool_stats.PROJECTION)
}


def named(names: list[str] | None = None) -> list[Projection]:
    """The projections called ``names`` (all of them for None); KeyError names an unknown one."""
    if names is None:
        return list(ALL.values())
    unknown = [n for n in names if n not in ALL]
    if unknown:
        raise KeyError(f"unknown projection {unknown[0]!r} (known: {', '.join(ALL)})")
    return [ALL[n] for n in names]
