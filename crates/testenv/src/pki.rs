//! The certificates and keys a control plane needs: a CA, the apiserver's serving certificate, the
//! service-account signing key, and random bearer tokens for the admin and the components; and the
//! client certificates of the real node's components (see `realnode`), made at the same time
//! because only this step holds the CA's key.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::Error;

/// PEM text of everything the control plane is started with.
pub struct Pki {
    pub ca_cert: String,
    pub serving_cert: String,
    pub serving_key: String,
    /// ECDSA P-256 key the apiserver signs service-account tokens with and verifies them by.
    pub service_account_key: String,
    /// The public half of `service_account_key`, which verifies the tokens.
    pub service_account_public_key: String,
    /// The apiserver's client certificate towards kubelets (logs, exec, port-forward):
    /// `CN=kube-apiserver-kubelet-client, O=system:masters`.
    pub kubelet_client: KeyPairPem,
    /// Client certificates of the real node's components, by the identity each runs as.
    pub node: NodeCerts,
}

/// A certificate and its private key, PEM.
#[derive(Clone, Debug)]
pub struct KeyPairPem {
    pub cert: String,
    pub key: String,
}

/// The real node's identities, each a client certificate signed by the cluster's CA.
#[derive(Clone, Debug)]
pub struct NodeCerts {
    /// `CN=system:node:<name>, O=system:nodes`: the Node authorizer and NodeRestriction admit it
    /// for its own Node and its own pods only.
    pub kubelet: KeyPairPem,
    /// The kubelet's serving certificate for its API on the node's address.
    pub kubelet_serving: KeyPairPem,
    /// `CN=system:kube-proxy`, bound to `system:node-proxier` by the bootstrap RBAC.
    pub kube_proxy: KeyPairPem,
    /// `CN=berth:kube-router`, bound to the read-only role `realnode` installs.
    pub kube_router: KeyPairPem,
}

/// A client certificate for `common_name` in `organization` (the user name and group the apiserver
/// sees), signed by `ca`.
fn client_cert(
    ca: &CertifiedIssuer<'_, KeyPair>,
    common_name: &str,
    organization: Option<&str>,
) -> Result<KeyPairPem, Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    if let Some(organization) = organization {
        params
            .distinguished_name
            .push(DnType::OrganizationName, organization);
    }
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let cert = params.signed_by(&key, ca)?;
    Ok(KeyPairPem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

impl Pki {
    /// A fresh CA and a serving certificate valid for `localhost` and `127.0.0.1`.
    pub fn generate() -> Result<Self, Error> {
        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "berth-testenv-ca");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca, ca_key)?;

        let serving_key = KeyPair::generate()?;
        let mut serving = CertificateParams::new(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "kubernetes.default.svc".to_owned(),
            "kubernetes.default".to_owned(),
            "kubernetes".to_owned(),
            // With a real node: the API's address there, and the `kubernetes` Service's.
            crate::realnode::NODE_IP.to_owned(),
            crate::realnode::API_SERVICE_IP.to_owned(),
        ])?;
        serving
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        serving.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let serving_cert = serving.signed_by(&serving_key, &ca)?;

        let service_account_key = KeyPair::generate()?;

        let node = crate::realnode::NODE_NAME;
        let node_serving_key = KeyPair::generate()?;
        let mut node_serving =
            CertificateParams::new(vec![node.to_owned(), crate::realnode::NODE_IP.to_owned()])?;
        node_serving
            .distinguished_name
            .push(DnType::CommonName, node);
        node_serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        node_serving.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let kubelet_serving = KeyPairPem {
            cert: node_serving.signed_by(&node_serving_key, &ca)?.pem(),
            key: node_serving_key.serialize_pem(),
        };
        let node = NodeCerts {
            kubelet: client_cert(&ca, &format!("system:node:{node}"), Some("system:nodes"))?,
            kubelet_serving,
            kube_proxy: client_cert(&ca, "system:kube-proxy", None)?,
            kube_router: client_cert(&ca, crate::realnode::KUBE_ROUTER_USER, None)?,
        };
        Ok(Self {
            kubelet_client: client_cert(
                &ca,
                "kube-apiserver-kubelet-client",
                Some("system:masters"),
            )?,
            node,
            ca_cert: ca.pem(),
            serving_cert: serving_cert.pem(),
            serving_key: serving_key.serialize_pem(),
            service_account_public_key: service_account_key.public_key_pem(),
            service_account_key: service_account_key.serialize_pem(),
        })
    }
}

/// A random bearer token: 32 hex characters from the kernel's random source.
pub fn random_token() -> Result<String, Error> {
    crate::util::random_hex(16)
}
