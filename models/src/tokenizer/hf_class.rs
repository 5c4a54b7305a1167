//! Which pipeline transformers 5's `AutoTokenizer.from_pretrained(dir)` builds, where that
//! differs from tokenizer.json as written (models/auto/tokenization_auto.py, 5.x).
//!
//! The one case iris reproduces: a folder that declares `tokenizer_class` "LlamaTokenizer" (or
//! "LlamaTokenizerFast"), in tokenizer_config.json or else config.json, is loaded with
//! transformers' LlamaTokenizer, which rebuilds the normalizer, pre-tokenizer and decoder
//! (see `llama_pipeline` in mod.rs) - unless
//! - tokenizer.json mentions "ByteLevel" (Llama 3 style; transformers then loads it as is), or
//! - config.json's `model_type` is one whose registered tokenizer transformers uses instead of
//!   the declared class: the generic backend (llava, llava_next, mistral, mixtral, smolvlm,
//!   ...) or a known-incorrect hub class. For those iris reads tokenizer.json as is (for the
//!   few with their own class, e.g. qwen2 -> Qwen2Tokenizer, that is an approximation).

/// transformers 5.x: model types whose AutoTokenizer ignores a declared LlamaTokenizer
/// (`TOKENIZER_MAPPING_NAMES` entries with a generic backend, and
/// `MODELS_WITH_INCORRECT_HUB_TOKENIZER_CLASS`).
const MODEL_TYPES_NOT_LLAMA_TOKENIZER: &[&str] = &[
    "EvollaModel",
    "arctic",
    "aria",
    "beam",
    "bigbird_pegasus",
    "camembertv2-base",
    "canary",
    "chatlm",
    "cohere_asr",
    "ernie4_5",
    "ernie4_5_moe",
    "flex_olmo",
    "fuyu",
    "glm",
    "glm4",
    "glm4_moe",
    "glm4_moe_lite",
    "glm4v",
    "glm4v_moe",
    "glm_image",
    "glmasr",
    "got_ocr2",
    "gpt_bigcode",
    "gradium_phonon_tts",
    "granite",
    "granitemoe",
    "granitemoehybrid",
    "granitemoeshared",
    "h2ovl_chat",
    "hyperclovax",
    "hyperclovax_vision_v2",
    "hyperclovax_vlm",
    "internlm2",
    "internlm3",
    "iquestcoder",
    "jamba",
    "kimi_k25",
    "kimi_linear",
    "kosmos-2",
    "llava",
    "llava_next",
    "mimo_v2_flash",
    "minicpm3",
    "minicpm_ocr",
    "minicpmv",
    "minicpmv4_6",
    "minicpmv4_7",
    "minimax_m2",
    "ministral",
    "ministral3",
    "mistral",
    "mistral3",
    "mistral_large4",
    "mixtral",
    "modernbert",
    "modernbert-decoder",
    "molmo",
    "molmo2",
    "nemo_speechlm",
    "nemotron",
    "nvfp4",
    "nystromformer",
    "olmo2",
    "olmo3",
    "olmo_hybrid",
    "omniasr",
    "opencua",
    "openvla",
    "paddleocr_vl",
    "pegasus_x",
    "persimmon",
    "phi3",
    "phi3_v",
    "phimoe",
    "pix2struct",
    "pixtral",
    "pocket_tts",
    "qwen2",
    "qwen3_5",
    "qwen3_5_moe",
    "qwen3_5_moe_text",
    "qwen4_exp",
    "siglip2",
    "smolvlm",
    "stablelm",
    "step3_vl",
    "umt5",
    "vipllava",
    "voxtral",
    "voxtral_realtime",
    "xlm-roberta-xl",
];

/// Whether transformers 5 loads this folder with its LlamaTokenizer class.
/// `declared_class`: tokenizer_config.json's `tokenizer_class`, else config.json's;
/// `model_type`: config.json's; `tokenizer_json`: the text of tokenizer.json.
pub(crate) fn loads_as_llama_tokenizer(
    declared_class: Option<&str>,
    model_type: Option<&str>,
    tokenizer_json: &str,
) -> bool {
    let Some(class) = declared_class else {
        return false;
    };
    if class.strip_suffix("Fast").unwrap_or(class) != "LlamaTokenizer" {
        return false;
    }
    if model_type.is_some_and(|t| MODEL_TYPES_NOT_LLAMA_TOKENIZER.contains(&t)) {
        return false;
    }
    !tokenizer_json.contains("\"ByteLevel\"")
}

#[cfg(test)]
mod tests {
    use super::loads_as_llama_tokenizer as llama;

    #[test]
    fn declared_class_model_type_and_byte_level_decide() {
        let sp = r#"{"decoder": {"type": "Sequence"}}"#;
        let bl = r#"{"decoder": {"type": "ByteLevel"}}"#;
        assert!(llama(Some("LlamaTokenizer"), None, sp));
        assert!(llama(Some("LlamaTokenizerFast"), Some("llama"), sp));
        assert!(!llama(Some("LlamaTokenizerFast"), Some("llava"), sp));
        assert!(!llama(Some("LlamaTokenizer"), Some("mistral"), sp));
        assert!(!llama(Some("LlamaTokenizer"), None, bl));
        assert!(!llama(Some("PreTrainedTokenizerFast"), Some("llama"), sp));
        assert!(!llama(None, Some("llama"), sp));
    }
}
