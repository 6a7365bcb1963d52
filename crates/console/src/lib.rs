//! Berth's console (issue 15), first piece: the authenticated proxy in front of notebooks
//! (issue 14). See docs/console.md.

pub mod app;
pub mod forward;
pub mod kube_auth;
mod login;
pub mod oidc;
pub mod pages;
pub mod path;
pub mod serve;
pub mod session;
pub mod upstream;
pub mod views;
