//! Reading `tokenizer_config.json` (and the legacy `special_tokens_map.json`) and finding the
//! chat template of a model folder, as transformers 5's `AutoTokenizer.from_pretrained` does.
//!
//! - Named special tokens (`bos_token`, `eos_token`, `unk_token`, `sep_token`, `pad_token`,
//!   `cls_token`, `mask_token`) are strings or AddedToken objects (`{"content": ...}`), or null.
//!   Other top-level `*_token` keys holding a string or AddedToken (e.g. `image_token`) are
//!   model-specific special tokens; transformers 5 puts them in `special_tokens_map` too, so
//!   chat templates see them.
//! - `special_tokens_map.json` is read only when tokenizer_config.json has no
//!   `added_tokens_decoder`, and its values replace the config's (transformers' legacy path).
//! - Chat template, tokenizer precedence: `chat_template.jinja` beside the config, else the
//!   config's `chat_template` (a string, or a list of `{name, template}` of which "default" is
//!   used), else the processor file `chat_template.json` (`{"chat_template": "..."}`; iris looks
//!   there last so VLM folders whose tokenizer has no template still get the processor's).
//!   Processor precedence (`ProcessorMixin.from_pretrained`): `chat_template.json`, else
//!   `chat_template.jinja`.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::error::{Result, TokenizerError};

pub(crate) const TOKENIZER_JSON: &str = "tokenizer.json";
pub(crate) const TOKENIZER_CONFIG: &str = "tokenizer_config.json";
pub(crate) const SPECIAL_TOKENS_MAP: &str = "special_tokens_map.json";
pub(crate) const CHAT_TEMPLATE_JINJA: &str = "chat_template.jinja";
pub(crate) const CHAT_TEMPLATE_JSON: &str = "chat_template.json";
pub(crate) const MODEL_CONFIG: &str = "config.json";

/// The standard named special tokens, in transformers' `SPECIAL_TOKENS_ATTRIBUTES` order.
pub(crate) const NAMED_SPECIAL_TOKENS: [&str; 7] = [
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
];

/// One token as tokenizer_config.json writes it: a string, or an AddedToken object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenSpec {
    pub content: String,
    /// The AddedToken flags when the object form gave them (None: the string form).
    pub flags: Option<TokenFlags>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenFlags {
    pub single_word: bool,
    pub lstrip: bool,
    pub rstrip: bool,
    pub normalized: Option<bool>,
    pub special: Option<bool>,
}

/// Where a chat template was found, and its text.
#[derive(Debug, Clone, Default)]
pub(crate) enum TemplateSource {
    Found {
        source: String,
        origin: String,
    },
    NoDefault {
        path: PathBuf,
        names: Vec<String>,
    },
    #[default]
    Absent,
}

/// Everything iris uses from a folder's tokenizer_config.json / special_tokens_map.json.
#[derive(Debug, Clone, Default)]
pub(crate) struct FolderConfig {
    /// Named and model-specific special tokens, (name, token), in HF's order.
    pub special: Vec<(String, TokenSpec)>,
    /// `extra_special_tokens` / `additional_special_tokens` given as a list.
    pub extra_special: Vec<TokenSpec>,
    /// `added_tokens_decoder`: id -> token, sorted by id.
    pub added_tokens_decoder: Vec<(u32, TokenSpec)>,
    pub add_bos_token: Option<bool>,
    pub add_eos_token: Option<bool>,
    pub tokenizer_class: Option<String>,
    pub legacy: Option<bool>,
    pub add_prefix_space: Option<bool>,
    pub clean_up_tokenization_spaces: bool,
    pub clean_up_for_bpe: bool,
    /// `chat_template` of tokenizer_config.json (not yet merged with the template files).
    pub config_template: TemplateSource,
    /// Named special tokens the config sets to null.
    pub null_named: Vec<String>,
    /// config.json's `model_type` and `tokenizer_class` (they pick transformers' class).
    pub model_type: Option<String>,
    pub model_tokenizer_class: Option<String>,
}

