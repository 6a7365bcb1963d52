//! Which host name a model gets on the platform's shared gateway. Pure.
//!
//! A model exposed through the gateway or Istio asks for `expose.hostname`, else the default
//! `<model>.<namespace>.<domain>` (`crate::names::host`). The host must be under the platform's
//! model domain. Several models may ask for one host; the first claimant keeps it: the model whose
//! status already records the host, else the oldest (then by namespace and name, so that every
//! reconcile decides alike). The others get `Exposed=False` with `HostnameConflict`.

use std::sync::Arc;

use kube::ResourceExt;

use berth_api::mlmodel::{ExposeMode, MLModel, ModelSettings};

use crate::names::host;

/// What a model gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    /// Exposed inside the cluster only: no host.
    None,
    /// The host is this model's.
    Granted(String),
    /// The model may not have a host: why (the `Exposed` reason) and what to do.
    Refused { reason: String, message: String },
}

/// The host `model` asks for, or why it cannot have one.
pub fn wanted(model: &MLModel, settings: &ModelSettings) -> Host {
    let expose = model.spec.expose.clone().unwrap_or_default();
    if expose.mode == ExposeMode::Cluster {
        return Host::None;
    }
    let Some(domain) = settings.domain.as_deref() else {
        return Host::Refused {
            reason: "NoModelDomain".into(),
            message: "the platform sets no model domain (PlatformSettings.spec.models.domain), so no model gets a host name on the shared gateway; ask a platform admin. The model is reachable inside the cluster only".into(),
        };
    };
    let asked = match &expose.hostname {
        Some(name) => host::check(name, domain).map(|()| name.clone()),
        None => host::default_host(
            &model.name_any(),
            &model.namespace().unwrap_or_default(),
            domain,
        ),
    };
    match asked {
        Ok(name) => Host::Granted(name),
        Err(refused) => Host::Refused {
            reason: if expose.hostname.is_some() {
                "HostnameOutsideDomain".into()
            } else {
                "HostnameTooLong".into()
            },
            message: format!("{refused}; the model is reachable inside the cluster only"),
        },
    }
}

/// The host `model` gets among `models` (every model in the cluster, `model` included or not).
pub fn decide(model: &MLModel, models: &[Arc<MLModel>], settings: &ModelSettings) -> Host {
    let Host::Granted(name) = wanted(model, settings) else {
        return wanted(model, settings);
    };
    let holds = |m: &MLModel| {
        m.status
            .as_ref()
            .and_then(|s| s.hostname.as_deref())
            .is_some_and(|h| h == name)
    };
    let order = |m: &MLModel| {
        (
            !holds(m),
            m.metadata.creation_timestamp.clone().map(|t| t.0),
            m.namespace().unwrap_or_default(),
            m.name_any(),
        )
    };
    let me = (model.namespace(), model.name_any());
    let first = models
        .iter()
        .map(Arc::as_ref)
        .filter(|m| (m.namespace(), m.name_any()) != me)
        .filter(|m| m.metadata.deletion_timestamp.is_none())
        .filter(|m| wanted(m, settings) == Host::Granted(name.clone()))
        .min_by_key(|m| order(m));
    match first {
        Some(other) if order(other) < order(model) => Host::Refused {
            reason: "HostnameConflict".into(),
            message: format!(
                "host {name} is already held by model {}/{}; choose another expose.hostname. The model is reachable inside the cluster only",
                other.namespace().unwrap_or_default(),
                other.name_any()
            ),
        },
        _ => Host::Granted(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::mlmodel::{ExposeSpec, MLModelSpec, MLModelStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn model(ns: &str, name: &str, hostname: Option<&str>, age_s: i64) -> MLModel {
        let mut m = MLModel::new(
            name,
            MLModelSpec {
                source: Default::default(),
                runtime: Default::default(),
                replicas: None,
                autoscaling: None,
                resources: None,
                storage: None,
                expose: Some(ExposeSpec {
                    mode: ExposeMode::Gateway,
                    hostname: hostname.map(str::to_owned),
                }),
                canary: None,
                auth: None,
            },
        );
        m.metadata.namespace = Some(ns.into());
        let at =
            k8s_openapi::jiff::Timestamp::from_second(1_800_000_000 - age_s).unwrap_or_default();
        m.metadata.creation_timestamp = Some(Time(at));
        m
    }

    fn settings() -> ModelSettings {
        ModelSettings {
            domain: Some("models.example.com".into()),
            ..Default::default()
        }
    }

    #[test]
    fn the_first_claimant_keeps_a_host() {
        let old = model("team-a", "fraud", Some("fraud.models.example.com"), 100);
        let new = model("team-b", "thief", Some("fraud.models.example.com"), 10);
        let all = vec![Arc::new(old.clone()), Arc::new(new.clone())];
        assert_eq!(
            decide(&old, &all, &settings()),
            Host::Granted("fraud.models.example.com".into())
        );
        assert!(
            matches!(decide(&new, &all, &settings()), Host::Refused { reason, .. } if reason == "HostnameConflict")
        );
        // The holder keeps it even against an older model that asks for it later.
        let mut holder = new.clone();
        holder.status = Some(MLModelStatus {
            hostname: Some("fraud.models.example.com".into()),
            ..Default::default()
        });
        let all = vec![Arc::new(old.clone()), Arc::new(holder.clone())];
        assert!(matches!(
            decide(&holder, &all, &settings()),
            Host::Granted(_)
        ));
        assert!(matches!(
            decide(&old, &all, &settings()),
            Host::Refused { .. }
        ));
    }

    #[test]
    fn hosts_outside_the_domain_and_ambiguous_defaults() {
        let evil = model("team-b", "m", Some("login.example.com"), 1);
        assert!(
            matches!(wanted(&evil, &settings()), Host::Refused { reason, .. } if reason == "HostnameOutsideDomain")
        );
        // a-b in c and a in b-c no longer collide.
        let x = wanted(&model("c", "a-b", None, 1), &settings());
        let y = wanted(&model("b-c", "a", None, 1), &settings());
        assert_ne!(x, y);
        assert_eq!(x, Host::Granted("a-b.c.models.example.com".into()));
        // No domain: no host at all.
        let none = wanted(&model("c", "a", None, 1), &ModelSettings::default());
        assert!(matches!(none, Host::Refused { reason, .. } if reason == "NoModelDomain"));
    }
}
