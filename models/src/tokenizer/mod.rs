//! Text tokenizer and chat templates, read from a Hugging Face model folder as it is.
//!
//! - `tokenizer.json` (the `tokenizers` library's format) does the encoding and decoding.
//! - `tokenizer_config.json` gives the special tokens (strings or AddedToken objects),
//!   `add_bos_token`/`add_eos_token`, `tokenizer_class`, `clean_up_tokenization_spaces` and the
//!   chat template; `chat_template.jinja` takes precedence over its `chat_template` (see
//!   `config.rs`).
//!
//! Reference: transformers 5 (`AutoTokenizer.from_pretrained(dir)`), checked by the fixtures in
//! fixtures/tokenizer/ (scripts/make_tokenizer_fixtures.py). What it does that matters here:
//! - `tok(text).input_ids` is the `tokenizers` encoding of tokenizer.json with its
//!   post-processor; transformers 5 ignores `add_bos_token`/`add_eos_token` from the config
//!   whenever tokenizer.json exists (iris reports them but does not act on them).
//! - Special tokens named in the config (and its `added_tokens_decoder`) that tokenizer.json
//!   does not list as added tokens are added as special tokens, as transformers does.
//! - A folder transformers 5 loads with its LlamaTokenizer class (declared "LlamaTokenizer",
//!   not byte-level, a model type that honours it: Llama 2 / Vicuna with model_type "llama",
//!   not LLaVA or Mistral, see `hf_class.rs`) keeps tokenizer.json's vocabulary, merges and
//!   post-processor but gets that class's normalizer/pre-tokenizer/decoder (`llama_pipeline`);
//!   iris does the same. Other classes with their own pipelines in transformers 5
//!   (GPT2Tokenizer, Qwen2Tokenizer, ...) are read as tokenizer.json says, which agrees for the
//!   folders we checked (SmolLM2 as GPT2Tokenizer).
//! - `decode` applies `clean_up_tokenization_spaces` only for non-BPE models (or with
//!   `clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output`).

mod chat;
mod config;
mod error;
mod hf_class;
mod jinja;
mod pyvalue;
mod stream;
mod strftime;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::normalizers::replace::Replace;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::{AddedToken, DecoderWrapper, ModelWrapper, NormalizerWrapper, Tokenizer};

pub use chat::{build_prompt_ids, ChatContent, ChatMessage, ChatTemplate, ContentPart, Prompt};
pub use error::{Result, TokenizerError};
pub use stream::StreamDecoder;

use config::{FolderConfig, TemplateSource, TokenSpec};

/// The `tokenizers` tokenizer plus the decode-time options transformers applies; shared with
/// stream decoders.
#[derive(Debug)]
pub(crate) struct Decoding {
    tokenizer: Tokenizer,
    /// transformers' `clean_up_tokenization` runs after decoding.
    cleanup: bool,
}

impl Decoding {
    fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        let text = self
            .tokenizer
            .decode(ids, skip_special_tokens)
            .map_err(|e| TokenizerError::Decode(e.to_string()))?;
        Ok(if self.cleanup {
            clean_up_tokenization(&text)
        } else {
            text
        })
    }
}

/// transformers' `PreTrainedTokenizerBase.clean_up_tokenization`.
fn clean_up_tokenization(text: &str) -> String {
    text.replace(" .", ".")
        .replace(" ?", "?")
        .replace(" !", "!")
        .replace(" ,", ",")
        .replace(" ' ", "'")
        .replace(" n't", "n't")
        .replace(" 'm", "'m")
        .replace(" 's", "'s")
        .replace(" 've", "'ve")
        .replace(" 're", "'re")
}

/// A chat template slot: found and compiled, or why not.
#[derive(Debug)]
enum TemplateSlot {
    Ready(Box<ChatTemplate>),
    Broken { origin: String, message: String },
    NoDefault { path: PathBuf, names: Vec<String> },
    Absent,
}

