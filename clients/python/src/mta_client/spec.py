"""Job options as typed keywords, and the job spec they make (docs/service.md, "Jobs").

Every field of the service's ``JobSpec`` and ``OptionsSpec`` schemas is a keyword of
``Client.submit`` (``upload_id`` is its first argument; the ``options`` object is flattened
into its fields), plus ``idempotency_key`` for the ``Idempotency-Key`` header. The test suite
compares these keywords with the live ``/openapi.json``, so a new option cannot be forgotten.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypedDict, Union

from .results import PositionWeights

__all__ = [
    "Model",
    "InputKind",
    "InputFormat",
    "Webhook",
    "JobOptions",
    "SPEC_KEYWORDS",
    "OPTION_KEYWORDS",
    "HEADER_KEYWORDS",
    "UPLOAD_KEYWORDS",
    "build_spec",
    "idempotency_key_for",
]

Model = Literal[
    "first_touch",
    "last_touch",
    "last_non_direct",
    "linear",
    "position_based",
    "j_shaped",
    "inverse_j",
    "time_decay",
    "participation",
    "markov",
    "shapley",
    "shao_li",
]
InputKind = Literal["events", "paths"]
InputFormat = Literal["csv", "parquet", "ndjson"]
#: ``period``: credit per day, ISO week (named by its Monday) or month of the conversions' dates.
Period = Literal["day", "week", "month"]
#: ``(first, middle, last)``, a mapping with those keys, or :class:`PositionWeights`.
PositionWeightsLike = Union[PositionWeights, tuple[float, float, float], Mapping[str, float]]


@dataclass(frozen=True)
class Webhook:
    """Where the service POSTs the job's end. Without a ``secret`` the service makes one and
    returns it once, as ``Job.webhook_secret``."""

    url: str
    secret: str | None = None

    def to_json(self) -> dict[str, str]:
        out = {"url": self.url}
        if self.secret is not None:
            out["secret"] = self.secret
        return out


#: Channel rules (docs/channel-rules.md): ``"ga4"``, or the rules as JSON-like dicts, e.g.
#: ``[{"channel": "Paid", "when": {"medium": {"regex": "^(cpc|ppc)$"}}}, {"channel": "Other"}]``.
ChannelRulesLike = Union[str, Sequence[Mapping[str, Any]]]


class JobOptions(TypedDict, total=False):
    """Every keyword of ``Client.submit`` (for ``Client.attribute(data, **options)``)."""

    kind: InputKind
    format: InputFormat
    delimiter: str
    path_separator: str
    columns: Mapping[str, str]
    models: Sequence[Model] | Literal["all"]
    markov_order: int | Literal["auto"]
    markov_pair_effects: bool
    #: One window in days, or several (at most 8) compared in one pass (``result.windows``),
    #: or with ``conversion_types`` a window per type (``{"purchase": 30, "sign_up": 7}``).
    lookback_days: float | Sequence[float] | Mapping[str, float]
    half_life_days: float
    position_weights: PositionWeightsLike
    direct_channels: Sequence[str]
    conversion_row_is_touch: bool
    max_journey_touches: int
    channel_rules: ChannelRulesLike
    period: Period
    timezone: str
    breakdown: Sequence[str]
    #: One complete attribution per value of this column (``result.segments``).
    segment_by: str
    #: Event names that are conversions, each also attributed on its own (``result.segments``).
    conversion_types: Sequence[str]
    top_paths: int
    max_report_paths: int
    #: Bootstrap intervals: a number of replicates, or ``{"replicates": 200, "level": 0.9, "seed": 0}``.
    intervals: int | Mapping[str, float]
    export_credits: bool
    spend_upload_id: str
    spend: Any
    webhook: str | Webhook
    idempotency_key: str


#: Keywords that are top-level fields of the JSON job spec (``JobSpec``).
SPEC_KEYWORDS: tuple[str, ...] = (
    "kind", "format", "delimiter", "path_separator", "columns", "export_credits", "spend_upload_id", "webhook",
)
#: Keywords of ``submit`` that are not spec fields: ``spend`` (a cost table to upload, which
#: then becomes ``spend_upload_id``).
UPLOAD_KEYWORDS: tuple[str, ...] = ("spend",)
#: Keywords that are fields of its ``options`` object (``OptionsSpec``).
OPTION_KEYWORDS: tuple[str, ...] = (
    "models", "markov_order", "markov_pair_effects", "lookback_days", "half_life_days", "position_weights",
    "direct_channels", "conversion_row_is_touch", "max_journey_touches", "channel_rules", "period", "timezone",
    "breakdown", "segment_by", "conversion_types", "top_paths", "max_report_paths", "intervals",
)
#: Keywords sent as headers of ``POST /v1/jobs``, by header name.
HEADER_KEYWORDS: dict[str, str] = {"Idempotency-Key": "idempotency_key"}


def _weights(value: PositionWeightsLike) -> dict[str, float]:
    if isinstance(value, PositionWeights):
        return value.to_json()
    if isinstance(value, Mapping):
        return {k: float(value[k]) for k in ("first", "middle", "last")}
    first, middle, last = value
    return {"first": float(first), "middle": float(middle), "last": float(last)}


def _json_value(name: str, value: Any) -> Any:
    if name == "position_weights":
        return _weights(value)
    if name == "webhook":
        return (Webhook(value) if isinstance(value, str) else value).to_json()
    if name == "models":
        return [value] if isinstance(value, str) else list(value)
    if name in ("direct_channels", "breakdown", "conversion_types"):
        return [value] if isinstance(value, str) else list(value)
    if name == "columns":
        return dict(value)
    if name == "lookback_days":
        if isinstance(value, Mapping):
            return {str(k): float(v) for k, v in value.items()}
        return value if isinstance(value, (int, float)) else [float(v) for v in value]
    if name == "channel_rules":
        return value if isinstance(value, str) else [dict(rule) for rule in value]
    if name == "intervals":
        return {"replicates": int(value)} if isinstance(value, int) else dict(value)
    return value


def build_spec(upload_id: str | None, values: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON job spec for keyword ``values`` (``None`` means: leave to the service's default)."""
    unknown = set(values) - set(SPEC_KEYWORDS) - set(OPTION_KEYWORDS) - set(HEADER_KEYWORDS.values())
    if unknown:
        raise TypeError(f"unknown job option(s): {', '.join(sorted(unknown))}")
    spec: dict[str, Any] = {}
    if upload_id is not None:
        spec["upload_id"] = upload_id
    for name in SPEC_KEYWORDS:
        if values.get(name) is not None:
            spec[name] = _json_value(name, values[name])
    options = {name: _json_value(name, values[name]) for name in OPTION_KEYWORDS if values.get(name) is not None}
    if options:
        spec["options"] = options
    return spec


def idempotency_key_for(given: str | None) -> str:
    """The key that makes a retried submission return the same job: the caller's, or a fresh
    one per ``submit`` call (so the client's own retries never make two jobs)."""
    return given if given is not None else f"mta-py-{uuid.uuid4()}"
