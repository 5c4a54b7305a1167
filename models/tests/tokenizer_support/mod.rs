//! Shared by the tokenizer fixture tests: loads fixtures/tokenizer/<name>/ and checks it against
//! <name>_expected.json (written by scripts/make_tokenizer_fixtures.py from transformers).
//! Each test crate uses part of it.
#![allow(dead_code)]

use std::path::PathBuf;

use iris_models::tokenizer::{
    build_prompt_ids, ChatMessage, Prompt, TextTokenizer, TokenizerError,
};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct Expected {
    pub transformers_version: String,
    pub special_tokens_map: std::collections::BTreeMap<String, String>,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
    pub pad_token_id: Option<u32>,
    pub unk_token_id: Option<u32>,
    pub vocab_size: usize,
    pub len: usize,
    pub encodings: Vec<Encoding>,
    pub conversations: Vec<Conversation>,
}

#[derive(Debug, Deserialize)]
pub struct Encoding {
    pub text: String,
    pub ids: Vec<u32>,
    pub ids_no_special: Vec<u32>,
    pub tokens: Vec<String>,
    pub decoded: String,
    pub decoded_skip_special: String,
    pub decoded_each: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

#[derive(Debug, Deserialize)]
pub struct Conversation {
    pub name: String,
    pub messages: Vec<Message>,
    pub text_gen: Option<String>,
    pub text_no_gen: Option<String>,
    pub ids_gen: Option<Vec<u32>>,
    pub ids_no_gen: Option<Vec<u32>>,
    pub error: Option<String>,
}

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("fixtures")
        .join("tokenizer")
}