/// Reads a file to a string; Ok(None) when it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TokenizerError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn parse_object(path: &Path, text: &str) -> Result<Map<String, Value>> {
    let value: Value = serde_json::from_str(text).map_err(|e| TokenizerError::json(path, &e))?;
    match value {
        Value::Object(map) => Ok(map),
        other => Err(TokenizerError::Json {
            path: path.to_path_buf(),
            line: 1,
            column: 1,
            message: format!("expected a JSON object, found {}", json_kind(&other)),
        }),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A token value: a string or `{"content": ...}`; Ok(None) for null.
fn token_spec(path: &Path, field: &str, value: &Value) -> Result<Option<TokenSpec>> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(TokenSpec {
            content: s.clone(),
            flags: None,
        })),
        Value::Object(map) => {
            let content = match map.get("content") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => {
                    return Err(TokenizerError::field(
                        path,
                        format!("{field}.content"),
                        format!("expected a string, found {}", json_kind(other)),
                    ))
                }
                None => {
                    return Err(TokenizerError::field(
                        path,
                        field,
                        "an AddedToken object needs a \"content\" string",
                    ))
                }
            };
            let flag = |name: &str| map.get(name).and_then(Value::as_bool);
            Ok(Some(TokenSpec {
                content,
                flags: Some(TokenFlags {
                    single_word: flag("single_word").unwrap_or(false),
                    lstrip: flag("lstrip").unwrap_or(false),
                    rstrip: flag("rstrip").unwrap_or(false),
                    normalized: flag("normalized"),
                    special: flag("special"),
                }),
            }))
        }
        other => Err(TokenizerError::field(
            path,
            field,
            format!(
                "expected a string or an AddedToken object {{\"content\": ...}}, found {}",
                json_kind(other)
            ),
        )),
    }
}

fn opt_bool(path: &Path, map: &Map<String, Value>, field: &str) -> Result<Option<bool>> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(TokenizerError::field(
            path,
            field,
            format!("expected true or false, found {}", json_kind(other)),
        )),
    }
}

fn token_list(path: &Path, field: &str, value: &Value) -> Result<Vec<TokenSpec>> {
    let Value::Array(items) = value else {
        return Err(TokenizerError::field(
            path,
            field,
            format!("expected a list of tokens, found {}", json_kind(value)),
        ));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        if let Some(spec) = token_spec(path, &format!("{field}[{i}]"), item)? {
            out.push(spec);
        }
    }
    Ok(out)
}

