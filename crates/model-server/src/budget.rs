//! The server's memory budget: the bytes that request bodies and their decoded tensors may
//! hold at once, and the admission of each request body against it.
//!
//! A request is charged before its body is read, for the most its body and its decoded input
//! tensors can take ([`Charge::for_body`]): the body's bytes, plus as many elements as a JSON
//! array of that length can hold ([`max_elements_in`]) times the largest element of the
//! model's inputs (8 bytes for FP64/INT64/UINT64, 24 for a BYTES string header plus its
//! characters). That bound holds whatever the body says, because the decoder never holds
//! more elements than the body's text can (see [`crate::tensor::decode_tensor`]). Once the
//! request is parsed, its exact charge (the body plus the shapes' element counts times their
//! element sizes) is known and the surplus is given back.
//!
//! A body with the binary data extension ([`crate::binary`]) is charged its JSON header as
//! above, and its binary data twice: the bytes themselves and what they decode to
//! ([`Charge::for_binary_body`]).
//!
//! A request that waits for budget holds an inference slot but no body (at most one waiter
//! per slot); one whose charge exceeds the whole budget is refused with 413 at once.
//!
//! After the model has run, the request's charge becomes its response: the decoded outputs
//! plus the exact length of their JSON text (counted by encoding once without keeping it).
//! Growing to it waits at most the body timeout (503 after: the request already holds memory
//! and must not wait forever on requests that wait on it), or is refused with 413 when it
//! exceeds the whole budget. The response keeps its charge until it is sent.
//!
//! Once parsed, a request is charged for the model's run too: its working memory for the
//! request's decoded inputs, measured when the model loaded ([`crate::working`]). The request
//! grows its reservation to that (waiting like a response does, below) before the model runs,
//! so runs beside each other never take more than the budget leaves them.
//! `bench/model-server/flood.sh` measures peak RSS against the budget.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;
use crate::tensor::{DataType, element_size, max_elements_in};

/// The unit the budget is counted in: permits of a tokio semaphore are taken at most
/// `u32::MAX` at a time, so bytes are rounded up to KiB (4 TiB at most per request).
const UNIT: u64 = 1024;

/// The multiple of the largest request body a request may cost by default: the body, plus
/// up to (body / 2) elements of 8 bytes each.
pub const DEFAULT_BYTES_PER_BODY_BYTE: u64 = 5;

/// The default budget: `slots × max_request_bytes × 5` (every slot holding a largest body of
/// 8-byte elements), but at most 3/4 of the container's memory limit when there is one.
pub fn default_budget(slots: usize, max_request_bytes: usize, memory_limit: Option<u64>) -> u64 {
    let per_slot = (max_request_bytes as u64).saturating_mul(DEFAULT_BYTES_PER_BODY_BYTE);
    let by_slots = per_slot.saturating_mul(slots.max(1) as u64);
    match memory_limit {
        Some(limit) => by_slots.min(limit / 4 * 3),
        None => by_slots,
    }
}

/// The memory limit of this process's cgroup (v2 `memory.max`, as a container sees it at
/// `/sys/fs/cgroup`), or `None` when there is none or it is `max`.
pub fn cgroup_memory_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/sys/fs/cgroup/memory.max").ok()?;
    text.trim().parse().ok()
}

/// What a model's inputs may cost per element, for [`Charge::for_body`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputCost {
    /// The largest element size of the model's inputs, in bytes.
    pub max_element: u64,
    /// Whether an input is BYTES, whose characters are held beside their headers.
    pub strings: bool,
}

impl InputCost {
    /// The cost of the given input datatypes (8-byte elements when there are none).
    pub fn of(datatypes: impl IntoIterator<Item = DataType>) -> Self {
        let mut cost = InputCost {
            max_element: 0,
            strings: false,
        };
        for dt in datatypes {
            cost.max_element = cost.max_element.max(element_size(dt) as u64);
            cost.strings |= dt == DataType::Bytes;
        }
        if cost.max_element == 0 {
            cost.max_element = 8;
        }
        cost
    }
}

/// A number of bytes a request is charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Charge(pub u64);

impl Charge {
    /// The most a body of `body_len` bytes and its decoded inputs can take.
    pub fn for_body(body_len: u64, cost: InputCost) -> Self {
        let elements = max_elements_in(usize::try_from(body_len).unwrap_or(usize::MAX)) as u64;
        let mut bytes = body_len.saturating_add(elements.saturating_mul(cost.max_element));
        if cost.strings {
            bytes = bytes.saturating_add(body_len);
        }
        Charge(bytes)
    }

