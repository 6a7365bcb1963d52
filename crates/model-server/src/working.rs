//! The model's working memory: what running it takes beyond the request's decoded inputs,
//! measured once when the model loads, so that the memory budget ([`crate::budget`]) charges
//! every request for its run and not only for its body.
//!
//! # Method
//! After a first run that pages in the model's code and makes its one-time state, the model
//! runs on probe inputs (zero-filled tensors) with every variable dimension set to 1, then to
//! 2, 4, 8, … until the inputs take [`PROBE_INPUT_BYTES`], the run takes half of
//! [`PROBE_WORKING_BYTES`] (so no probe takes more than that, even for a model that widens its
//! inputs a thousandfold), or `n` reaches 2^16. Around each run the process's
//! peak resident set size is read: writing `5` to `/proc/self/clear_refs` resets `VmHWM` to
//! the current `VmRSS`, and `VmHWM` after the run less `VmRSS` before it is what the run made
//! resident (Linux ≥ 4.0, `proc(5)`). A run's working memory is that, plus the copy of the
//! inputs into the model's tensors and the encoded copy of its outputs (the request path makes
//! both; the probe does not).
//!
//! A request whose inputs decode to `b` bytes is charged `fixed + per_input_byte × b`, where
//! `per_input_byte` is the slope between the first and the last probe (0 when every dimension is fixed) and
//! `fixed` the first probe's whole figure. The line is an estimate: a model whose memory grows
//! faster than its inputs (attention over a sequence dimension, for one) is under-charged for
//! inputs larger than the probe's.
//!
//! When the measurement cannot be made (no `/proc`, a model that cannot run on zeros, BYTES
//! inputs), the run is charged [`UNMEASURED_PER_INPUT_BYTE`] times the decoded inputs, and the
//! server logs why.

use std::sync::Arc;
use std::time::Instant;

use tract_onnx::prelude::*;

use crate::model::{Dim, TensorSpec};
use crate::tensor::DataType;

/// The input bytes the larger probe aims for.
pub const PROBE_INPUT_BYTES: u64 = 4 << 20;
/// The largest value a variable dimension takes in the larger probe.
const MAX_PROBE_DIM: u64 = 1 << 16;
/// The most working memory the larger probe is expected to take.
pub const PROBE_WORKING_BYTES: u64 = 64 << 20;
/// What a run is charged per decoded input byte when it could not be measured: the copy into
/// the model's tensors, an output as large as the inputs, and its encoded copy.
pub const UNMEASURED_PER_INPUT_BYTE: f64 = 3.0;

/// A model's working memory per request: `fixed + per_input_byte × decoded input bytes`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkingMemory {
    /// Bytes every run takes, whatever its inputs.
    pub fixed: u64,
    /// Bytes a run takes per byte of decoded input.
    pub per_input_byte: f64,
    /// Whether the figures were measured (false: the [`UNMEASURED_PER_INPUT_BYTE`] fallback).
    pub measured: bool,
}

impl WorkingMemory {
    /// The fallback when the model's run could not be measured.
    pub fn unmeasured() -> Self {
        Self {
            fixed: 0,
            per_input_byte: UNMEASURED_PER_INPUT_BYTE,
            measured: false,
        }
    }

    /// The bytes a run on inputs decoding to `decoded_bytes` takes.
    pub fn for_inputs(&self, decoded_bytes: u64) -> u64 {
        let scaled = (decoded_bytes as f64 * self.per_input_byte).ceil();
        // `as` saturates a float that exceeds u64.
        self.fixed.saturating_add(scaled as u64)
    }

    /// The line through two probes of `(input bytes, working bytes)`, the smaller first.
    pub fn through(small: (u64, u64), large: Option<(u64, u64)>) -> Self {
        let per_input_byte = match large {
            Some((in_large, w_large)) if in_large > small.0 => {
                (w_large.saturating_sub(small.1)) as f64 / (in_large - small.0) as f64
            }
            _ => 0.0,
        };
        Self {
            fixed: small.1,
            per_input_byte,
            measured: true,
        }
    }
}

/// One probe: its input bytes and the bytes its run took, as described in the module docs.
struct Probe {
    input_bytes: u64,
    working_bytes: u64,
}

/// Measures `plan`'s working memory on probe inputs shaped after `inputs` (see the module
/// docs). Errors: why it could not be measured (the caller falls back to
/// [`WorkingMemory::unmeasured`]).
pub fn measure(
    plan: &Arc<TypedRunnableModel>,
    inputs: &[TensorSpec],
) -> Result<WorkingMemory, String> {
    if inputs.iter().any(|s| s.datatype == DataType::Bytes) {
        return Err("a BYTES input has no fixed size to probe with".into());
    }
    let variable = inputs
        .iter()
        .any(|s| s.shape.iter().any(|d| !matches!(d, Dim::Fixed(_))));
    let started = Instant::now();
    // A first run pages in the model's code and makes its one-time state; what is measured is
    // what every later run takes.
    probe(plan, inputs, 1)?;
    let small = probe(plan, inputs, 1)?;
    let mut large = None;
    if variable {
        // Doubling `n` until the inputs are large enough to measure, or the run takes half of
        // what a probe may: the next doubling would pass it.
        let mut n = 2;
        loop {
            let p = probe(plan, inputs, n)?;
            let done = p.input_bytes >= PROBE_INPUT_BYTES
                || p.working_bytes.saturating_mul(2) > PROBE_WORKING_BYTES
                || n >= MAX_PROBE_DIM;
            large = Some(p);
            if done {
                break;
            }
            n *= 2;
        }
    }
    let working = WorkingMemory::through(
        (small.input_bytes, small.working_bytes),
        large.map(|p| (p.input_bytes, p.working_bytes)),
    );
    tracing::debug!(
        fixed = working.fixed,
        per_input_byte = working.per_input_byte,
        seconds = started.elapsed().as_secs_f64(),
        "measured the model's working memory"
    );
    Ok(working)
}