impl FolderConfig {
    /// Reads `dir/tokenizer_config.json` (absent: all defaults) and, when the config has no
    /// `added_tokens_decoder`, `dir/special_tokens_map.json`.
    pub(crate) fn read(dir: &Path) -> Result<FolderConfig> {
        let path = dir.join(TOKENIZER_CONFIG);
        let mut cfg = FolderConfig::default();
        let map = match read_optional(&path)? {
            Some(text) => parse_object(&path, &text)?,
            None => Map::new(),
        };

        // Named special tokens, then model-specific `*_token` keys (alphabetical: serde_json
        // does not keep file order; only `special_tokens()` shows the order).
        let mut special: Vec<(String, TokenSpec)> = Vec::new();
        let mut null_named: Vec<String> = Vec::new();
        for name in NAMED_SPECIAL_TOKENS {
            if let Some(value) = map.get(name) {
                match token_spec(&path, name, value)? {
                    Some(spec) => special.push((name.to_string(), spec)),
                    None => null_named.push(name.to_string()),
                }
            }
        }
        for (key, value) in &map {
            if key.ends_with("_token") && !NAMED_SPECIAL_TOKENS.contains(&key.as_str()) {
                // transformers takes only str / AddedToken values (so not add_bos_token).
                let is_token = value.is_string()
                    || value.as_object().is_some_and(|m| m.contains_key("content"));
                if is_token {
                    if let Some(spec) = token_spec(&path, key, value)? {
                        special.push((key.clone(), spec));
                    }
                }
            }
        }
        match map
            .get("extra_special_tokens")
            .or_else(|| map.get("additional_special_tokens"))
        {
            None | Some(Value::Null) => {}
            Some(Value::Object(named)) => {
                for (key, value) in named {
                    let field = format!("extra_special_tokens.{key}");
                    if let Some(spec) = token_spec(&path, &field, value)? {
                        special.retain(|(k, _)| k != key);
                        special.push((key.clone(), spec));
                    }
                }
            }
            Some(value) => {
                let field = if map.contains_key("extra_special_tokens") {
                    "extra_special_tokens"
                } else {
                    "additional_special_tokens"
                };
                cfg.extra_special = token_list(&path, field, value)?;
            }
        }

        match map.get("added_tokens_decoder") {
            None | Some(Value::Null) => {
                // Legacy: special_tokens_map.json, whose values win over the config's.
                let legacy_path = dir.join(SPECIAL_TOKENS_MAP);
                if let Some(text) = read_optional(&legacy_path)? {
                    let legacy = parse_object(&legacy_path, &text)?;
                    for (key, value) in &legacy {
                        if key == "additional_special_tokens" || key == "extra_special_tokens" {
                            if value.is_array() {
                                for spec in token_list(&legacy_path, key, value)? {
                                    if !cfg.extra_special.contains(&spec) {
                                        cfg.extra_special.push(spec);
                                    }
                                }
                            }
                            continue;
                        }
                        if let Some(spec) = token_spec(&legacy_path, key, value)? {
                            special.retain(|(k, _)| k != key);
                            null_named.retain(|k| k != key);
                            special.push((key.clone(), spec));
                        }
                    }
                }
            }
            Some(Value::Object(entries)) => {
                for (id, value) in entries {
                    let field = format!("added_tokens_decoder.{id}");
                    let id: u32 = id.parse().map_err(|_| {
                        TokenizerError::field(&path, &field, "the key is not a token id")
                    })?;
                    if let Some(spec) = token_spec(&path, &field, value)? {
                        cfg.added_tokens_decoder.push((id, spec));
                    }
                }
                cfg.added_tokens_decoder.sort_by_key(|(id, _)| *id);
            }
            Some(other) => {
                return Err(TokenizerError::field(
                    &path,
                    "added_tokens_decoder",
                    format!(
                        "expected an object of id -> token, found {}",
                        json_kind(other)
                    ),
                ))
            }
        }

        cfg.add_bos_token = opt_bool(&path, &map, "add_bos_token")?;
        cfg.add_eos_token = opt_bool(&path, &map, "add_eos_token")?;
        cfg.legacy = opt_bool(&path, &map, "legacy")?;
        cfg.add_prefix_space = opt_bool(&path, &map, "add_prefix_space")?;
        cfg.clean_up_tokenization_spaces =
            opt_bool(&path, &map, "clean_up_tokenization_spaces")?.unwrap_or(false);
        cfg.clean_up_for_bpe = opt_bool(
            &path,
            &map,
            "clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output",
        )?
        .unwrap_or(false);
        cfg.tokenizer_class = match map.get("tokenizer_class") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                return Err(TokenizerError::field(
                    &path,
                    "tokenizer_class",
                    format!("expected a string, found {}", json_kind(other)),
                ))
            }
        };
        // HF's order: the named tokens first (stable for the model-specific ones).
        special.sort_by_key(|(name, _)| {
            NAMED_SPECIAL_TOKENS
                .iter()
                .position(|n| n == name)
                .unwrap_or(NAMED_SPECIAL_TOKENS.len())
        });
        cfg.special = special;
        cfg.null_named = null_named;
        cfg.config_template = config_chat_template(&path, map.get("chat_template"))?;

        // config.json only steers the choice of transformers' class; an unreadable one is the
        // model loader's error to report, not the tokenizer's.
        let model_config = read_optional(&dir.join(MODEL_CONFIG))
            .ok()
            .flatten()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok());
        if let Some(model_config) = model_config {
            let string = |key: &str| {
                model_config
                    .get(key)
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            cfg.model_type = string("model_type");
            cfg.model_tokenizer_class = string("tokenizer_class");
        }
        Ok(cfg)
    }

    /// The declared tokenizer class: tokenizer_config.json's, else config.json's.
    pub(crate) fn declared_class(&self) -> Option<&str> {
        self.tokenizer_class
            .as_deref()
            .or(self.model_tokenizer_class.as_deref())
    }

    /// LlamaTokenizer's constructor defaults (`unk_token` "<unk>", `bos_token` "<s>",
    /// `eos_token` "</s>") for tokens the config does not name; one set to null stays unset.
    pub(crate) fn apply_llama_defaults(&mut self) {
        for (name, default) in [
            ("unk_token", "<unk>"),
            ("bos_token", "<s>"),
            ("eos_token", "</s>"),
        ] {
            let given = self.special.iter().any(|(k, _)| k == name)
                || self.null_named.iter().any(|k| k == name);
            if !given {
                let spec = TokenSpec {
                    content: default.to_string(),
                    flags: None,
                };
                self.special.push((name.to_string(), spec));
            }
        }
        self.special.sort_by_key(|(name, _)| {
            NAMED_SPECIAL_TOKENS
                .iter()
                .position(|n| n == name)
                .unwrap_or(NAMED_SPECIAL_TOKENS.len())
        });
    }
}