    /// The most a body of `body_len` bytes whose first `json_len` bytes are its JSON header
    /// (binary data extension, [`crate::binary`]) and its decoded inputs can take: the JSON
    /// header as [`Charge::for_body`], and each byte of binary data itself plus what it decodes
    /// to: at most one byte (a numeric or BOOL element decodes to as many bytes as it has in
    /// binary), or 7 when an input is BYTES (an element of 4 bytes or more becomes a 24-byte
    /// string header and its characters).
    pub fn for_binary_body(body_len: u64, json_len: u64, cost: InputCost) -> Self {
        let json_len = json_len.min(body_len);
        let binary = body_len - json_len;
        let per_byte = if cost.strings {
            1 + element_size(DataType::Bytes) as u64 / 4
        } else {
            1
        };
        let json = Charge::for_body(json_len, cost).0;
        Charge(
            json.saturating_add(binary)
                .saturating_add(binary.saturating_mul(per_byte)),
        )
    }

    /// What a parsed request takes: its body and its inputs' decoded buffers
    /// ([`crate::protocol::InferenceRequest::decoded_bytes`]).
    pub fn for_inputs(body_len: u64, decoded_bytes: u64) -> Self {
        Charge(body_len.saturating_add(decoded_bytes))
    }

    /// What a parsed request takes while the model runs: its body, its decoded inputs, and the
    /// model's working memory for them ([`crate::working::WorkingMemory::for_inputs`]).
    pub fn for_run(body_len: u64, decoded_bytes: u64, working_bytes: u64) -> Self {
        Charge(
            body_len
                .saturating_add(decoded_bytes)
                .saturating_add(working_bytes),
        )
    }

    fn units(self) -> u64 {
        self.0.div_ceil(UNIT)
    }
}

/// The budget shared by every request.
#[derive(Debug, Clone)]
pub struct MemoryBudget {
    bytes: u64,
    units: Arc<Semaphore>,
}

/// Bytes of the budget held by one request; given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    permit: Option<OwnedSemaphorePermit>,
}

impl Reservation {
    /// The bytes held (rounded up to KiB).
    pub fn bytes(&self) -> u64 {
        self.permit
            .as_ref()
            .map_or(0, |p| p.num_permits() as u64 * UNIT)
    }

    /// Gives back what is held beyond `charge`.
    pub fn shrink_to(&mut self, charge: Charge) {
        let keep = usize::try_from(charge.units()).unwrap_or(usize::MAX);
        if let Some(permit) = self.permit.as_mut()
            && permit.num_permits() > keep
        {
            drop(permit.split(permit.num_permits() - keep));
        }
    }
}

impl Reservation {
    /// Holds at least `charge`, reserving the difference from `budget` and waiting at most
    /// `patience` for it (the request already holds memory, so it must not wait forever on
    /// requests that wait on it).
    ///
    /// Errors: 413 when `charge` exceeds the whole budget; 503 when the budget stayed in use
    /// for `patience`.
    pub async fn grow_to(
        &mut self,
        charge: Charge,
        budget: &MemoryBudget,
        patience: std::time::Duration,
    ) -> Result<(), ApiError> {
        let held = self.bytes();
        if charge.0 <= held {
            return Ok(());
        }
        let more = Charge(charge.0 - held);
        if charge.units() > budget.bytes / UNIT {
            return Err(ApiError::PayloadTooLarge(format!(
                "answering this request takes {} bytes of memory (its body and tensors, the model's run, or its response), more than the server's memory budget of {} bytes; send smaller batches, or raise --memory-budget-bytes",
                charge.0, budget.bytes
            )));
        }
        let extra = tokio::time::timeout(patience, budget.reserve(more))
            .await
            .map_err(|_| {
                ApiError::NotReady(format!(
                    "the server's memory budget stayed in use for {} s; retry later",
                    patience.as_secs()
                ))
            })??;
        match (self.permit.as_mut(), extra.permit) {
            (Some(mine), Some(theirs)) => mine.merge(theirs),
            (None, theirs) => self.permit = theirs,
            (Some(_), None) => {}
        }
        Ok(())
    }
}

impl MemoryBudget {
    /// A budget of `bytes` (rounded down to KiB, at least 1 KiB).
    pub fn new(bytes: u64) -> Self {
        let units = (bytes / UNIT).clamp(1, Semaphore::MAX_PERMITS as u64);
        Self {
            bytes: units * UNIT,
            units: Arc::new(Semaphore::new(units as usize)),
        }
    }

    /// The budget in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The bytes free now.
    pub fn available(&self) -> u64 {
        self.units.available_permits() as u64 * UNIT
    }

