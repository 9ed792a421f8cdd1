"""A job's result (docs/user-guide.md, "Results") as dataclasses, and its tidy tables.

The tidy table has one row per model × channel, with the columns of the service's
``GET /v1/jobs/{id}/result?format=csv``: ``model, channel, conversions, value, share,
removal_effect, removal_effect_value`` (the removal effects are set for ``markov`` only), and with a
cost table (``spend``) ``cost, cpa, roas`` (:data:`SPEND_COLUMNS`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._optional import require

if TYPE_CHECKING:
    import pandas
    import polars
    import pyarrow

__all__ = ["Summary", "PositionWeights", "AppliedOptions", "ChannelCredit", "BreakdownRow",
           "BreakdownPositions", "ModelResult",
           "AttributionResult", "Spend", "UnmatchedCost", "PeriodCost", "WindowResult", "WindowRanks",
           "SegmentResult",
           "ChannelWindowRanks", "PathFigures", "PathRow", "TopPaths", "Transition", "Transitions", "TIDY_COLUMNS",
           "SPEND_COLUMNS", "WINDOW_COLUMNS"]

TIDY_COLUMNS: tuple[str, ...] = (
    "model", "channel", "conversions", "value", "share", "removal_effect", "removal_effect_value",
)
#: The columns the tidy table gains when the job had a cost table.
SPEND_COLUMNS: tuple[str, ...] = ("cost", "cpa", "roas")
#: The columns of the window comparison (``result_csv("windows")``).
WINDOW_COLUMNS: tuple[str, ...] = ("model", "channel", "lookback_days", "conversions", "value", "share", "rank")


@dataclass(frozen=True)
class Summary:
    rows: int
    journeys: float
    converting_journeys: float
    null_journeys: float
    conversions: float
    conversion_value: float
    unattributed_conversions: float
    unattributed_value: float
    channels: int
    truncated_journeys: int

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Summary:
        return cls(
            rows=int(value["rows"]),
            journeys=float(value["journeys"]),
            converting_journeys=float(value["converting_journeys"]),
            null_journeys=float(value["null_journeys"]),
            conversions=float(value["conversions"]),
            conversion_value=float(value["conversion_value"]),
            unattributed_conversions=float(value["unattributed_conversions"]),
            unattributed_value=float(value["unattributed_value"]),
            channels=int(value["channels"]),
            truncated_journeys=int(value.get("truncated_journeys", 0)),
        )


@dataclass(frozen=True)
class PositionWeights:
    """First / middle / last weights of the position-based models (normalised to sum 1)."""

    first: float
    middle: float
    last: float

    def to_json(self) -> dict[str, float]:
        return {"first": self.first, "middle": self.middle, "last": self.last}


@dataclass(frozen=True)
class AppliedChannelRules:
    """The channel rules that named the channels (docs/channel-rules.md)."""

    #: ``ga4`` or ``custom``.
    name: str
    rules: int


@dataclass(frozen=True)
class AppliedOptions:
    """The options as the engine applied them, defaults filled in."""

    kind: str
    models: list[str]
    #: 1 to 4, or ``"auto"`` (the order chosen is the markov model's ``order``).
    markov_order: int | str
    lookback_days: float
    half_life_days: float
    position_weights: PositionWeights
    direct_channels: list[str]
    conversion_row_is_touch: bool
    max_journey_touches: int
    #: ``day``, ``week`` or ``month`` when the job asked for credit per period.
    period: str | None
    #: The IANA time zone of the periods' dates.
    timezone: str
    #: ``None`` when the file's channel column named the channels.
    channel_rules: AppliedChannelRules | None = None
    #: The columns each channel's credit is broken down by (empty: none).
    breakdown: list[str] = field(default_factory=list)
    #: The column whose values segment the journeys (``None``: none).
    segment_by: str | None = None
    #: The event names that are conversions, each attributed on its own (``segments``).
    conversion_types: list[str] = field(default_factory=list)
    #: Each conversion type's lookback window, in the order of ``conversion_types``.
    conversion_lookbacks: list[float] = field(default_factory=list)
    #: The markov model reports the removal effects of pairs of its top channels.
    markov_pair_effects: bool = False
    #: Every lookback window compared when ``lookback_days`` was a list (``lookback_days`` is the first).
    lookback_windows: list[float] = field(default_factory=list)
    #: Converting and non-converting paths listed in ``reports.paths``.
    top_paths: int = 50
    #: Distinct paths counted exactly before the top paths become estimates.
    max_report_paths: int = 100_000
    #: Bootstrap intervals: replicates, level and seed (``None``: none asked for).
    intervals: Intervals | None = None

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> AppliedOptions:
        weights = value["position_weights"]
        rules = value.get("channel_rules")
        return cls(
            kind=str(value["kind"]),
            models=[str(m) for m in value["models"]],
            markov_order=_markov_order(value["markov_order"]),
            lookback_days=float(value["lookback_days"]),
            half_life_days=float(value["half_life_days"]),
            position_weights=PositionWeights(
                float(weights["first"]), float(weights["middle"]), float(weights["last"])
            ),
            direct_channels=[str(c) for c in value["direct_channels"]],
            conversion_row_is_touch=bool(value["conversion_row_is_touch"]),
            max_journey_touches=int(value["max_journey_touches"]),
            channel_rules=None if rules is None else AppliedChannelRules(str(rules["name"]), int(rules["rules"])),
            period=value.get("period"),
            timezone=str(value.get("timezone", "UTC")),
            breakdown=[str(b) for b in value.get("breakdown", [])],
            segment_by=value.get("segment_by"),
            conversion_types=[str(t) for t in value.get("conversion_types", [])],
            conversion_lookbacks=[float(d) for d in value.get("conversion_lookbacks", [])],
            markov_pair_effects=bool(value.get("markov_pair_effects", False)),
            lookback_windows=[float(d) for d in value.get("lookback_windows", [])],
            top_paths=int(value.get("top_paths", 50)),
            max_report_paths=int(value.get("max_report_paths", 100_000)),
            intervals=None if value.get("intervals") is None else Intervals.from_json(value["intervals"]),
        )


def _markov_order(value: Any) -> int | str:
    return "auto" if value == "auto" else int(value)


@dataclass(frozen=True)
class OrderScore:
    """One candidate order of ``markov_order="auto"``."""

    order: int
    #: States of the order's chain over every journey.
    states: int
    #: Mean held-out log-likelihood of the journeys' outcomes; ``None`` when not scored.
    log_likelihood: float | None

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> OrderScore:
        ll = value.get("log_likelihood")
        return cls(order=int(value["order"]), states=int(value["states"]), log_likelihood=None if ll is None else float(ll))


@dataclass(frozen=True)
class OrderSelection:
    """How ``markov_order="auto"`` chose the order (docs/user-guide.md, "Choosing the Markov order")."""

    criterion: str
    chosen: int
    training_journeys: float
    held_out_journeys: float
    scores: list[OrderScore]

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> OrderSelection:
        return cls(
            criterion=str(value["criterion"]),
            chosen=int(value["chosen"]),
            training_journeys=float(value["training_journeys"]),
            held_out_journeys=float(value["held_out_journeys"]),
            scores=[OrderScore.from_json(s) for s in value["scores"]],
        )


@dataclass(frozen=True)
class PairEffect:
    """What the Markov conversion probability loses when both channels are removed."""

    channel_a: str
    channel_b: str
    removal_effect: float
    removal_effect_value: float
    #: The two channels' own removal effects minus the pair's.
    overlap: float

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> PairEffect:
        return cls(
            channel_a=str(value["channel_a"]),
            channel_b=str(value["channel_b"]),
            removal_effect=float(value["removal_effect"]),
            removal_effect_value=float(value["removal_effect_value"]),
            overlap=float(value["overlap"]),
        )


@dataclass(frozen=True)
class Intervals:
    """The bootstrap a job's intervals come from (docs/user-guide.md, "Intervals")."""

    replicates: int
    level: float
    seed: int

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Intervals:
        return cls(replicates=int(value["replicates"]), level=float(value["level"]), seed=int(value["seed"]))


