//! Berth's controllers. Each module holds only what is special to its kind; the shared machinery
//! (apply, prune, status, events, metrics) is in `berth-reconcile`.

pub mod discovery;
pub mod kinds;
pub mod mlmodel;
pub mod names;
pub mod notebook;
pub mod project;
