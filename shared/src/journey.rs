//! Journeys: the unit every model credits. Event rows become journeys per docs/user-guide.md, "Journeys"
//! (order by time, split at each conversion, lookback window, null journeys);
//! path rows are journeys already.

use hashbrown::hash_table::{Entry, HashTable};

use crate::chunk::{EventChunk, NO_CHANNEL, PathChunk, TaggedChannel};
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
    /// Index (into the chunk) of the row that closed the journey (its conversion row, or
    /// the user's last touch for a null journey), and its user's key: read once per user,
    /// as the rows are grouped, not from the chunk's column once per journey (at random,
    /// which in a chunk of half a million rows was half the time of the journey loop).
    EventRow { row: usize, user_key: u128 },
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
    for_each_windowed_journey(chunk, options, &[options.lookback_micros()], |_, journey, origin| {
        visit(journey, origin)
    });
}

/// [`for_each_event_journey`] under several lookback windows at once (microseconds, `None`:
/// unlimited), from one grouping of the rows: each conversion's journey is visited once per
/// window, with the window's index, and so is each null journey (which no window cuts).
pub fn for_each_windowed_journey(
    chunk: &EventChunk,
    options: &Options,
    lookbacks: &[Option<i64>],
    mut visit: impl FnMut(usize, &Journey<'_>, JourneyOrigin),
) {
    let mut by_user = EventsByUser::take_reusable();
    let max_touches = options.max_journey_touches as usize;
    let mut channels: Vec<u32> = Vec::new();
    let mut times: Vec<i64> = Vec::new();

    // docs/user-guide.md, "Journeys": by time, touches before conversions, then file order.
    // When the row numbers never decrease down the chunk (rows in file order, as every
    // reader and hand-over keeps them), row indices order ties as the numbers do: a user's
    // events are grouped in row order and sorted stably, so equal numbers stay in row order.
    // That spares a read of the numbers at random on every tie.
    let numbered_in_order = chunk.row_numbers.is_sorted();
    let order = |a: &Event, b: &Event| {
        (a.time, a.is_conversion()).cmp(&(b.time, b.is_conversion())).then_with(|| {
            if numbered_in_order {
                a.row.cmp(&b.row)
            } else {
                chunk.row_numbers[a.row as usize].cmp(&chunk.row_numbers[b.row as usize])
            }
        })
    };
    by_user.for_each_user(chunk, |user_key, events| {
        // Exports are usually ordered by time already: check before sorting.
        if !events.is_sorted_by(|a, b| order(a, b).is_le()) {
            events.sort_by(order);
        }
        channels.clear();
        times.clear();
        for event in events.iter() {
            let (row, channel, time) = (event.row as usize, event.channel(), event.time);
            if !event.is_conversion() {
                channels.push(channel);
                times.push(time);
                continue;
            }
            if options.conversion_row_is_touch && channel != NO_CHANNEL {
                channels.push(channel);
                times.push(time);
            }
            for (window, lookback) in lookbacks.iter().enumerate() {
                let window_start = match lookback {
                    Some(lookback) => times.partition_point(|&t| t < time.saturating_sub(*lookback)),
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
                visit(window, &journey, JourneyOrigin::EventRow { row, user_key });
            }
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
            for window in 0..lookbacks.len() {
                visit(window, &journey, JourneyOrigin::EventRow { row: last_row, user_key });
            }
        }
    });
    by_user.put_back();
}

/// One event of a user, gathered from the chunk's columns: 16 bytes, so that a user's
/// events share as few cache lines as they can. The row number that breaks ties is read
/// from the chunk only when two events tie on time and kind, and only when the chunk's
/// rows are not numbered in order.
#[derive(Debug, Clone, Copy, Default)]
struct Event {
    time: i64,
    /// Index of the row in the chunk.
    row: u32,
    tagged_channel: TaggedChannel,
}

impl Event {
    fn is_conversion(&self) -> bool {
        self.tagged_channel.is_conversion()
    }

    fn channel(&self) -> u32 {
        self.tagged_channel.channel()
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
#[derive(Default)]
struct EventsByUser {
    /// Ordinal of each user met, found through its key in `keys` (see [`table_hash`]).
    ordinal_of: HashTable<u32>,
    /// Key of each user of the rows being grouped, by ordinal.
    keys: Vec<u128>,
    /// A large chunk's rows (user key and event) bucket by bucket.
    staged: Vec<(u128, Event)>,
    /// Ordinal of each row's user, in the order the rows were numbered in.
    ordinals: Vec<u32>,
    /// Rows of each user, then (while scattering) the next free slot of each user.
    counts: Vec<u32>,
    offsets: Vec<u32>,
    events: Vec<Event>,
}

/// How many rows a bucket of users holds on average at most (a chunk is grouped in
/// `rows / BUCKET_ROWS` buckets, rounded up): few enough that a bucket's user map, its
/// events and its users' journeys stay in a core's cache. A chunk of at most this many
/// rows (a local partition) is one bucket.
const BUCKET_ROWS: usize = 1 << 16;

/// The user map's hash of a user key, itself a hash: the low 32 bits of each half, which
/// neither `partition_of` (the top of the upper half) nor a chunk's buckets (the top of
/// the lower half) fix within one grouping, so no rehashing is needed.
fn table_hash(key: u128) -> u64 {
    ((key >> 64) as u32 as u64) << 32 | key as u32 as u64
}

/// Row `row` of `chunk` as its user's event.
fn event_of(chunk: &EventChunk, row: usize) -> Event {
    Event {
        time: chunk.timestamps[row],
        row: row as u32,
        tagged_channel: TaggedChannel::new(chunk.channel_ids[row], chunk.is_conversion[row]),
    }
}

thread_local! {
    /// One grouping's buffers per thread, reused chunk after chunk: allocating them
    /// afresh for every chunk cost more (page faults, map growth) than filling them.
    static REUSABLE: std::cell::Cell<Option<Box<EventsByUser>>> = const { std::cell::Cell::new(None) };
}

impl EventsByUser {
    /// Buffers larger than this (in rows) are freed after use rather than kept.
    const MAX_KEPT_ROWS: usize = 1 << 20;

    fn take_reusable() -> Box<EventsByUser> {
        REUSABLE.take().unwrap_or_default()
    }

    fn put_back(self: Box<Self>) {
        if self.events.capacity().max(self.staged.capacity()) <= Self::MAX_KEPT_ROWS {
            REUSABLE.set(Some(self));
        }
    }

    /// Calls `visit` with each user's key and events (in row order): users in order of
    /// their first row. A chunk of more than [`BUCKET_ROWS`] rows is grouped and visited a
    /// bucket of users at a time (by bits of their key; buckets in order, each bucket's
    /// users in order of their first row), so that the user map, the slots being written
    /// and the events the journeys then read stay in the core's cache: in one pass over
    /// half a million rows they did not, and each row cost two misses.
    fn for_each_user(&mut self, chunk: &EventChunk, mut visit: impl FnMut(u128, &mut [Event])) {
        let buckets = chunk.len().div_ceil(BUCKET_ROWS) as u64;
        if buckets <= 1 {
            self.group(chunk.user_keys.iter().copied(), (0..chunk.len()).map(|row| event_of(chunk, row)));
            self.visit_users(&mut visit);
            return;
        }
        // The rows staged bucket by bucket, each bucket in row order (a counting sort on
        // bits of the key that `partition_of` does not use).
        let bucket_of = |key: u128| (((key as u64 >> 32) * buckets) >> 32) as usize;
        let mut starts = vec![0usize; buckets as usize + 1];
        for &key in &chunk.user_keys {
            starts[bucket_of(key) + 1] += 1;
        }
        for b in 0..buckets as usize {
            starts[b + 1] += starts[b];
        }
        let mut staged = std::mem::take(&mut self.staged);
        // Not cleared first: every row below is written over (zeros written first would be
        // half a million rows' worth of memory traffic per chunk for nothing).
        staged.resize(chunk.len(), (0, Event::default()));
        let mut next = starts.clone();
        for (row, &key) in chunk.user_keys.iter().enumerate() {
            let slot = &mut next[bucket_of(key)];
            staged[*slot] = (key, event_of(chunk, row));
            *slot += 1;
        }
        // No user is in two buckets: each bucket is grouped on its own.
        for bucket in starts.windows(2) {
            let rows = &staged[bucket[0]..bucket[1]];
            self.group(rows.iter().map(|&(key, _)| key), rows.iter().map(|&(_, event)| event));
            self.visit_users(&mut visit);
        }
        self.staged = staged;
    }

    /// Groups rows (each one's user key, then each one's event, in the same order): users
    /// numbered in order of their first row, each user's events in row order, contiguous
    /// in `events`.
    fn group(&mut self, keys: impl Iterator<Item = u128>, rows: impl ExactSizeIterator<Item = Event>) {
        self.ordinal_of.clear();
        self.keys.clear();
        self.ordinals.clear();
        self.counts.clear();
        self.number_users(keys);
        self.place(rows);
    }

    /// Numbers the users of `keys` (one per row), counting each one's rows.
    fn number_users(&mut self, keys: impl Iterator<Item = u128>) {
        let EventsByUser { ordinal_of, keys: user_keys, ordinals, counts, .. } = self;
        // A user's rows often come together (exports sorted by user): the map is asked
        // once per run of them.
        let mut previous: Option<(u128, u32)> = None;
        for key in keys {
            let ordinal = match previous {
                Some((previous_key, ordinal)) if previous_key == key => ordinal,
                _ => {
                    let keys_so_far = &*user_keys;
                    let found = ordinal_of.entry(
                        table_hash(key),
                        |&ordinal| keys_so_far[ordinal as usize] == key,
                        |&ordinal| table_hash(keys_so_far[ordinal as usize]),
                    );
                    match found {
                        Entry::Occupied(entry) => *entry.get(),
                        Entry::Vacant(entry) => {
                            let next = user_keys.len() as u32;
                            entry.insert(next);
                            user_keys.push(key);
                            counts.push(0);
                            next
                        }
                    }
                }
            };
            previous = Some((key, ordinal));
            counts[ordinal as usize] += 1;
            ordinals.push(ordinal);
        }
    }

    /// Writes each event (of the rows numbered, in the same order) to its user's next slot.
    fn place(&mut self, rows: impl ExactSizeIterator<Item = Event>) {
        let EventsByUser { counts, offsets, events, ordinals, .. } = self;
        offsets.clear();
        offsets.push(0);
        let mut total = 0u32;
        for count in counts.iter_mut() {
            // Each count becomes its user's first free slot.
            let first = total;
            total += *count;
            offsets.push(total);
            *count = first;
        }
        // Not cleared first: every slot is written below.
        events.resize(rows.len(), Event::default());
        for (event, &ordinal) in rows.zip(ordinals.iter()) {
            let slot = &mut counts[ordinal as usize];
            events[*slot as usize] = event;
            *slot += 1;
        }
    }

    /// Calls `visit` with each user grouped: its key and events.
    fn visit_users(&mut self, visit: &mut impl FnMut(u128, &mut [Event])) {
        let mut rest = self.events.as_mut_slice();
        for (&key, w) in self.keys.iter().zip(self.offsets.windows(2)) {
            let (user, after) = std::mem::take(&mut rest).split_at_mut((w[1] - w[0]) as usize);
            rest = after;
            visit(key, user);
        }
    }
}