@dataclass(frozen=True)
class ChannelInterval:
    """A channel's percentile intervals over the bootstrap replicates and how they rank it."""

    conversions_low: float
    conversions_high: float
    value_low: float
    value_high: float
    share_low: float
    share_high: float
    #: Share of the replicates in which the channel ranks first / in the top 3, among those that
    #: credit some conversion (in one that credits none no ranking is defined).
    rank_1_probability: float
    top_3_probability: float
    median_rank: float
    #: Markov only.
    removal_effect_low: float | None = None
    removal_effect_high: float | None = None

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> ChannelInterval:
        def optional(name: str) -> float | None:
            v = value.get(name)
            return None if v is None else float(v)

        return cls(
            **{
                name: float(value[name])
                for name in (
                    "conversions_low", "conversions_high", "value_low", "value_high", "share_low", "share_high",
                    "rank_1_probability", "top_3_probability", "median_rank",
                )
            },
            removal_effect_low=optional("removal_effect_low"),
            removal_effect_high=optional("removal_effect_high"),
        )


@dataclass(frozen=True)
class ChannelCredit:
    channel: str
    conversions: float
    value: float
    #: This channel's part of the model's credited conversions (0..1).
    share: float
    #: Markov only.
    removal_effect: float | None = None
    removal_effect_value: float | None = None
    #: With a cost table: the channel's cost (``None``: no cost row names it), cost per credited
    #: conversion and credited value per cost (``None`` where undefined).
    cost: float | None = None
    cpa: float | None = None
    roas: float | None = None
    #: With ``intervals``: the channel's bootstrap intervals and rank probabilities.
    interval: ChannelInterval | None = None

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> ChannelCredit:
        def optional(name: str) -> float | None:
            v = value.get(name)
            return None if v is None else float(v)

        return cls(
            channel=str(value["channel"]),
            conversions=float(value["conversions"]),
            value=float(value["value"]),
            share=float(value["share"]),
            removal_effect=optional("removal_effect"),
            removal_effect_value=optional("removal_effect_value"),
            cost=optional("cost"),
            cpa=optional("cpa"),
            roas=optional("roas"),
            interval=None if value.get("interval") is None else ChannelInterval.from_json(value["interval"]),
        )


