//! Decoded rows in columnar form: what ingestion produces, what the split stage
//! partitions by user, and what one attribute job consumes.

use rustc_hash::FxHashMap;
use xxhash_rust::xxh3::xxh3_128;

use crate::channel_rules::AppliedChannelRules;

/// Channel id of a row that has no channel (a conversion row, usually).
pub const NO_CHANNEL: u32 = u32::MAX;

/// Segment id of a row with no value in the `segment_by` column (shown as `(none)`).
pub const NO_SEGMENT: u32 = u32::MAX;

/// A channel id and the conversion flag packed in one `u32`, for compact row records:
/// the id in the low 31 bits ([`NO_CHANNEL`] as all ones there), the flag in the top bit.
/// Channel ids are dense, far below 2^31.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaggedChannel(u32);

impl TaggedChannel {
    const CONVERSION: u32 = 1 << 31;
    const STORED_NO_CHANNEL: u32 = TaggedChannel::CONVERSION - 1;

    pub fn new(channel: u32, is_conversion: bool) -> TaggedChannel {
        let stored = if channel == NO_CHANNEL { TaggedChannel::STORED_NO_CHANNEL } else { channel };
        debug_assert!(stored <= TaggedChannel::STORED_NO_CHANNEL, "channel ids stay below 2^31");
        TaggedChannel(stored | if is_conversion { TaggedChannel::CONVERSION } else { 0 })
    }

    pub fn from_bits(bits: u32) -> TaggedChannel {
        TaggedChannel(bits)
    }

    pub fn bits(self) -> u32 {
        self.0
    }

    pub fn channel(self) -> u32 {
        match self.0 & !TaggedChannel::CONVERSION {
            TaggedChannel::STORED_NO_CHANNEL => NO_CHANNEL,
            stored => stored,
        }
    }

    pub fn is_conversion(self) -> bool {
        self.0 & TaggedChannel::CONVERSION != 0
    }
}

/// Channel names interned to dense ids, in first-seen order. With a breakdown
/// (`options.breakdown`) the names are touch keys ([`touch_key`]): a row's channel and its
/// breakdown values in one name, so that chunks, chunk files and spill records still carry
/// one `u32` per row; such a dictionary also counts the distinct channels among its keys.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChannelDict {
    names: Vec<String>,
    ids: FxHashMap<String, u32>,
    /// With touch keys: the distinct channels among them.
    key_channels: Option<Box<rustc_hash::FxHashSet<String>>>,
}

impl ChannelDict {
    /// An empty dictionary of touch keys.
    pub fn of_touch_keys() -> ChannelDict {
        ChannelDict { key_channels: Some(Default::default()), ..Default::default() }
    }

    /// True when the names are touch keys.
    pub fn has_touch_keys(&self) -> bool {
        self.key_channels.is_some()
    }

    /// Distinct channels: the names, or the channels of the touch keys.
    pub fn channel_count(&self) -> usize {
        self.key_channels.as_ref().map_or(self.names.len(), |channels| channels.len())
    }

