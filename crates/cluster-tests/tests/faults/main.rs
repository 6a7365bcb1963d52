//! The fault suite: faults that must not break Berth, each shown to have happened. Its own test
//! binary with its own control planes.
//!
//! Runs by default (seconds): bad input refused at admission; 10⁵ generated specs through the
//! pure steps. Ignored by default (minutes each; run with `--ignored`, see docs/benchmarks.md):
//! the operator SIGKILLed ten times while 200 Projects with storage and identity onboard;
//! kube-apiserver restarted mid-run; Keycloak unreachable for 60 s.

mod admission;
mod apiserver;
mod crashes;
mod keycloak;
mod properties;
mod providers;
mod support;
