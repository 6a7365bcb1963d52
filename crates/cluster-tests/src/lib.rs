//! Cluster tests live in `tests/`; this library holds what several test binaries share.

pub mod census;