    pub fn id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.to_owned());
        self.ids.insert(name.to_owned(), id);
        if let Some(channels) = &mut self.key_channels {
            let channel = touch_key_channel(name);
            if !channels.contains(channel.as_ref()) {
                channels.insert(channel.into_owned());
            }
        }
        id
    }

    /// The ids in `self` of every name of `other` (added when new); a dictionary still
    /// empty takes on `other`'s touch keys.
    pub fn ids_of(&mut self, other: &ChannelDict) -> Vec<u32> {
        if self.names.is_empty() && other.has_touch_keys() && !self.has_touch_keys() {
            self.key_channels = Some(Default::default());
        }
        other.names.iter().map(|name| self.id(name)).collect()
    }

    pub fn get(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    pub fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// Separates the parts of a touch key: the channel, then each breakdown value.
const KEY_SEPARATOR: char = '\u{1f}';
/// Escapes a separator or itself inside a part.
const KEY_ESCAPE: char = '\u{1b}';

/// The touch key of a channel and its breakdown values (`None`: the row has no value in
/// that column): the parts joined by a separator, any separator or escape character inside
/// a part escaped, so any text round-trips through [`decode_touch_key`].
pub fn touch_key(channel: &str, values: &[Option<&str>]) -> String {
    let mut key = String::new();
    push_touch_key(&mut key, channel, values);
    key
}

/// [`touch_key`] appended to `key`.
pub fn push_touch_key(key: &mut String, channel: &str, values: &[Option<&str>]) {
    push_key_part(key, channel);
    for value in values {
        key.push(KEY_SEPARATOR);
        // A missing value is an empty part: present values are never empty.
        if let Some(value) = value {
            push_key_part(key, value);
        }
    }
}

fn push_key_part(key: &mut String, part: &str) {
    if !part.contains([KEY_SEPARATOR, KEY_ESCAPE]) {
        key.push_str(part);
        return;
    }
    for c in part.chars() {
        match c {
            KEY_SEPARATOR => key.push_str("\u{1b}s"),
            KEY_ESCAPE => key.push_str("\u{1b}e"),
            c => key.push(c),
        }
    }
}

/// The channel and the breakdown values (`None` where missing) of a touch key.
pub fn decode_touch_key(key: &str) -> (String, Vec<Option<String>>) {
    let mut parts = Vec::new();
    let mut part = String::new();
    let mut chars = key.chars();
    while let Some(c) = chars.next() {
        match c {
            KEY_SEPARATOR => parts.push(std::mem::take(&mut part)),
            KEY_ESCAPE => match chars.next() {
                Some('s') => part.push(KEY_SEPARATOR),
                Some('e') => part.push(KEY_ESCAPE),
                Some(other) => part.push(other),
                None => {}
            },
            c => part.push(c),
        }
    }
    parts.push(part);
    let mut parts = parts.into_iter();
    let channel = parts.next().unwrap_or_default();
    (channel, parts.map(|p| (!p.is_empty()).then_some(p)).collect())
}

/// The channel of a touch key.
pub fn touch_key_channel(key: &str) -> std::borrow::Cow<'_, str> {
    let end = key.find(KEY_SEPARATOR).unwrap_or(key.len());
    let channel = &key[..end];
    if channel.contains(KEY_ESCAPE) { decode_touch_key(channel).0.into() } else { channel.into() }
}

/// The journey key of a user id: a 128-bit hash, so that grouping and partitioning never
/// compare strings. Two distinct ids collide with probability about n²/2¹²⁹ (for a
/// billion users, below 10⁻²⁰).
pub fn user_key(user_id: &[u8]) -> u128 {
    xxh3_128(user_id)
}

/// Which of `partitions` a user's rows go to. Uses the upper hash bits, independent
/// of the bits hash maps use inside a partition.
pub fn partition_of(user_key: u128, partitions: u32) -> u32 {
    (((user_key >> 64) as u64 as u128 * partitions as u128) >> 64) as u32
}

/// Event-level rows (docs/user-guide.md, "Input formats"), columnar.
#[derive(Debug, Clone, Default)]
pub struct EventChunk {
    pub channels: ChannelDict,
    /// The rules that named the channels of a decoded block, if rules did (see
    /// `ingest::Block::options`); not carried further.
    pub channel_rules: Option<AppliedChannelRules>,
    pub user_keys: Vec<u128>,
    /// The user id strings, kept only when per-journey credits are exported.
    pub user_ids: Option<Vec<String>>,
    /// UTC microseconds.
    pub timestamps: Vec<i64>,
    /// Index into `channels`, or [`NO_CHANNEL`].
    pub channel_ids: Vec<u32>,
    pub is_conversion: Vec<bool>,
    /// Conversion value (0 on touches).
    pub values: Vec<f64>,
    /// 1-based row number in the original file: the tie-breaker of docs/user-guide.md, "Journeys" and the
    /// row named in error details.
    pub row_numbers: Vec<u64>,
    /// With `segment_by`: the values of the segment column met so far (a dictionary like
    /// the channels', so every hand-over carries one `u32` per row), and each row's id in it
    /// ([`NO_SEGMENT`] where the row has none); empty otherwise.
    pub segments: ChannelDict,
    pub segment_ids: Vec<u32>,
}

