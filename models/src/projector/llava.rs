//! LLaVA `multi_modal_projector`: linear_1 -> act (`projector_hidden_act`) -> linear_2, with
//! biases unless `multimodal_projector_bias` is false.

use iris_runtime::graph::{GraphBuilder, ValueId};

use crate::error::ModelError;
use crate::vision::Linear;
use crate::vision::{record_activation, Activation};
use crate::weights::Weights;

pub struct LlavaProjector {
    linear_1: Linear,
    act: Activation,
    linear_2: Linear,
}

impl LlavaProjector {
    /// Loads from the `multi_modal_projector` scope: features of `in_dim` to `text_dim`.
    pub fn load(
        w: &Weights,
        in_dim: usize,
        text_dim: usize,
        act: Activation,
        bias: bool,
    ) -> Result<Self, ModelError> {
        Ok(LlavaProjector {
            linear_1: Linear::load(w, "linear_1", text_dim, in_dim, bias)?,
            act,
            linear_2: Linear::load(w, "linear_2", text_dim, text_dim, bias)?,
        })
    }

    /// `[N, S, in_dim] -> [N, S, text_dim]`.
    pub fn record(&self, g: &mut GraphBuilder, x: ValueId) -> Result<ValueId, ModelError> {
        let h = self.linear_1.record(g, x)?;
        let h = record_activation(g, h, self.act)?;
        self.linear_2.record(g, h)
    }
}
