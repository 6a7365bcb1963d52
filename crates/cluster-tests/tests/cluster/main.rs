//! Tests against the real control plane. One binary, so one control plane serves them all; each test
//! uses names of its own, so they run in parallel.

mod access;
mod apps;
mod attacks;
mod console;
mod crd;
mod egress;
mod events;
mod hosts;
mod lifecycle;
mod members;
mod notebook_template_admission;
mod notebook_templates;
mod notebooks;
mod operator_token;
mod policies;
mod project;
mod rbac;
mod removals;
mod support;
mod takeover;