impl EventChunk {
    /// An empty chunk with room for `rows` rows (and their user ids when kept).
    pub fn with_capacity(rows: usize, keep_user_ids: bool) -> EventChunk {
        EventChunk {
            user_keys: Vec::with_capacity(rows),
            user_ids: keep_user_ids.then(|| Vec::with_capacity(rows)),
            timestamps: Vec::with_capacity(rows),
            channel_ids: Vec::with_capacity(rows),
            is_conversion: Vec::with_capacity(rows),
            values: Vec::with_capacity(rows),
            row_numbers: Vec::with_capacity(rows),
            ..Default::default()
        }
    }

    pub fn len(&self) -> usize {
        self.user_keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.user_keys.is_empty()
    }

    /// Replaces touch keys (a breakdown's, see [`touch_key`]) by their channels, for readers
    /// that want channels only (the per-journey credits).
    pub fn collapse_touch_keys(&mut self) {
        let mut channels = ChannelDict::default();
        let map: Vec<u32> = self.channels.names().iter().map(|key| channels.id(&touch_key_channel(key))).collect();
        for id in &mut self.channel_ids {
            if *id != NO_CHANNEL {
                *id = map[*id as usize];
            }
        }
        self.channels = channels;
    }

    /// Removes every row, keeping the channel dictionary and the columns' memory for the
    /// next rows.
    pub fn clear_rows(&mut self) {
        self.user_keys.clear();
        if let Some(ids) = &mut self.user_ids {
            ids.clear();
        }
        self.timestamps.clear();
        self.channel_ids.clear();
        self.is_conversion.clear();
        self.values.clear();
        self.row_numbers.clear();
        self.segment_ids.clear();
    }

    /// The rows of one conversion type (`options.conversion_types`): every touch, and the
    /// conversion rows whose segment id is `type_id` (none when `None`: the chunk has no
    /// conversion of that type, its journeys are null journeys).
    pub fn of_conversion_type(&self, type_id: Option<u32>) -> EventChunk {
        let keep: Vec<usize> = (0..self.len())
            .filter(|&row| !self.is_conversion[row] || type_id.is_some_and(|id| self.segment_ids.get(row) == Some(&id)))
            .collect();
        let pick = |column: &[u64]| keep.iter().map(|&row| column[row]).collect::<Vec<_>>();
        EventChunk {
            channels: self.channels.clone(),
            channel_rules: self.channel_rules,
            user_keys: keep.iter().map(|&row| self.user_keys[row]).collect(),
            user_ids: self.user_ids.as_ref().map(|ids| keep.iter().map(|&row| ids[row].clone()).collect()),
            timestamps: keep.iter().map(|&row| self.timestamps[row]).collect(),
            channel_ids: keep.iter().map(|&row| self.channel_ids[row]).collect(),
            is_conversion: keep.iter().map(|&row| self.is_conversion[row]).collect(),
            values: keep.iter().map(|&row| self.values[row]).collect(),
            row_numbers: pick(&self.row_numbers),
            segments: ChannelDict::default(),
            segment_ids: Vec::new(),
        }
    }

    /// True when the rows carry segment ids (`segment_by`).
    pub fn has_segments(&self) -> bool {
        !self.segment_ids.is_empty()
    }

    /// The segment value of row `row` (`None`: the row has none).
    pub fn segment_of(&self, row: usize) -> Option<&str> {
        match self.segment_ids.get(row) {
            Some(&id) if id != NO_SEGMENT => Some(self.segments.name(id)),
            _ => None,
        }
    }
}