@dataclass(frozen=True)
class RowInterval:
    """A breakdown row's percentile intervals over the bootstrap replicates."""

    conversions_low: float
    conversions_high: float
    value_low: float
    value_high: float

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> RowInterval:
        return cls(**{name: float(value[name]) for name in ("conversions_low", "conversions_high", "value_low", "value_high")})


@dataclass(frozen=True)
class BreakdownRow:
    """A model's credit to one channel × breakdown values (the ``breakdown`` option)."""

    channel: str
    #: The breakdown column (as the job named it) → this row's value (``(none)``: touches without one).
    values: dict[str, str]
    conversions: float
    value: float
    #: With a cost table and a breakdown by the campaign alone: the cost of the row's
    #: (channel, campaign), its cost per credited conversion and credited value per cost;
    #: ``None`` where undefined (and without cost per campaign).
    cost: float | None = None
    cpa: float | None = None
    roas: float | None = None
    #: With ``intervals``: the bootstrap intervals of the row's conversions and value (the
    #: result's top-level rows).
    interval: RowInterval | None = None

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> BreakdownRow:
        fixed = ("channel", "conversions", "value", "cost", "cpa", "roas", "interval")

        def optional(name: str) -> float | None:
            v = value.get(name)
            return None if v is None else float(v)

        return cls(
            channel=str(value["channel"]),
            values={str(k): str(v) for k, v in value.items() if k not in fixed},
            conversions=float(value["conversions"]),
            value=float(value["value"]),
            cost=optional("cost"),
            cpa=optional("cpa"),
            roas=optional("roas"),
            interval=None if value.get("interval") is None else RowInterval.from_json(value["interval"]),
        )


@dataclass(frozen=True)
class BreakdownPositions:
    """Where the touches of one channel × breakdown values stand in converting journeys
    (``reports.breakdown_positions``, with the ``breakdown`` option), weighted by conversions."""

    channel: str
    #: The breakdown column (as the job named it) → this row's value (``(none)``: touches without one).
    values: dict[str, str]
    only: float
    first: float
    middle: float
    last: float

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> BreakdownPositions:
        fixed = ("channel", "only", "first", "middle", "last")
        return cls(
            channel=str(value["channel"]),
            values={str(k): str(v) for k, v in value.items() if k not in fixed},
            only=float(value["only"]),
            first=float(value["first"]),
            middle=float(value["middle"]),
            last=float(value["last"]),
        )


