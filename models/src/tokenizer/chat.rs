//! Chat templates: rendering a conversation to the prompt text exactly as transformers'
//! `tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=...)` does,
//! and turning a prompt into token ids as `apply_chat_template(tokenize=True)` does.
//!
//! The template sees what transformers passes it (`render_jinja_template`):
//! `messages`, `tools=None`, `documents=None`, `add_generation_prompt`, and every entry of the
//! tokenizer's `special_tokens_map` (`bos_token`, `eos_token`, `unk_token`, `pad_token`, ... and
//! model-specific `*_token` entries) as strings; extra variables override those. The Jinja
//! environment is described in `jinja.rs`.
//!
//! Tokenizing: transformers renders the text, then encodes it with
//! `add_special_tokens=False` (templates write BOS themselves), so `build_prompt_ids` does
//! the same; a raw prompt (`iris run --raw`) is encoded with `add_special_tokens=True`, as
//! `tokenizer(text).input_ids`.

use std::collections::BTreeMap;
use std::sync::Arc;

use minijinja::{Environment, Value};

use super::error::{Result, TokenizerError};
use super::jinja::{self, PyDict};
use super::TextTokenizer;

const TEMPLATE_NAME: &str = "chat_template";

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    /// "system", "user", "assistant", ... (passed through; the template decides what is valid).
    pub role: String,
    pub content: ChatContent,
}

/// A message's content: plain text, or a list of typed parts as multimodal processors take it
/// (`[{"type": "image"}, {"type": "text", "text": "..."}]`).
#[derive(Debug, Clone, PartialEq)]
pub enum ChatContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// One part of a multimodal message.
#[derive(Debug, Clone, PartialEq)]
pub enum ContentPart {
    /// `{"type": "text", "text": ...}`
    Text(String),
    /// `{"type": "image"}`
    Image,
}

impl ChatMessage {
    /// A message with plain-text content.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.into(),
            content: ChatContent::Text(content.into()),
        }
    }

    /// A message whose content is a list of parts.
    pub fn with_parts(role: impl Into<String>, parts: Vec<ContentPart>) -> Self {
        ChatMessage {
            role: role.into(),
            content: ChatContent::Parts(parts),
        }
    }

    /// The message as the template sees it: a dict `{"role": ..., "content": ...}`.
    fn to_value(&self) -> Value {
        let content = match &self.content {
            ChatContent::Text(text) => Value::from(text.as_str()),
            ChatContent::Parts(parts) => Value::from(
                parts
                    .iter()
                    .map(|part| match part {
                        ContentPart::Text(text) => PyDict::value(vec![
                            (Arc::from("type"), Value::from("text")),
                            (Arc::from("text"), Value::from(text.as_str())),
                        ]),
                        ContentPart::Image => {
                            PyDict::value(vec![(Arc::from("type"), Value::from("image"))])
                        }
                    })
                    .collect::<Vec<_>>(),
            ),
        };
        PyDict::value(vec![
            (Arc::from("role"), Value::from(self.role.as_str())),
            (Arc::from("content"), content),
        ])
    }
}

/// A compiled chat template with the special tokens it is rendered with.
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    origin: String,
    special_tokens: Vec<(String, String)>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("origin", &self.origin)
            .field("special_tokens", &self.special_tokens)
            .finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// Compiles `source`. `origin` names where it came from (used in every error message);
    /// `special_tokens` are (name, token) pairs such as ("bos_token", "<s>").
    pub fn new(
        source: impl Into<String>,
        origin: impl Into<String>,
        special_tokens: &[(String, String)],
    ) -> Result<Self> {
        let source = source.into();
        let origin = origin.into();
        let env = jinja::hf_environment(TEMPLATE_NAME, &source).map_err(|e| {
            TokenizerError::TemplateSyntax {
                origin: origin.clone(),
                message: e.to_string(),
            }
        })?;
        Ok(ChatTemplate {
            env,
            source,
            origin,
            special_tokens: special_tokens.to_vec(),
        })
    }

    /// The template text as found.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Where the template came from, e.g. `DIR/chat_template.jinja`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Renders `messages` like `apply_chat_template(messages, tokenize=False,
    /// add_generation_prompt=add_generation_prompt)`.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        self.render_with_vars(messages, add_generation_prompt, &BTreeMap::new())
    }

    /// As `render`, with extra template variables (transformers' `**kwargs` of
    /// `apply_chat_template`, e.g. `tools`, `enable_thinking`, `date_string`); they override
    /// the special tokens and the defaults `tools=None`, `documents=None`.
    pub fn render_with_vars(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        vars: &BTreeMap<String, serde_json::Value>,
    ) -> Result<String> {
        if messages.is_empty() {
            return Err(TokenizerError::EmptyConversation);
        }
        let mut ctx: BTreeMap<String, Value> = BTreeMap::new();
        for (name, token) in &self.special_tokens {
            ctx.insert(name.clone(), Value::from(token.as_str()));
        }
        for (name, value) in vars {
            ctx.insert(name.clone(), jinja::json_to_value(value));
        }
        ctx.insert(
            "messages".into(),
            Value::from(
                messages
                    .iter()
                    .map(ChatMessage::to_value)
                    .collect::<Vec<_>>(),
            ),
        );
        ctx.entry("tools".into()).or_insert(Value::from(()));
        ctx.entry("documents".into()).or_insert(Value::from(()));
        ctx.insert(
            "add_generation_prompt".into(),
            Value::from(add_generation_prompt),
        );

        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| self.render_error(&e))?;
        template
            .render(Value::from(ctx))
            .map_err(|e| self.render_error(&e))
    }

    fn render_error(&self, err: &minijinja::Error) -> TokenizerError {
        match jinja::raised_message(err) {
            Some(message) => TokenizerError::TemplateRaised {
                origin: self.origin.clone(),
                message,
            },
            None => TokenizerError::TemplateRender {
                origin: self.origin.clone(),
                message: err.to_string(),
            },
        }
    }
}

/// What to turn into prompt ids.
#[derive(Debug, Clone, Copy)]
pub enum Prompt<'a> {
    /// A conversation rendered with the tokenizer's chat template.
    Chat {
        messages: &'a [ChatMessage],
        add_generation_prompt: bool,
    },
    /// Text tokenized as given, with the tokenizer's special tokens (`--raw`).
    Raw(&'a str),
}

/// Token ids of a prompt: a conversation is rendered with the tokenizer's chat template and
/// encoded without adding special tokens (as `apply_chat_template(tokenize=True)`); raw text
/// is encoded with them (as `tokenizer(text).input_ids`). Chat mode without a template is an
/// error that suggests `--raw`.
pub fn build_prompt_ids(tokenizer: &TextTokenizer, prompt: Prompt<'_>) -> Result<Vec<u32>> {
    match prompt {
        Prompt::Chat {
            messages,
            add_generation_prompt,
        } => {
            let text = tokenizer
                .chat_template()?
                .render(messages, add_generation_prompt)?;
            tokenizer.encode(&text, false)
        }
        Prompt::Raw(text) => tokenizer.encode(text, true),
    }
}
