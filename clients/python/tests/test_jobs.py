"""Every call end to end against the real service: uploads of each kind, submissions with
every option, waiting, results equal to ``mta attribute``, tables, credits, the job list."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mta_client import (
    AttributionResult,
    ChannelInterval,
    Client,
    Intervals,
    Job,
    JobRecord,
    RowInterval,
    Upload,
    Webhook,
)
from mta_client.errors import ConflictError, NotFoundError
from mta_client.results import SPEND_COLUMNS, TIDY_COLUMNS, WINDOW_COLUMNS

from conftest import Service, close_to


def test_upload_a_path_then_submit_wait_and_read_the_result(
    service: Service, client: Client, events_csv: Path
) -> None:
    upload = client.upload(events_csv)
    assert isinstance(upload, Upload)
    assert upload.size_bytes == events_csv.stat().st_size
    job = client.submit(upload, export_credits=True)
    assert isinstance(job, Job) and job.state in ("queued", "running", "succeeded")
    job.wait(timeout=120)
    assert job.state == "succeeded"
    result = job.result()
    assert result.job_id == job.id
    local = service.attribute_locally(events_csv)
    remote = dict(result.raw)
    assert remote.pop("job_id") == job.id
    assert close_to(remote, local) == []
    typed = AttributionResult.from_json(local)
    assert list(typed.models) == list(result.models)
    assert [c.channel for c in typed.channels("markov")] == [c.channel for c in result.channels("markov")]


def test_results_equal_mta_attribute_for_paths_with_options(
    service: Service, client: Client, paths_csv: Path
) -> None:
    result = client.attribute(paths_csv, models=["markov", "linear", "shapley"], markov_order=1, path_separator=">")
    local = service.attribute_locally(paths_csv, "--models", "markov,linear,shapley", "--markov-order", "1")
    remote = dict(result.raw)
    remote.pop("job_id")
    assert close_to(remote, local) == []
    # The worked example of the product contract: credits 38/29, 33/29, 45/29 (ordered by conversions).
    markov = result.model("markov")
    assert [c.channel for c in markov.channels] == ["c3", "c1", "c2"]
    assert [c.conversions for c in markov.channels] == pytest.approx([45 / 29, 38 / 29, 33 / 29])
    assert markov.conversion_probability == pytest.approx(4 / 7)
    assert markov.conserves_totals


def test_shao_li_auto_order_and_pair_effects_equal_mta_attribute(
    service: Service, client: Client, paths_csv: Path
) -> None:
    result = client.attribute(
        paths_csv, models=["markov", "shao_li"], markov_order="auto", markov_pair_effects=True, path_separator=">"
    )
    local = service.attribute_locally(
        paths_csv, "--models", "markov,shao_li", "--markov-order", "auto", "--markov-pair-effects"
    )
    remote = dict(result.raw)
    remote.pop("job_id")
    assert close_to(remote, local) == []
    assert result.options.markov_order == "auto" and result.options.markov_pair_effects
    markov = result.model("markov")
    assert markov.order_selection is not None and markov.order == markov.order_selection.chosen
    assert [s.order for s in markov.order_selection.scores] == [1, 2, 3, 4]
    assert markov.pairs is not None and len(markov.pairs) == 3
    assert {(p.channel_a, p.channel_b) for p in markov.pairs} == {("c1", "c2"), ("c1", "c3"), ("c2", "c3")}
    # The hand-computed example of docs/user-guide.md, "Shao & Li".
    shao_li = result.model("shao_li")
    assert [c.conversions for c in shao_li.channels] == pytest.approx([98 / 65, 96 / 65, 66 / 65])
    assert shao_li.conserves_totals


def test_every_option_reaches_the_service_as_typed(client: Client, events_csv: Path) -> None:
    upload = client.upload(events_csv)
    job = client.submit(
        upload,
        kind="events",
        format="csv",
        delimiter=",",
        path_separator=">",
        columns={"user_id": "user_id", "timestamp": "timestamp"},
        models=["first_touch", "position_based", "time_decay", "markov"],
        markov_order=2,
        lookback_days=14,
        half_life_days=3.5,
        position_weights=(0.3, 0.4, 0.3),
        direct_channels=["direct", "email"],
        conversion_row_is_touch=False,
        max_journey_touches=500,
        top_paths=7,
        max_report_paths=5000,
        export_credits=True,
        idempotency_key="every-option-1",
    )
    assert job.record.spec == {
        "upload_id": upload.upload_id,
        "kind": "events",
        "format": "csv",
        "delimiter": ",",
        "path_separator": ">",
        "columns": {"timestamp": "timestamp", "user_id": "user_id"},
        "options": {
            "models": ["first_touch", "position_based", "time_decay", "markov"],
            "markov_order": 2,
            "lookback_days": 14.0,
            "half_life_days": 3.5,
            "position_weights": {"first": 0.3, "middle": 0.4, "last": 0.3},
            "direct_channels": ["direct", "email"],
            "conversion_row_is_touch": False,
            "max_journey_touches": 500,
            "period": None,
            "timezone": None,
            "top_paths": 7,
            "max_report_paths": 5000,
        },
        "export_credits": True,
    }
    result = job.result(timeout=120)
    applied = result.options
    assert applied.models == ["first_touch", "position_based", "time_decay", "markov"]
    assert (applied.markov_order, applied.lookback_days, applied.half_life_days) == (2, 14.0, 3.5)
    assert applied.position_weights.middle == pytest.approx(0.4)
    assert applied.direct_channels == ["direct", "email"]
    assert applied.max_journey_touches == 500
    assert (applied.top_paths, applied.max_report_paths) == (7, 5000)
    assert result.model("markov").order == 2
    # The same idempotency key returns the same job.
    again = client.submit(upload, kind="events", idempotency_key="every-option-1")
    assert again.id == job.id


def test_tidy_tables_match_the_services_csv(client: Client, events_csv: Path) -> None:
    job = client.submit(client.upload(events_csv), models=["linear", "markov"])
    result = job.result(timeout=120)
    frame = result.to_pandas()
    assert list(frame.columns) == list(TIDY_COLUMNS)
    assert len(frame) == sum(len(m.channels) for m in result.models.values())
    assert set(frame["model"]) == {"linear", "markov"}
    assert frame.loc[frame["model"] == "linear", "removal_effect"].isna().all()
    assert frame.loc[frame["model"] == "markov", "removal_effect"].notna().all()
    service_csv = pd.read_csv(io.StringIO(job.result_csv()))
    assert list(service_csv.columns) == list(TIDY_COLUMNS)
    pd.testing.assert_frame_equal(frame, service_csv, check_exact=False, rtol=1e-12)
    polars_frame = result.to_polars()
    assert polars_frame.columns == list(TIDY_COLUMNS)
    assert polars_frame.height == len(frame)
    assert polars_frame.filter(pl.col("model") == "linear")["conversions"].sum() == pytest.approx(
        result.model("linear").total_conversions
    )
    assert result.to_arrow().num_rows == len(frame)
    channels = result.channels("markov")
    assert channels == sorted(channels, key=lambda c: (-c.conversions, c.channel))
    assert sum(c.share for c in channels) == pytest.approx(1.0)
    with pytest.raises(KeyError, match="no model `shapley`"):
        result.channels("shapley")


def test_credit_per_period_is_typed_and_has_its_csv_table(
    service: Service, client: Client, events_csv: Path
) -> None:
    job = client.submit(client.upload(events_csv), models=["linear"], period="week", timezone="Europe/Berlin")
    given = {k: v for k, v in job.record.spec["options"].items() if v is not None}
    assert given == {"models": ["linear"], "period": "week", "timezone": "Europe/Berlin"}
    result = job.result(timeout=120)
    assert (result.options.period, result.options.timezone) == ("week", "Europe/Berlin")
    assert len(result.periods) > 1
    assert [p.period for p in result.periods] == sorted(p.period for p in result.periods)
    # The weeks add up to the whole file, channel by channel.
    for credit in result.channels("linear"):
        weekly = sum(
            c.conversions for p in result.periods for c in p.models["linear"].channels if c.channel == credit.channel
        )
        assert weekly == pytest.approx(credit.conversions, rel=1e-9)
    local = service.attribute_locally(
        events_csv, "--models", "linear", "--period", "week", "--timezone", "Europe/Berlin"
    )
    assert [p["period"] for p in local["periods"]] == [p.period for p in result.periods]
    table = pd.read_csv(io.StringIO(job.result_csv("periods")))
    assert list(table.columns) == ["period", *TIDY_COLUMNS]
    assert len(table) == sum(len(p.models["linear"].channels) for p in result.periods)
    # The journey reports come with every result, as JSON and as tables.
    assert result.reports is not None and len(result.reports["path_length"]) == 10
    positions = pd.read_csv(io.StringIO(job.result_csv("positions")))
    assert list(positions.columns) == ["channel", "only", "first", "middle", "last"]
    assert len(positions) == len(result.reports["positions"])
    # Each period has its own reports, equal to the local run's, and their tables.
    for period, theirs in zip(result.periods, local["periods"]):
        paths = period.top_paths()
        assert period.reports is not None and paths is not None and paths.exact
        figures = [b[f] for b in theirs["reports"]["path_length"] for f in ("conversions", "value")]
        assert [b[f] for b in period.reports["path_length"] for f in ("conversions", "value")] == pytest.approx(figures)
        assert [p.path for p in paths.converting] == [p["path"] for p in theirs["reports"]["paths"]["converting"]]
    lengths = pd.read_csv(io.StringIO(job.result_csv("period_path_length")))
    assert list(lengths.columns) == ["period", "bucket", "conversions", "value"]
    assert len(lengths) == 10 * len(result.periods)
    first = result.periods[0]
    assert first.reports is not None
    rows = lengths[lengths["period"] == first.period]
    assert list(rows["conversions"]) == pytest.approx([b["conversions"] for b in first.reports["path_length"]])


def test_segments_are_typed_equal_the_local_run_and_have_their_csv_table(
    service: Service, client: Client, tmp_path: Path
) -> None:
    lines = ["user_id,timestamp,channel,country,conversion,conversion_value"]
    for user in range(40):
        for touch in range(user % 3 + 1):
            channel = ("email", "search", "social")[(user + touch) % 3]
            lines.append(f"u{user},2026-02-{1 + touch:02}T10:00:00Z,{channel},{('DE', 'FR')[touch % 2]},0,")
        if user % 2:
            country = "" if user % 7 == 0 else ("DE", "FR")[user % 4 // 2]
            lines.append(f"u{user},2026-02-05T10:00:00Z,,{country},1,{10 + user}")
    data = tmp_path / "countries.csv"
    data.write_text("\n".join(lines) + "\n")
    job = client.submit(client.upload(data), models=["linear", "markov"], segment_by="country")
    assert job.record.spec["options"]["segment_by"] == "country"
    result = job.result(timeout=120)
    assert result.options.segment_by == "country"
    assert [s.value for s in result.segments] == ["DE", "FR", None]
    assert result.segments[-1].segment == {"country": None}
    local = service.attribute_locally(data, "--models", "linear,markov", "--segment-by", "country")
    assert [s["segment"] for s in local["segments"]] == [s.segment for s in result.segments]
    for segment, theirs in zip(result.segments, local["segments"]):
        assert segment.summary.rows == 0
        for name, model in segment.models.items():
            mine = {c.channel: c.conversions for c in model.channels}
            assert mine == {c["channel"]: pytest.approx(c["conversions"]) for c in theirs["models"][name]["channels"]}
    conversions = sum(s.summary.conversions for s in result.segments)
    assert conversions == pytest.approx(result.summary.conversions)
    table = pd.read_csv(io.StringIO(job.result_csv("segments")), keep_default_na=False)
    assert list(table.columns)[:3] == ["country", "model", "channel"]
    assert len(table) == sum(len(m.channels) for s in result.segments for m in s.models.values())
    assert set(table["country"]) == {"DE", "FR", ""}

    # With a cost table that has the country column: each segment's channels carry its own rows' cost.
    costs = tmp_path / "country_costs.csv"
    costs.write_text(
        "date,channel,country,cost\n2026-02-01,email,DE,40\n2026-02-02,search,FR,8\n2026-02-02,email,ES,7\n"
    )
    job = client.submit(client.upload(data), models=["linear"], segment_by="country", spend=costs)
    result = job.result(timeout=120)
    assert result.spend is not None and result.spend.segment_column == "country"
    de, fr, none = result.segments
    assert de.spend is not None and de.spend.cost == 40 and none.spend is not None and none.spend.rows == 0
    assert de.models["linear"].channel("email").cost == 40
    assert fr.models["linear"].channel("search").cost == 8
    assert all(c.cost is None for c in fr.models["linear"].channels if c.channel != "search")
    es = [u for u in result.spend.unmatched_cost if u.segment is not None]
    assert [(u.channel, u.segment, u.cost) for u in es] == [("email", {"country": "ES"}, 7.0)]
    local = service.attribute_locally(
        data, "--models", "linear", "--segment-by", "country", "--spend", str(costs)
    )
    assert [s["spend"]["cost"] for s in local["segments"]] == [s.spend.cost for s in result.segments if s.spend]
    table = pd.read_csv(io.StringIO(job.result_csv("segments")), keep_default_na=False)
    assert list(table.columns)[-3:] == ["cost", "cpa", "roas"]


def test_conversion_types_are_segments_with_their_own_windows(
    service: Service, client: Client, tmp_path: Path
) -> None:
    lines = ["user_id,timestamp,channel,event_name,conversion_value"]
    for user in range(30):
        for touch in range(user % 3 + 1):
            channel = ("email", "search", "social")[(user + touch) % 3]
            lines.append(f"u{user},2026-02-{1 + 3 * touch:02}T10:00:00Z,{channel},page_view,")
        lines.append(f"u{user},2026-02-10T10:00:00Z,,{('purchase', 'sign_up')[user % 2]},{10 + user}")
    data = tmp_path / "events.csv"
    data.write_text("\n".join(lines) + "\n")
    job = client.submit(
        client.upload(data), models=["first_touch", "markov"], conversion_types="purchase,sign_up".split(","),
        lookback_days={"purchase": 30, "sign_up": 5},
    )
    assert job.record.spec["options"]["lookback_days"] == {"purchase": 30.0, "sign_up": 5.0}
    result = job.result(timeout=120)
    assert result.options.conversion_types == ["purchase", "sign_up"]
    assert result.options.conversion_lookbacks == [30.0, 5.0]
    assert [s.segment for s in result.segments] == [{"conversion_type": "purchase"}, {"conversion_type": "sign_up"}]
    local = service.attribute_locally(
        data, "--models", "first_touch,markov", "--conversion-types", "purchase,sign_up",
        "--lookback-days", "purchase=30,sign_up=5",
    )
    for segment, theirs in zip(result.segments, local["segments"]):
        for name, model in segment.models.items():
            mine = {c.channel: c.conversions for c in model.channels}
            assert mine == {c["channel"]: pytest.approx(c["conversions"]) for c in theirs["models"][name]["channels"]}
    assert result.segments[0].summary.conversions == 15 and result.segments[1].summary.conversions == 15
    table = pd.read_csv(io.StringIO(job.result_csv("segments")))
    assert list(table.columns)[0] == "conversion_type"


def test_credit_by_campaign_is_typed_and_has_its_csv_table(
    service: Service, client: Client, tmp_path: Path
) -> None:
    lines = ["user_id,timestamp,channel,utm_campaign,conversion,conversion_value"]
    for user in range(60):
        for touch in range(user % 3 + 1):
            channel = ("email", "search", "social")[(user + touch) % 3]
            campaign = "" if (user + 2 * touch) % 4 == 3 else f"{channel}-{(user + 2 * touch) % 4}"
            lines.append(f"u{user},2026-02-{1 + touch:02}T10:00:00Z,{channel},{campaign},0,")
        if user % 2:
            lines.append(f"u{user},2026-02-05T10:00:00Z,,,1,{10 + user}")
    data = tmp_path / "campaigns.csv"
    data.write_text("\n".join(lines) + "\n")
    job = client.submit(client.upload(data), models=["linear", "markov"], breakdown="campaign")
    assert job.record.spec["options"]["breakdown"] == ["campaign"]
    result = job.result(timeout=120)
    assert result.options.breakdown == ["campaign"]
    local = service.attribute_locally(data, "--models", "linear,markov", "--breakdown", "campaign")
    for name, model in result.models.items():
        assert model.breakdown is not None
        assert {r.channel for r in model.breakdown} == {c.channel for c in model.channels}
        assert all(set(r.values) == {"campaign"} for r in model.breakdown)
        for credit in model.channels:
            rows = [r for r in model.breakdown if r.channel == credit.channel]
            assert sum(r.conversions for r in rows) == pytest.approx(credit.conversions, rel=1e-9)
            assert sum(r.value for r in rows) == pytest.approx(credit.value, rel=1e-9)
        local_rows = {(r["channel"], r["campaign"]): r["conversions"] for r in local["models"][name]["breakdown"]}
        assert {(r.channel, r.values["campaign"]): pytest.approx(r.conversions) for r in model.breakdown} == local_rows
    table = pd.read_csv(io.StringIO(job.result_csv("breakdown")), keep_default_na=False)
    assert list(table.columns) == ["model", "channel", "campaign", "conversions", "value"]
    assert len(table) == sum(len(m.breakdown or []) for m in result.models.values())
    assert "(none)" in set(table["campaign"])
    # Positions per campaign: each channel's rows add up to its positions; the table has them all.
    keyed = result.breakdown_positions()
    assert keyed is not None and all(set(r.values) == {"campaign"} for r in keyed)
    for channel in (result.reports or {})["positions"]:
        mine = [r for r in keyed if r.channel == channel["channel"]]
        for field in ("only", "first", "middle", "last"):
            assert sum(getattr(r, field) for r in mine) == pytest.approx(channel[field], rel=1e-9)
    assert [(r.channel, r.values, r.first) for r in keyed] == [
        (p["channel"], {"campaign": p["campaign"]}, pytest.approx(p["first"]))
        for p in local["reports"]["breakdown_positions"]
    ]
    keyed_paths = result.breakdown_paths()
    assert keyed_paths is not None and keyed_paths.exact
    local_paths = local["reports"]["breakdown_paths"]["converting"]
    assert [p.path for p in keyed_paths.converting] == [p["path"] for p in local_paths]
    assert all(" | " in p.path for p in keyed_paths.converting)
    positions = pd.read_csv(io.StringIO(job.result_csv("breakdown_positions")), keep_default_na=False)
    assert list(positions.columns) == ["channel", "campaign", "only", "first", "middle", "last"]
    assert len(positions) == len(keyed)

    # With a cost table naming campaigns: each row gains its (channel, campaign)'s cost, CPA, ROAS.
    costs = tmp_path / "campaign_costs.csv"
    costs.write_text(
        "date,channel,campaign,cost\n2026-02-01,email,email-1,40\n2026-02-02,email,,10\n"
        "2026-02-02,email,email-7,5\n"
    )
    job = client.submit(client.upload(data), models=["linear", "markov"], breakdown="campaign", spend=costs)
    result = job.result(timeout=120)
    local = service.attribute_locally(
        data, "--models", "linear,markov", "--breakdown", "campaign", "--spend", str(costs)
    )
    remote = dict(result.raw)
    remote.pop("job_id")
    assert close_to(remote, local) == []
    by_campaign = {(r.channel, r.values["campaign"]): r for r in result.model("linear").breakdown or []}
    assert (by_campaign[("email", "email-1")].cost, by_campaign[("email", "(none)")].cost) == (40, 10)
    # Only odd users convert, and their touches' campaigns end in 1 (or have none).
    row = by_campaign[("email", "email-1")]
    assert row.conversions > 0
    assert row.cpa == pytest.approx(40 / row.conversions) and row.roas == pytest.approx(row.value / 40)
    assert all(r.cost is None for (channel, _), r in by_campaign.items() if channel != "email")
    assert result.spend is not None
    assert [(u.channel, u.campaign, u.cost) for u in result.spend.unmatched_cost] == [("email", "email-7", 5.0)]
    table = pd.read_csv(io.StringIO(job.result_csv("breakdown")), keep_default_na=False)
    assert list(table.columns) == ["model", "channel", "campaign", "conversions", "value", "cost", "cpa", "roas"]


def test_top_paths_and_transitions_are_typed_and_have_their_csv_tables(
    service: Service, client: Client, events_csv: Path
) -> None:
    job = client.submit(client.upload(events_csv), models=["linear", "markov"], top_paths=5)
    result = job.result(timeout=120)
    paths = result.top_paths()
    assert paths is not None and paths.exact and paths.distinct_paths is not None
    assert len(paths.converting) == 5 and len(paths.non_converting) == 5
    assert paths.error_bound.conversions == 0.0
    top = paths.converting[0]
    assert top.journeys == pytest.approx(top.conversions + top.null_journeys)
    assert [p.conversions for p in paths.converting] == sorted((p.conversions for p in paths.converting), reverse=True)
    local = service.attribute_locally(events_csv, "--models", "linear,markov", "--top-paths", "5")
    assert [p.path for p in paths.converting] == [p["path"] for p in local["reports"]["paths"]["converting"]]
    table = pd.read_csv(io.StringIO(job.result_csv("paths")))
    assert list(table.columns) == [
        "list", "rank", "path", "touches", "journeys", "conversions", "value", "null_journeys", "exact",
    ]
    assert list(table[table["list"] == "converting"]["path"]) == [p.path for p in paths.converting]
    transitions = result.transitions()
    assert transitions is not None and transitions.order == 1 and not transitions.truncated
    assert len(transitions.rows) == transitions.total
    out_of_start = sum(t.probability for t in transitions.rows if t.from_ == "(start)")
    assert out_of_start == pytest.approx(1.0)
    steps = pd.read_csv(io.StringIO(job.result_csv("transitions")))
    assert list(steps.columns) == ["from", "to", "count", "probability"]
    assert len(steps) == len(transitions.rows)
    # Without markov there is no transition table.
    linear = client.submit(client.upload(events_csv), models=["linear"]).result(timeout=120)
    assert linear.transitions() is None


def test_a_cost_table_adds_cost_cpa_and_roas_equal_to_mta_attribute(
    service: Service, client: Client, events_csv: Path, tmp_path: Path
) -> None:
    costs = tmp_path / "costs.csv"
    costs.write_text("date,channel,cost\n2026-01-05,paid_search,300\n2026-01-06,display,120\n2026-01-06,tv,50\n")
    upload = client.upload(events_csv)
    job = client.submit(upload, models=["linear", "markov"], spend=costs)
    assert job.record.spec["spend_upload_id"]
    result = job.result(timeout=120)
    local = service.attribute_locally(events_csv, "--models", "linear,markov", "--spend", str(costs))
    remote = dict(result.raw)
    remote.pop("job_id")
    assert close_to(remote, local) == []
    assert result.spend is not None and result.spend.cost == 470 and result.spend.matched_cost == 420
    assert [(u.channel, u.cost, u.rows) for u in result.spend.unmatched_cost] == [("tv", 50.0, 1)]
    search = result.model("linear").channel("paid_search")
    assert search.cost == 300
    assert search.cpa == pytest.approx(300 / search.conversions)
    assert search.roas == pytest.approx(search.value / 300)
    direct = result.model("linear").channel("direct")
    assert (direct.cost, direct.cpa, direct.roas) == (None, None, None)
    assert list(result.to_pandas().columns) == [*TIDY_COLUMNS, *SPEND_COLUMNS]
    assert result.to_polars().columns == [*TIDY_COLUMNS, *SPEND_COLUMNS]
    service_csv = pd.read_csv(io.StringIO(job.result_csv()))
    assert list(service_csv.columns) == [*TIDY_COLUMNS, *SPEND_COLUMNS]
    unmatched = pd.read_csv(io.StringIO(job.result_csv("unmatched_cost")))
    assert unmatched.to_dict("records") == [{"channel": "tv", "cost": 50, "rows": 1}]
    # The same table as a DataFrame (uploaded as Parquet) and named by id: the same answer.
    spend_upload = client.upload(pd.read_csv(costs))
    again = client.submit(upload, models=["linear", "markov"], spend_upload_id=spend_upload).result(timeout=120)
    assert again.spend == result.spend
    repeated = dict(again.raw)
    repeated.pop("job_id")
    assert close_to(repeated, local) == []
    with pytest.raises(TypeError):
        client.submit(upload, spend=costs, spend_upload_id=spend_upload)


def test_lookback_windows_compare_in_one_job_with_their_csv_table(
    service: Service, client: Client, events_csv: Path
) -> None:
    job = client.submit(client.upload(events_csv), models=["linear", "first_touch"], lookback_days=[7, 30, 0])
    assert job.record.spec["options"]["lookback_days"] == [7.0, 30.0, 0.0]
    result = job.result(timeout=120)
    assert (result.options.lookback_days, result.options.lookback_windows) == (7.0, [7.0, 30.0, 0.0])
    assert [w.lookback_days for w in result.windows] == [7.0, 30.0, 0.0]
    assert result.windows[0].models == result.models, "the top level is the first window"
    local = service.attribute_locally(events_csv, "--models", "linear,first_touch", "--lookback-days", "7,30,0")
    assert [w["lookback_days"] for w in local["windows"]] == [7.0, 30.0, 0.0]
    for got, want in zip(result.windows, local["windows"]):
        local_credit = {c["channel"]: c["conversions"] for c in want["models"]["linear"]["channels"]}
        assert {c.channel: pytest.approx(c.conversions, rel=1e-9) for c in got.models["linear"].channels} == local_credit
    ranks = {r.model: r for r in result.window_ranks}
    assert set(ranks) == {"linear", "first_touch"}
    for c in ranks["linear"].channels:
        assert len(c.share) == len(c.rank) == 3
        for window, rank, share in zip(result.windows, c.rank, c.share):
            channels = window.models["linear"].channels
            if rank is None:
                assert c.channel not in [x.channel for x in channels]
            else:
                assert (channels[rank - 1].channel, channels[rank - 1].share) == (c.channel, share)
    table = pd.read_csv(io.StringIO(job.result_csv("windows")))
    assert list(table.columns) == list(WINDOW_COLUMNS)
    assert len(table) == sum(r is not None for w in result.window_ranks for c in w.channels for r in c.rank)


def test_bootstrap_intervals_are_typed_equal_mta_attribute_and_have_their_csv_table(
    service: Service, client: Client, events_csv: Path, tmp_path: Path
) -> None:
    job = client.submit(client.upload(events_csv), models=["linear", "markov"], intervals={"replicates": 30, "seed": 4})
    assert job.record.spec["options"]["intervals"] == {"replicates": 30, "seed": 4}
    result = job.result(timeout=120)
    assert result.options.intervals == Intervals(replicates=30, level=0.9, seed=4)
    local = service.attribute_locally(events_csv, "--models", "linear,markov", "--intervals", "30", "--seed", "4")
    remote = dict(result.raw)
    remote.pop("job_id")
    assert close_to(remote, local) == []
    for name in ("linear", "markov"):
        for c in result.channels(name):
            assert isinstance(c.interval, ChannelInterval)
            assert c.interval.conversions_low <= c.conversions <= c.interval.conversions_high
            assert (c.interval.removal_effect_low is not None) == (name == "markov")
    firsts = [c.interval.rank_1_probability for c in result.channels("linear") if c.interval is not None]
    assert sum(firsts) == pytest.approx(1.0)
    table = pd.read_csv(io.StringIO(job.result_csv("intervals")))
    assert list(table.columns[:5]) == ["model", "channel", "conversions", "conversions_low", "conversions_high"]
    assert len(table) == len(result.channels("linear")) + len(result.channels("markov"))
    # With a breakdown: each row's interval, equal to the local command's, and its table.
    lines = ["user_id,timestamp,channel,utm_campaign,conversion,conversion_value"]
    for user in range(80):
        channel = ("email", "search")[user % 2]
        lines.append(f"u{user},2026-02-01T10:00:00Z,{channel},{channel}-{user % 3},0,")
        if user % 4:
            lines.append(f"u{user},2026-02-02T10:00:00Z,,,1,{10 + user}")
    data = tmp_path / "campaigns.csv"
    data.write_text("\n".join(lines) + "\n")
    job = client.submit(client.upload(data), models=["linear", "markov"], breakdown="campaign", intervals=20)
    result = job.result(timeout=120)
    local = service.attribute_locally(
        data, "--models", "linear,markov", "--breakdown", "campaign", "--intervals", "20"
    )
    remote = dict(result.raw)
    remote.pop("job_id")
    assert close_to(remote, local) == []
    rows = result.model("markov").breakdown or []
    assert len(rows) == 6
    for row in rows:
        assert isinstance(row.interval, RowInterval)
        assert set(row.values) == {"campaign"}
        assert row.interval.conversions_low <= row.conversions <= row.interval.conversions_high
    table = pd.read_csv(io.StringIO(job.result_csv("breakdown_intervals")))
    assert list(table.columns) == [
        "model", "channel", "campaign", "conversions", "conversions_low", "conversions_high", "value", "value_low",
        "value_high",
    ]
    assert len(table) == 12
    # A number of replicates alone is the short form.
    assert client.submit(client.upload(events_csv), models=["linear"], intervals=20).record.spec["options"][
        "intervals"
    ] == {"replicates": 20}


def test_dataframes_and_tables_upload_as_parquet(service: Service, client: Client, events_csv: Path) -> None:
    local = service.attribute_locally(events_csv, "--models", "linear,markov")
    frame = pd.read_csv(events_csv, dtype={"user_id": str, "timestamp": str})
    sources: list[object] = [
        frame,
        pl.read_csv(events_csv),
        pa.Table.from_pandas(frame, preserve_index=False),
        pl.read_csv(events_csv).lazy(),
    ]
    for data in sources:
        upload = client.upload(data)
        assert upload.size_bytes > 0
        result = client.submit(upload, models=["linear", "markov"]).result(timeout=120)
        assert result.summary.rows == 12000
        remote = dict(result.raw)
        remote.pop("job_id")
        assert close_to(remote, local) == [], type(data)


def test_file_objects_stream_as_they_are(client: Client, events_csv: Path) -> None:
    with events_csv.open("rb") as file:
        upload = client.upload(file)
    assert upload.size_bytes == events_csv.stat().st_size
    with pytest.raises(TypeError, match="binary mode"):
        with events_csv.open("r") as text:
            client.upload(text)  # type: ignore[arg-type]


def test_credits_stream_parquet_into_an_arrow_table(client: Client, events_csv: Path, tmp_path: Path) -> None:
    job = client.submit(client.upload(events_csv), models=["linear", "last_touch"], export_credits=True)
    result = job.result(timeout=120)
    credits = job.credits()
    assert isinstance(credits, pa.Table)
    assert {"user_id", "conversion_time", "model", "channel", "conversions", "value"} <= set(credits.column_names)
    linear = credits.filter(pa.compute.equal(credits["model"], "linear"))
    assert pa.compute.sum(linear["conversions"]).as_py() == pytest.approx(result.model("linear").total_conversions)
    written = job.download_credits(tmp_path / "credits.parquet")
    assert written == (tmp_path / "credits.parquet").stat().st_size
    assert pq.read_table(tmp_path / "credits.parquet").num_rows == credits.num_rows
    without = client.submit(client.upload(events_csv), models=["linear"])
    without.wait(timeout=120)
    with pytest.raises(NotFoundError) as refused:
        without.credits()
    assert refused.value.code == "credits_not_requested"


def test_jobs_lists_the_tenants_jobs_newest_first(client: Client, events_csv: Path) -> None:
    upload = client.upload(events_csv)
    submitted = [client.submit(upload, models=[model]) for model in ("linear", "first_touch", "last_touch")]
    listed = list(client.jobs())
    assert [j.id for j in listed] == [j.id for j in reversed(submitted)]
    assert all(isinstance(j.record, JobRecord) for j in listed)
    assert [j.id for j in client.jobs(limit=2)] == [j.id for j in reversed(submitted)][:2]
    fetched = client.job(submitted[0].id)
    assert fetched.id == submitted[0].id
    for job in submitted:
        job.wait(timeout=120)
    assert {j.refresh().state for j in listed} == {"succeeded"}


def test_a_cached_answer_is_a_succeeded_job_at_once(client: Client, events_csv: Path) -> None:
    upload = client.upload(events_csv)
    first = client.submit(upload, models=["shapley"])
    first.wait(timeout=120)
    second = client.submit(client.upload(events_csv), models=["shapley"])
    assert second.state == "succeeded" and second.record.cached_from == first.id
    assert second.result().model("shapley") == first.result().model("shapley")


def test_a_cancelled_job(client: Client, tmp_path: Path) -> None:
    # Big enough that the one worker is still on it when the cancel arrives, and different
    # every run, so the result cache cannot answer it.
    big = tmp_path / "big.csv"
    with big.open("w") as out:
        out.write("user_id,timestamp,channel,conversion,conversion_value\n")
        for i in range(400_000):
            out.write(f"u{i % 50_000},{1_700_000_000 + i},ch{i % 17},{int(i % 97 == 0)},{i % 13}\n")
    upload = client.upload(big)
    job = client.submit(upload, models=["markov"], markov_order=4)
    record = job.cancel()
    assert record.state == "cancelled"
    assert job.wait(timeout=30, check=False).state == "cancelled"
    from mta_client import JobCancelledError

    with pytest.raises(JobCancelledError):
        job.wait(timeout=30)
    with pytest.raises(JobCancelledError):
        job.result()
    with pytest.raises(ConflictError) as finished:
        job.cancel()
    assert finished.value.code == "job_finished" and finished.value.status == 409


def test_webhook_keyword_accepts_a_url_or_a_webhook(client: Client) -> None:
    from mta_client.spec import build_spec

    assert build_spec("u", {"webhook": "https://h.example/x"})["webhook"] == {"url": "https://h.example/x"}
    assert build_spec("u", {"webhook": Webhook("https://h.example/x", "whsec_abc")})["webhook"] == {
        "url": "https://h.example/x",
        "secret": "whsec_abc",
    }
    with pytest.raises(TypeError, match="unknown job option"):
        build_spec("u", {"modles": ["linear"]})


def test_progress_bars_show_on_request_and_stay_off_otherwise(
    client: Client, events_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    upload = client.upload(events_csv, progress=True)
    job = client.submit(upload, models=["participation"], lookback_days=7)
    job.wait(timeout=120, progress=True)
    shown = capsys.readouterr().err
    assert "upload events.csv" in shown and "B/s" in shown
    assert f"job {job.id[:8]}" in shown
    client.upload(events_csv)  # the client was made with progress=False; not a terminal anyway
    job.wait()
    assert capsys.readouterr().err == ""