impl TemplateSlot {
    fn build(source: TemplateSource, special: &[(String, String)]) -> TemplateSlot {
        match source {
            TemplateSource::Found { source, origin } => {
                match ChatTemplate::new(source, origin, special) {
                    Ok(template) => TemplateSlot::Ready(Box::new(template)),
                    Err(TokenizerError::TemplateSyntax { origin, message }) => {
                        TemplateSlot::Broken { origin, message }
                    }
                    Err(other) => TemplateSlot::Broken {
                        origin: String::new(),
                        message: other.to_string(),
                    },
                }
            }
            TemplateSource::NoDefault { path, names } => TemplateSlot::NoDefault { path, names },
            TemplateSource::Absent => TemplateSlot::Absent,
        }
    }

    fn get(&self, dir: &Path) -> Result<&ChatTemplate> {
        match self {
            TemplateSlot::Ready(template) => Ok(template),
            TemplateSlot::Broken { origin, message } => Err(TokenizerError::TemplateSyntax {
                origin: origin.clone(),
                message: message.clone(),
            }),
            TemplateSlot::NoDefault { path, names } => Err(TokenizerError::NoDefaultChatTemplate {
                path: path.clone(),
                names: names.clone(),
            }),
            TemplateSlot::Absent => Err(TokenizerError::NoChatTemplate {
                dir: dir.to_path_buf(),
            }),
        }
    }
}

/// A model folder's text tokenizer: tokenizer.json + tokenizer_config.json + chat template.
#[derive(Debug)]
pub struct TextTokenizer {
    dir: PathBuf,
    decoding: Arc<Decoding>,
    /// (name, token) of the special tokens, transformers' `special_tokens_map` order.
    special: Vec<(String, String)>,
    add_bos_token: Option<bool>,
    add_eos_token: Option<bool>,
    tokenizer_class: Option<String>,
    chat_template: TemplateSlot,
    processor_chat_template: TemplateSlot,
}

impl TextTokenizer {
    /// Loads the tokenizer of the model folder `dir`.
    ///
    /// Errors: tokenizer.json missing or malformed (with line and column), a config field of
    /// the wrong kind. A chat template that does not compile is not an error here (transformers
    /// compiles it on use too); `chat_template()` reports it.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let json_path = dir.join(config::TOKENIZER_JSON);
        let text = config::read_optional(&json_path)?.ok_or_else(|| {
            TokenizerError::MissingFile {
            path: json_path.clone(),
            hint: "iris reads tokenizers in the `tokenizers` JSON format only (a folder with only \
                   tokenizer.model or vocab.json + merges.txt must be converted first, e.g. by \
                   loading it in transformers and calling save_pretrained)",
        }
        })?;
        let mut tokenizer: Tokenizer =
            serde_json::from_str(&text).map_err(|e| TokenizerError::json(&json_path, &e))?;

        let mut cfg = FolderConfig::read(&dir)?;
        let llama_class = hf_class::loads_as_llama_tokenizer(
            cfg.declared_class(),
            cfg.model_type.as_deref(),
            &text,
        );
        drop(text);
        if llama_class {
            cfg.apply_llama_defaults();
            llama_pipeline(&mut tokenizer, &cfg);
        }
        add_config_tokens(&mut tokenizer, &cfg);

