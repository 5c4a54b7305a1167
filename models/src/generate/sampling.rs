//! Choosing the next token from logits: greedy, or temperature / top-k / top-p sampling in
//! the order HF's logits warpers apply them, reproducible for a seed. No allocation per
//! token: the scratch buffer is sized once for the vocabulary.

/// Sampling settings; `temperature == 0` is greedy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplingParams {
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens (0 = off).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability mass reaches `top_p` (1 = off).
    pub top_p: f32,
    pub seed: u64,
}

impl SamplingParams {
    /// Temperature 0 (or below): always the most likely token.
    pub fn is_greedy(&self) -> bool {
        self.temperature <= 0.0
    }
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            seed: 0,
        }
    }
}

/// SplitMix64: tiny, fast and fully determined by its seed.
#[derive(Clone, Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

pub struct Sampler {
    params: SamplingParams,
    rng: SplitMix64,
    scratch: Vec<(f32, u32)>,
}

/// Index of the largest value, the first one on ties (as torch.argmax); NaN never wins.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    let mut best_value = f32::NEG_INFINITY;
    for (i, &v) in logits.iter().enumerate() {
        if v > best_value {
            best_value = v;
            best = i;
        }
    }
    best as u32
}

impl Sampler {
    pub fn new(params: SamplingParams, vocab_size: usize) -> Self {
        Sampler {
            params,
            rng: SplitMix64(params.seed),
            scratch: Vec::with_capacity(vocab_size),
        }
    }

    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        let p = self.params;
        if p.is_greedy() {
            return argmax(logits);
        }
        self.scratch.clear();
        self.scratch.extend(
            logits
                .iter()
                .enumerate()
                .map(|(i, &l)| (l / p.temperature, i as u32)),
        );
        self.scratch.retain(|(l, _)| !l.is_nan());
        if self.scratch.is_empty() {
            return argmax(logits);
        }
        // Most likely first; the index breaks ties so the order is fully determined.
        self.scratch
            .sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        if p.top_k > 0 && p.top_k < self.scratch.len() {
            self.scratch.truncate(p.top_k);
        }
        let max = self.scratch[0].0;
        let mut total = 0.0f64;
        for entry in self.scratch.iter_mut() {
            let e = ((entry.0 - max) as f64).exp() as f32;
            total += e as f64;
            entry.0 = e;
        }
        let mut keep = self.scratch.len();
        if p.top_p < 1.0 {
            let mut cumulative = 0.0f64;
            for (i, entry) in self.scratch.iter().enumerate() {
                cumulative += entry.0 as f64 / total;
                if cumulative >= p.top_p as f64 {
                    keep = i + 1;
                    break;
                }
            }
        }
        let kept_total: f64 = self.scratch[..keep].iter().map(|e| e.0 as f64).sum();
        let mut target = self.rng.next_f64() * kept_total;
        for entry in &self.scratch[..keep] {
            target -= entry.0 as f64;
            if target < 0.0 {
                return entry.1;
            }
        }
        self.scratch[keep - 1].1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits() -> Vec<f32> {
        (0..50)
            .map(|i| ((i * 37 % 50) as f32 * 0.21).sin() * 3.0)
            .collect()
    }

    #[test]
    fn greedy_is_first_argmax() {
        let mut s = Sampler::new(SamplingParams::default(), 4);
        assert_eq!(s.sample(&[0.5, 2.0, 2.0, -1.0]), 1);
    }

    #[test]
    fn same_seed_same_tokens_other_seed_differs() {
        let params = SamplingParams {
            temperature: 1.5,
            top_k: 0,
            top_p: 1.0,
            seed: 7,
        };
        let draw = |params: SamplingParams| {
            let mut s = Sampler::new(params, 50);
            (0..64).map(|_| s.sample(&logits())).collect::<Vec<_>>()
        };
        assert_eq!(draw(params), draw(params));
        assert_ne!(draw(params), draw(SamplingParams { seed: 8, ..params }));
    }

    #[test]
    fn top_k_and_top_p_restrict_the_support() {
        let l = logits();
        let mut order: Vec<usize> = (0..l.len()).collect();
        order.sort_by(|&a, &b| l[b].total_cmp(&l[a]));
        let mut s = Sampler::new(
            SamplingParams {
                temperature: 5.0,
                top_k: 3,
                top_p: 1.0,
                seed: 1,
            },
            50,
        );
        for _ in 0..200 {
            assert!(order[..3].contains(&(s.sample(&l) as usize)));
        }
        // A tiny top_p keeps only the most likely token.
        let mut s = Sampler::new(
            SamplingParams {
                temperature: 1.0,
                top_k: 0,
                top_p: 1e-6,
                seed: 1,
            },
            50,
        );
        for _ in 0..50 {
            assert_eq!(s.sample(&l) as usize, order[0]);
        }
    }

    #[test]
    fn sampling_follows_the_distribution() {
        // Two tokens with probabilities 0.8 / 0.2 at temperature 1.
        let l = [0.0f32, (0.25f32).ln()];
        let mut s = Sampler::new(
            SamplingParams {
                temperature: 1.0,
                top_k: 0,
                top_p: 1.0,
                seed: 3,
            },
            2,
        );
        let ones = (0..20000).filter(|_| s.sample(&l) == 1).count() as f64 / 20000.0;
        assert!((ones - 0.2).abs() < 0.015, "{ones}");
    }
}
