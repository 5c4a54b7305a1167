//! Inverse rotary frequencies, computed step by step in f32 as transformers'
//! `_compute_default_rope_parameters`, `_compute_linear_scaling_rope_parameters` and
//! `_compute_llama3_parameters` do (their tensors are f32; Python scalars join in f32).

use iris_kernels::cpu::reference::rope_inv_freq;

use super::config::{LlmConfig, RopeScaling};

pub fn inv_freq(config: &LlmConfig) -> Vec<f32> {
    let base = rope_inv_freq(config.rotary_dim(), config.rope_theta);
    match config.rope_scaling {
        RopeScaling::Default => base,
        RopeScaling::Linear { factor } => base.iter().map(|f| f / factor).collect(),
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        } => {
            let old_context_len = original_max_position_embeddings as f32;
            // Python floats: computed in f64, then met by f32 tensors.
            let low_freq_wavelen =
                (original_max_position_embeddings as f64 / low_freq_factor as f64) as f32;
            let high_freq_wavelen =
                (original_max_position_embeddings as f64 / high_freq_factor as f64) as f32;
            let two_pi = (2.0 * std::f64::consts::PI) as f32;
            let band = (high_freq_factor as f64 - low_freq_factor as f64) as f32;
            base.iter()
                .map(|&f| {
                    let wavelen = two_pi / f;
                    let scaled = if wavelen > low_freq_wavelen {
                        f / factor
                    } else {
                        f
                    };
                    // HF: ~(wavelen < high) * ~(wavelen > low); wavelen is never NaN.
                    let medium = wavelen >= high_freq_wavelen && wavelen <= low_freq_wavelen;
                    if medium {
                        let smooth = (old_context_len / wavelen - low_freq_factor) / band;
                        (1.0 - smooth) * scaled / factor + smooth * scaled
                    } else {
                        scaled
                    }
                })
                .collect()
        }
    }
}