        let is_bpe = matches!(tokenizer.get_model(), ModelWrapper::BPE(_));
        let cleanup = cfg.clean_up_tokenization_spaces && (!is_bpe || cfg.clean_up_for_bpe);
        let special: Vec<(String, String)> = cfg
            .special
            .iter()
            .map(|(name, spec)| (name.clone(), spec.content.clone()))
            .collect();
        let chat_template = TemplateSlot::build(config::tokenizer_template(&dir, &cfg)?, &special);
        let processor_chat_template =
            TemplateSlot::build(config::processor_template(&dir)?, &special);
        Ok(TextTokenizer {
            dir,
            decoding: Arc::new(Decoding { tokenizer, cleanup }),
            special,
            add_bos_token: cfg.add_bos_token,
            add_eos_token: cfg.add_eos_token,
            tokenizer_class: cfg.tokenizer_class,
            chat_template,
            processor_chat_template,
        })
    }

    /// The folder this tokenizer was read from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Token ids of `text`, as transformers' `tokenizer(text, add_special_tokens=...)
    /// .input_ids` (`add_special_tokens` runs tokenizer.json's post-processor, e.g. adds BOS).
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let encoding = self
            .decoding
            .tokenizer
            .encode_fast(text, add_special_tokens)
            .map_err(|e| TokenizerError::Encode(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Text of `ids`, as transformers' `tokenizer.decode(ids, skip_special_tokens=...)`.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.decoding.decode(ids, skip_special_tokens)
    }

    /// A streaming decoder: feed generated ids one at a time, print what it returns.
    pub fn stream_decoder(&self, skip_special_tokens: bool) -> StreamDecoder {
        StreamDecoder::new(Arc::clone(&self.decoding), skip_special_tokens)
    }

    /// Id of a token (vocabulary or added token), as `convert_tokens_to_ids`.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.decoding.tokenizer.token_to_id(token)
    }

    /// The token string of an id (byte-level tokens in their mapped form, e.g. "Ġthe").
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.decoding.tokenizer.id_to_token(id)
    }

    /// Number of ids, added tokens included: transformers' `len(tokenizer)`.
    pub fn vocab_size(&self) -> usize {
        self.decoding.tokenizer.get_vocab_size(true)
    }

    /// Size of the base vocabulary without added tokens: transformers' `tokenizer.vocab_size`.
    pub fn base_vocab_size(&self) -> usize {
        self.decoding.tokenizer.get_vocab_size(false)
    }

    /// A special token by its transformers name ("bos_token", "eos_token", "pad_token",
    /// "unk_token", ..., or a model-specific one such as "image_token").
    pub fn special_token(&self, name: &str) -> Option<&str> {
        self.special
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, token)| token.as_str())
    }

    /// All special tokens as (name, token), in transformers' `special_tokens_map` order.
    pub fn special_tokens(&self) -> &[(String, String)] {
        &self.special
    }

    fn special_id(&self, name: &str) -> Option<u32> {
        self.special_token(name).and_then(|t| self.token_to_id(t))
    }

    /// The BOS token string, if the config names one.
    pub fn bos_token(&self) -> Option<&str> {
        self.special_token("bos_token")
    }

    /// The EOS token string, if the config names one.
    pub fn eos_token(&self) -> Option<&str> {
        self.special_token("eos_token")
    }

    /// The padding token string, if the config names one.
    pub fn pad_token(&self) -> Option<&str> {
        self.special_token("pad_token")
    }

    /// The unknown token string, if the config names one.
    pub fn unk_token(&self) -> Option<&str> {
        self.special_token("unk_token")
    }

    /// Id of the BOS token.
    pub fn bos_token_id(&self) -> Option<u32> {
        self.special_id("bos_token")
    }

    /// Id of the EOS token (generation_config.json may list more stop ids).
    pub fn eos_token_id(&self) -> Option<u32> {
        self.special_id("eos_token")
    }

    /// Id of the padding token.
    pub fn pad_token_id(&self) -> Option<u32> {
        self.special_id("pad_token")
    }

    /// Id of the unknown token.
    pub fn unk_token_id(&self) -> Option<u32> {
        self.special_id("unk_token")
    }

    /// `add_bos_token` of tokenizer_config.json, if present. Informational: with a
    /// tokenizer.json, transformers 5 (and iris) take BOS from its post-processor.
    pub fn add_bos_token(&self) -> Option<bool> {
        self.add_bos_token
    }

    /// `add_eos_token` of tokenizer_config.json, if present (informational, as add_bos_token).
    pub fn add_eos_token(&self) -> Option<bool> {
        self.add_eos_token
    }

    /// `tokenizer_class` of tokenizer_config.json, if present.
    pub fn tokenizer_class(&self) -> Option<&str> {
        self.tokenizer_class.as_deref()
    }

    /// Whether a usable chat template was found.
    pub fn has_chat_template(&self) -> bool {
        matches!(self.chat_template, TemplateSlot::Ready(_))
    }

    /// The tokenizer's chat template (chat_template.jinja, else tokenizer_config.json's
    /// `chat_template`, else chat_template.json), or why there is none usable.
    pub fn chat_template(&self) -> Result<&ChatTemplate> {
        self.chat_template.get(&self.dir)
    }

    /// The processor's chat template, as transformers' `AutoProcessor` finds it
    /// (chat_template.json, else chat_template.jinja), falling back to the tokenizer's. Use it
    /// for multimodal pipelines (LLaVA, SmolVLM), whose processor owns the template.
    pub fn processor_chat_template(&self) -> Result<&ChatTemplate> {
        match self.processor_chat_template {
            TemplateSlot::Absent => self.chat_template(),
            ref slot => slot.get(&self.dir),
        }
    }
}

