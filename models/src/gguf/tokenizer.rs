//! The Hugging Face tokenizer files for a GGUF vocabulary: `tokenizer.json` and
//! `tokenizer_config.json`, built exactly as transformers' GGUF loader builds its tokenizer
//! (`integrations/gguf/gguf_tokenizer_mapping.py` in transformers 5), so that our folder
//! tokenizes like `AutoTokenizer.from_pretrained(dir, gguf_file=...)`.
//!
//! Supported: `tokenizer.ggml.model = "gpt2"` (byte-level BPE). What transformers does, step
//! by step, and so what this file does:
//!
//! 1. Vocabulary: each token in the byte-level alphabet as is; any other token is respelled
//!    byte by byte (its UTF-8 bytes through GPT-2's `bytes_to_unicode`). A token spelled twice
//!    keeps its last id.
//! 2. Merges: `tokenizer.ggml.merges` split at the space, unchanged.
//! 3. Added tokens, in this order (a token already added is skipped; a token not in the
//!    vocabulary gets the next id after it):
//!    `<|endoftext|>` (special: `GPT2Tokenizer`'s default unk/bos/eos, added whether or not the
//!    vocabulary has it); every CONTROL token (type 3) spelled in the byte alphabet (special);
//!    every USER_DEFINED token (type 4) present in the vocabulary as written (not special);
//!    then the bos, eos, unk and pad tokens named by their ids (special).
//! 4. Pre-tokenizer: for a `tokenizer.ggml.pre` in transformers' table (llama-bpe, qwen2,
//!    ...), a `Split` on that regex then `ByteLevel` without its own regex; for any other
//!    value, including SmolLM2's `smollm`, GPT-2's `ByteLevel` with its regex. (llama.cpp's own
//!    `smollm` pre-tokenizer also splits digits one by one; transformers does not, and we
//!    follow transformers.)
//! 5. Post-processor: a template adding bos / eos when `tokenizer.ggml.add_bos_token` /
//!    `add_eos_token` say so; decoder: `ByteLevel`.
//!
//! SentencePiece vocabularies (`llama`) and the others are refused with an error naming them.

use std::collections::{HashMap, HashSet};

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::{json, Value};

use super::convert::ConvertError;
use super::reader::GgufFile;

const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const TEKKEN_SPLIT: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN35_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const GPT4O_SPLIT: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// transformers' `GGUF_PRE_TOKENIZER_SPLITS`: `tokenizer.ggml.pre` -> split regex.
pub fn pre_tokenizer_split(pre: &str) -> Option<&'static str> {
    Some(match pre {
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" | "jina-v5-nano" | "dbrx" | "smaug-bpe" => LLAMA3_SPLIT,
        "tekken" => TEKKEN_SPLIT,
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "megrez" => QWEN2_SPLIT,
        "qwen35" => QWEN35_SPLIT,
        "gpt-4o" | "llama4" | "kanana2" | "talkie" | "minimax-m2" => GPT4O_SPLIT,
        _ => return None,
    })
}

/// GPT-2's `bytes_to_unicode`: the character each byte is spelled with. Printable bytes
/// (`!`..=`~`, `¡`..=`¬`, `®`..=`ÿ`) stand for themselves; the other 68 map to U+0100.. in order.
pub fn byte_alphabet() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for (byte, slot) in table.iter_mut().enumerate() {
        let b = byte as u32;
        let printable =
            (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        let code = if printable {
            b
        } else {
            next += 1;
            next - 1
        };
        // All codes are below 0x144: valid chars.
        *slot = char::from_u32(code).unwrap_or('\0');
    }
    table
}

/// Whether `c` is one of the 256 characters of [`byte_alphabet`].
fn in_alphabet(c: char) -> bool {
    let c = c as u32;
    (33..=126).contains(&c) || (161..=172).contains(&c) || (174..=323).contains(&c)
}

