//! How a partial aggregate is stored between the attribute and reduce stages: MessagePack
//! with field names (docs/operations.md, "Partial files"). The engine's `Partial` leaves empty
//! fields out, which needs a self-describing format; MessagePack keeps every `f64` as its
//! eight bytes, so a partial reads back bit for bit without the decimal formatting and
//! parsing that JSON partials spent most of the reduce stage on. Partials of older workers
//! (JSON, `….json`) still read.

use anyhow::Context;
use mta_core::Partial;

/// The extension of a partial written now; `LEGACY_EXTENSION` is an older worker's JSON.
pub const EXTENSION: &str = "msgpack";
const LEGACY_EXTENSION: &str = "json";

/// The partial's bytes.
pub fn encode(partial: &Partial) -> anyhow::Result<Vec<u8>> {
    rmp_serde::to_vec_named(partial).context("a partial could not be encoded")
}

/// The partial stored under `key`, in either format (told apart by the first byte: a JSON
/// partial is an object, `{`; a MessagePack one a map, never that byte).
pub fn decode(key: &str, bytes: &[u8]) -> anyhow::Result<Partial> {
    let partial = if bytes.first() == Some(&b'{') {
        serde_json::from_slice(bytes).map_err(anyhow::Error::from)
    } else {
        rmp_serde::from_slice(bytes).map_err(anyhow::Error::from)
    };
    partial.with_context(|| format!("{key} is unreadable"))
}

/// The partials to read among a job's keys, each unit once: a unit re-run after an upgrade
/// writes `unit.msgpack` beside an older worker's `unit.json` of the same rows, which is
/// then left out (read both and the unit would count twice).
pub fn files_to_read<K: AsRef<str>>(keys: Vec<K>) -> Vec<K> {
    let stem = |key: &K, extension: &str| {
        key.as_ref().strip_suffix(extension).and_then(|s| s.strip_suffix('.')).map(str::to_owned)
    };
    let rewritten: std::collections::HashSet<String> = keys.iter().filter_map(|key| stem(key, EXTENSION)).collect();
    keys.into_iter().filter(|key| stem(key, LEGACY_EXTENSION).is_none_or(|s| !rewritten.contains(&s))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mta_core::chunk::{ChannelDict, EventChunk, NO_CHANNEL, touch_key};
    use mta_core::{InputKind, OptionsSpec};

    /// A partial with every kind of sum: rule credits of values that are not exact in
    /// decimal, a Markov chain, periods, a breakdown by campaign and reports.
    fn sample() -> Partial {
        let spec = OptionsSpec {
            period: Some("week".parse().expect("a period")),
            breakdown: Some(vec!["campaign".into()]),
            ..Default::default()
        };
        let options = spec.validate(InputKind::Events).expect("valid options");
        let mut chunk = EventChunk::with_capacity(6, false);
        chunk.channels = ChannelDict::of_touch_keys();
        // (user, (channel, campaign) of a touch or none on a conversion, value)
        let rows = [
            (1, Some(("search", "spring")), 0.0),
            (1, Some(("email", "news")), 0.0),
            (1, None, 19.99),
            (2, Some(("social", "spring")), 0.0),
            (2, None, 1.0 / 3.0),
            (3, Some(("search", "fall")), 0.0),
        ];
        for (row, (user, touch, value)) in rows.into_iter().enumerate() {
            chunk.user_keys.push(user);
            chunk.timestamps.push(86_400_000_000 * row as i64 + 7);
            let id = touch
                .map_or(NO_CHANNEL, |(channel, campaign)| chunk.channels.id(&touch_key(channel, &[Some(campaign)])));
            chunk.channel_ids.push(id);
            chunk.is_conversion.push(touch.is_none());
            chunk.values.push(value);
            chunk.row_numbers.push(row as u64 + 1);
        }
        Partial::from_events(&chunk, &options).expect("a partial")
    }

    #[test]
    fn a_partial_reads_back_bit_for_bit_and_an_older_json_partial_still_reads() {
        let partial = sample();
        assert!(partial.markov.is_some() && !partial.periods.is_empty() && partial.breakdown.is_some());
        let bytes = encode(&partial).expect("encoded");
        assert_ne!(bytes.first(), Some(&b'{'));
        let back = decode("p00000.msgpack", &bytes).expect("decoded");
        // Bit for bit: the serialised forms are equal (`PartialEq` on floats would let -0.0 pass as 0.0).
        assert_eq!(encode(&back).expect("encoded"), bytes);
        let json = serde_json::to_vec(&partial).expect("json");
        let from_json = decode("p00000.json", &json).expect("an older worker's partial");
        assert_eq!(encode(&from_json).expect("encoded"), bytes);
    }

    #[test]
    fn a_damaged_partial_names_its_key() {
        let bytes = encode(&sample()).expect("encoded");
        for cut in [1, bytes.len() / 2, bytes.len() - 1] {
            let error = decode("tenants/t/jobs/j/partials/p00007.msgpack", &bytes[..cut]).expect_err("cut short");
            assert!(format!("{error:#}").contains("p00007.msgpack is unreadable"), "{error:#}");
        }
        let error = decode("p00001.json", b"{\"channels\":").expect_err("cut short");
        assert!(format!("{error:#}").contains("p00001.json is unreadable"), "{error:#}");
    }

    #[test]
    fn an_older_json_partial_with_a_rewritten_twin_is_read_once() {
        let keys =
            vec!["partials/p00000.json", "partials/p00000.msgpack", "partials/p00001.json", "partials/s0000.msgpack"];
        assert_eq!(
            files_to_read(keys),
            vec!["partials/p00000.msgpack", "partials/p00001.json", "partials/s0000.msgpack"]
        );
    }
}
