//! The floor: what onboarding costs at least. A minimal client creates the Projects and server-side
//! applies exactly the children Berth builds for them, as the operator's service account, with the
//! same concurrency as Berth's variant: `concurrency` creators feed `concurrency` appliers through a
//! queue, as the creators feed the operator's reconcilers there (up to 2 × concurrency requests in
//! flight in both). No caches, status, finalizer, Events or checks.

use std::time::Instant;

use anyhow::Result;
use futures::{StreamExt, TryStreamExt};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};

use berth_api::{PlatformSettingsSpec, Project};

use crate::report::Run;
use crate::{Args, Bench, client_from, machine, names, now, project, project_build};

const OPERATOR_USER: &str = "system:serviceaccount:berth-system:berth-operator";

pub async fn run(n: usize, repeat: usize, args: &Args) -> Result<Run> {
    let load_start = machine::load_1m();
    let bench = Bench::start().await?;
    let kubeconfig = bench.plane.dir().join("floor.kubeconfig");
    bench
        .plane
        .cluster()
        .operator_kubeconfig(&kubeconfig)
        .await?;
    let client = client_from(&kubeconfig).await?;
    // The same settings the operator would read: the installed `default` PlatformSettings.
    let settings = Api::<berth_api::PlatformSettings>::all(bench.admin.clone())
        .get_opt(berth_api::settings::SETTINGS_NAME)
        .await?
        .map(|s| s.spec)
        .unwrap_or_else(PlatformSettingsSpec::default);
    let projects: Api<Project> = Api::all(bench.admin.clone());
    let (queue, inbox) = tokio::sync::mpsc::unbounded_channel::<Project>();
    // Its connection is open before the clock starts, as the operator's are.
    client.apiserver_version().await?;
    let env = project_build::environment(&client).await;

    let from = now();
    let start = Instant::now();
    // The creators' stream owns the queue's sender: once every Project is created and the stream
    // is consumed, the sender drops and the appliers see the queue end.
    let creators = futures::stream::iter(names(n))
        .map(move |name| {
            let projects = projects.clone();
            let queue = queue.clone();
            async move {
                let created = projects
                    .create(&PostParams::default(), &project(&name)?)
                    .await?;
                // The appliers outlive the creators; a closed queue means they failed already.
                let _ = queue.send(created);
                anyhow::Ok(())
            }
        })
        .buffer_unordered(args.concurrency);
    let create = async move { creators.try_collect::<Vec<_>>().await };
    let params = PatchParams::apply("berth-floor").force();
    let apply = futures::stream::unfold(inbox, |mut inbox| async move {
        inbox.recv().await.map(|p| (p, inbox))
    })
    .map(|created| {
        let (client, settings, params, env) =
            (client.clone(), settings.clone(), params.clone(), &env);
        async move {
            for child in project_build::children(&created, &settings, env, &client)? {
                child
                    .api
                    .patch(
                        &child.object.name_any(),
                        &params,
                        &Patch::Apply(&child.object),
                    )
                    .await?;
            }
            anyhow::Ok(())
        }
    })
    .buffer_unordered(args.concurrency)
    .try_collect::<Vec<_>>();
    tokio::try_join!(create, apply)?;
    let seconds = start.elapsed().as_secs_f64();
    let to = now();
    let counts = bench
        .audit()?
        .counts(OPERATOR_USER, from, to, "floor onboarding");
    let load_end = machine::load_1m();
    bench.plane.kill();
    Ok(Run {
        n,
        variant: "floor",
        repeat,
        seconds,
        requests_per_object: counts.all as f64 / n as f64,
        steady_writes: None,
        steady_seconds: args.steady_seconds as f64,
        lease_writes: None,
        restart_writes: None,
        restart_is_resync: false,
        resync_period_seconds: None,
        peak_rss_mib: None,
        cpu_seconds: None,
        load: (load_start, load_end),
    })
}