@dataclass(frozen=True)
class ModelResult:
    model: str
    #: Sorted by credited conversions, descending (then by name).
    channels: list[ChannelCredit]
    total_conversions: float
    total_value: float
    #: The credits add up to the attributed conversions and value (``participation``: false by design).
    conserves_totals: bool
    note: str | None = None
    #: Markov only.
    order: int | None = None
    conversion_probability: float | None = None
    #: With ``breakdown``: the credit per channel × breakdown values; a channel's rows add up to it.
    breakdown: list[BreakdownRow] | None = None
    #: Markov with ``markov_order="auto"``.
    order_selection: OrderSelection | None = None
    #: Markov with ``markov_pair_effects=True``: pairs of the top channels, by removal effect.
    pairs: list[PairEffect] | None = None

    @classmethod
    def from_json(cls, model: str, value: Mapping[str, Any]) -> ModelResult:
        order = value.get("order")
        probability = value.get("conversion_probability")
        rows = value.get("breakdown")
        selection = value.get("order_selection")
        pairs = value.get("pairs")
        return cls(
            model=model,
            channels=[ChannelCredit.from_json(c) for c in value["channels"]],
            total_conversions=float(value["total_conversions"]),
            total_value=float(value["total_value"]),
            conserves_totals=bool(value["conserves_totals"]),
            note=value.get("note"),
            order=None if order is None else int(order),
            conversion_probability=None if probability is None else float(probability),
            breakdown=None if rows is None else [BreakdownRow.from_json(r) for r in rows],
            order_selection=None if selection is None else OrderSelection.from_json(selection),
            pairs=None if pairs is None else [PairEffect.from_json(p) for p in pairs],
        )

    def channel(self, name: str) -> ChannelCredit:
        for credit in self.channels:
            if credit.channel == name:
                return credit
        raise KeyError(name)


class _WithReports:
    """The typed views of ``reports`` (the whole's, a period's, a segment's or a window's)."""

    reports: dict[str, Any] | None

    def top_paths(self) -> TopPaths | None:
        """``reports.paths``, typed (``None`` in results from before paths were reported)."""
        paths = (self.reports or {}).get("paths")
        return None if paths is None else TopPaths.from_json(paths)

    def transitions(self) -> Transitions | None:
        """``reports.transitions``, typed (``None`` unless the ``markov`` model ran)."""
        transitions = (self.reports or {}).get("transitions")
        return None if transitions is None else Transitions.from_json(transitions)

    def breakdown_paths(self) -> TopPaths | None:
        """``reports.breakdown_paths``, typed: the top paths of touch keys, each touch its channel
        and breakdown values joined by `` | `` (``None`` without the ``breakdown`` option)."""
        paths = (self.reports or {}).get("breakdown_paths")
        return None if paths is None else TopPaths.from_json(paths)

    def breakdown_positions(self) -> list[BreakdownPositions] | None:
        """``reports.breakdown_positions``, typed (``None`` without the ``breakdown`` option)."""
        rows = (self.reports or {}).get("breakdown_positions")
        return None if rows is None else [BreakdownPositions.from_json(r) for r in rows]


@dataclass(frozen=True)
class PeriodResult(_WithReports):
    """The figures of the journeys that count in one period (``options.period``)."""

    #: The period's first day, ``2026-01-05`` (a week is named by its Monday).
    period: str
    #: ``rows`` is not split by period and is 0 here.
    summary: Summary
    models: dict[str, ModelResult]
    #: The period's journey reports, as :attr:`AttributionResult.reports` (its top paths from a
    #: smaller table than the whole's: ``paths.exact`` says whether they are exact).
    reports: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> PeriodResult:
        return cls(
            period=str(value["period"]),
            summary=Summary.from_json(value["summary"]),
            models={name: ModelResult.from_json(name, m) for name, m in value["models"].items()},
            reports=value.get("reports"),
        )


