//! Berth's console (issue 15): the authenticated proxy in front of notebooks
//! (issue 14), and its pages (templates, acting as the user, CSRF). See docs/console.md.

pub mod acting;
pub mod app;
pub mod assets;
pub mod csrf;
pub mod forward;
mod handoff;
pub mod kube_auth;
pub mod layout;
mod login;
pub mod models_pages;
pub mod notebook_origin;
pub mod notebook_page;
pub mod notebooks_pages;
pub mod oidc;
pub mod pages;
pub mod path;
pub mod projects;
pub mod serve;
pub mod session;
pub mod upstream;
pub mod views;
mod workloads;
