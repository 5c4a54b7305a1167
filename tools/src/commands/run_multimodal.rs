//! `iris run --model DIR --image IMG... --prompt TEXT` for LLaVA and Idefics3 (SmolVLM)
//! folders: images are loaded and preprocessed as the folder's preprocessor_config.json
//! says, the prompt gets one image marker per image (chat template, or as written with
//! --raw) expanded as the HF processor does, the vision graph runs once per image, and the
//! text streams out like `iris run` for text models.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use iris_models::image::{load_image, preprocess, PreprocessorConfig};
use iris_models::llm::KvCacheDtype;
use iris_models::pipeline::prompt::{multimodal_prompt_ids, MultimodalPrompt};
use iris_models::pipeline::{MultimodalModel, MultimodalSession};
use iris_models::tokenizer::TextTokenizer;
use iris_runtime::DType;

use super::device::with_backend;
use super::run::{Args, TokenStream};

pub fn run(args: &Args, dtype: Option<DType>, kv_cache: KvCacheDtype) -> anyhow::Result<()> {
    let start = Instant::now();
    let model = MultimodalModel::load(&args.model, dtype)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let tokenizer = TextTokenizer::from_dir(&args.model)?;
    let processor = PreprocessorConfig::from_file(args.model.join("preprocessor_config.json"))?;
    let load_ms = start.elapsed().as_secs_f64() * 1e3;

    let images = args
        .image
        .iter()
        .map(load_image)
        .collect::<Result<Vec<_>, _>>()?;
    let processed = if images.is_empty() {
        None
    } else {
        Some(preprocess(&processor, &images)?)
    };
    let prompt = if args.raw {
        MultimodalPrompt::Raw(&args.prompt)
    } else {
        MultimodalPrompt::Chat {
            system: args.system.as_deref(),
            text: &args.prompt,
        }
    };
    let prompt_ids = multimodal_prompt_ids(&model, &tokenizer, processed.as_ref(), prompt)?;
    let context = args
        .context
        .unwrap_or(model.llm.config.max_position_embeddings.min(4096));
    let generation = args.generation_config(model.eos_token_ids.clone());
    let model = Arc::new(model);
    let mut stream = TokenStream::new(&tokenizer, args.json);
    let pixel_values = processed.as_ref().map(|p| &p.pixel_values);
    // The session's setup (graph compilation, weight packing) counts as load.
    let setup_ms: f64;
    let output = with_backend!(args.device, |backend| {
        let setup = Instant::now();
        let mut session =
            MultimodalSession::with_kv_cache(model.clone(), backend, context, kv_cache)?;
        setup_ms = setup.elapsed().as_secs_f64() * 1e3;
        session.generate(&prompt_ids, pixel_values, &generation, |token| {
            stream.push(token)
        })?
    });
    let vision_ms = pixel_values.map(|_| output.vision.as_secs_f64() * 1e3);
    stream.finish(
        &output.generation,
        prompt_ids.len(),
        load_ms + setup_ms,
        vision_ms,
    )
}
