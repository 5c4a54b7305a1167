//! Prompt ids for a multimodal model: the chat template (or the raw text) with one `<image>`
//! marker per image, expanded the way the HF processors do — LLaVA repeats the image token
//! once per feature row, Idefics3 writes its tile grid (`<fake_token_around_image>`,
//! `<row_i_col_j>`, `<global-img>`) — then tokenized.

use crate::error::ModelError;
use crate::image::{expand_prompt, Processed, PromptTokens};
use crate::pipeline::{MultimodalModel, VisionStack};
use crate::tokenizer::{ChatMessage, ContentPart, TextTokenizer};

/// What the user asked, before expansion.
pub enum MultimodalPrompt<'a> {
    /// A user message (with an optional system message) holding every image, then the text.
    Chat {
        system: Option<&'a str>,
        text: &'a str,
    },
    /// Text tokenized as given; each image token string in it marks one image.
    Raw(&'a str),
}

fn image_token(model: &MultimodalModel, tokenizer: &TextTokenizer) -> Result<String, ModelError> {
    tokenizer.id_to_token(model.image_token_id).ok_or_else(|| {
        ModelError::Invalid(format!(
            "the tokenizer in {} has no token for the image token id {}",
            tokenizer.dir().display(),
            model.image_token_id
        ))
    })
}

/// Token ids of `prompt` with the images of `processed` (none: `None`) expanded in place.
pub fn multimodal_prompt_ids(
    model: &MultimodalModel,
    tokenizer: &TextTokenizer,
    processed: Option<&Processed>,
    prompt: MultimodalPrompt<'_>,
) -> Result<Vec<u32>, ModelError> {
    let images = processed.map_or(0, |p| p.tiles_per_image.len());
    let rows_cols = processed.map_or(&[][..], |p| &p.rows_cols[..]);
    let (text, raw) = match prompt {
        MultimodalPrompt::Raw(text) => (text.to_string(), true),
        MultimodalPrompt::Chat { system, text } => {
            let mut parts = vec![ContentPart::Image; images];
            parts.push(ContentPart::Text(text.to_string()));
            let mut messages: Vec<ChatMessage> = system
                .map(|s| ChatMessage::new("system", s))
                .into_iter()
                .collect();
            messages.push(ChatMessage::with_parts("user", parts));
            let template = tokenizer
                .chat_template()
                .map_err(|e| ModelError::Invalid(e.to_string()))?;
            (
                template
                    .render(&messages, true)
                    .map_err(|e| ModelError::Invalid(e.to_string()))?,
                false,
            )
        }
    };
    let token = image_token(model, tokenizer)?;
    let count_error = |markers: usize| {
        ModelError::Invalid(format!(
            "the prompt has {markers} `{token}` marker(s) but {images} image(s) were given"
        ))
    };
    let expanded = match &model.vision {
        VisionStack::Llava(_) => {
            let markers = text.matches(token.as_str()).count();
            if markers != images {
                return Err(count_error(markers));
            }
            text.replace(token.as_str(), &token.repeat(model.tokens_per_image()))
        }
        VisionStack::Idefics3(_) => {
            let tokens = PromptTokens {
                image: token.clone(),
                ..PromptTokens::default()
            };
            expand_prompt(&text, rows_cols, model.tokens_per_image(), &tokens)
                .map_err(|_| count_error(text.matches(token.as_str()).count()))?
        }
    };
    tokenizer
        .encode(&expanded, raw)
        .map_err(|e| ModelError::Invalid(e.to_string()))
}