@dataclass(frozen=True)
class SegmentResult(_WithReports):
    """The figures of the journeys of one segment (``options.segment_by``)."""

    #: The segment's column and value, ``{"country": "DE"}`` (``None``: rows without a value).
    segment: dict[str, str | None]
    #: ``rows`` is not split by segment and is 0 here.
    summary: Summary
    models: dict[str, ModelResult]
    #: With ``period``: the segment's figures per period, oldest first.
    periods: list[PeriodResult] = field(default_factory=list)
    #: The segment's journey reports (as a period's).
    reports: dict[str, Any] | None = None
    #: With a cost table that has the segment column (``Spend.segment_column``): the spend of
    #: the segment's own cost rows, joined to its channels as the whole's is.
    spend: Spend | None = None

    @property
    def value(self) -> str | None:
        """The segment's value (``None`` for the rows without one)."""
        return next(iter(self.segment.values()), None)

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> SegmentResult:
        return cls(
            segment={str(k): (None if v is None else str(v)) for k, v in value["segment"].items()},
            summary=Summary.from_json(value["summary"]),
            models={name: ModelResult.from_json(name, m) for name, m in value["models"].items()},
            periods=[PeriodResult.from_json(p) for p in value.get("periods", [])],
            reports=value.get("reports"),
            spend=None if value.get("spend") is None else Spend.from_json(value["spend"]),
        )


@dataclass(frozen=True)
class WindowResult(_WithReports):
    """The figures under one lookback window (``lookback_days`` given as a list)."""

    #: 0 = unlimited.
    lookback_days: float
    summary: Summary
    models: dict[str, ModelResult]
    #: The journey reports of the journeys under this window (the first window's are the whole's).
    reports: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> WindowResult:
        return cls(
            lookback_days=float(value["lookback_days"]),
            summary=Summary.from_json(value["summary"]),
            models={name: ModelResult.from_json(name, m) for name, m in value["models"].items()},
            reports=value.get("reports"),
        )


@dataclass(frozen=True)
class ChannelWindowRanks:
    """One channel under each window, in the order of ``AttributionResult.windows``."""

    channel: str
    #: Its share of the model's credited conversions (0 where a window has no touch of it).
    share: list[float]
    #: 1 = most conversions (ties by name); ``None`` where a window has no touch of it.
    rank: list[int | None]
    #: Worst minus best rank over the windows that rank it (0 = a stable rank).
    rank_spread: int

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> ChannelWindowRanks:
        return cls(
            channel=str(value["channel"]),
            share=[float(s) for s in value["share"]],
            rank=[None if r is None else int(r) for r in value["rank"]],
            rank_spread=int(value["rank_spread"]),
        )


@dataclass(frozen=True)
class WindowRanks:
    """One model's channels compared across the lookback windows."""

    model: str
    #: By rank under the first window, then by name.
    channels: list[ChannelWindowRanks]

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> WindowRanks:
        return cls(model=str(value["model"]), channels=[ChannelWindowRanks.from_json(c) for c in value["channels"]])


@dataclass(frozen=True)
class UnmatchedCost:
    """The cost of a channel that no journey of the events mentions, or (``campaign`` set, with
    a breakdown by campaign) of a campaign of a channel that no breakdown row has, or
    (``segment`` set, with cost per segment) of a segment value no segment has."""

    channel: str
    cost: float
    rows: int
    campaign: str | None = None
    #: The segment value as a segment is named, ``{"country": "ES"}`` (its value ``None``: cost rows without one).
    segment: dict[str, str | None] | None = None


@dataclass(frozen=True)
class PeriodCost:
    """Cost dated in a period that holds no journey."""

    period: str
    cost: float


