//! `model.safetensors.index.json`: which shard file holds which tensor.
//!
//! ```json
//! {"metadata": {"total_size": 123}, "weight_map": {"lm_head.weight": "model-00002-of-00002.safetensors"}}
//! ```

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::error::LoadError;
use super::json::{describe, first_duplicate, Pairs};

/// File name of the shard index in a Hugging Face folder.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// A parsed shard index.
#[derive(Debug)]
pub(crate) struct ShardIndex {
    /// `(tensor, shard file name)` in file order; names are unique.
    pub weight_map: Vec<(String, String)>,
    /// The index's `metadata` object, if any (e.g. `total_size`).
    pub metadata: Option<Value>,
}

#[derive(Deserialize)]
struct RawIndex {
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(default)]
    weight_map: Option<Pairs<Value>>,
}

/// Parses the index text read from `index`.
pub(crate) fn parse(index: &Path, text: &[u8]) -> Result<ShardIndex, LoadError> {
    let invalid = |problem: String| LoadError::InvalidIndex {
        index: index.to_path_buf(),
        problem,
    };
    let raw: RawIndex = match serde_json::from_slice(text) {
        Ok(raw) => raw,
        Err(e) if e.classify() == serde_json::error::Category::Data => {
            return Err(invalid(format!("not a shard index: {e}")));
        }
        Err(error) => {
            return Err(LoadError::IndexJson {
                index: index.to_path_buf(),
                error,
            })
        }
    };
    let Some(Pairs(pairs)) = raw.weight_map else {
        return Err(invalid("has no `weight_map`".to_string()));
    };
    if let Some(name) = first_duplicate(&pairs) {
        return Err(LoadError::DuplicateTensor {
            file: index.to_path_buf(),
            tensor: name.to_string(),
        });
    }
    let mut weight_map = Vec::with_capacity(pairs.len());
    for (tensor, shard) in pairs {
        let Value::String(shard) = shard else {
            return Err(invalid(format!(
                "weight_map: tensor `{tensor}` maps to {}, expected a shard file name",
                describe(&shard)
            )));
        };
        if !is_plain_file_name(&shard) {
            return Err(invalid(format!(
                "weight_map: tensor `{tensor}` maps to `{shard}`, which is not a file name in the index's folder"
            )));
        }
        weight_map.push((tensor, shard));
    }
    Ok(ShardIndex {
        weight_map,
        metadata: raw.metadata,
    })
}

/// Shards must sit beside the index: no separators, no `..`, not empty.
fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_weight_map_in_order() {
        let text = br#"{"metadata": {"total_size": 8}, "weight_map": {"b": "s2.safetensors", "a": "s1.safetensors"}}"#;
        let index = parse(Path::new("i.json"), text).unwrap();
        assert_eq!(
            index.weight_map[0],
            ("b".to_string(), "s2.safetensors".to_string())
        );
        assert_eq!(index.weight_map.len(), 2);
    }

    #[test]
    fn rejects_paths_outside_the_folder() {
        let text = br#"{"weight_map": {"a": "../secret.safetensors"}}"#;
        let err = parse(Path::new("i.json"), text).unwrap_err();
        assert!(matches!(err, LoadError::InvalidIndex { .. }), "{err}");
    }
}
