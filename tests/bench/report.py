"""The printed table: one section per backend, figures beside their targets, then the ratios."""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.bench.store_bench import READ_LIMIT, WRITER_COUNTS, CatchUp
from tests.bench.timing import Rate, Rounds, round_ratios

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
    # The interleaved single-event contenders, by writer count.
    baseline: dict[int, Rounds] = field(default_factory=dict)
    library: dict[int, Rounds] = field(default_factory=dict)
    store: dict[int, Rounds] = field(default_factory=dict)
    # The interleaved batch contenders (one writer), and the catch-up run.
    batch_baseline: Rounds | None = None
    batch_store: Rounds | None = None
    catch_up: CatchUp | None = None

    def add(self, label: str, writers: int, rate: Rate, note: str = "") -> None:
        if writers > 1 and self.serialized_writers:
            note = f"{note}; serialized" if note else "serialized (one writer at a time)"
        self.rows.append(Row(label, writers, rate, note))

    def add_rounds(self, label: str, writers: int, rounds: Rounds, note: str = "") -> None:
        """A row of totals over the rounds, flagged if pre-built work ran out in any of them."""
        if rounds.short:
            short = f"ran out of work in {rounds.short} of {len(rounds.rates)} rounds"
            note = f"{note}; {short}" if note else short
        self.add(label, writers, rounds.total, note)

    def add_batch(
        self, baseline_label: str, baseline: Rounds, store_label: str, store: Rounds
    ) -> None:
        """The batch baseline's row, then the store's with its target and its ratio to it."""
        self.batch_baseline, self.batch_store = baseline, store
        note = _target(store.total, BATCH_TARGET)
        spread = round_ratios(store, baseline)
        if spread is not None and baseline.total.per_second > 0:
            ratio = store.total.per_second / baseline.total.per_second
            note += (
                f"; store/baseline batch {ratio:.2f}x (rounds: median {spread.median:.2f}x, "
                f"{spread.low:.2f}-{spread.high:.2f}x)"
            )
        self.add_rounds(baseline_label, 1, baseline)
        self.add_rounds(store_label, 1, store, note)

    def add_catch_up(self, c: CatchUp) -> None:
        self.catch_up = c
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
    lines.extend(_ratio_lines("store / baseline", section.store, section.baseline, RATIO_TARGET))
    if section.library:
        lines.extend(_ratio_lines("store / eventsourcing", section.store, section.library, None))
    lines.extend(f"  note: {note}" for note in section.notes)
    return "\n".join(lines)


def _ratio_lines(
    label: str, top: dict[int, Rounds], bottom: dict[int, Rounds], target: float | None
) -> list[str]:
    """The ratio of the totals (with its verdict), then the median and range of round ratios."""
    totals, medians, ranges = [], [], []
    rounds = 0
    for n in WRITER_COUNTS:
        spread = round_ratios(top[n], bottom[n]) if n in top and n in bottom else None
        total_bottom = bottom[n].total.per_second if n in bottom else 0.0
        if spread is None or total_bottom <= 0:
            totals.append("-")
            medians.append("-")
            ranges.append("-")
            continue
        rounds = len(bottom[n].rates)
        ratio = top[n].total.per_second / total_bottom
        verdict = f" {_verdict(ratio, target)}" if target is not None else ""
        totals.append(f"{ratio:.2f}x{verdict}")
        medians.append(f"{spread.median:.2f}x")
        ranges.append(f"{spread.low:.2f}-{spread.high:.2f}x")
    suffix = f"  target ≥ {target:.2f}x" if target is not None else ""
    return [
        _cells(f"  {label}, totals", totals) + suffix,
        _cells(f"    median of {rounds} rounds", medians),
        _cells("    lowest-highest round", ranges),
    ]


def _cells(label: str, cells: list[str]) -> str:
    return f"  {label:<{LABEL_WIDTH}}{''.join(cell.rjust(16) for cell in cells)}"
