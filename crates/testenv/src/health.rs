//! Health probes for each component, over loopback HTTP(S).

use std::time::Duration;

use crate::Error;

/// How one component says it is healthy.
pub enum Probe {
    /// etcd: `GET /health` answers `{"health":"true"}`.
    Etcd { url: String },
    /// kube-apiserver: `GET /readyz` with the admin's token, verified against our CA.
    ApiServer { url: String, token: String },
    /// kube-controller-manager, kube-scheduler (self-signed serving certs) and kwok: `GET /healthz`
    /// answers 200.
    Healthz { url: String },
}

/// HTTP clients for the probes.
pub struct Prober {
    verified: reqwest::Client,
    unverified: reqwest::Client,
}

impl Prober {
    pub fn new(ca_pem: &str) -> Result<Self, Error> {
        let build_error = |e: reqwest::Error| {
            Error::io("building the health-probe client", std::io::Error::other(e))
        };
        let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).map_err(build_error)?;
        let verified = reqwest::Client::builder()
            .add_root_certificate(ca)
            .timeout(Duration::from_secs(2))
            .no_proxy()
            .build()
            .map_err(build_error)?;
        // The controller-manager and scheduler generate their own serving certificates; their
        // health endpoints carry no secrets, so these probes need not verify them.
        let unverified = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .timeout(Duration::from_secs(2))
            .no_proxy()
            .build()
            .map_err(build_error)?;
        Ok(Self {
            verified,
            unverified,
        })
    }

    /// Whether the component answers healthy right now.
    pub async fn healthy(&self, probe: &Probe) -> bool {
        let response = match probe {
            Probe::Etcd { url } => self.unverified.get(url).send().await,
            Probe::ApiServer { url, token } => {
                self.verified.get(url).bearer_auth(token).send().await
            }
            Probe::Healthz { url } => self.unverified.get(url).send().await,
        };
        let Ok(response) = response else {
            return false;
        };
        if !response.status().is_success() {
            return false;
        }
        match probe {
            Probe::Etcd { .. } => response
                .text()
                .await
                .is_ok_and(|body| body.contains(r#""health":"true""#)),
            _ => true,
        }
    }
}
