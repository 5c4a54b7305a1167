//! The SmolLM2-135M-Instruct tokenizer (fixtures/tokenizer/smollm2/, saved by transformers from
//! the model's GGUF) against what transformers returns for the same folder
//! (fixtures/tokenizer/smollm2_expected.json, scripts/make_tokenizer_fixtures.py).

mod tokenizer_support;

use iris_models::tokenizer::{build_prompt_ids, ChatMessage, Prompt};
use tokenizer_support::{
    check_conversations, check_encodings, check_special_tokens, load, Failures,
};

const NAME: &str = "smollm2";

#[test]
fn special_tokens_and_sizes() {
    let (tok, exp) = load(NAME);
    let mut f = Failures::default();
    check_special_tokens(&tok, &exp, &mut f);
    f.assert_none(NAME);
    assert_eq!(tok.bos_token(), Some("<|im_start|>"));
    assert_eq!(tok.eos_token(), Some("<|im_end|>"));
    assert_eq!(tok.vocab_size(), 49152);
}

#[test]
fn encodings_and_decodings_match_transformers() {
    let (tok, exp) = load(NAME);
    assert!(exp.encodings.len() >= 25);
    let mut f = Failures::default();
    check_encodings(&tok, &exp, &mut f);
    f.assert_none(NAME);
}

#[test]
fn chat_template_renders_and_tokenizes_as_transformers() {
    let (tok, exp) = load(NAME);
    let template = tok.chat_template().unwrap();
    assert!(
        template.origin().ends_with("chat_template.jinja"),
        "{}",
        template.origin()
    );
    assert!(exp.conversations.len() >= 5);
    let mut f = Failures::default();
    check_conversations(&tok, &exp, &mut f);
    f.assert_none(NAME);
}

#[test]
fn raw_prompts_get_special_tokens_and_chat_prompts_do_not_get_them_twice() {
    let (tok, exp) = load(NAME);
    let mut f = Failures::default();
    for e in &exp.encodings {
        let got = build_prompt_ids(&tok, Prompt::Raw(&e.text)).unwrap();
        f.check(format!("raw prompt {:?}", e.text), got, e.ids.clone());
    }
    f.assert_none(NAME);
    let messages = [ChatMessage::new("user", "Hi")];
    let ids = build_prompt_ids(
        &tok,
        Prompt::Chat {
            messages: &messages,
            add_generation_prompt: true,
        },
    )
    .unwrap();
    let im_start = tok.token_to_id("<|im_start|>").unwrap();
    assert_eq!(ids[0], im_start);
    assert_ne!(ids[1], im_start);
}

#[test]
fn stream_decoder_prints_only_whole_characters() {
    let (tok, _) = load(NAME);
    // Emoji, CJK and combining marks split over several byte-level tokens.
    let text = "Réponse : 你好 👨\u{200d}👩\u{200d}👧 ok 🇫🇷\n  done<|im_end|>";
    let ids = tok.encode(text, false).unwrap();
    let mut decoder = tok.stream_decoder(false);
    let mut printed = String::new();
    let mut held = 0;
    for &id in &ids {
        let fragment = decoder.step(id).unwrap();
        assert!(!fragment.contains('\u{FFFD}'), "{fragment:?}");
        if fragment.is_empty() {
            held += 1;
        }
        printed.push_str(&fragment);
        assert!(text.starts_with(&printed), "{printed:?}");
    }
    printed.push_str(&decoder.finish().unwrap());
    assert_eq!(printed, text);
    assert_eq!(decoder.text(), text);
    assert!(
        held > 0,
        "some ids should complete no character on their own"
    );

    let mut skipping = tok.stream_decoder(true);
    let mut out = String::new();
    for &id in &ids {
        out.push_str(&skipping.step(id).unwrap());
    }
    out.push_str(&skipping.finish().unwrap());
    assert_eq!(out, tok.decode(&ids, true).unwrap());
    assert!(!out.contains("<|im_end|>"));

    // A dangling partial character comes out of finish() as decode gives it.
    let partial = &tok.encode("👍", false).unwrap()[..1];
    let mut d = tok.stream_decoder(false);
    assert_eq!(d.step(partial[0]).unwrap(), "");
    assert_eq!(d.finish().unwrap(), tok.decode(partial, false).unwrap());
}