@dataclass(frozen=True)
class Spend:
    """The cost table joined to the credits (docs/user-guide.md, "Spend")."""

    rows: int
    #: Every row's cost, and that of the channels the events mention.
    cost: float
    matched_cost: float
    first_date: str
    last_date: str
    #: Distinct campaigns (summed to their channel; with a breakdown by campaign joined to its rows).
    campaigns: int
    unmatched_cost: list[UnmatchedCost]
    cost_outside_periods: list[PeriodCost] = field(default_factory=list)
    #: With ``segment_by``: the cost table's column joined to the segments; ``None`` when it has
    #: none (the segments' channels then carry no cost).
    segment_column: str | None = None

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Spend:
        return cls(
            rows=int(value["rows"]),
            cost=float(value["cost"]),
            matched_cost=float(value["matched_cost"]),
            first_date=str(value["first_date"]),
            last_date=str(value["last_date"]),
            campaigns=int(value["campaigns"]),
            unmatched_cost=[
                UnmatchedCost(
                    str(u["channel"]),
                    float(u["cost"]),
                    int(u["rows"]),
                    None if u.get("campaign") is None else str(u["campaign"]),
                    None
                    if u.get("segment") is None
                    else {str(k): (None if v is None else str(v)) for k, v in u["segment"].items()},
                )
                for u in value["unmatched_cost"]
            ],
            cost_outside_periods=[
                PeriodCost(str(p["period"]), float(p["cost"])) for p in value.get("cost_outside_periods", [])
            ],
            segment_column=None if value.get("segment_column") is None else str(value["segment_column"]),
        )


@dataclass(frozen=True)
class PathFigures:
    """Conversions, value and null journeys (of a path, or the error bound of them all)."""

    conversions: float
    value: float
    null_journeys: float

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> PathFigures:
        return cls(float(value["conversions"]), float(value["value"]), float(value["null_journeys"]))


@dataclass(frozen=True)
class PathRow:
    """One path of ``reports.paths`` (docs/user-guide.md, "Top paths")."""

    #: Channel names joined by `` > ``, each escaped: a backslash is doubled and ``>`` is written ``\>``.
    path: str
    touches: int
    #: ``conversions`` + ``null_journeys``.
    journeys: float
    conversions: float
    value: float
    null_journeys: float

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> PathRow:
        return cls(
            path=str(value["path"]),
            touches=int(value["touches"]),
            journeys=float(value["journeys"]),
            conversions=float(value["conversions"]),
            value=float(value["value"]),
            null_journeys=float(value["null_journeys"]),
        )


@dataclass(frozen=True)
class TopPaths:
    """``reports.paths``: the top converting and non-converting paths."""

    #: False past ``max_report_paths`` distinct paths: the figures are then estimates, each at
    #: most ``error_bound`` below the truth.
    exact: bool
    distinct_paths: int | None
    error_bound: PathFigures
    converting: list[PathRow]
    non_converting: list[PathRow]

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> TopPaths:
        distinct = value.get("distinct_paths")
        return cls(
            exact=bool(value["exact"]),
            distinct_paths=None if distinct is None else int(distinct),
            error_bound=PathFigures.from_json(value["error_bound"]),
            converting=[PathRow.from_json(p) for p in value["converting"]],
            non_converting=[PathRow.from_json(p) for p in value["non_converting"]],
        )


@dataclass(frozen=True)
class Transition:
    """One step of the Markov chain: states ``(start)``, ``(conversion)``, ``(null)`` or channels."""

    #: ``from`` in the JSON.
    from_: str
    to: str
    count: float
    probability: float

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Transition:
        return cls(str(value["from"]), str(value["to"]), float(value["count"]), float(value["probability"]))


@dataclass(frozen=True)
class Transitions:
    """``reports.transitions``: the Markov chain's transition table (the ``markov`` model)."""

    order: int
    #: Distinct transitions of the chain; ``rows`` holds at most 10000 (``truncated`` then).
    total: int
    truncated: bool
    #: By count, descending.
    rows: list[Transition]

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Transitions:
        return cls(
            order=int(value["order"]),
            total=int(value["total"]),
            truncated=bool(value["truncated"]),
            rows=[Transition.from_json(t) for t in value["rows"]],
        )