/// transformers 5's `LlamaTokenizer.__init__`: no normalizer, a Metaspace pre-tokenizer
/// (prepend "first", or "always" when `legacy` is true; "never" without `add_prefix_space`),
/// decoder Replace("▁", " ") + ByteFallback + Fuse (+ Strip one leading space when
/// `add_prefix_space`). The vocabulary, merges and post-processor stay tokenizer.json's.
/// Only for BPE models (the class builds a BPE).
fn llama_pipeline(tokenizer: &mut Tokenizer, cfg: &FolderConfig) {
    if !matches!(tokenizer.get_model(), ModelWrapper::BPE(_)) {
        return;
    }
    let add_prefix_space = cfg.add_prefix_space.unwrap_or(true);
    let scheme = match (add_prefix_space, cfg.legacy.unwrap_or(false)) {
        (false, _) => PrependScheme::Never,
        (true, true) => PrependScheme::Always,
        (true, false) => PrependScheme::First,
    };
    let Ok(replace) = Replace::new("\u{2581}", " ") else {
        return;
    };
    let mut decoders: Vec<DecoderWrapper> = vec![
        replace.into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    if add_prefix_space {
        decoders.push(Strip::new(' ', 1, 0).into());
    }
    tokenizer.with_normalizer(None::<NormalizerWrapper>);
    tokenizer.with_pre_tokenizer(Some(Metaspace::new('\u{2581}', scheme, false)));
    tokenizer.with_decoder(Some(DecoderSequence::new(decoders)));
}

fn added_token(spec: &TokenSpec, force_special: bool) -> AddedToken {
    match spec.flags {
        None => AddedToken::from(spec.content.clone(), true).normalized(false),
        Some(flags) => {
            let special = force_special || flags.special.unwrap_or(false);
            AddedToken::from(spec.content.clone(), special)
                .single_word(flags.single_word)
                .lstrip(flags.lstrip)
                .rstrip(flags.rstrip)
                .normalized(flags.normalized.unwrap_or(!special))
        }
    }
}

/// transformers' `TokenizersBackend.__init__`: re-adds the config's `added_tokens_decoder`
/// (its flags win), then adds named/extra special tokens that are not added tokens yet.
fn add_config_tokens(tokenizer: &mut Tokenizer, cfg: &FolderConfig) {
    let mut tokens: Vec<AddedToken> = cfg
        .added_tokens_decoder
        .iter()
        .map(|(_, spec)| added_token(spec, false))
        .collect();
    let existing: Vec<String> = tokenizer
        .get_added_tokens_decoder()
        .values()
        .map(|t| t.content.clone())
        .collect();
    let specials = cfg
        .special
        .iter()
        .map(|(_, spec)| spec)
        .chain(cfg.extra_special.iter());
    for spec in specials {
        let known =
            existing.contains(&spec.content) || tokens.iter().any(|t| t.content == spec.content);
        if !known {
            tokens.push(added_token(spec, true));
        }
    }
    if !tokens.is_empty() {
        tokenizer.add_tokens(&tokens);
    }
}

#[cfg(test)]
mod tests {
    use super::clean_up_tokenization;

    #[test]
    fn cleanup_matches_transformers() {
        assert_eq!(
            clean_up_tokenization("Hello , world ! I do n't know . It 's ok ' yes"),
            "Hello, world! I don't know. It's ok'yes"
        );
    }
}
