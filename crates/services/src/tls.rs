//! A CA and a serving certificate for a service's HTTPS side (Keycloak's), made with rcgen as
//! `berth-testenv` makes the API server's, and an HTTP client that trusts that CA.

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::{Error, Result};

/// PEM text of a fresh CA and a serving certificate (ECDSA P-256) signed by it.
pub(crate) struct Pki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

fn pki_error(e: rcgen::Error) -> Error {
    Error::Answer {
        what: "making a certificate".to_owned(),
        message: e.to_string(),
    }
}

impl Pki {
    /// A CA of its own and a certificate for `names` (DNS names or IP addresses, each a subject
    /// alternative name), for server authentication.
    pub(crate) fn generate(names: &[String]) -> Result<Self> {
        let ca_key = KeyPair::generate().map_err(pki_error)?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(pki_error)?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "berth-services-ca");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca, ca_key).map_err(pki_error)?;
        let key = KeyPair::generate().map_err(pki_error)?;
        let mut serving = CertificateParams::new(names.to_vec()).map_err(pki_error)?;
        serving
            .distinguished_name
            .push(DnType::CommonName, "berth-services");
        serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        serving.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let cert = serving.signed_by(&key, &ca).map_err(pki_error)?;
        Ok(Self {
            ca_pem: ca.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// [`crate::common::http_client`]'s client, trusting `ca_pem` as well.
pub(crate) fn client_trusting(ca_pem: &str) -> Result<reqwest::Client> {
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes())
        .map_err(|e| Error::http("reading a CA certificate", e))?;
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(30))
        .add_root_certificate(ca)
        .build()
        .map_err(|e| Error::http("building an HTTP client", e))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_certificate_names_every_address_and_the_client_takes_the_ca() -> crate::Result<()> {
        let pki = super::Pki::generate(&["127.0.0.1".to_owned(), "localhost".to_owned()])?;
        assert!(pki.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(pki.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(pki.key_pem.contains("PRIVATE KEY"));
        super::client_trusting(&pki.ca_pem)?;
        Ok(())
    }
}