/// Path-level rows (docs/user-guide.md, "Input formats"), columnar; paths flattened with offsets.
#[derive(Debug, Clone, Default)]
pub struct PathChunk {
    pub channels: ChannelDict,
    /// `path_offsets[i]..path_offsets[i + 1]` indexes `path_channels` for row i.
    pub path_offsets: Vec<u32>,
    pub path_channels: Vec<u32>,
    pub conversions: Vec<f64>,
    pub values: Vec<f64>,
    pub nulls: Vec<f64>,
    pub row_numbers: Vec<u64>,
}

impl PathChunk {
    pub fn len(&self) -> usize {
        self.conversions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conversions.is_empty()
    }

    pub fn path(&self, row: usize) -> &[u32] {
        let start = if row == 0 { 0 } else { self.path_offsets[row - 1] as usize };
        &self.path_channels[start..self.path_offsets[row] as usize]
    }

    /// Appends one row; `path_offsets` holds the end offset of each row.
    pub fn push(&mut self, path: &[u32], conversions: f64, value: f64, nulls: f64, row_number: u64) {
        self.path_channels.extend_from_slice(path);
        self.path_offsets.push(self.path_channels.len() as u32);
        self.conversions.push(conversions);
        self.values.push(value);
        self.nulls.push(nulls);
        self.row_numbers.push(row_number);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_cover_the_range_evenly() {
        let mut counts = [0u32; 7];
        for i in 0..70_000u32 {
            counts[partition_of(user_key(format!("u{i}").as_bytes()), 7) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (9_000..11_000).contains(&c)), "{counts:?}");
    }

    #[test]
    fn a_tagged_channel_keeps_its_channel_and_flag() {
        for channel in [0, 1, 99_999, NO_CHANNEL] {
            for is_conversion in [false, true] {
                let tagged = TaggedChannel::from_bits(TaggedChannel::new(channel, is_conversion).bits());
                assert_eq!((tagged.channel(), tagged.is_conversion()), (channel, is_conversion));
            }
        }
    }

    #[test]
    fn touch_keys_round_trip_whatever_their_text() {
        let odd = "a\u{1f}b\u{1b}s\u{1b}";
        for (channel, values) in [
            ("email", vec![Some("spring"), None]),
            (odd, vec![Some(odd), Some("")]),
            ("", vec![None]),
            ("Paid Search", vec![Some("x,y\n\"z\"")]),
        ] {
            let key = touch_key(channel, &values);
            let (c, v) = decode_touch_key(&key);
            assert_eq!(c, channel);
            assert_eq!(touch_key_channel(&key), channel);
            // An empty value is no value.
            let want: Vec<Option<String>> =
                values.iter().map(|v| v.filter(|v| !v.is_empty()).map(str::to_owned)).collect();
            assert_eq!(v, want, "{key:?}");
        }
        assert_ne!(touch_key("a", &[Some("b\u{1f}c")]), touch_key("a", &[Some("b"), Some("c")]));
        let mut dict = ChannelDict::of_touch_keys();
        dict.id(&touch_key("email", &[Some("a")]));
        dict.id(&touch_key("email", &[Some("b")]));
        dict.id(&touch_key("search", &[None]));
        assert_eq!((dict.len(), dict.channel_count()), (3, 2));
        let mut global = ChannelDict::default();
        assert_eq!(global.ids_of(&dict), [0, 1, 2]);
        assert_eq!(global.channel_count(), 2);
    }

    #[test]
    fn path_rows_round_trip() {
        let mut chunk = PathChunk::default();
        chunk.push(&[0, 1], 1.0, 2.0, 0.0, 1);
        chunk.push(&[], 0.5, 0.0, 1.0, 2);
        chunk.push(&[2], 0.0, 0.0, 3.0, 3);
        assert_eq!(chunk.path(0), [0, 1]);
        assert!(chunk.path(1).is_empty());
        assert_eq!(chunk.path(2), [2]);
    }
}
