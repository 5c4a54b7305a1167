//! Idefics3 connector: pixel shuffle by `scale_factor` (s x s neighbouring patches folded into
//! channels: [N, P, D] -> [N, P / s^2, D s^2]) then `modality_projection.proj` without bias.

use iris_runtime::graph::{GraphBuilder, ValueId};

use crate::error::ModelError;
use crate::vision::Linear;
use crate::weights::Weights;

pub struct Idefics3Connector {
    scale_factor: usize,
    proj: Linear,
}

impl Idefics3Connector {
    /// Loads from the `connector` scope.
    pub fn load(
        w: &Weights,
        vision_dim: usize,
        text_dim: usize,
        scale_factor: usize,
    ) -> Result<Self, ModelError> {
        let in_dim = vision_dim * scale_factor * scale_factor;
        Ok(Idefics3Connector {
            scale_factor,
            proj: Linear::load(
                &w.pp("modality_projection"),
                "proj",
                text_dim,
                in_dim,
                false,
            )?,
        })
    }

    /// `[N, P, D] -> [N, P / s^2, text_dim]`.
    pub fn record(&self, g: &mut GraphBuilder, x: ValueId) -> Result<ValueId, ModelError> {
        let x = g.pixel_shuffle(x, self.scale_factor)?;
        self.proj.record(g, x)
    }
}
