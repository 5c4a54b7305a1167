//! JSON helpers shared by the header and index parsers: objects read as ordered key/value
//! pairs (so duplicate keys are seen, where `serde_json::Map` would keep only the last) and
//! short descriptions of values for error messages.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

/// A JSON object as its raw key/value pairs, in file order, duplicates kept.
pub(crate) struct Pairs<T>(pub Vec<(String, T)>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Pairs<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PairsVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for PairsVisitor<T> {
            type Value = Pairs<T>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Pairs<T>, A::Error> {
                // The hint is untrusted input: cap the up-front reservation.
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1024));
                while let Some((key, value)) = map.next_entry::<String, T>()? {
                    pairs.push((key, value));
                }
                Ok(Pairs(pairs))
            }
        }

        deserializer.deserialize_map(PairsVisitor(PhantomData))
    }
}

/// The first key that occurs twice, if any.
pub(crate) fn first_duplicate<T>(pairs: &[(String, T)]) -> Option<&str> {
    let mut seen = std::collections::HashSet::with_capacity(pairs.len());
    pairs
        .iter()
        .map(|(k, _)| k.as_str())
        .find(|k| !seen.insert(*k))
}

/// A short description of a JSON value for messages: `the number -1`, `a string "abc"`,
/// `an array of 3 elements`.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => {
            let mut short: String = s.chars().take(40).collect();
            if short.len() < s.len() {
                short.push_str("...");
            }
            format!("the string {short:?}")
        }
        Value::Array(a) => format!("an array of {} elements", a.len()),
        Value::Object(o) => format!("an object of {} keys", o.len()),
    }
}

/// The kind of the top-level value of `text` for a "not an object" message; serde_json has
/// already seen that the first value is not an object (what follows it may be garbage).
pub(crate) fn describe_text(text: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<Value>(text) {
        return describe(&value);
    }
    let first = text.iter().copied().find(|b| !b.is_ascii_whitespace());
    match first {
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        Some(b'-' | b'0'..=b'9') => "a number",
        _ => "not an object",
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_keep_duplicates_in_order() {
        let p: Pairs<Value> = serde_json::from_str(r#"{"b": 1, "a": 2, "b": 3}"#).unwrap();
        let keys: Vec<_> = p.0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["b", "a", "b"]);
        assert_eq!(first_duplicate(&p.0), Some("b"));
    }

    #[test]
    fn non_objects_are_data_errors() {
        let err = serde_json::from_str::<Pairs<Value>>("[1, 2]")
            .err()
            .unwrap();
        assert_eq!(err.classify(), serde_json::error::Category::Data);
        assert_eq!(describe_text(b"[1, 2]"), "an array of 2 elements");
        assert_eq!(describe_text(b" [1, 2] garbage"), "an array");
    }
}