pub fn load(name: &str) -> (TextTokenizer, Expected) {
    let dir = fixtures_dir();
    let tok = TextTokenizer::from_dir(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let path = dir.join(format!("{name}_expected.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let expected: Expected =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (tok, expected)
}

/// Collects mismatches so one run shows all of them.
#[derive(Default)]
pub struct Failures(Vec<String>);

impl Failures {
    pub fn check<T: PartialEq + std::fmt::Debug>(&mut self, what: String, got: T, want: T) {
        if got != want {
            self.0
                .push(format!("{what}\n    got:  {got:?}\n    want: {want:?}"));
        }
    }

    pub fn assert_none(self, name: &str) {
        assert!(
            self.0.is_empty(),
            "{name}: {} mismatches:\n{}",
            self.0.len(),
            self.0.join("\n")
        );
    }
}

/// Feeds `ids` one at a time; returns the fragments (the last one from `finish`).
pub fn stream(tok: &TextTokenizer, ids: &[u32], skip_special_tokens: bool) -> Vec<String> {
    let mut decoder = tok.stream_decoder(skip_special_tokens);
    let mut fragments = Vec::with_capacity(ids.len() + 1);
    for &id in ids {
        fragments.push(decoder.step(id).expect("stream step"));
    }
    fragments.push(decoder.finish().expect("stream finish"));
    fragments
}

pub fn check_special_tokens(tok: &TextTokenizer, exp: &Expected, f: &mut Failures) {
    let ours: std::collections::BTreeMap<String, String> = tok
        .special_tokens()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    f.check("special_tokens_map".into(), &ours, &exp.special_tokens_map);
    f.check("bos_token_id".into(), tok.bos_token_id(), exp.bos_token_id);
    f.check("eos_token_id".into(), tok.eos_token_id(), exp.eos_token_id);
    f.check("pad_token_id".into(), tok.pad_token_id(), exp.pad_token_id);
    f.check("unk_token_id".into(), tok.unk_token_id(), exp.unk_token_id);
    f.check("len(tokenizer)".into(), tok.vocab_size(), exp.len);
    f.check(
        "tokenizer.vocab_size".into(),
        tok.base_vocab_size(),
        exp.vocab_size,
    );
    f.check(
        "bos_token".into(),
        tok.bos_token(),
        exp.special_tokens_map.get("bos_token").map(String::as_str),
    );
    f.check(
        "eos_token".into(),
        tok.eos_token(),
        exp.special_tokens_map.get("eos_token").map(String::as_str),
    );
}

pub fn check_encodings(tok: &TextTokenizer, exp: &Expected, f: &mut Failures) {
    for e in &exp.encodings {
        let t = &e.text;
        f.check(
            format!("encode({t:?}, true)"),
            tok.encode(t, true).unwrap(),
            e.ids.clone(),
        );
        f.check(
            format!("encode({t:?}, false)"),
            tok.encode(t, false).unwrap(),
            e.ids_no_special.clone(),
        );
        let tokens: Vec<String> = e
            .ids
            .iter()
            .map(|&id| tok.id_to_token(id).unwrap_or_default())
            .collect();
        f.check(format!("id_to_token of {t:?}"), tokens, e.tokens.clone());
        for (id, token) in e.ids.iter().zip(&e.tokens) {
            f.check(
                format!("token_to_id({token:?})"),
                tok.token_to_id(token),
                Some(*id),
            );
        }
        f.check(
            format!("decode({t:?})"),
            tok.decode(&e.ids, false).unwrap(),
            e.decoded.clone(),
        );
        f.check(
            format!("decode({t:?}, skip_special_tokens)"),
            tok.decode(&e.ids, true).unwrap(),
            e.decoded_skip_special.clone(),
        );
        let each: Vec<String> = e
            .ids
            .iter()
            .map(|&id| tok.decode(&[id], false).unwrap())
            .collect();
        f.check(
            format!("decode each id of {t:?}"),
            each,
            e.decoded_each.clone(),
        );
        for skip in [false, true] {
            let want = if skip {
                &e.decoded_skip_special
            } else {
                &e.decoded
            };
            check_stream(tok, &e.ids, skip, want, &format!("{t:?}"), f);
        }
    }
}

/// The fragments concatenate to `want`, and every prefix of them is a prefix of `want` made
/// of whole characters (no U+FFFD is printed that `want` does not have there).
pub fn check_stream(
    tok: &TextTokenizer,
    ids: &[u32],
    skip: bool,
    want: &str,
    what: &str,
    f: &mut Failures,
) {
    let fragments = stream(tok, ids, skip);
    let joined: String = fragments.concat();
    f.check(
        format!("stream(skip={skip}) of {what}"),
        joined.as_str(),
        want,
    );
    let mut printed = String::new();
    for fragment in &fragments {
        printed.push_str(fragment);
        if !want.starts_with(&printed) {
            f.check(
                format!("stream prefix (skip={skip}) of {what}"),
                printed.as_str(),
                want,
            );
            break;
        }
    }
}

fn messages(conv: &Conversation) -> Vec<ChatMessage> {
    conv.messages
        .iter()
        .map(|m| ChatMessage::new(&m.role, &m.content))
        .collect()
}

pub fn check_conversations(tok: &TextTokenizer, exp: &Expected, f: &mut Failures) {
    let template = tok.chat_template().expect("fixture has a chat template");
    for conv in &exp.conversations {
        let msgs = messages(conv);
        if let Some(message) = &conv.error {
            for gen in [false, true] {
                match template.render(&msgs, gen) {
                    Err(TokenizerError::TemplateRaised { message: got, .. }) => {
                        f.check(format!("{}: raised message", conv.name), &got, message)
                    }
                    other => f.check(
                        format!("{}: expected the template to raise", conv.name),
                        format!("{other:?}"),
                        format!("TemplateRaised({message})"),
                    ),
                }
            }
            continue;
        }
        for gen in [false, true] {
            let (text, ids) = if gen {
                (conv.text_gen.as_ref(), conv.ids_gen.as_ref())
            } else {
                (conv.text_no_gen.as_ref(), conv.ids_no_gen.as_ref())
            };
            let (text, ids) = (text.expect("text"), ids.expect("ids"));
            match template.render(&msgs, gen) {
                Ok(got) => f.check(format!("{}: render(gen={gen})", conv.name), &got, text),
                Err(e) => f.check(
                    format!("{}: render(gen={gen})", conv.name),
                    e.to_string(),
                    text.clone(),
                ),
            }
            let prompt = Prompt::Chat {
                messages: &msgs,
                add_generation_prompt: gen,
            };
            match build_prompt_ids(tok, prompt) {
                Ok(got) => f.check(format!("{}: ids(gen={gen})", conv.name), &got, ids),
                Err(e) => f.check(
                    format!("{}: ids(gen={gen})", conv.name),
                    format!("{e}"),
                    format!("{ids:?}"),
                ),
            }
            let want = tok.decode(ids, false).unwrap();
            check_stream(tok, ids, false, &want, &conv.name, f);
        }
    }
}

/// Every check on one fixture folder.
pub fn check_all(name: &str) {
    let (tok, exp) = load(name);
    assert!(!exp.transformers_version.is_empty());
    let mut f = Failures::default();
    check_special_tokens(&tok, &exp, &mut f);
    check_encodings(&tok, &exp, &mut f);
    check_conversations(&tok, &exp, &mut f);
    // Raw prompts are tokenized with special tokens, as tokenizer(text).input_ids.
    for e in &exp.encodings {
        let got = build_prompt_ids(&tok, Prompt::Raw(&e.text)).unwrap();
        f.check(format!("raw prompt {:?}", e.text), got, e.ids.clone());
    }
    f.assert_none(name);
}
