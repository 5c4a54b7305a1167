//! Malformed and unusual tokenizer folders (built in temporary directories from the
//! tiny_llama3 fixture's tokenizer.json): every error names the file and the field or template.

mod tokenizer_support;

use std::fs;

use iris_models::tokenizer::{
    build_prompt_ids, ChatMessage, ChatTemplate, Prompt, TextTokenizer, TokenizerError,
};
use tempfile::TempDir;
use tokenizer_support::fixtures_dir;

/// The setup of every test here: a temporary folder holding the tokenizer.json of the fixture
/// `tokenizer_of` (none for `None`), then the given files, written over it.
fn folder_from(tokenizer_of: Option<&str>, files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    if let Some(fixture) = tokenizer_of {
        fs::copy(
            fixtures_dir().join(fixture).join("tokenizer.json"),
            dir.path().join("tokenizer.json"),
        )
        .unwrap();
    }
    for (name, text) in files {
        fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

/// A temporary folder holding the tiny_llama3 tokenizer.json and the given files.
fn folder(files: &[(&str, &str)]) -> TempDir {
    folder_from(Some("tiny_llama3"), files)
}

/// The tokenizer of a [`folder`] with `files`, and the folder, kept for as long as it is used.
fn load(files: &[(&str, &str)]) -> (TempDir, TextTokenizer) {
    let dir = folder(files);
    let tok = TextTokenizer::from_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    (dir, tok)
}

/// The error loading `dir`.
fn load_err(dir: &TempDir) -> TokenizerError {
    TextTokenizer::from_dir(dir.path()).expect_err("malformed folder loaded")
}

/// `template` rendered for one user message "x", without a generation prompt.
fn render_x(template: Result<&ChatTemplate, TokenizerError>) -> String {
    template.unwrap().render(&user("x"), false).unwrap()
}

fn user(text: &str) -> Vec<ChatMessage> {
    vec![ChatMessage::new("user", text)]
}

const CHATML: &str =
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}\
{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

#[test]
fn missing_tokenizer_json_names_the_file() {
    let err = load_err(&folder_from(None, &[("tokenizer_config.json", "{}")]));
    assert!(
        matches!(err, TokenizerError::MissingFile { ref path, .. } if path.ends_with("tokenizer.json")),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("tokenizer.json") && msg.contains("not found"),
        "{msg}"
    );
}

#[test]
fn malformed_tokenizer_json_reports_line_and_column() {
    let err = load_err(&folder_from(
        None,
        &[(
            "tokenizer.json",
            "{\n  \"version\": \"1.0\",\n  \"model\": {,\n}",
        )],
    ));
    match &err {
        TokenizerError::Json {
            path, line, column, ..
        } => {
            assert!(path.ends_with("tokenizer.json"));
            assert_eq!((*line, *column), (3, 13), "{err}");
        }
        other => panic!("expected a JSON error, got {other:?}"),
    }
    assert!(
        err.to_string()
            .contains("tokenizer.json: line 3, column 13"),
        "{err}"
    );

    // Valid JSON that is not a tokenizer: still a located error.
    let err = load_err(&folder_from(None, &[("tokenizer.json", "{\"model\": 3}")]));
    assert!(matches!(err, TokenizerError::Json { .. }), "{err:?}");
    assert!(err.to_string().contains("tokenizer.json: line 1"), "{err}");
}

#[test]
fn malformed_tokenizer_config_reports_line_and_column() {
    let err = load_err(&folder(&[(
        "tokenizer_config.json",
        "{\n  \"bos_token\": \"<s>\"\n  \"eos_token\": \"</s>\"\n}",
    )]));
    match &err {
        TokenizerError::Json {
            path, line, column, ..
        } => {
            assert!(path.ends_with("tokenizer_config.json"));
            assert_eq!((*line, *column), (3, 3), "{err}");
        }
        other => panic!("expected a JSON error, got {other:?}"),
    }
}

#[test]
fn wrongly_typed_fields_are_named() {
    for (config, field) in [
        (r#"{"bos_token": 5}"#, "bos_token"),
        (r#"{"eos_token": {"lstrip": true}}"#, "eos_token"),
        (r#"{"chat_template": 3}"#, "chat_template"),
        (
            r#"{"chat_template": [{"name": "default"}]}"#,
            "chat_template[0]",
        ),
        (r#"{"add_bos_token": "yes"}"#, "add_bos_token"),
        (
            r#"{"added_tokens_decoder": {"x": {"content": "a"}}}"#,
            "added_tokens_decoder.x",
        ),
    ] {
        let err = load_err(&folder(&[("tokenizer_config.json", config)]));
        match &err {
            TokenizerError::Field { path, field: f, .. } => {
                assert!(path.ends_with("tokenizer_config.json"), "{err}");
                assert_eq!(f, field, "{err}");
            }
            other => panic!("{config}: expected a field error, got {other:?}"),
        }
        assert!(
            err.to_string().contains(&format!("field `{field}`")),
            "{err}"
        );
    }
}

#[test]
fn special_tokens_as_strings_or_added_token_objects() {
    let config = r#"{
        "bos_token": {"__type": "AddedToken", "content": "<|begin_of_text|>", "lstrip": false,
                      "normalized": false, "rstrip": false, "single_word": false, "special": true},
        "eos_token": "<|eot_id|>",
        "pad_token": null,
        "image_token": "<|image|>",
        "add_bos_token": true,
        "add_eos_token": false
    }"#;
    let (_dir, tok) = load(&[("tokenizer_config.json", config)]);
    assert_eq!(tok.bos_token(), Some("<|begin_of_text|>"));
    assert_eq!(tok.eos_token(), Some("<|eot_id|>"));
    assert_eq!(tok.pad_token(), None);
    assert_eq!(tok.bos_token_id(), tok.token_to_id("<|begin_of_text|>"));
    assert_eq!(tok.add_bos_token(), Some(true));
    assert_eq!(tok.add_eos_token(), Some(false));
    // A model-specific token missing from tokenizer.json is added as a special token.
    let image = tok.token_to_id("<|image|>").expect("image token added");
    assert_eq!(image as usize, tok.vocab_size() - 1);
    assert_eq!(tok.special_token("image_token"), Some("<|image|>"));
    assert_eq!(tok.encode("a<|image|>b", false).unwrap()[1], image);
    assert_eq!(tok.decode(&[image], true).unwrap(), "");
    // Templates see it, as transformers' special_tokens_map.
    let (_dir, tok) = load(&[
        ("tokenizer_config.json", config),
        (
            "chat_template.jinja",
            "{{ bos_token }}{{ image_token }}{{ pad_token is defined }}",
        ),
    ]);
    assert_eq!(
        render_x(tok.chat_template()),
        "<|begin_of_text|><|image|>False"
    );
}

#[test]
fn legacy_special_tokens_map_is_read_without_added_tokens_decoder() {
    let (_dir, tok) = load(&[
        (
            "tokenizer_config.json",
            r#"{"bos_token": "<|begin_of_text|>"}"#,
        ),
        (
            "special_tokens_map.json",
            r#"{"eos_token": {"content": "<|eot_id|>"}, "bos_token": "<|end_of_text|>"}"#,
        ),
    ]);
    assert_eq!(tok.bos_token(), Some("<|end_of_text|>"));
    assert_eq!(tok.eos_token(), Some("<|eot_id|>"));
    // With added_tokens_decoder in the config, transformers 5 ignores special_tokens_map.json.
    let (_dir, tok) = load(&[
        (
            "tokenizer_config.json",
            r#"{"bos_token": "<|begin_of_text|>", "added_tokens_decoder": {}}"#,
        ),
        (
            "special_tokens_map.json",
            r#"{"bos_token": "<|end_of_text|>"}"#,
        ),
    ]);
    assert_eq!(tok.bos_token(), Some("<|begin_of_text|>"));
}

#[test]
fn template_that_does_not_parse_names_its_source() {
    // Loading succeeds (transformers compiles templates on use); raw prompts still work.
    let (_dir, tok) = load(&[
        (
            "tokenizer_config.json",
            r#"{"bos_token": "<|begin_of_text|>"}"#,
        ),
        (
            "chat_template.jinja",
            "{% for m in messages %}{{ m.content }}\n{% if %}",
        ),
    ]);
    assert!(!tok.has_chat_template());
    assert!(build_prompt_ids(&tok, Prompt::Raw("hi")).is_ok());
    let err = tok.chat_template().unwrap_err();
    match &err {
        TokenizerError::TemplateSyntax { origin, message } => {
            assert!(origin.ends_with("chat_template.jinja"), "{origin}");
            assert!(message.contains("syntax error"), "{message}");
            assert!(message.contains(":2)"), "line number expected: {message}");
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
    let msgs = user("hi");
    let err = build_prompt_ids(
        &tok,
        Prompt::Chat {
            messages: &msgs,
            add_generation_prompt: true,
        },
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("chat_template.jinja does not parse"),
        "{err}"
    );

    // A template from tokenizer_config.json is named by file and field.
    let (_dir, tok) = load(&[("tokenizer_config.json", r#"{"chat_template": "{{ x"}"#)]);
    let err = tok.chat_template().unwrap_err().to_string();
    assert!(
        err.contains("tokenizer_config.json field `chat_template` does not parse"),
        "{err}"
    );
}

#[test]
fn raise_exception_message_is_passed_through() {
    let template = "{% for m in messages %}{% if m.role not in ['user', 'assistant'] %}\
{{ raise_exception('Unsupported role: ' + m.role) }}{% endif %}{{ m.content }}{% endfor %}";
    let (_dir, tok) = load(&[("chat_template.jinja", template)]);
    let msgs = vec![ChatMessage::new("tool", "42")];
    let err = tok
        .chat_template()
        .unwrap()
        .render(&msgs, false)
        .unwrap_err();
    match &err {
        TokenizerError::TemplateRaised { origin, message } => {
            assert_eq!(message, "Unsupported role: tool");
            assert!(origin.ends_with("chat_template.jinja"));
        }
        other => panic!("expected TemplateRaised, got {other:?}"),
    }
    assert!(
        err.to_string()
            .contains("raised an exception: Unsupported role: tool"),
        "{err}"
    );
    // Other render failures are not reported as raised exceptions.
    let (_dir, tok) = load(&[("chat_template.jinja", "{{ messages[0].content.nope() }}")]);
    let err = tok
        .chat_template()
        .unwrap()
        .render(&user("x"), false)
        .unwrap_err();
    assert!(
        matches!(err, TokenizerError::TemplateRender { .. }),
        "{err:?}"
    );
}

#[test]
fn unknown_roles_are_whatever_the_template_does() {
    let (_dir, tok) = load(&[("chat_template.jinja", CHATML)]);
    let out = tok
        .chat_template()
        .unwrap()
        .render(&[ChatMessage::new("narrator", "Once")], true)
        .unwrap();
    assert_eq!(
        out,
        "<|im_start|>narrator\nOnce<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn chat_mode_without_template_suggests_raw() {
    let (_dir, tok) = load(&[("tokenizer_config.json", r#"{"eos_token": "<|eot_id|>"}"#)]);
    assert!(!tok.has_chat_template());
    let msgs = user("hi");
    let err = build_prompt_ids(
        &tok,
        Prompt::Chat {
            messages: &msgs,
            add_generation_prompt: true,
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, TokenizerError::NoChatTemplate { .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("no chat template") && msg.contains("--raw"),
        "{msg}"
    );
    // --raw: tokenized as given, with the post-processor's BOS.
    let bos = tok.token_to_id("<|begin_of_text|>").unwrap();
    let ids = build_prompt_ids(&tok, Prompt::Raw("hi")).unwrap();
    assert_eq!(ids[0], bos);
    assert_eq!(&ids[1..], tok.encode("hi", false).unwrap().as_slice());
}

#[test]
fn template_list_without_default_is_reported_on_use() {
    let (_dir, tok) = load(&[(
        "tokenizer_config.json",
        r#"{"chat_template": [{"name": "tool_use", "template": "x"}, {"name": "rag", "template": "y"}]}"#,
    )]);
    let err = tok.chat_template().unwrap_err();
    assert!(
        matches!(err, TokenizerError::NoDefaultChatTemplate { ref names, .. } if names == &["tool_use", "rag"])
    );
    let msg = err.to_string();
    assert!(
        msg.contains("tokenizer_config.json")
            && msg.contains("\"default\"")
            && msg.contains("--raw"),
        "{msg}"
    );
}

#[test]
fn template_sources_and_precedence() {
    let config = r#"{"chat_template": [{"name": "default", "template": "config-default"},
                                        {"name": "tool_use", "template": "config-tools"}]}"#;
    let processor = r#"{"chat_template": "processor-json"}"#;
    // tokenizer_config.json list: "default".
    let (_dir, t) = load(&[("tokenizer_config.json", config)]);
    assert_eq!(render_x(t.chat_template()), "config-default");
    assert!(t
        .chat_template()
        .unwrap()
        .origin()
        .contains("(template \"default\")"));
    // chat_template.jinja wins over the config (transformers 5 precedence).
    let (_dir, t) = load(&[
        ("tokenizer_config.json", config),
        ("chat_template.jinja", "jinja-file\n"),
    ]);
    assert_eq!(render_x(t.chat_template()), "jinja-file");
    assert_eq!(t.chat_template().unwrap().source(), "jinja-file\n");
    // chat_template.json (processor) is the tokenizer's last resort ...
    let (_dir, t) = load(&[("chat_template.json", processor)]);
    assert_eq!(render_x(t.chat_template()), "processor-json");
    let (_dir, t) = load(&[
        ("tokenizer_config.json", config),
        ("chat_template.json", processor),
    ]);
    assert_eq!(render_x(t.chat_template()), "config-default");
    // ... and the processor's first choice, before chat_template.jinja.
    assert_eq!(render_x(t.processor_chat_template()), "processor-json");
    let (_dir, t) = load(&[
        ("tokenizer_config.json", config),
        ("chat_template.jinja", "jinja-file"),
        ("chat_template.json", processor),
    ]);
    assert_eq!(render_x(t.chat_template()), "jinja-file");
    assert_eq!(render_x(t.processor_chat_template()), "processor-json");
    // Without processor files, the processor uses the tokenizer's template.
    let (_dir, t) = load(&[("tokenizer_config.json", config)]);
    assert_eq!(render_x(t.processor_chat_template()), "config-default");
    // A malformed processor file is an error naming it.
    let err = load_err(&folder(&[("chat_template.json", "{\"chat_template\": 1}")])).to_string();
    assert!(
        err.contains("chat_template.json: field `chat_template`"),
        "{err}"
    );
}

#[test]
fn empty_conversation_is_an_error() {
    let (_dir, tok) = load(&[("chat_template.jinja", CHATML)]);
    let err = tok.chat_template().unwrap().render(&[], true).unwrap_err();
    assert!(matches!(err, TokenizerError::EmptyConversation), "{err:?}");
}

#[test]
fn generation_blocks_and_extra_variables() {
    let template = "{% for m in messages %}{% if m.role == 'assistant' %}{%- generation -%} {{ m.content }} \
{%- endgeneration %}{% else %}{{ m.content }}{% endif %}|{% endfor %}{{ enable_thinking }}|{{ tools | tojson }}";
    let (_dir, tok) = load(&[("chat_template.jinja", template)]);
    let msgs = vec![
        ChatMessage::new("user", "q"),
        ChatMessage::new("assistant", "a"),
    ];
    let t = tok.chat_template().unwrap();
    assert_eq!(t.render(&msgs, false).unwrap(), "q|a||null");
    let mut vars = std::collections::BTreeMap::new();
    vars.insert("enable_thinking".to_string(), serde_json::json!(false));
    vars.insert(
        "tools".to_string(),
        serde_json::json!([{"type": "function"}]),
    );
    assert_eq!(
        t.render_with_vars(&msgs, false, &vars).unwrap(),
        "q|a|False|[{\"type\": \"function\"}]"
    );
}

#[test]
fn llama_class_defaults_and_decode_errors() {
    // transformers 5 uses LlamaTokenizer (and its default tokens) only for a folder that is not
    // byte-level: with the tiny_llama3 (byte-level) tokenizer.json the declaration is ignored.
    let config = r#"{"tokenizer_class": "LlamaTokenizer", "unk_token": null}"#;
    let (_dir, tok) = load(&[("tokenizer_config.json", config)]);
    assert_eq!(tok.tokenizer_class(), Some("LlamaTokenizer"));
    assert!(
        tok.special_tokens().is_empty(),
        "{:?}",
        tok.special_tokens()
    );
    // Ids outside the vocabulary decode to nothing, as in transformers.
    assert_eq!(tok.decode(&[u32::MAX], false).unwrap(), "");

    // With a SentencePiece-style tokenizer.json the class applies, defaults included.
    let dir = folder_from(Some("tiny_llama2"), &[("tokenizer_config.json", config)]);
    let tok = TextTokenizer::from_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(tok.bos_token(), Some("<s>"));
    assert_eq!(tok.eos_token(), Some("</s>"));
    assert_eq!(tok.unk_token(), None);
    // (transformers: [1, 376] and "<s> Hello" for this folder.)
    assert_eq!(tok.encode(" Hello", true).unwrap(), vec![1, 376]);
    assert_eq!(tok.decode(&[1, 376], false).unwrap(), "<s> Hello");
}

#[test]
fn tokenizer_and_stream_decoder_can_cross_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<TextTokenizer>();
    assert_send_sync::<iris_models::tokenizer::StreamDecoder>();
    assert_send_sync::<iris_models::tokenizer::ChatTemplate>();
}
