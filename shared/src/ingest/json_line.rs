//! One NDJSON line parsed into its fields, borrowed from the line where no escape forces a
//! copy, in the line's order. A line holds a handful of keys, so finding one by a scan is
//! cheaper than building a hashed map per line (which was most of reading NDJSON).

use std::borrow::Cow;
use std::fmt;

use serde::Deserializer as _;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::values::Cell;

/// A JSON object's fields in the order written (a key written twice is found by its last value,
/// as a JSON map keeps it).
#[derive(Debug, Default)]
pub(super) struct JsonObject<'a> {
    fields: Vec<(Cow<'a, str>, JsonValue<'a>)>,
}

#[derive(Debug)]
pub(super) enum JsonValue<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    /// An object whose fields are kept (a dotted column name may lead into it).
    Object(JsonObject<'a>),
    /// An array, or an object whose fields nothing reads.
    Nested,
}

impl<'a> JsonObject<'a> {
    /// Parses `line` as one object; `keep_nested` keeps the fields of nested objects (only a
    /// dotted column name reads them). serde_json's own errors on anything else.
    pub(super) fn parse(line: &'a str, keep_nested: bool) -> Result<JsonObject<'a>, serde_json::Error> {
        let mut deserializer = serde_json::Deserializer::from_str(line);
        let object = deserializer.deserialize_map(ObjectVisitor { keep_nested })?;
        deserializer.end()?;
        Ok(object)
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(key, _)| key.as_ref())
    }

    /// The value of `name`: its key, else the dotted path `a.b` through nested objects.
    pub(super) fn field(&self, name: &str) -> Option<&JsonValue<'a>> {
        self.get(name).or_else(|| {
            let (first, rest) = name.split_once('.')?;
            match self.get(first)? {
                JsonValue::Object(inner) => inner.field(rest),
                _ => None,
            }
        })
    }

    fn get(&self, key: &str) -> Option<&JsonValue<'a>> {
        self.position(key).map(|position| self.value(position))
    }

    /// Where `key` is among the fields (its last occurrence).
    fn position(&self, key: &str) -> Option<usize> {
        self.fields.iter().rposition(|(k, _)| k == key)
    }

    pub(super) fn value(&self, position: usize) -> &JsonValue<'a> {
        &self.fields[position].1
    }

    /// True if a field holds an object whose fields were kept.
    pub(super) fn has_objects(&self) -> bool {
        self.fields.iter().any(|(_, value)| matches!(value, JsonValue::Object(_)))
    }
}

/// A field's value as a cell; an empty string is a missing value, as in CSV.
pub(super) fn json_cell<'c>(value: Option<&'c JsonValue<'_>>) -> Cell<'c> {
    match value {
        None | Some(JsonValue::Null) => Cell::Null,
        Some(JsonValue::Str(s)) if s.is_empty() => Cell::Null,
        Some(JsonValue::Str(s)) => Cell::Str(s),
        Some(JsonValue::Bool(b)) => Cell::Bool(*b),
        Some(JsonValue::Int(i)) => Cell::Int(*i),
        Some(JsonValue::Float(f)) => Cell::Float(*f),
        Some(JsonValue::Object(_) | JsonValue::Nested) => Cell::Nested,
    }
}

struct ObjectVisitor {
    keep_nested: bool,
}

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = JsonObject<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let value = map.next_value_seed(ValueSeed { keep_nested: self.keep_nested })?;
            fields.push((key, value));
        }
        Ok(JsonObject { fields })
    }
}

/// A key, borrowed unless it holds an escape.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(StrVisitor)
    }
}

struct StrVisitor;

impl<'de> Visitor<'de> for StrVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

struct ValueSeed {
    keep_nested: bool,
}

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = JsonValue<'de>;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = JsonValue<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(JsonValue::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(JsonValue::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(JsonValue::Int(v))
    }

    /// Past `i64::MAX` a whole number is read as a float, as serde_json's own values do.
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(i64::try_from(v).map_or(JsonValue::Float(v as f64), JsonValue::Int))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(JsonValue::Float(v))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(JsonValue::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(JsonValue::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(JsonValue::Str(Cow::Owned(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(JsonValue::Nested)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        if self.keep_nested {
            return ObjectVisitor { keep_nested: true }.visit_map(map).map(JsonValue::Object);
        }
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(JsonValue::Nested)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each value as serde_json's own map reads it, field by field (the reader this replaced).
    #[test]
    fn a_line_reads_as_serde_json_values_read_it() {
        let line = r#"{"u":"a\"b","t":"2024-01-01","n":-3,"big":18446744073709551615,"f":1.5e3,"b":true,
            "z":null,"e":"","arr":[1,{"x":2}],"o":{"p":{"q":"deep"},"r":7},"u":"last"}"#;
        let line = line.replace('\n', "");
        let reference: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&line).unwrap();
        for keep_nested in [false, true] {
            let object = JsonObject::parse(&line, keep_nested).unwrap();
            let keys: Vec<&str> = object.keys().collect();
            assert_eq!(keys, ["u", "t", "n", "big", "f", "b", "z", "e", "arr", "o", "u"]);
            for (key, value) in &reference {
                let cell = json_cell(object.field(key));
                let expected = match value {
                    serde_json::Value::Null => Cell::Null,
                    serde_json::Value::String(s) if s.is_empty() => Cell::Null,
                    serde_json::Value::String(s) => Cell::Str(s),
                    serde_json::Value::Bool(b) => Cell::Bool(*b),
                    serde_json::Value::Number(n) => {
                        n.as_i64().map_or_else(|| Cell::Float(n.as_f64().unwrap()), Cell::Int)
                    }
                    _ => Cell::Nested,
                };
                assert_eq!(cell, expected, "{key}");
            }
        }
        let kept = JsonObject::parse(&line, true).unwrap();
        assert!(matches!(kept.field("o.p.q"), Some(JsonValue::Str(s)) if s == "deep"));
        assert!(matches!(kept.field("o.r"), Some(JsonValue::Int(7))));
        assert!(kept.field("o.s").is_none() && kept.field("arr.x").is_none());
        assert!(JsonObject::parse(&line, false).unwrap().field("o.r").is_none());
    }

    #[test]
    fn what_is_not_one_object_is_serde_jsons_error() {
        for bad in ["[1,2]", "\"text\"", "{\"a\":1} x", "{\"a\":}", "{\"a\":1e999}", "{\"a\":\"\\ud800\"}"] {
            let ours = JsonObject::parse(bad, true).unwrap_err();
            let theirs = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(bad).unwrap_err();
            assert_eq!(ours.classify(), theirs.classify(), "{bad}");
            assert_eq!((ours.line(), ours.column()), (theirs.line(), theirs.column()), "{bad}");
        }
    }
}
