//! Errors of the tokenizer and chat-template layer. Every message names the file (and the
//! field or template) it is about, so a user can fix the model folder without a debugger.

use std::path::PathBuf;

/// What went wrong while loading a tokenizer folder, encoding, decoding or rendering a chat
/// template.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// A file the tokenizer cannot do without is absent.
    #[error("{}: not found; {hint}", path.display())]
    MissingFile { path: PathBuf, hint: &'static str },

    /// A file exists but cannot be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A JSON file is not valid JSON, or does not have the shape its reader expects.
    #[error("{}: line {line}, column {column}: {message}", path.display())]
    Json {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },

    /// A field of a JSON file holds a value of the wrong kind.
    #[error("{}: field `{field}`: {message}", path.display())]
    Field {
        path: PathBuf,
        field: String,
        message: String,
    },

    /// The `tokenizers` library failed to encode a text.
    #[error("encoding failed: {0}")]
    Encode(String),

    /// The `tokenizers` library failed to decode ids (e.g. an id outside the vocabulary).
    #[error("decoding failed: {0}")]
    Decode(String),

    /// The chat template is not valid Jinja (as minijinja reads it).
    #[error("chat template from {origin} does not parse: {message}")]
    TemplateSyntax { origin: String, message: String },

    /// The chat template called `raise_exception(message)`.
    #[error("chat template from {origin} raised an exception: {message}")]
    TemplateRaised { origin: String, message: String },

    /// The chat template failed while rendering for another reason.
    #[error("chat template from {origin} failed to render: {message}")]
    TemplateRender { origin: String, message: String },

    /// Chat mode was requested but the folder has no chat template at all.
    #[error(
        "{}: no chat template (looked for chat_template.jinja, the `chat_template` field of \
         tokenizer_config.json and chat_template.json); use --raw to tokenize the prompt as given",
        dir.display()
    )]
    NoChatTemplate { dir: PathBuf },

    /// `chat_template` is a list of named templates without one named "default".
    #[error(
        "{}: field `chat_template` holds the templates {names:?} but none is named \"default\"; \
         use --raw to tokenize the prompt as given",
        path.display()
    )]
    NoDefaultChatTemplate { path: PathBuf, names: Vec<String> },

    /// A conversation without messages was given to a chat template.
    #[error("cannot apply a chat template to an empty conversation")]
    EmptyConversation,
}

/// Result of the tokenizer layer.
pub type Result<T> = std::result::Result<T, TokenizerError>;

impl TokenizerError {
    /// Wraps a serde_json error of `path`, keeping its line and column.
    pub(crate) fn json(path: impl Into<PathBuf>, err: &serde_json::Error) -> Self {
        // serde_json's Display appends " at line L column C"; keep only the message part.
        let full = err.to_string();
        let message = match full.rfind(" at line ") {
            Some(at) => full[..at].to_string(),
            None => full,
        };
        TokenizerError::Json {
            path: path.into(),
            line: err.line(),
            column: err.column(),
            message,
        }
    }

    pub(crate) fn field(
        path: impl Into<PathBuf>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        TokenizerError::Field {
            path: path.into(),
            field: field.into(),
            message: message.into(),
        }
    }
}
