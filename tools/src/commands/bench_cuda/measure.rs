//! Timing one case variant on the CUDA backend: allocates and fills `copies` operand sets
//! (rotated so every call reads from HBM), runs the op once to learn whether the backend
//! supports it, then times it with CUDA events (`CudaBackend::time_on_stream`) and checks
//! that its outputs are finite.

use iris_runtime::backend::cuda::{CudaBackend, CudaSlot};
use iris_runtime::backend::{Backend, Operand};
use iris_runtime::{DType, Error};

use super::cases::{Buffer, Fill, Variant};

/// Bytes every case's rotated buffers add up to at least.
pub(super) const ROTATE_BYTES: usize = 256 << 20;
/// At most this many buffer sets per case.
const MAX_COPIES: usize = 64;
/// Device seconds of timed calls per case, beyond which fewer than `--runs` are timed.
const BUDGET_S: f64 = 1.0;
/// Timed calls per case however slow the kernel.
const MIN_RUNS: usize = 5;
/// Output elements read back to check they are finite.
const CHECKED_OUTPUTS: usize = 1 << 20;

/// A timed case.
pub(super) struct Timing {
    pub dtypes: String,
    pub median_s: f64,
    pub min_s: f64,
    pub runs: usize,
    /// Operand sets the calls rotated over.
    pub copies: usize,
    pub flops: f64,
    pub bytes: f64,
}

impl Timing {
    pub fn tflops(&self) -> f64 {
        self.flops / self.median_s / 1e12
    }
    pub fn tb_s(&self) -> f64 {
        self.bytes / self.median_s / 1e12
    }
    /// "compute" or "memory", by the roofline at the given peaks.
    pub fn bound(&self, peak_tflops: f64, peak_tb_s: f64) -> &'static str {
        if self.flops / peak_tflops >= self.bytes / peak_tb_s {
            "compute"
        } else {
            "memory"
        }
    }
    pub fn percent(&self, peak_tflops: f64, peak_tb_s: f64) -> f64 {
        match self.bound(peak_tflops, peak_tb_s) {
            "compute" => 100.0 * self.tflops() / peak_tflops,
            _ => 100.0 * self.tb_s() / peak_tb_s,
        }
    }
}

/// One set of operands on the device.
struct Set {
    inputs: Vec<Operand<CudaSlot>>,
    output: Operand<CudaSlot>,
}

pub(super) fn time_variant(
    backend: &mut CudaBackend,
    variant: &Variant,
    runs: usize,
) -> iris_runtime::Result<Timing> {
    let rotated: usize = variant
        .inputs
        .iter()
        .chain([&variant.output])
        .filter(|b| b.rotate)
        .map(Buffer::bytes)
        .sum();
    let copies = ROTATE_BYTES.div_ceil(rotated.max(1)).clamp(1, MAX_COPIES);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // Shared buffers first; the first set is checked by one call before the rest is made,
    // so an unsupported dtype mix costs one set.
    let mut shared = Vec::new();
    for buffer in variant.inputs.iter().filter(|b| !b.rotate) {
        shared.push(operand(backend, buffer, &mut rng)?);
    }
    let mut sets = vec![make_set(backend, variant, &shared, &mut rng)?];
    backend.execute(&variant.op, &sets[0].inputs, &sets[0].output)?;
    while sets.len() < copies {
        let set = make_set(backend, variant, &shared, &mut rng)?;
        sets.push(set);
    }
    let work = |offset: usize| {
        let sets = &sets;
        let op = &variant.op;
        move |be: &mut CudaBackend, call: usize| {
            let set = &sets[(offset + call) % sets.len()];
            be.execute(op, &set.inputs, &set.output)
        }
    };
    let mut probe = backend.time_on_stream(copies.max(2), 3, work(0))?;
    let estimate = median(&mut probe).max(1e-7);
    let runs = ((BUDGET_S / estimate) as usize).clamp(MIN_RUNS.min(runs), runs);
    let mut times = backend.time_on_stream(0, runs, work(copies.max(2) + 3))?;
    if let Some(bad) = times.iter().find(|t| !(t.is_finite() && **t > 0.0)) {
        return Err(Error::Cuda(format!("a timing event pair read {bad} s")));
    }
    let median_s = median(&mut times);
    check_finite(backend, &sets[0].output)?;
    Ok(Timing {
        dtypes: variant.dtypes.clone(),
        median_s,
        min_s: times[0],
        runs,
        copies,
        flops: variant.flops,
        bytes: variant.bytes,
    })
}

