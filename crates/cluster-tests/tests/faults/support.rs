//! What the fault tests share: a control plane with a supervised operator, Projects, waiting,
//! randomness that prints its seed, and signals to processes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use berth_api::{PlatformSettings, Project};
use berth_testenv::{ControlPlane, Options, Process};

/// Operator flags for fault tests: a short lease, so that a replacement for a killed leader takes
/// over within seconds instead of the default 15 s.
pub const FAST_LEASE: [&str; 3] = [
    "--lease-duration-seconds=4",
    "--renew-deadline-seconds=3",
    "--retry-period-seconds=1",
];

/// A control plane of its own with the operator running as a real process under its shipped RBAC.
pub struct Platform {
    pub plane: ControlPlane,
    pub client: Client,
    pub operator: Process,
    /// How many operators were started (the log of the n-th is `operator-<n>.log`).
    pub starts: u32,
}

impl Platform {
    pub async fn start() -> Result<Self> {
        let plane = ControlPlane::start(Options::default()).await?;
        let client = plane.cluster().client().await?;
        let operator = Self::spawn_operator(&plane, 1).await?;
        let platform = Self {
            plane,
            client,
            operator,
            starts: 1,
        };
        platform.wait_leading(Duration::from_secs(60)).await?;
        Ok(platform)
    }

    async fn spawn_operator(plane: &ControlPlane, n: u32) -> Result<Process> {
        let args: Vec<String> = FAST_LEASE.iter().map(|s| (*s).to_owned()).collect();
        let (process, _) = plane
            .cluster()
            .start_operator(
                &berth_testenv::operator_binary()?,
                plane.dir(),
                &format!("operator-{n}.log"),
                &args,
            )
            .await?;
        Ok(process)
    }

    /// SIGKILLs the operator: no shutdown, no lease release.
    pub fn kill_operator(&mut self) {
        self.operator.stop(Duration::ZERO);
    }

    /// Starts a new operator (after a kill or an exit) and waits until it leads.
    pub async fn restart_operator(&mut self) -> Result<()> {
        self.operator.stop(Duration::ZERO);
        self.starts += 1;
        self.operator = Self::spawn_operator(&self.plane, self.starts).await?;
        self.wait_leading(Duration::from_secs(60)).await
    }

