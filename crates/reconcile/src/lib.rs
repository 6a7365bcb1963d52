//! What every Berth controller shares. A controller brings a pure function from its object and the
//! platform settings to the desired children; this crate applies them with server-side apply,
//! prunes by label what is no longer desired, writes status only when it changed, turns condition
//! flips into Events, and maps errors to categories, backoff and metrics.

pub mod apply;
pub mod backoff;
pub mod children;
pub mod compare;
pub mod error;
pub mod events;
pub mod metrics;
mod packed;
pub mod runner;
pub mod status;

pub use apply::{
    ChildFailure, Desired, FIELD_MANAGER, IN_FLIGHT, Owner, Report, Written, apply, apply_all,
};
pub use backoff::Backoffs;
pub use children::{CachedObject, ChildCache, ChildKind, ChildStream, Projection};
pub use error::{Category, Error};
pub use events::{Announcer, in_namespace};
pub use metrics::{Metrics, Readiness};
