//! Journeys: the unit every model credits. Event rows become journeys per DESIGN.md 2.4
//! (order by time, split at each conversion, lookback window, null journeys);
//! path rows are journeys already.

use rustc_hash::FxHashMap;

use crate::chunk::{EventChunk, NO_CHANNEL, PathChunk};
use crate::options::Options;

/// One journey: its touches in order and what it ended in.
#[derive(Debug, Clone, Copy)]
pub struct Journey<'a> {
    /// Channel id of each touch, oldest first.
    pub channels: &'a [u32],
    /// Touch times in UTC microseconds (event-level input only).
    pub touch_times: Option<&'a [i64]>,
    /// When the journey converted (event-level converting journeys only).
    pub conversion_time: Option<i64>,
    /// Conversions credited through this journey: 1 for an event conversion, any
    /// non-negative number (fractions kept) for a path row.
    pub conversions: f64,
    pub value: f64,
    /// Journeys on this path that did not convert (1 for an event-level null journey).
    pub nulls: f64,
    /// True when touches beyond `max_journey_touches` were dropped (oldest first).
    pub truncated: bool,
}

impl Journey<'_> {
    pub fn is_converting(&self) -> bool {
        self.conversions > 0.0
    }
}

/// Where a journey came from, for per-journey credit export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JourneyOrigin {
    /// Index (into the chunk) of the row that closed the journey: its conversion row,
    /// or the user's last touch for a null journey.
    EventRow(usize),
    /// Index of the path row.
    PathRow(usize),
}

/// Calls `visit` with every journey of an event chunk. Rows of one user must all be in
/// the chunk (the split stage partitions by user); row order within the chunk is free,
/// because each user's events are ordered by (timestamp, touches before conversions,
/// original row number).
pub fn for_each_event_journey(
    chunk: &EventChunk,
    options: &Options,
    mut visit: impl FnMut(&Journey<'_>, JourneyOrigin),
) {
    let mut by_user = events_by_user(chunk);
    let lookback = options.lookback_micros();
    let max_touches = options.max_journey_touches as usize;
    let mut channels: Vec<u32> = Vec::new();
    let mut times: Vec<i64> = Vec::new();

    for events in by_user.users_mut() {
        // Exports are usually ordered by time already: check before sorting.
        if !events.is_sorted_by_key(Event::order) {
            events.sort_by_key(Event::order);
        }
        channels.clear();
        times.clear();
        for event in events.iter() {
            let (row, channel, time) = (event.row as usize, event.channel, event.time);
            if !event.is_conversion {
                channels.push(channel);
                times.push(time);
                continue;
            }
            if options.conversion_row_is_touch && channel != NO_CHANNEL {
                channels.push(channel);
                times.push(time);
            }
            let window_start = match lookback {
                Some(lookback) => times.partition_point(|&t| t < time.saturating_sub(lookback)),
                None => 0,
            };
            let (start, truncated) = clamp_length(window_start, channels.len(), max_touches);
            let journey = Journey {
                channels: &channels[start..],
                touch_times: Some(&times[start..]),
                conversion_time: Some(time),
                conversions: 1.0,
                value: chunk.values[row],
                nulls: 0.0,
                truncated,
            };
            visit(&journey, JourneyOrigin::EventRow(row));
            channels.clear();
            times.clear();
        }
        if !channels.is_empty() {
            let (start, truncated) = clamp_length(0, channels.len(), max_touches);
            let journey = Journey {
                channels: &channels[start..],
                touch_times: Some(&times[start..]),
                conversion_time: None,
                conversions: 0.0,
                value: 0.0,
                nulls: 1.0,
                truncated,
            };
            let last_row = events.last().expect("a user has rows").row as usize;
            visit(&journey, JourneyOrigin::EventRow(last_row));
        }
    }
}

/// One event of a user, gathered from the chunk's columns.
#[derive(Debug, Clone, Copy, Default)]
struct Event {
    time: i64,
    is_conversion: bool,
    row_number: u64,
    channel: u32,
    /// Index of the row in the chunk.
    row: u32,
}

impl Event {
    /// DESIGN.md 2.4: by time, touches before conversions, then file order.
    fn order(&self) -> (i64, bool, u64) {
        (self.time, self.is_conversion, self.row_number)
    }
}

/// Calls `visit` with every path row as a journey.
pub fn for_each_path_journey(chunk: &PathChunk, options: &Options, mut visit: impl FnMut(&Journey<'_>, JourneyOrigin)) {
    let max_touches = options.max_journey_touches as usize;
    for row in 0..chunk.len() {
        let path = chunk.path(row);
        let (start, truncated) = clamp_length(0, path.len(), max_touches);
        let journey = Journey {
            channels: &path[start..],
            touch_times: None,
            conversion_time: None,
            conversions: chunk.conversions[row],
            value: chunk.values[row],
            nulls: chunk.nulls[row],
            truncated,
        };
        visit(&journey, JourneyOrigin::PathRow(row));
    }
}

/// Keeps at most `max` of the touches `start..len`, dropping the oldest.
fn clamp_length(start: usize, len: usize, max: usize) -> (usize, bool) {
    if len - start > max { (len - max, true) } else { (start, false) }
}

/// The chunk's events grouped by user with a counting sort: O(rows), stable, no
/// comparison sort of the whole chunk. Each event is written straight to its user's
/// slot, so a user's events are contiguous (one cache line per event touched, instead of
/// one per column when gathering by row index).
struct EventsByUser {
    offsets: Vec<u32>,
    events: Vec<Event>,
}

impl EventsByUser {
    fn users_mut(&mut self) -> impl Iterator<Item = &mut [Event]> {
        let mut rest = self.events.as_mut_slice();
        self.offsets.windows(2).map(move |w| {
            let (user, after) = std::mem::take(&mut rest).split_at_mut((w[1] - w[0]) as usize);
            rest = after;
            user
        })
    }
}

fn events_by_user(chunk: &EventChunk) -> EventsByUser {
    // Users have several rows each: an eighth of the rows is a fair first size.
    let mut ordinal_of: FxHashMap<u128, u32> = FxHashMap::with_capacity_and_hasher(chunk.len() / 8, Default::default());
    let mut ordinals = Vec::with_capacity(chunk.len());
    let mut counts: Vec<u32> = Vec::new();
    for &key in &chunk.user_keys {
        let next = ordinal_of.len() as u32;
        let ordinal = *ordinal_of.entry(key).or_insert(next);
        if ordinal == next {
            counts.push(0);
        }
        counts[ordinal as usize] += 1;
        ordinals.push(ordinal);
    }
    let mut offsets = Vec::with_capacity(counts.len() + 1);
    let mut total = 0u32;
    offsets.push(0);
    for count in &counts {
        total += count;
        offsets.push(total);
    }
    let mut cursor: Vec<u32> = offsets[..counts.len()].to_vec();
    let mut events = vec![Event::default(); chunk.len()];
    for (row, ordinal) in ordinals.into_iter().enumerate() {
        let slot = &mut cursor[ordinal as usize];
        events[*slot as usize] = Event {
            time: chunk.timestamps[row],
            is_conversion: chunk.is_conversion[row],
            row_number: chunk.row_numbers[row],
            channel: chunk.channel_ids[row],
            row: row as u32,
        };
        *slot += 1;
    }
    EventsByUser { offsets, events }
}