/// The files and a few numbers for the summary.
#[derive(Clone, Debug)]
pub struct TokenizerFiles {
    /// `tokenizer.json`.
    pub tokenizer_json: String,
    /// `tokenizer_config.json`.
    pub tokenizer_config: Value,
    /// Distinct tokens in the BPE vocabulary.
    pub vocab_len: usize,
    pub merges: usize,
    /// Entries of `added_tokens`.
    pub added_tokens: usize,
    /// `tokenizer.ggml.pre`, if any.
    pub pre: Option<String>,
}

#[derive(Serialize)]
struct AddedTokenJson<'a> {
    id: u32,
    content: &'a str,
    single_word: bool,
    lstrip: bool,
    rstrip: bool,
    normalized: bool,
    special: bool,
}

/// Vocabulary entries serialized as a JSON object in id order.
struct OrderedVocab<'a>(&'a [(String, u32)]);

impl Serialize for OrderedVocab<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (token, id) in self.0 {
            map.serialize_entry(token, id)?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct BpeJson<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    dropout: Option<f32>,
    unk_token: Option<&'a str>,
    continuing_subword_prefix: &'static str,
    end_of_word_suffix: &'static str,
    fuse_unk: bool,
    byte_fallback: bool,
    ignore_merges: bool,
    vocab: OrderedVocab<'a>,
    merges: Vec<[&'a str; 2]>,
}

#[derive(Serialize)]
struct TokenizerJson<'a> {
    version: &'static str,
    truncation: Option<()>,
    padding: Option<()>,
    added_tokens: Vec<AddedTokenJson<'a>>,
    normalizer: Option<()>,
    pre_tokenizer: Value,
    post_processor: Value,
    decoder: Value,
    model: BpeJson<'a>,
}

/// The added-token table as tokenizers' `AddedVocabulary` grows it.
struct Added<'a> {
    vocab: &'a HashMap<String, u32>,
    tokens: Vec<(String, u32, bool)>,
    seen: HashSet<String>,
}

impl Added<'_> {
    fn add(&mut self, content: &str, special: bool) {
        if content.is_empty() || self.seen.contains(content) {
            return;
        }
        let model_len = self.vocab.len() as u32;
        let id = match self.vocab.get(content) {
            Some(&id) => id,
            None => match self.tokens.iter().map(|t| t.1).max() {
                Some(max) if max >= model_len || model_len == 0 => max + 1,
                _ => model_len,
            },
        };
        self.seen.insert(content.to_string());
        self.tokens.push((content.to_string(), id, special));
    }

    fn id_of(&self, content: &str) -> Option<u32> {
        self.tokens
            .iter()
            .find(|t| t.0 == content)
            .map(|t| t.1)
            .or_else(|| self.vocab.get(content).copied())
    }
}

const TYPE_CONTROL: i128 = 3;
const TYPE_USER_DEFINED: i128 = 4;

