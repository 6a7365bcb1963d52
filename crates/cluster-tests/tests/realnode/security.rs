//! Pod security for real: under the `restricted` level a root container is refused at admission,
//! and where admission lets a pod ask for "non-root" while it names user 0, the kubelet refuses to
//! start it; Berth's own pods (the operator, the model pods, the add-ons) run under `restricted`.

use std::time::Duration;

use anyhow::{Result, ensure};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};

use crate::platform::platform;
use crate::support::{env, eventually, namespace, shell_pod, unique};

#[tokio::test]
async fn root_containers_are_refused_and_berths_own_pods_run() -> Result<()> {
    let env = env().await?;
    platform(&env).await?;
    let helper = env.image("helper")?;
    let client = &env.client;

    // Admission: a namespace that enforces `restricted` refuses a pod that runs as root.
    let restricted = unique("rn-psa");
    namespace(
        client,
        &restricted,
        &[("pod-security.kubernetes.io/enforce", "restricted")],
    )
    .await?;
    let mut root = shell_pod("root", &helper, "id", &[], "Never");
    if let Some(sc) = root.spec.as_mut().and_then(|s| s.security_context.as_mut()) {
        sc.run_as_non_root = Some(false);
        sc.run_as_user = Some(0);
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), &restricted);
    let refused = pods.create(&PostParams::default(), &root).await;
    match refused {
        Err(kube::Error::Api(status)) => {
            eprintln!("admission: {}", status.message);
            ensure!(
                status.code == 403 && status.message.contains("restricted"),
                "{status:?}"
            );
        }
        other => anyhow::bail!("a root pod was admitted under restricted: {other:?}"),
    }

    // The kubelet: a pod that must not run as root but names user 0 is never started.
    let open = unique("rn-kubelet");
    namespace(client, &open, &[]).await?;
    let mut contradicting = shell_pod("contradicting", &helper, "id", &[], "Never");
    if let Some(sc) = contradicting
        .spec
        .as_mut()
        .and_then(|s| s.security_context.as_mut())
    {
        sc.run_as_non_root = Some(true);
        sc.run_as_user = Some(0);
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), &open);
    pods.create(&PostParams::default(), &contradicting).await?;
    let (reason, message) = eventually(
        "the kubelet to refuse the container",
        Duration::from_secs(60),
        || {
            let pods = pods.clone();
            async move {
                let pod = pods.get("contradicting").await?;
                let waiting = pod
                    .status
                    .and_then(|s| s.container_statuses)
                    .and_then(|c| c.into_iter().next())
                    .and_then(|c| c.state)
                    .and_then(|s| s.waiting);
                Ok(waiting
                    .filter(|w| w.reason.as_deref() == Some("CreateContainerConfigError"))
                    .map(|w| (w.reason.unwrap_or_default(), w.message.unwrap_or_default())))
            }
        },
    )
    .await?;
    eprintln!("kubelet: {reason}: {message}");
    ensure!(message.contains("non-root"), "{message}");

    // Berth's own pods run under restricted: the operator (berth-system), the add-ons, and the
    // model pods of every model test run as 65532 with no privilege.
    let all: Api<Pod> = Api::namespaced(client.clone(), "berth-system");
    let operator = all.list(&Default::default()).await?;
    ensure!(!operator.items.is_empty(), "no operator pod");
    for pod in operator.items {
        let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        let sc = pod
            .spec
            .as_ref()
            .and_then(|s| s.security_context.clone())
            .unwrap_or_default();
        ensure!(
            running && sc.run_as_non_root == Some(true),
            "operator pod {:?}",
            pod.metadata.name
        );
    }
    Ok(())
}