    /// Waits until the current operator holds the leader Lease (it names itself `<host>-<pid>`).
    pub async fn wait_leading(&self, timeout: Duration) -> Result<()> {
        let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
            Api::namespaced(self.client.clone(), "berth-system");
        let suffix = format!("-{}", self.operator.pid());
        let deadline = Instant::now() + timeout;
        loop {
            let holder = leases
                .get_opt("berth-operator")
                .await
                .ok()
                .flatten()
                .and_then(|l| l.spec)
                .and_then(|s| s.holder_identity);
            if holder.as_deref().is_some_and(|h| h.ends_with(&suffix)) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "operator {} did not lead within {timeout:?} (holder {holder:?}):\n{}",
                    self.starts,
                    self.operator.log_tail(3000)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A Secret with admin credentials in the operator's namespace.
    pub async fn admin_secret(&self, name: &str, data: &[(&str, &str)]) -> Result<()> {
        berth_testenv::manifests::apply_secret(&self.client, "berth-system", name, data).await?;
        Ok(())
    }

    /// Merges `spec` into the platform settings.
    pub async fn settings(&self, spec: Value) -> Result<()> {
        Api::<PlatformSettings>::all(self.client.clone())
            .patch(
                "default",
                &PatchParams::default(),
                &Patch::Merge(&json!({ "spec": spec })),
            )
            .await?;
        Ok(())
    }

    pub fn projects(&self) -> Api<Project> {
        Api::all(self.client.clone())
    }

    /// Creates Projects named `names`, each with `spec`, `concurrency` at a time.
    pub async fn create_projects(
        &self,
        names: &[String],
        spec: &Value,
        concurrency: usize,
    ) -> Result<()> {
        let api = self.projects();
        futures::stream::iter(names.iter().cloned())
            .map(|name| {
                let api = api.clone();
                let mut spec = spec.clone();
                spec["owners"] = json!([format!("{name}@example.com")]);
                async move {
                    let project: Project = serde_json::from_value(json!({
                        "apiVersion": "berth.dev/v1alpha1", "kind": "Project",
                        "metadata": {"name": name}, "spec": spec,
                    }))?;
                    api.create(&PostParams::default(), &project).await?;
                    anyhow::Ok(())
                }
            })
            .buffer_unordered(concurrency)
            .try_collect::<Vec<_>>()
            .await?;
        Ok(())
    }

    /// Every Project, by name.
    pub async fn all_projects(&self) -> Result<BTreeMap<String, Project>> {
        Ok(self
            .projects()
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .map(|p| (p.name_any(), p))
            .collect())
    }

    /// Waits until every Project in `names` passes `check`, failing early if the operator exits
    /// (unless `supervise`, when it is started again as a Deployment would, and counted).
    pub async fn wait_all(
        &mut self,
        names: &[String],
        what: &str,
        timeout: Duration,
        supervise: bool,
        check: impl Fn(&Project) -> bool,
    ) -> Result<u32> {
        let deadline = Instant::now() + timeout;
        let mut restarts = 0;
        loop {
            if let Some(status) = self.operator.exited() {
                if !supervise {
                    bail!(
                        "the operator exited with {status}:\n{}",
                        self.operator.log_tail(4000)
                    );
                }
                eprintln!(
                    "the operator exited ({status}); starting it again, as its Deployment would"
                );
                restarts += 1;
                self.restart_operator().await?;
            }
            if let Ok(all) = self.all_projects().await {
                let missing: Vec<&String> = names
                    .iter()
                    .filter(|n| !all.get(*n).is_some_and(&check))
                    .collect();
                if missing.is_empty() {
                    return Ok(restarts);
                }
                if Instant::now() > deadline {
                    let first = missing.first().and_then(|n| all.get(*n));
                    bail!(
                        "{} of {} Projects not {what} after {timeout:?}, e.g. {:?}: {:#?}",
                        missing.len(),
                        names.len(),
                        missing.first(),
                        first.and_then(|p| p.status.as_ref())
                    );
                }
            } else if Instant::now() > deadline {
                bail!("the API server did not answer a list of Projects within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The status and reason of a Project condition.
pub fn condition(p: &Project, type_: &str) -> Option<(String, String, String)> {
    p.status
        .as_ref()
        .and_then(|s| berth_api::conditions::get(&s.conditions, type_))
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

pub fn is_true(p: &Project, type_: &str) -> bool {
    condition(p, type_).is_some_and(|(s, _, _)| s == "True")
}

pub fn is_ready(p: &Project) -> bool {
    is_true(p, "Ready")
}

/// The in-cluster parts, which no outside service may hold up.
pub fn in_cluster_ready(p: &Project) -> bool {
    ["NamespaceReady", "AccessReady", "NetworkReady"]
        .iter()
        .all(|t| is_true(p, t))
}

/// A small PRNG (xorshift64*) seeded from `FAULTS_SEED` or the clock; the seed is printed so a
/// failing run can be repeated.
pub struct Rng(u64);

impl Rng {
    pub fn from_env() -> Self {
        let seed = std::env::var("FAULTS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0x9e37_79b9_7f4a_7c15)
            });
        eprintln!("random points from FAULTS_SEED={seed}");
        Self(seed | 1)
    }

    /// A number in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// Sends `signal` to a process.
#[allow(unsafe_code)]
pub fn signal(pid: u32, signal: libc::c_int) -> Result<()> {
    let pid = libc::pid_t::try_from(pid)?;
    // SAFETY: kill(2) has no memory-safety preconditions.
    if unsafe { libc::kill(pid, signal) } != 0 {
        bail!("kill({pid}, {signal}): {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// The process whose command line contains `needle` and whose program ends with `program`, with
/// its command line: how a test finds a control-plane component it did not spawn itself.
pub fn find_process(program: &str, needle: &str) -> Result<(u32, Vec<String>)> {
    for entry in std::fs::read_dir("/proc")? {
        let entry = entry?;
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = raw
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.first().is_some_and(|a| a.ends_with(program))
            && args.iter().any(|a| a.contains(needle))
        {
            return Ok((pid, args));
        }
    }
    bail!("no {program} process with {needle} in its command line")
}