    /// Reserves `charge`, waiting for other requests to give back theirs if need be.
    ///
    /// Errors: 413 when the charge exceeds the whole budget (it could never be admitted).
    pub async fn reserve(&self, charge: Charge) -> Result<Reservation, ApiError> {
        let units = charge.units();
        if units > self.bytes / UNIT {
            return Err(ApiError::PayloadTooLarge(format!(
                "this request may take up to {} bytes of memory (its body and decoded tensors), more than the server's memory budget of {} bytes; send smaller batches, or raise --memory-budget-bytes",
                charge.0, self.bytes
            )));
        }
        // A semaphore hands out at most u32::MAX permits at a time (4 TiB here).
        let units = u32::try_from(units).map_err(|_| {
            ApiError::PayloadTooLarge(format!(
                "this request may take up to {} bytes of memory, more than one request may reserve",
                charge.0
            ))
        })?;
        let permit = self
            .units
            .clone()
            .acquire_many_owned(units)
            .await
            .map_err(|_| ApiError::internal("the server is shutting down"))?;
        Ok(Reservation {
            permit: Some(permit),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn the_default_follows_slots_and_the_body_limit_capped_by_the_cgroup() {
        assert_eq!(default_budget(2, 64 << 20, None), 640 * MIB);
        assert_eq!(default_budget(0, 64 << 20, None), 320 * MIB);
        assert_eq!(default_budget(2, 64 << 20, Some(512 * MIB)), 384 * MIB);
        assert_eq!(default_budget(2, 64 << 20, Some(4096 * MIB)), 640 * MIB);
    }

    #[test]
    fn a_body_is_charged_for_what_its_decoded_tensors_can_take() {
        let fp32 = InputCost::of([DataType::Fp32]);
        assert_eq!(
            fp32,
            InputCost {
                max_element: 4,
                strings: false
            }
        );
        // 64 MiB of "0," is at most 32 Mi elements: 128 MiB of f32 beside the body.
        assert_eq!(Charge::for_body(64 * MIB, fp32), Charge(192 * MIB + 4));
        let mixed = InputCost::of([DataType::Uint8, DataType::Int64]);
        assert_eq!(Charge::for_body(10, mixed), Charge(10 + 6 * 8));
        let strings = InputCost::of([DataType::Bytes]);
        assert_eq!(Charge::for_body(10, strings), Charge(10 + 6 * 24 + 10));
        assert_eq!(InputCost::of([]).max_element, 8);
    }

    #[test]
    fn a_binary_body_is_charged_its_json_header_and_a_decoded_copy_of_its_binary_data() {
        let uint8 = InputCost::of([DataType::Uint8]);
        // 100 bytes of JSON (at most 51 one-byte elements), 1 MiB of binary data decoding to
        // 1 MiB of u8: more than the JSON rule would charge a body of that length (1.5x).
        let charge = Charge::for_binary_body(100 + MIB, 100, uint8);
        assert_eq!(charge, Charge(100 + 51 + 2 * MIB));
        assert!(charge > Charge::for_body(100 + MIB, uint8));
        let strings = InputCost::of([DataType::Bytes, DataType::Fp32]);
        assert_eq!(
            Charge::for_binary_body(10 + 40, 10, strings),
            Charge(10 + 6 * 24 + 10 + 40 + 7 * 40)
        );
        // A header length past the body charges the body as JSON (it is refused after).
        assert_eq!(
            Charge::for_binary_body(10, 99, uint8),
            Charge::for_body(10, uint8)
        );
    }

    #[tokio::test]
    async fn reservations_wait_for_each_other_and_give_back_their_surplus() {
        let budget = MemoryBudget::new(100 * 1024);
        let mut first = budget.reserve(Charge(80 * 1024)).await.unwrap();
        assert_eq!(first.bytes(), 80 * 1024);
        // A second request of 40 KiB does not fit beside the first: it waits...
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.reserve(Charge(40 * 1024)).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        // ...until the first gives back what its parsed request does not need.
        first.shrink_to(Charge(50 * 1024 + 1));
        assert_eq!(first.bytes(), 51 * 1024);
        let second = waiting.await.unwrap().unwrap();
        assert_eq!(second.bytes(), 40 * 1024);
        assert_eq!(budget.available(), 9 * 1024);
        drop(first);
        assert_eq!(budget.available(), 60 * 1024);
        drop(second);
        assert_eq!(budget.available(), 100 * 1024);
    }

    #[tokio::test]
    async fn a_request_larger_than_the_whole_budget_is_refused_at_once() {
        let budget = MemoryBudget::new(100 * 1024);
        let err = budget.reserve(Charge(101 * 1024)).await.unwrap_err();
        assert_eq!(err.status(), axum::http::StatusCode::PAYLOAD_TOO_LARGE);
        assert!(
            err.message().contains("memory budget of 102400 bytes"),
            "{}",
            err.message()
        );
    }
}
