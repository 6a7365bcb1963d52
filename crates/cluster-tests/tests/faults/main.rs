//! The fault suite: faults that must not break Berth, each shown to have happened. Its own test
//! binary with its own control planes.
//!
//! Runs by default (seconds): bad input refused at admission; generated specs through the pure
//! steps (`PROPTEST_CASES` each, 256 by default; the documented command runs 10⁵ in all). Ignored
//! by default (minutes each; run with `--include-ignored`, see docs/benchmarks.md):
//! the operator SIGKILLed ten times while 200 Projects with storage and identity onboard;
//! kube-apiserver restarted mid-run; Keycloak unreachable for 60 s.

mod admission;
mod apiserver;
mod crashes;
mod keycloak;
mod properties;
mod providers;
mod support;