@dataclass(frozen=True)
class AttributionResult(_WithReports):
    """``GET /v1/jobs/{id}/result``; ``job_id`` is ``None`` for a result read from ``mta attribute``."""

    summary: Summary
    options: AppliedOptions
    #: Keyed by model id, in the order of ``options.models``.
    models: dict[str, ModelResult]
    #: With ``period``: the same figures per period, oldest first; they add up to the whole.
    periods: list[PeriodResult] = field(default_factory=list)
    #: The journey reports as JSON: ``path_length`` and ``time_lag`` buckets (``bucket``,
    #: ``conversions``, ``value``), ``positions`` per channel (``only``, ``first``, ``middle``, ``last``),
    #: ``paths`` and ``transitions`` (typed by :meth:`top_paths` and :meth:`transitions`).
    reports: dict[str, Any] | None = None
    #: With a cost table: what was joined, and the cost of channels no journey mentions.
    spend: Spend | None = None
    #: With ``lookback_days`` given as a list: the figures under each window, in the order
    #: listed (the first is the top level's).
    windows: list[WindowResult] = field(default_factory=list)
    #: With ``windows``: per model, each channel's share and rank under every window.
    window_ranks: list[WindowRanks] = field(default_factory=list)
    #: With ``segment_by``: the same figures per segment, by value (rows without one last).
    segments: list[SegmentResult] = field(default_factory=list)
    job_id: str | None = None
    #: The JSON as the service sent it (fields newer than this client included).
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> AttributionResult:
        return cls(
            summary=Summary.from_json(value["summary"]),
            options=AppliedOptions.from_json(value["options"]),
            models={name: ModelResult.from_json(name, m) for name, m in value["models"].items()},
            periods=[PeriodResult.from_json(p) for p in value.get("periods", [])],
            reports=value.get("reports"),
            spend=None if value.get("spend") is None else Spend.from_json(value["spend"]),
            windows=[WindowResult.from_json(w) for w in value.get("windows", [])],
            window_ranks=[WindowRanks.from_json(r) for r in value.get("window_ranks", [])],
            segments=[SegmentResult.from_json(s) for s in value.get("segments", [])],
            job_id=value.get("job_id"),
            raw=dict(value),
        )

    def model(self, model: str) -> ModelResult:
        try:
            return self.models[model]
        except KeyError:
            raise KeyError(f"no model `{model}` in this result (it has: {', '.join(self.models)})") from None

    def channels(self, model: str) -> list[ChannelCredit]:
        """The credited channels of one model, most conversions first."""
        return self.model(model).channels

    def columns(self) -> tuple[str, ...]:
        """The tidy table's columns: :data:`TIDY_COLUMNS`, then :data:`SPEND_COLUMNS` with a cost table."""
        return TIDY_COLUMNS + (SPEND_COLUMNS if self.spend is not None else ())

    def rows(self) -> Iterator[dict[str, Any]]:
        """The tidy table as dicts: one per model × channel, keys :meth:`columns`."""
        for name, model in self.models.items():
            for c in model.channels:
                row: dict[str, Any] = {
                    "model": name,
                    "channel": c.channel,
                    "conversions": c.conversions,
                    "value": c.value,
                    "share": c.share,
                    "removal_effect": c.removal_effect,
                    "removal_effect_value": c.removal_effect_value,
                }
                if self.spend is not None:
                    row.update(cost=c.cost, cpa=c.cpa, roas=c.roas)
                yield row

    def to_pandas(self) -> pandas.DataFrame:
        """The tidy table as a pandas DataFrame (removal effects are NaN outside ``markov``)."""
        require("pandas", "pandas")
        import pandas as pd

        columns = self.columns()
        frame = pd.DataFrame.from_records(list(self.rows()), columns=list(columns))
        floats = [c for c in columns if c not in ("model", "channel")]
        typed: pd.DataFrame = frame.astype({c: "float64" for c in floats})
        return typed

    def to_polars(self) -> polars.DataFrame:
        """The tidy table as a polars DataFrame (removal effects are null outside ``markov``)."""
        require("polars", "polars")
        import polars as pl

        schema = {c: (pl.String if c in ("model", "channel") else pl.Float64) for c in self.columns()}
        return pl.DataFrame(list(self.rows()), schema=schema)

    def to_arrow(self) -> pyarrow.Table:
        """The tidy table as an Arrow table."""
        require("pyarrow", "pyarrow")
        import pyarrow as pa

        rows = list(self.rows())
        schema = pa.schema(
            [(c, pa.string() if c in ("model", "channel") else pa.float64()) for c in self.columns()]
        )
        return pa.Table.from_pylist(rows, schema=schema)