fn config_chat_template(path: &Path, value: Option<&Value>) -> Result<TemplateSource> {
    const FIELD: &str = "chat_template";
    let origin = |suffix: &str| format!("{} field `chat_template`{suffix}", path.display());
    match value {
        None | Some(Value::Null) => Ok(TemplateSource::Absent),
        Some(Value::String(s)) => Ok(TemplateSource::Found {
            source: s.clone(),
            origin: origin(""),
        }),
        Some(Value::Array(items)) => {
            let mut names = Vec::with_capacity(items.len());
            let mut default = None;
            for (i, item) in items.iter().enumerate() {
                let name = item.get("name").and_then(Value::as_str);
                let template = item.get("template").and_then(Value::as_str);
                let (Some(name), Some(template)) = (name, template) else {
                    return Err(TokenizerError::field(
                        path,
                        format!("{FIELD}[{i}]"),
                        "expected an object {\"name\": string, \"template\": string}",
                    ));
                };
                if name == "default" {
                    default = Some(template.to_string());
                }
                names.push(name.to_string());
            }
            Ok(match default {
                Some(source) => TemplateSource::Found {
                    source,
                    origin: origin(" (template \"default\")"),
                },
                None => TemplateSource::NoDefault {
                    path: path.to_path_buf(),
                    names,
                },
            })
        }
        Some(Value::Object(named)) => {
            // Not what transformers writes, but what it holds in memory: name -> template.
            let names: Vec<String> = named.keys().cloned().collect();
            match named.get("default") {
                Some(Value::String(s)) => Ok(TemplateSource::Found {
                    source: s.clone(),
                    origin: origin(" (template \"default\")"),
                }),
                Some(other) => Err(TokenizerError::field(
                    path,
                    "chat_template.default",
                    format!("expected a string, found {}", json_kind(other)),
                )),
                None => Ok(TemplateSource::NoDefault {
                    path: path.to_path_buf(),
                    names,
                }),
            }
        }
        Some(other) => Err(TokenizerError::field(
            path,
            FIELD,
            format!(
                "expected a string or a list of {{\"name\", \"template\"}} objects, found {}",
                json_kind(other)
            ),
        )),
    }
}

fn jinja_file(dir: &Path) -> Result<Option<TemplateSource>> {
    let path = dir.join(CHAT_TEMPLATE_JINJA);
    Ok(read_optional(&path)?.map(|source| TemplateSource::Found {
        source,
        origin: path.display().to_string(),
    }))
}

fn processor_json_file(dir: &Path) -> Result<Option<TemplateSource>> {
    let path = dir.join(CHAT_TEMPLATE_JSON);
    let Some(text) = read_optional(&path)? else {
        return Ok(None);
    };
    let map = parse_object(&path, &text)?;
    match map.get("chat_template") {
        Some(Value::String(s)) => Ok(Some(TemplateSource::Found {
            source: s.clone(),
            origin: format!("{} field `chat_template`", path.display()),
        })),
        Some(other) => Err(TokenizerError::field(
            &path,
            "chat_template",
            format!("expected a string, found {}", json_kind(other)),
        )),
        None => Err(TokenizerError::field(&path, "chat_template", "missing")),
    }
}

/// The tokenizer's chat template (see the module header for the precedence).
pub(crate) fn tokenizer_template(dir: &Path, cfg: &FolderConfig) -> Result<TemplateSource> {
    if let Some(found) = jinja_file(dir)? {
        return Ok(found);
    }
    match &cfg.config_template {
        TemplateSource::Absent => {}
        other => return Ok(other.clone()),
    }
    Ok(processor_json_file(dir)?.unwrap_or(TemplateSource::Absent))
}

/// The processor's chat template: chat_template.json, else chat_template.jinja.
pub(crate) fn processor_template(dir: &Path) -> Result<TemplateSource> {
    if let Some(found) = processor_json_file(dir)? {
        return Ok(found);
    }
    Ok(jinja_file(dir)?.unwrap_or(TemplateSource::Absent))
}
