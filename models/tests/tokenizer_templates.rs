//! Jinja features that chat templates use, each rendered by transformers'
//! `apply_chat_template(messages, chat_template=..., tokenize=False)` with the smollm2
//! tokenizer (fixtures/tokenizer/templates_expected.json, scripts/make_tokenizer_fixtures.py),
//! against `ChatTemplate::render` with the same special tokens.

mod tokenizer_support;

use iris_models::tokenizer::{
    ChatMessage, ChatTemplate, ContentPart, TextTokenizer, TokenizerError,
};
use serde::Deserialize;
use tokenizer_support::{fixtures_dir, Failures};

#[derive(Deserialize)]
struct Cases {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    template: String,
    messages: Vec<serde_json::Value>,
    add_generation_prompt: bool,
    rendered: Option<String>,
    error: Option<String>,
}

fn message(value: &serde_json::Value) -> ChatMessage {
    let role = value["role"].as_str().expect("role");
    match &value["content"] {
        serde_json::Value::String(text) => ChatMessage::new(role, text.as_str()),
        serde_json::Value::Array(parts) => ChatMessage::with_parts(
            role,
            parts
                .iter()
                .map(|p| match p["type"].as_str() {
                    Some("image") => ContentPart::Image,
                    Some("text") => {
                        ContentPart::Text(p["text"].as_str().expect("text").to_string())
                    }
                    other => panic!("unknown part type {other:?}"),
                })
                .collect(),
        ),
        other => panic!("unexpected content {other}"),
    }
}

#[test]
fn jinja_features_render_as_transformers() {
    let dir = fixtures_dir();
    let tok = TextTokenizer::from_dir(dir.join("smollm2")).unwrap();
    let text = std::fs::read_to_string(dir.join("templates_expected.json")).unwrap();
    let cases: Cases = serde_json::from_str(&text).unwrap();
    assert!(cases.cases.len() >= 20);
    let mut f = Failures::default();
    for case in &cases.cases {
        let what = format!("{} (gen={})", case.name, case.add_generation_prompt);
        let template = match ChatTemplate::new(
            case.template.as_str(),
            case.name.as_str(),
            tok.special_tokens(),
        ) {
            Ok(t) => t,
            Err(e) => {
                f.check(
                    what,
                    e.to_string(),
                    String::from("a template that compiles"),
                );
                continue;
            }
        };
        let messages: Vec<ChatMessage> = case.messages.iter().map(message).collect();
        let got = template.render(&messages, case.add_generation_prompt);
        match (&case.rendered, &case.error, got) {
            (Some(want), _, Ok(got)) => f.check(what, &got, want),
            (_, Some(want), Err(TokenizerError::TemplateRaised { message, .. })) => {
                f.check(what, &message, want)
            }
            (want, err, got) => f.check(what, format!("{got:?}"), format!("{want:?} / {err:?}")),
        }
    }
    f.assert_none("templates");
}