/// The bytes of the inputs with every variable dimension set to `n`.
fn input_bytes(inputs: &[TensorSpec], n: u64) -> u64 {
    inputs
        .iter()
        .map(|s| {
            shape_of(s, n)
                .iter()
                .fold(crate::tensor::element_size(s.datatype) as u64, |b, d| {
                    b.saturating_mul(*d as u64)
                })
        })
        .fold(0u64, u64::saturating_add)
}

fn shape_of(spec: &TensorSpec, n: u64) -> Vec<usize> {
    spec.shape
        .iter()
        .map(|d| match d {
            Dim::Fixed(v) => *v as usize,
            Dim::Symbol(_) | Dim::Dynamic => n as usize,
        })
        .collect()
}

fn datum_of(dt: DataType) -> Option<DatumType> {
    [
        DatumType::Bool,
        DatumType::U8,
        DatumType::U16,
        DatumType::U32,
        DatumType::U64,
        DatumType::I8,
        DatumType::I16,
        DatumType::I32,
        DatumType::I64,
        DatumType::F16,
        DatumType::F32,
        DatumType::F64,
    ]
    .into_iter()
    .find(|d| DataType::from_datum(*d) == Some(dt))
}

fn probe(plan: &Arc<TypedRunnableModel>, inputs: &[TensorSpec], n: u64) -> Result<Probe, String> {
    let mut values = TVec::with_capacity(inputs.len());
    for spec in inputs {
        let datum = datum_of(spec.datatype)
            .ok_or_else(|| format!("input '{}' has no tensor type to probe with", spec.name))?;
        let tensor = Tensor::zero_dt(datum, &shape_of(spec, n))
            .map_err(|e| format!("cannot make a probe for input '{}': {e}", spec.name))?;
        values.push(tensor.into_tvalue());
    }
    let input_bytes = input_bytes(inputs, n);
    let before = resident_before_run()?;
    let outputs = plan
        .run(values)
        .map_err(|e| format!("the model does not run on zero inputs of size {n}: {e}"))?;
    let peak = peak_resident()?;
    let output_bytes: u64 = outputs
        .iter()
        .map(|t| (t.len() * t.datum_type().size_of()) as u64)
        .sum();
    drop(outputs);
    Ok(Probe {
        input_bytes,
        working_bytes: peak
            .saturating_sub(before)
            .saturating_add(input_bytes)
            .saturating_add(output_bytes),
    })
}

/// Resets the peak resident set size to the current one and returns it, in bytes.
fn resident_before_run() -> Result<u64, String> {
    std::fs::write("/proc/self/clear_refs", "5")
        .map_err(|e| format!("cannot reset the peak resident set size: {e}"))?;
    status_bytes("VmRSS")
}

/// The peak resident set size since the last reset, in bytes.
fn peak_resident() -> Result<u64, String> {
    status_bytes("VmHWM")
}

/// A `kB` field of `/proc/self/status`, in bytes.
fn status_bytes(field: &str) -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot read /proc/self/status: {e}"))?;
    status_field(&status, field).ok_or_else(|| format!("/proc/self/status has no {field}"))
}

fn status_field(status: &str, field: &str) -> Option<u64> {
    let line = status
        .lines()
        .find(|l| l.split(':').next() == Some(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_through_two_probes() {
        let w = WorkingMemory::through((100, 1_000), Some((1_100, 4_000)));
        assert_eq!(w.fixed, 1_000);
        assert_eq!(w.per_input_byte, 3.0);
        assert_eq!(w.for_inputs(1_000), 4_000);
        // A model of fixed shapes costs the same whatever the request.
        let fixed = WorkingMemory::through((100, 5_000), None);
        assert_eq!(fixed.for_inputs(1 << 30), 5_000);
        // A larger probe that took less (page granularity) is no negative slope.
        assert_eq!(
            WorkingMemory::through((100, 9_000), Some((200, 8_000))).per_input_byte,
            0.0
        );
        assert_eq!(
            WorkingMemory::unmeasured().for_inputs(10),
            (10.0 * UNMEASURED_PER_INPUT_BYTE) as u64
        );
        // Huge figures saturate instead of wrapping.
        let huge = WorkingMemory {
            fixed: u64::MAX - 1,
            per_input_byte: 1e30,
            measured: true,
        };
        assert_eq!(huge.for_inputs(u64::MAX), u64::MAX);
    }

    #[test]
    fn status_fields_are_read_in_bytes() {
        let status = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(status_field(status, "VmRSS"), Some(1 << 20));
        assert_eq!(status_field(status, "VmHWM"), Some(2 << 20));
        assert_eq!(status_field(status, "VmSwap"), None);
    }

    #[test]
    fn the_resident_peak_can_be_reset_and_read_here() {
        let before = resident_before_run().unwrap();
        let block = vec![1u8; 32 << 20];
        let peak = peak_resident().unwrap();
        assert!(peak >= before + (30 << 20), "{before} -> {peak}");
        drop(block);
    }
}