/// Sorts `times` and returns the median.
fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn make_set(
    backend: &mut CudaBackend,
    variant: &Variant,
    shared: &[Operand<CudaSlot>],
    rng: &mut Rng,
) -> iris_runtime::Result<Set> {
    let mut shared = shared.iter();
    let mut inputs = Vec::with_capacity(variant.inputs.len());
    for buffer in &variant.inputs {
        // Shared operands were made in the order of the non-rotated inputs.
        let input = if buffer.rotate {
            None
        } else {
            shared.next().cloned()
        };
        inputs.push(match input {
            Some(input) => input,
            None => operand(backend, buffer, rng)?,
        });
    }
    let output = operand(backend, &variant.output, rng)?;
    Ok(Set { inputs, output })
}

/// Allocates `buffer` on the device and fills it.
fn operand(
    backend: &mut CudaBackend,
    buffer: &Buffer,
    rng: &mut Rng,
) -> iris_runtime::Result<Operand<CudaSlot>> {
    let bytes = buffer.bytes();
    let slot = backend.alloc(bytes)?;
    let n = buffer.shape.numel();
    let host: Vec<u8> = match (buffer.fill, buffer.dtype) {
        // A 4 MiB random block, tiled: the values do not matter to the timing, only that
        // they are ordinary non-zero numbers.
        (Fill::Uniform, dtype) => {
            let block = n.min(1 << 20);
            let values = (0..block).map(|_| rng.uniform());
            match dtype {
                DType::F32 => values.flat_map(f32::to_le_bytes).collect(),
                DType::BF16 => values.flat_map(|v| bf16_bits(v).to_le_bytes()).collect(),
                other => {
                    return Err(Error::InvalidOp {
                        op: "bench",
                        message: format!("no uniform fill for {other}"),
                    })
                }
            }
        }
        (Fill::Ids(vocab), _) => (0..n)
            .flat_map(|_| ((rng.next() % vocab as u64) as i64).to_le_bytes())
            .collect(),
        (Fill::Positions(t), _) => (0..n)
            .flat_map(|i| ((i % t) as i64).to_le_bytes())
            .collect(),
        (Fill::Value(v), _) => (0..n).flat_map(|_| v.to_le_bytes()).collect(),
    };
    let mut offset = 0;
    while offset < bytes {
        let len = host.len().min(bytes - offset);
        let dst = backend.sub_slot(&slot, offset, len);
        backend.write_bytes(&dst, &host[..len])?;
        offset += len;
    }
    Ok(Operand {
        slot,
        dtype: buffer.dtype,
        shape: buffer.shape.clone(),
    })
}

/// Reads back up to `CHECKED_OUTPUTS` output elements: a kernel that leaves NaN or infinity
/// behind on ordinary inputs is a failure, however fast.
fn check_finite(backend: &mut CudaBackend, output: &Operand<CudaSlot>) -> iris_runtime::Result<()> {
    let n = output.shape.numel().min(CHECKED_OUTPUTS);
    let size = output.dtype.size_in_bytes();
    let mut bytes = vec![0u8; n * size];
    backend.read_into(&output.slot, &mut bytes)?;
    let bad = match output.dtype {
        DType::F32 => bytes
            .chunks_exact(4)
            .filter(|c| !f32::from_le_bytes([c[0], c[1], c[2], c[3]]).is_finite())
            .count(),
        DType::BF16 => bytes
            .chunks_exact(2)
            .filter(|c| u16::from_le_bytes([c[0], c[1]]) & 0x7f80 == 0x7f80)
            .count(),
        _ => 0,
    };
    if bad > 0 {
        return Err(Error::InvalidOp {
            op: "bench",
            message: format!("{bad} of the first {n} outputs are NaN or infinite"),
        });
    }
    Ok(())
}

/// f32 to bf16 bits, rounding to nearest even (inputs here are finite).
fn bf16_bits(v: f32) -> u16 {
    let bits = v.to_bits();
    ((bits + 0x7fff + ((bits >> 16) & 1)) >> 16) as u16
}

/// xorshift64*: fast, deterministic filler data (not for statistics).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [-1, 1), never exactly zero.
    fn uniform(&mut self) -> f32 {
        let v = (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
        if v == 0.0 {
            0.5
        } else {
            v
        }
    }
}
