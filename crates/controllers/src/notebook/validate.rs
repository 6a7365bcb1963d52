//! The first step: from a Notebook to what the rest of the pipeline may rely on, or a reason the
//! user can act on. Pure.

use std::time::Duration;

use kube::ResourceExt;

use berth_api::mlmodel::berth_image;
use berth_api::notebook::{
    CULLED_AT_ANNOTATION, DEFAULT_HOME_SIZE, DEFAULT_IDLE_TIMEOUT, Notebook, NotebookEnv,
    NotebookResources,
};

use super::probe::{self, Probe};
use super::volumes::{self, Volume};
use crate::names;

/// A Notebook the build can use as it is.
#[derive(Clone, Debug, PartialEq)]
pub struct Validated {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    /// The image to run (the spec's, or Berth's Jupyter image).
    pub image: String,
    pub resources: NotebookResources,
    pub env: Vec<NotebookEnv>,
    /// The home volume's name, size and class.
    pub home: String,
    pub home_size: String,
    pub storage_class: Option<String>,
    /// JupyterLab's base URL, `/notebook/<namespace>/<name>/`.
    pub path: String,
    /// Where the console serves the notebook (`<console URL>/notebook/<namespace>/<name>/lab`),
    /// when the operator knows the console's URL (`--console-url`); set after validation.
    pub console_url: Option<String>,
    pub stopped: bool,
    pub idle_timeout: Duration,
    /// Whether Berth's culling stopped it (the annotation is there).
    pub culled: bool,
    /// The extra data volumes (`volumes`).
    pub volumes: Vec<Volume>,
    /// How its activity is read (`activityProbe`).
    pub probe: Probe,
    /// What its NotebookTemplate decided (None: no template); set by `template::resolve`.
    pub template: Option<super::template::Resolved>,
}

/// Why a Notebook cannot be built: a reason (one word) and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    pub reason: &'static str,
    pub message: String,
}

/// Checks what the CRD schema cannot: the derived names fit, the timeout parses.
pub fn validate(notebook: &Notebook) -> Result<Validated, Invalid> {
    let name = notebook.name_any();
    let namespace = notebook.namespace().unwrap_or_default();
    let home = names::kube::notebook_home(&name);
    if !names::is_dns_label(&name) || !names::is_dns_label(&home) {
        return Err(Invalid {
            reason: "InvalidName",
            message: format!(
                "{name:?} cannot name a notebook: it must be a DNS label of at most 40 characters"
            ),
        });
    }
    let timeout_text = notebook
        .spec
        .idle_timeout
        .as_deref()
        .unwrap_or(DEFAULT_IDLE_TIMEOUT);
    let idle_timeout = parse_duration(timeout_text).ok_or_else(|| Invalid {
        reason: "InvalidIdleTimeout",
        message: format!(
            "idleTimeout {timeout_text:?} is not a duration such as 30m or 4h; set a valid one"
        ),
    })?;
    let volumes = volumes::validate(&name, &notebook.spec.volumes)?;
    let probe =
        probe::from_spec(notebook.spec.activity_probe.as_ref()).map_err(|message| Invalid {
            reason: "InvalidActivityProbe",
            message,
        })?;
    Ok(Validated {
        volumes,
        probe,
        path: names::kube::notebook_path(&namespace, &name),
        console_url: None,
        uid: notebook.uid().unwrap_or_default(),
        image: notebook
            .spec
            .image
            .clone()
            .unwrap_or_else(|| berth_image(JUPYTER_IMAGE)),
        resources: notebook.spec.resources.clone().unwrap_or_default(),
        env: notebook.spec.env.clone(),
        home_size: notebook
            .spec
            .home
            .size
            .clone()
            .unwrap_or_else(|| DEFAULT_HOME_SIZE.to_owned()),
        storage_class: notebook.spec.home.storage_class_name.clone(),
        stopped: notebook.spec.stopped,
        idle_timeout,
        culled: notebook.annotations().contains_key(CULLED_AT_ANNOTATION),
        template: None,
        home,
        name,
        namespace,
    })
}

/// The short name of Berth's Jupyter image (`berth.dev/jupyter:<version>`).
pub const JUPYTER_IMAGE: &str = "jupyter";

/// A duration as the CRD accepts it: one or more `<digits><s|m|h>`, such as `1h30m`. `None` for
/// anything else, or past a week.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        match c {
            '0'..='9' => digits.push(c),
            's' | 'm' | 'h' if !digits.is_empty() => {
                let n: u64 = digits.parse().ok()?;
                let unit = match c {
                    's' => 1,
                    'm' => 60,
                    _ => 3600,
                };
                total = total.checked_add(n.checked_mul(unit)?)?;
                digits.clear();
            }
            _ => return None,
        }
    }
    if !digits.is_empty() || text.is_empty() || total > 168 * 3600 {
        return None;
    }
    Some(Duration::from_secs(total))
}
