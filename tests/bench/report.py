"""The printed table: one section per backend, figures beside their targets, then the ratios."""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.bench.store_bench import READ_LIMIT, WRITER_COUNTS, StoreFigures
from tests.bench.timing import Rate

BATCH_TARGET = 50_000
READ_TARGET = 150_000
RATIO_TARGET = 0.8
LABEL_WIDTH = 48


@dataclass(frozen=True, slots=True)
class Row:
    label: str
    writers: int
    rate: Rate
    note: str = ""


@dataclass
class Section:
    title: str
    serialized_writers: bool = False  # SQLite: one writer at a time, so 4 writers take turns
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    baseline: dict[int, Rate] = field(default_factory=dict)
    library: dict[int, Rate] = field(default_factory=dict)
    store: dict[int, Rate] = field(default_factory=dict)

    def add(self, label: str, writers: int, rate: Rate, note: str = "") -> None:
        if writers > 1 and self.serialized_writers:
            note = f"{note}; serialized" if note else "serialized (one writer at a time)"
        self.rows.append(Row(label, writers, rate, note))

    def add_store(self, figures: StoreFigures) -> None:
        for writers, rate in figures.writers.items():
            self.store[writers] = rate
            self.add("store: append 1 event/call, exact expected ver.", writers, rate)
        self.add(
            "store: batch append, 100 events/call",
            1,
            figures.batch,
            _target(figures.batch, BATCH_TARGET),
        )
        c = figures.catch_up
        got = "all" if c.complete else f"ONLY {c.rate.events:,} of"
        self.add(
            f"store: read_all from 0, limit {READ_LIMIT}",
            1,
            c.rate,
            f"{_target(c.rate, READ_TARGET)}; got {got} {c.seeded:,} seeded in {c.calls} calls",
        )
        self.notes.append(
            f"read_all seed: {c.seeded:,} events by 100-event appends in {c.seed_seconds:.1f} s "
            f"({c.seeded / c.seed_seconds:,.0f}/s, untimed)"
        )


def _verdict(value: float, target: float) -> str:
    return "met" if value >= target else "SHORT"


def _target(rate: Rate, target: int) -> str:
    return f"target ≥ {target:,}/s: {_verdict(rate.per_second, target)}"


def render(section: Section) -> str:
    lines = [
        "",
        section.title,
        f"  {'':<{LABEL_WIDTH}}{'writers':>8}{'events':>10}{'s':>7}{'events/s':>11}"
        "  target / notes",
    ]
    for row in section.rows:
        lines.append(
            f"  {row.label:<{LABEL_WIDTH}}{row.writers:>8}{row.rate.events:>10,}"
            f"{row.rate.seconds:>7.2f}{row.rate.per_second:>11,.0f}  {row.note}".rstrip()
        )
    lines.append(
        f"  {'ratio of events/s':<{LABEL_WIDTH}}"
        + "".join(f"{f'{n} writer' + ('s' if n > 1 else ''):>16}" for n in WRITER_COUNTS)
    )
    lines.append(_ratio_line("store / baseline", section.store, section.baseline, RATIO_TARGET))
    if section.library:
        lines.append(_ratio_line("store / eventsourcing", section.store, section.library, None))
    lines.extend(f"  note: {note}" for note in section.notes)
    return "\n".join(lines)


def _ratio_line(
    label: str, top: dict[int, Rate], bottom: dict[int, Rate], target: float | None
) -> str:
    cells = []
    for n in WRITER_COUNTS:
        if n in top and n in bottom and bottom[n].per_second > 0:
            ratio = top[n].per_second / bottom[n].per_second
            verdict = f" {_verdict(ratio, target)}" if target is not None else ""
            cells.append(f"{ratio:.2f}x{verdict}".rjust(16))
        else:
            cells.append("-".rjust(16))
    suffix = f"  target ≥ {target:.2f}x" if target is not None else ""
    return f"    {label:<{LABEL_WIDTH - 2}}{''.join(cells)}{suffix}"
