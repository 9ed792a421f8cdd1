//! Small builders shared by the engine tests: event rows and path rows as plain values,
//! turned into chunks; options from a spec; running a chunk through the whole pipeline;
//! reading credits back by channel name; closeness checks.

use std::collections::BTreeMap;

use mta_core::chunk::{NO_CHANNEL, user_key};
use mta_core::result::ModelResult;
use mta_core::{
    AttributionResult, ChannelDict, EventChunk, InputKind, ModelId, Options, OptionsSpec, Partial, PathChunk,
};

/// One day in microseconds.
pub(crate) const DAY: i64 = 86_400_000_000;
/// One hour in microseconds.
pub(crate) const HOUR: i64 = 3_600_000_000;
/// An arbitrary conversion time (2023-11-14T22:13:20Z) that tests count back from.
pub(crate) const T0: i64 = 1_700_000_000_000_000;

/// One event row as a test writes it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    pub(crate) user: String,
    pub(crate) time: i64,
    pub(crate) channel: Option<String>,
    pub(crate) conversion: bool,
    pub(crate) value: f64,
    /// 1-based row number in the "file": the tie-breaker of docs/user-guide.md, "Journeys".
    pub(crate) row_number: u64,
}

/// Builds event rows in file order (row numbers 1, 2, 3, ...).
#[derive(Debug, Clone, Default)]
pub(crate) struct Events {
    pub(crate) rows: Vec<Row>,
}

impl Events {
    pub(crate) fn new() -> Events {
        Events::default()
    }

    fn push(mut self, user: &str, time: i64, channel: Option<&str>, conversion: bool, value: f64) -> Events {
        let row_number = self.rows.len() as u64 + 1;
        self.rows.push(Row {
            user: user.to_owned(),
            time,
            channel: channel.map(str::to_owned),
            conversion,
            value,
            row_number,
        });
        self
    }

    /// A touch of `channel` at `time`.
    pub(crate) fn touch(self, user: &str, time: i64, channel: &str) -> Events {
        self.push(user, time, Some(channel), false, 0.0)
    }

    /// A conversion row without a channel.
    pub(crate) fn conversion(self, user: &str, time: i64, value: f64) -> Events {
        self.push(user, time, None, true, value)
    }

    /// A conversion row that carries a channel.
    pub(crate) fn conversion_via(self, user: &str, time: i64, channel: &str, value: f64) -> Events {
        self.push(user, time, Some(channel), true, value)
    }

    /// One user's journey: touches of `channels` one day apart, the last one a day before
    /// a conversion of `value` at [`T0`].
    pub(crate) fn journey(mut self, user: &str, channels: &[&str], value: f64) -> Events {
        let n = channels.len() as i64;
        for (i, channel) in channels.iter().enumerate() {
            self = self.touch(user, T0 - (n - i as i64) * DAY, channel);
        }
        self.conversion(user, T0, value)
    }

    pub(crate) fn chunk(&self) -> EventChunk {
        event_chunk(&self.rows)
    }
}

/// The rows as one chunk, in the order given, with channel ids in first-seen order.
pub(crate) fn event_chunk(rows: &[Row]) -> EventChunk {
    event_chunk_with_dict(rows, ChannelDict::default())
}

/// The rows as one chunk whose channel dictionary starts as `dict` (so that ids can be
/// numbered differently from chunk to chunk).
pub(crate) fn event_chunk_with_dict(rows: &[Row], dict: ChannelDict) -> EventChunk {
    let mut chunk = EventChunk { channels: dict, ..Default::default() };
    for row in rows {
        chunk.user_keys.push(user_key(row.user.as_bytes()));
        chunk.timestamps.push(row.time);
        let channel = match &row.channel {
            Some(name) => chunk.channels.id(name),
            None => NO_CHANNEL,
        };
        chunk.channel_ids.push(channel);
        chunk.is_conversion.push(row.conversion);
        chunk.values.push(row.value);
        chunk.row_numbers.push(row.row_number);
    }
    chunk
}

/// One path row as a test writes it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PathRow {
    pub(crate) path: Vec<String>,
    pub(crate) conversions: f64,
    pub(crate) value: f64,
    pub(crate) nulls: f64,
}

/// A path row from channel names.
pub(crate) fn path_row(path: &[&str], conversions: f64, value: f64, nulls: f64) -> PathRow {
    PathRow { path: path.iter().map(|s| (*s).to_owned()).collect(), conversions, value, nulls }
}

/// The tiny Markov check of DESIGN.md 3 and docs/user-guide.md, "Models": credits c1 38/29,
/// c2 33/29, c3 45/29 conversions; values 14.8295455, 12.2727273, 17.8977273.
pub(crate) fn design_paths() -> Vec<PathRow> {
    vec![
        path_row(&["c1", "c2"], 1.0, 10.0, 0.0),
        path_row(&["c1"], 0.0, 0.0, 1.0),
        path_row(&["c2", "c3"], 1.0, 5.0, 1.0),
        path_row(&["c1", "c1", "c3"], 2.0, 30.0, 1.0),
    ]
}

