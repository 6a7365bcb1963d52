//! Where a notebook is: the address of the Service Berth made for it, never a DNS name.
//!
//! The console used to dial `<name>.<namespace>.svc`, resolved through the pod's search list
//! (ndots 5): `lab.team-b.svc` was tried as `lab.team-b.svc.svc.cluster.local` first, so a
//! headless Service `team-b` in a namespace `svc` (anyone who may create a Project can make one)
//! answered for team-b's notebook; and a Service `lab` an editor made beforehand, of type
//! `ExternalName`, sent the console (which every project's NetworkPolicy trusts) anywhere.
//!
//! Now, after the caller is authorized and the Notebook is read, the console reads the Service of
//! the same name and dials `<spec.clusterIP>:<the port named http>` only when the Service is
//! Berth's for that very Notebook: a controller ownerReference of kind `Notebook` (group
//! `berth.dev`) with the Notebook's uid, `spec.type` `ClusterIP` (or unset), and a real cluster
//! IP (not `None`, not empty). The API server allocates cluster IPs from the Service range, so
//! the address is a Service of this namespace, routed by kube-proxy to its endpoints.

use std::net::{IpAddr, SocketAddr};

use k8s_openapi::api::core::v1::Service;

/// The port of a notebook's Service the console dials (the Notebook controller names it so).
pub const PORT_NAME: &str = "http";

/// Why a Service is not one the console dials: the text of the 502 page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotBerths(pub String);

/// The address of `service` if it is the Service Berth made for the Notebook of uid
/// `notebook_uid`: `<spec.clusterIP>:<spec.ports[name=http].port>`.
///
/// Errors: no controller ownerReference to that Notebook (someone else's Service, or one left
/// from a deleted Notebook of the same name), a type other than `ClusterIP` (`ExternalName`,
/// `NodePort`, `LoadBalancer`), a headless or unallocated Service (`clusterIP` `None` or empty),
/// or no port named `http`.
pub fn address(service: &Service, notebook_uid: &str) -> Result<SocketAddr, NotBerths> {
    let owned = service.metadata.owner_references.iter().flatten().any(|o| {
        o.controller == Some(true)
            && o.kind == "Notebook"
            && o.api_version.split('/').next() == Some("berth.dev")
            && !notebook_uid.is_empty()
            && o.uid == notebook_uid
    });
    if !owned {
        return Err(NotBerths(
            "its Service is not the one Berth made for this notebook (no controller reference to this Notebook)".into(),
        ));
    }
    let spec = service
        .spec
        .as_ref()
        .ok_or_else(|| NotBerths("its Service has no spec".into()))?;
    match spec.type_.as_deref() {
        None | Some("ClusterIP") => {}
        Some(other) => {
            return Err(NotBerths(format!(
                "its Service is of type {other}, not the ClusterIP Berth makes"
            )));
        }
    }
    let ip: IpAddr = spec
        .cluster_ip
        .as_deref()
        .filter(|ip| !ip.is_empty() && *ip != "None")
        .and_then(|ip| ip.parse().ok())
        .ok_or_else(|| {
            NotBerths("its Service has no cluster IP (headless or not allocated)".into())
        })?;
    let port = spec
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some(PORT_NAME))
        .and_then(|p| u16::try_from(p.port).ok())
        .filter(|p| *p != 0)
        .ok_or_else(|| NotBerths(format!("its Service has no port named {PORT_NAME}")))?;
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn berths(uid: &str) -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "lab", "namespace": "team-a",
                "ownerReferences": [{
                    "apiVersion": "berth.dev/v1alpha1", "kind": "Notebook", "name": "lab",
                    "uid": uid, "controller": true, "blockOwnerDeletion": true,
                }],
            },
            "spec": {
                "type": "ClusterIP", "clusterIP": "198.19.0.17",
                "ports": [{"name": "http", "port": 8888, "targetPort": "http"}],
            },
        }))
        .unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[test]
    fn berths_service_is_dialled_by_its_cluster_ip_and_http_port() {
        assert_eq!(
            address(&berths("u1"), "u1"),
            Ok("198.19.0.17:8888"
                .parse()
                .unwrap_or_else(|e| unreachable!("{e}")))
        );
        let mut unset_type = berths("u1");
        if let Some(spec) = unset_type.spec.as_mut() {
            spec.type_ = None;
            spec.cluster_ip = Some("fd00::11".into());
        }
        assert_eq!(
            address(&unset_type, "u1").map(|a| a.to_string()),
            Ok("[fd00::11]:8888".to_owned())
        );
    }

    #[test]
    fn another_owner_or_no_controller_reference_is_refused() {
        assert!(
            address(&berths("u1"), "u2").is_err(),
            "another Notebook's uid"
        );
        assert!(address(&berths(""), "").is_err(), "an empty uid");
        let mut not_controller = berths("u1");
        if let Some(refs) = not_controller.metadata.owner_references.as_mut() {
            refs[0].controller = None;
        }
        assert!(
            address(&not_controller, "u1").is_err(),
            "not the controller"
        );
        let mut other_kind = berths("u1");
        if let Some(refs) = other_kind.metadata.owner_references.as_mut() {
            refs[0].kind = "MLModel".into();
        }
        assert!(address(&other_kind, "u1").is_err(), "another kind");
        let mut other_group = berths("u1");
        if let Some(refs) = other_group.metadata.owner_references.as_mut() {
            refs[0].api_version = "evil.example/v1".into();
        }
        assert!(address(&other_group, "u1").is_err(), "another group");
        let mut none = berths("u1");
        none.metadata.owner_references = None;
        let err = address(&none, "u1").err().map(|e| e.0).unwrap_or_default();
        assert!(err.contains("not the one Berth made"), "{err}");
    }

    #[test]
    fn external_name_headless_and_portless_services_are_refused() {
        let mut external = berths("u1");
        if let Some(spec) = external.spec.as_mut() {
            spec.type_ = Some("ExternalName".into());
            spec.external_name = Some("metadata.google.internal".into());
            spec.cluster_ip = None;
        }
        let err = address(&external, "u1")
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(err.contains("ExternalName"), "{err}");
        for ip in [Some("None"), Some(""), None, Some("not-an-ip")] {
            let mut headless = berths("u1");
            if let Some(spec) = headless.spec.as_mut() {
                spec.cluster_ip = ip.map(str::to_owned);
            }
            assert!(address(&headless, "u1").is_err(), "clusterIP {ip:?}");
        }
        let mut node_port = berths("u1");
        if let Some(spec) = node_port.spec.as_mut() {
            spec.type_ = Some("NodePort".into());
        }
        assert!(address(&node_port, "u1").is_err(), "NodePort");
        let mut portless = berths("u1");
        if let Some(spec) = portless.spec.as_mut() {
            spec.ports = Some(vec![k8s_openapi::api::core::v1::ServicePort {
                name: Some("metrics".into()),
                port: 9090,
                ..Default::default()
            }]);
        }
        let err = address(&portless, "u1")
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(err.contains("no port named http"), "{err}");
    }
}