/// Builds `tokenizer.json` and `tokenizer_config.json` from the file's `tokenizer.*` keys.
/// `model_max_length` goes into `tokenizer_config.json` (the model's context length).
pub fn build_tokenizer(
    gguf: &GgufFile,
    model_max_length: Option<u64>,
) -> Result<TokenizerFiles, ConvertError> {
    let file = gguf.path().to_path_buf();
    let invalid = |problem: String| ConvertError::InvalidTokenizer {
        file: file.clone(),
        problem,
    };
    let model = gguf.require_str("tokenizer.ggml.model")?;
    if model != "gpt2" {
        return Err(ConvertError::UnsupportedTokenizer {
            file: file.clone(),
            model: model.to_string(),
        });
    }
    let tokens = gguf
        .get_string_array("tokenizer.ggml.tokens")?
        .ok_or_else(|| gguf.missing("tokenizer.ggml.tokens"))?;
    let token_types = gguf
        .get_int_array("tokenizer.ggml.token_type")?
        .unwrap_or_default();
    let merges_raw = gguf
        .get_string_array("tokenizer.ggml.merges")?
        .ok_or_else(|| {
            invalid(
                "`tokenizer.ggml.merges` is missing (deriving merges from scores is not supported)"
                    .to_string(),
            )
        })?;
    let pre = gguf.get_str("tokenizer.ggml.pre")?.map(str::to_string);

    // 1. Vocabulary.
    let alphabet = byte_alphabet();
    let spelled: Vec<String> = tokens
        .iter()
        .map(|t| {
            if t.chars().all(in_alphabet) {
                t.clone()
            } else {
                t.bytes().map(|b| alphabet[b as usize]).collect()
            }
        })
        .collect();
    let mut vocab: HashMap<String, u32> = HashMap::with_capacity(tokens.len());
    for (id, token) in spelled.iter().enumerate() {
        let id = u32::try_from(id).map_err(|_| invalid("more than 2^32 tokens".to_string()))?;
        vocab.insert(token.clone(), id);
    }
    let mut ordered: Vec<(String, u32)> = vocab.iter().map(|(t, &id)| (t.clone(), id)).collect();
    ordered.sort_by_key(|e| e.1);

    // 2. Merges.
    let mut merges = Vec::with_capacity(merges_raw.len());
    for (i, merge) in merges_raw.iter().enumerate() {
        let parts: Vec<&str> = merge.split(' ').collect();
        match parts[..] {
            [a, b] => merges.push([a, b]),
            _ => {
                return Err(invalid(format!(
                    "merge {i} ({merge:?}) is not two tokens separated by one space"
                )))
            }
        }
    }

    // Named special tokens, by id.
    let named = |key: &str| -> Result<Option<&str>, ConvertError> {
        match gguf.get_u64(key)? {
            None => Ok(None),
            Some(id) => match usize::try_from(id).ok().and_then(|i| tokens.get(i)) {
                Some(token) => Ok(Some(token.as_str())),
                None => Err(invalid(format!(
                    "`{key}` is {id}, past the {} tokens",
                    tokens.len()
                ))),
            },
        }
    };
    let bos = named("tokenizer.ggml.bos_token_id")?;
    let eos = named("tokenizer.ggml.eos_token_id")?;
    let unk = named("tokenizer.ggml.unknown_token_id")?;
    let pad = named("tokenizer.ggml.padding_token_id")?;

    // 3. Added tokens.
    let mut added = Added {
        vocab: &vocab,
        tokens: Vec::new(),
        seen: HashSet::new(),
    };
    added.add("<|endoftext|>", true);
    for (token, &ty) in tokens.iter().zip(&token_types) {
        if ty == TYPE_CONTROL && token.chars().all(in_alphabet) {
            added.add(token, true);
        }
    }
    for (token, &ty) in tokens.iter().zip(&token_types) {
        if ty == TYPE_USER_DEFINED && vocab.contains_key(token.as_str()) {
            added.add(token, false);
        }
    }
    for token in [bos, eos, unk, pad].into_iter().flatten() {
        added.add(token, true);
    }
    let mut added_tokens: Vec<AddedTokenJson> = added
        .tokens
        .iter()
        .map(|(content, id, special)| AddedTokenJson {
            id: *id,
            content,
            single_word: false,
            lstrip: false,
            rstrip: false,
            normalized: false,
            special: *special,
        })
        .collect();
    added_tokens.sort_by_key(|t| t.id);

    // 4. Pre-tokenizer.
    let pre_tokenizer = match pre.as_deref().and_then(pre_tokenizer_split) {
        Some(regex) => json!({
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": false},
                {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
            ],
        }),
        None => {
            json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true})
        }
    };

    // 5. Post-processor and decoder.
    let add_bos = gguf
        .get_bool("tokenizer.ggml.add_bos_token")?
        .unwrap_or(false)
        && bos.is_some();
    let add_eos = gguf
        .get_bool("tokenizer.ggml.add_eos_token")?
        .unwrap_or(false)
        && eos.is_some();
    let special =
        |token: &str, type_id: u32| json!({"SpecialToken": {"id": token, "type_id": type_id}});
    let sequence = |id: &str, type_id: u32| json!({"Sequence": {"id": id, "type_id": type_id}});
    let mut single = Vec::new();
    let mut pair_tail = Vec::new();
    let mut special_tokens = serde_json::Map::new();
    for (token, enabled) in [(bos, add_bos), (eos, add_eos)] {
        if let (Some(token), true) = (token, enabled) {
            let id = added.id_of(token).unwrap_or_default();
            special_tokens.insert(
                token.to_string(),
                json!({"id": token, "ids": [id], "tokens": [token]}),
            );
        }
    }
    if let (Some(bos), true) = (bos, add_bos) {
        single.push(special(bos, 0));
        pair_tail.push(special(bos, 1));
    }
    single.push(sequence("A", 0));
    pair_tail.push(sequence("B", 1));
    if let (Some(eos), true) = (eos, add_eos) {
        single.push(special(eos, 0));
        pair_tail.push(special(eos, 1));
    }
    let mut pair = single.clone();
    pair.extend(pair_tail);
    let post_processor = json!({
        "type": "TemplateProcessing",
        "single": single,
        "pair": pair,
        "special_tokens": special_tokens,
    });
    let decoder = json!({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true});

    let added_len = added_tokens.len();
    let json = TokenizerJson {
        version: "1.0",
        truncation: None,
        padding: None,
        added_tokens,
        normalizer: None,
        pre_tokenizer,
        post_processor,
        decoder,
        model: BpeJson {
            kind: "BPE",
            dropout: None,
            unk_token: None,
            continuing_subword_prefix: "",
            end_of_word_suffix: "",
            fuse_unk: false,
            byte_fallback: false,
            ignore_merges: false,
            vocab: OrderedVocab(&ordered),
            merges,
        },
    };
    let tokenizer_json = serde_json::to_string(&json)
        .map_err(|e| ConvertError::Internal(format!("serializing tokenizer.json: {e}")))?;

    let mut config = serde_json::Map::new();
    config.insert("add_bos_token".into(), add_bos.into());
    config.insert("add_eos_token".into(), add_eos.into());
    for (name, token) in [
        ("bos_token", bos),
        ("eos_token", eos),
        ("unk_token", unk),
        ("pad_token", pad),
    ] {
        config.insert(name.into(), token.map_or(Value::Null, Value::from));
    }
    if let Some(template) = gguf.get_str("tokenizer.chat_template")? {
        config.insert("chat_template".into(), template.into());
    }
    config.insert("clean_up_tokenization_spaces".into(), false.into());
    if let Some(len) = model_max_length {
        config.insert("model_max_length".into(), len.into());
    }
    config.insert("tokenizer_class".into(), "PreTrainedTokenizerFast".into());

    Ok(TokenizerFiles {
        tokenizer_json,
        tokenizer_config: Value::Object(config),
        vocab_len: ordered.len(),
        merges: merges_raw.len(),
        added_tokens: added_len,
        pre,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphabet_matches_gpt2() {
        let table = byte_alphabet();
        assert_eq!(table[b'!' as usize], '!');
        assert_eq!(table[b' ' as usize], 'Ġ');
        assert_eq!(table[b'\n' as usize], 'Ċ');
        assert_eq!(table[0], 'Ā');
        assert_eq!(table[0xad], 'Ń');
        let distinct: HashSet<char> = table.iter().copied().collect();
        assert_eq!(distinct.len(), 256);
        assert!(table.iter().all(|&c| in_alphabet(c)));
        let inside = (0..0x200u32)
            .filter_map(char::from_u32)
            .filter(|&c| in_alphabet(c))
            .count();
        assert_eq!(inside, 256);
    }
}