/// The rows as one path chunk, channel ids in first-seen order.
pub(crate) fn path_chunk(rows: &[PathRow]) -> PathChunk {
    let mut chunk = PathChunk::default();
    for (i, row) in rows.iter().enumerate() {
        let ids: Vec<u32> = row.path.iter().map(|c| chunk.channels.id(c)).collect();
        chunk.push(&ids, row.conversions, row.value, row.nulls, i as u64 + 1);
    }
    chunk
}

/// Validated options for event-level input.
pub(crate) fn event_options(spec: OptionsSpec) -> Options {
    spec.validate(InputKind::Events).expect("test options are valid")
}

/// Validated options for path-level input.
pub(crate) fn path_options(spec: OptionsSpec) -> Options {
    spec.validate(InputKind::Paths).expect("test options are valid")
}

/// Options running only `models` on event-level input.
pub(crate) fn only(models: &[&str]) -> OptionsSpec {
    OptionsSpec { models: Some(models.iter().map(|m| (*m).to_owned()).collect()), ..Default::default() }
}

/// The whole pipeline on one event chunk.
pub(crate) fn attribute_events(chunk: &EventChunk, options: &Options) -> AttributionResult {
    Partial::from_events(chunk, options).and_then(|p| p.finish(options)).expect("attribution succeeds")
}

/// The whole pipeline on event rows with default options.
pub(crate) fn attribute(events: &Events) -> AttributionResult {
    attribute_events(&events.chunk(), &event_options(OptionsSpec::default()))
}

/// The whole pipeline on path rows.
pub(crate) fn attribute_paths(rows: &[PathRow], options: &Options) -> AttributionResult {
    Partial::from_paths(&path_chunk(rows), options).and_then(|p| p.finish(options)).expect("attribution succeeds")
}

pub(crate) fn model(result: &AttributionResult, model: ModelId) -> &ModelResult {
    result.model(model).unwrap_or_else(|| panic!("the result has no `{model}` model"))
}

/// Every channel of a model's result as name → (conversions, value).
pub(crate) fn credits(result: &AttributionResult, id: ModelId) -> BTreeMap<String, (f64, f64)> {
    model(result, id).channels.iter().map(|c| (c.channel.clone(), (c.conversions, c.value))).collect()
}

/// Asserts the model's channels are exactly `want` (name, conversions, value), zeros included.
#[track_caller]
pub(crate) fn assert_credits(result: &AttributionResult, id: ModelId, want: &[(&str, f64, f64)]) {
    let got = credits(result, id);
    let want_map: BTreeMap<String, (f64, f64)> = want.iter().map(|&(c, n, v)| (c.to_owned(), (n, v))).collect();
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want_map.keys().collect::<Vec<_>>(),
        "{id}: channels differ: got {got:?}, want {want_map:?}"
    );
    for (channel, &(conversions, value)) in &want_map {
        let (got_conversions, got_value) = got[channel];
        assert!(
            close(got_conversions, conversions, 1e-12) && close(got_value, value, 1e-12),
            "{id}, channel `{channel}`: got ({got_conversions}, {got_value}), want ({conversions}, {value})"
        );
    }
}

/// The channel's (conversions, value) under a model; panics if the channel is absent.
#[track_caller]
pub(crate) fn credit(result: &AttributionResult, id: ModelId, channel: &str) -> (f64, f64) {
    let credits = credits(result, id);
    *credits.get(channel).unwrap_or_else(|| panic!("{id}: no channel `{channel}` in {credits:?}"))
}

/// Within `tolerance`, relative to the larger magnitude, or absolute below 1.
pub(crate) fn close(got: f64, want: f64, tolerance: f64) -> bool {
    (got - want).abs() <= tolerance * got.abs().max(want.abs()).max(1.0)
}

#[track_caller]
pub(crate) fn assert_close(got: f64, want: f64, tolerance: f64) {
    assert!(close(got, want, tolerance), "got {got}, want {want} (tolerance {tolerance})");
}

/// (cost, cpa, roas) of a credit or a breakdown row, each `None` where `null`.
pub(crate) type Spend = (Option<f64>, Option<f64>, Option<f64>);

/// Asserts `got` equals `want` to 1e-12, `null` exactly where `want` has it.
#[track_caller]
pub(crate) fn assert_same_spend(got: Spend, want: Spend, what: &str) {
    let same = |g: Option<f64>, w: Option<f64>| match (g, w) {
        (Some(g), Some(w)) => close(g, w, 1e-12),
        (None, None) => true,
        _ => false,
    };
    assert!(same(got.0, want.0) && same(got.1, want.1) && same(got.2, want.2), "{what}: got {got:?}, want {want:?}");
}
