//! Starting and stopping the whole control plane.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;

use crate::health::{Probe, Prober};
use crate::pki::{Pki, random_token};
use crate::process::Process;
use crate::util::{free_ports, fresh_run_dir};
use crate::{Binaries, Cluster, Error, kwok};

/// How to start a control plane.
#[derive(Clone, Debug)]
pub struct Options {
    /// How many fake nodes kwok manages.
    pub nodes: u32,
    /// How long to wait for all components to become healthy.
    pub timeout: Duration,
    /// Where to keep data and logs; a fresh directory under the system temp dir when `None`.
    pub dir: Option<PathBuf>,
    /// Print progress on stderr.
    pub progress: bool,
    /// The control-plane binaries; found or built by `tools/build.sh` when `None`.
    pub binaries: Option<Binaries>,
    /// Write an audit log of every request (metadata only), for benchmarks that count requests.
    pub audit: bool,
    /// Serve the API on the real node's address ([`crate::realnode::NODE_IP`]) instead of
    /// loopback, so that pods reach it through the `kubernetes` Service, and make the client
    /// certificates the node's components use. The node's bridge must exist first (see
    /// [`crate::realnode::HostLease`]).
    pub real_node: bool,
    /// Install Berth from `deploy/` once the control plane is up (CRDs, RBAC, admission
    /// policies, settings). Off for a cluster that installs Berth with its Helm charts
    /// ([`crate::chart`]).
    pub install_berth: bool,
    /// Trust this OpenID Connect issuer's ID tokens (`--authentication-config`, see
    /// [`crate::authentication_config`]) beside the static tokens and client certificates. Its
    /// discovery document should answer before the start, or the API server refuses its tokens
    /// until its next retry (it retries in the background).
    pub trust: Option<crate::TrustedIssuer>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            nodes: 2,
            timeout: Duration::from_secs(90),
            dir: None,
            progress: std::env::var_os("BERTH_QUIET").is_none(),
            binaries: None,
            audit: false,
            real_node: false,
            install_berth: true,
            trust: None,
        }
    }
}

/// A running control plane. Dropping it stops every component, newest first, and removes its
/// data directory.
pub struct ControlPlane {
    /// In start order: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok.
    processes: Vec<Process>,
    dir: PathBuf,
    remove_dir: bool,
    cluster: Cluster,
    started_in: Duration,
    node_access: Option<NodeAccess>,
}

/// What the real node needs to join the cluster: the API's address, the CA, and the client
/// certificates of its components.
pub(crate) struct NodeAccess {
    pub server: String,
    pub ca_cert: String,
    pub certs: crate::pki::NodeCerts,
}

fn write(path: &Path, contents: &str) -> Result<(), Error> {
    std::fs::write(path, contents).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// A self-contained kubeconfig for one identity, trusting our CA.
fn kubeconfig(server: &str, ca_pem: &str, user: &str, token: &str) -> Result<String, Error> {
    use base64::Engine;
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "berth-dev", "cluster": {
            "server": server,
            "certificate-authority-data": base64::engine::general_purpose::STANDARD.encode(ca_pem),
        }}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "berth-dev", "context": {"cluster": "berth-dev", "user": user}}],
        "current-context": "berth-dev",
    });
    Ok(serde_yaml::to_string(&config)?)
}

fn progress(enabled: bool, message: &str) {
    if enabled {
        // Straight to the stream, so cargo test's output capture does not hide it.
        let _ = writeln!(std::io::stderr(), "[berth-testenv] {message}");
    }
}

impl ControlPlane {
    /// Builds what is missing, starts every component on free loopback ports, and returns once all
    /// are healthy, the fake nodes are Ready, the `default` service account exists and Berth is
    /// installed (CRDs established, RBAC, admission policies and platform settings applied).
    pub async fn start(options: Options) -> Result<Self, Error> {
        let binaries = match options.binaries.clone() {
            Some(binaries) => binaries,
            None => Binaries::locate()?,
        };
        let begin = Instant::now();
        let show = options.progress;

        let (dir, remove_dir) = match &options.dir {
            Some(dir) => (dir.clone(), false),
            None => (fresh_run_dir("berth-testenv", "k8s")?, true),
        };
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        progress(
            show,
            &format!("starting the control plane in {}", dir.display()),
        );

        let [
            etcd_port,
            etcd_peer_port,
            api_port,
            kcm_port,
            scheduler_port,
            kwok_port,
        ] = free_ports()?;
        let api_address = if options.real_node {
            crate::realnode::NODE_IP
        } else {
            "127.0.0.1"
        };
        let server = format!("https://{api_address}:{api_port}");

        let pki = Pki::generate()?;
        let ca_file = dir.join("ca.crt");
        let cert_file = dir.join("apiserver.crt");
        let key_file = dir.join("apiserver.key");
        let sa_key_file = dir.join("service-account.key");
        write(&ca_file, &pki.ca_cert)?;
        write(&cert_file, &pki.serving_cert)?;
        write(&key_file, &pki.serving_key)?;
        write(&sa_key_file, &pki.service_account_key)?;
        let sa_pub_file = dir.join("service-account.pub");
        write(&sa_pub_file, &pki.service_account_public_key)?;
        let kubelet_client_cert = dir.join("apiserver-kubelet-client.crt");
        let kubelet_client_key = dir.join("apiserver-kubelet-client.key");
        write(&kubelet_client_cert, &pki.kubelet_client.cert)?;
        write(&kubelet_client_key, &pki.kubelet_client.key)?;

        // Static tokens: the admin (who may also impersonate), and each component as the identity
        // the bootstrap RBAC policy expects.
        let admin_token = random_token()?;
        let kcm_token = random_token()?;
        let scheduler_token = random_token()?;
        let kwok_token = random_token()?;
        let tokens_file = dir.join("tokens.csv");
        write(
            &tokens_file,
            &format!(
                "{admin_token},berth-admin,berth-admin,\"system:masters\"\n\
                 {kcm_token},system:kube-controller-manager,system:kube-controller-manager\n\
                 {scheduler_token},system:kube-scheduler,system:kube-scheduler\n\
                 {kwok_token},berth-kwok,berth-kwok,\"system:masters\"\n"
            ),
        )?;
        let kubeconfig_file = dir.join("admin.kubeconfig");
        let kcm_kubeconfig = dir.join("controller-manager.kubeconfig");
        let scheduler_kubeconfig = dir.join("scheduler.kubeconfig");
        let kwok_kubeconfig = dir.join("kwok.kubeconfig");
        write(
            &kubeconfig_file,
            &kubeconfig(&server, &pki.ca_cert, "berth-admin", &admin_token)?,
        )?;
        write(
            &kcm_kubeconfig,
            &kubeconfig(
                &server,
                &pki.ca_cert,
                "system:kube-controller-manager",
                &kcm_token,
            )?,
        )?;
        write(
            &scheduler_kubeconfig,
            &kubeconfig(
                &server,
                &pki.ca_cert,
                "system:kube-scheduler",
                &scheduler_token,
            )?,
        )?;
        write(
            &kwok_kubeconfig,
            &kubeconfig(&server, &pki.ca_cert, "berth-kwok", &kwok_token)?,
        )?;
        let kwok_config = dir.join("kwok-stages.yaml");
        kwok::write_config(&binaries.stages_dir(), &kwok_config)?;

        let d = |name: &str| dir.join(name).display().to_string();
        let mut extra_args = Vec::new();
        if options.audit {
            let policy = dir.join("audit-policy.yaml");
            write(
                &policy,
                "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n  - level: Metadata\n",
            )?;
            extra_args = vec![
                format!("--audit-policy-file={}", policy.display()),
                format!("--audit-log-path={}", d("audit.log")),
                "--audit-log-format=json".to_owned(),
                "--audit-log-maxsize=0".to_owned(),
            ];
        }
        if let Some(issuer) = &options.trust {
            let path = dir.join("authentication-config.yaml");
            write(
                &path,
                &serde_yaml::to_string(&crate::authentication_config(issuer))?,
            )?;
            extra_args.push(format!("--authentication-config={}", path.display()));
        }
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{etcd_peer_port}");
        let components: Vec<(&str, Vec<String>, Probe)> = vec![
            (
                "etcd",
                vec![
                    "--name=berth".into(),
                    format!("--data-dir={}", d("etcd")),
                    format!("--listen-client-urls={etcd_url}"),
                    format!("--advertise-client-urls={etcd_url}"),
                    format!("--listen-peer-urls={peer_url}"),
                    format!("--initial-advertise-peer-urls={peer_url}"),
                    format!("--initial-cluster=berth={peer_url}"),
                    "--unsafe-no-fsync".into(),
                    "--log-level=warn".into(),
                ],
                Probe::Etcd {
                    url: format!("{etcd_url}/health"),
                },
            ),
            (
                "kube-apiserver",
                vec![
                    format!("--etcd-servers={etcd_url}"),
                    format!("--bind-address={api_address}"),
                    format!("--advertise-address={api_address}"),
                    format!("--secure-port={api_port}"),
                    format!("--cert-dir={}", d("apiserver-certs")),
                    format!("--tls-cert-file={}", cert_file.display()),
                    format!("--tls-private-key-file={}", key_file.display()),
                    format!("--client-ca-file={}", ca_file.display()),
                    format!("--token-auth-file={}", tokens_file.display()),
                    // Node: a kubelet may read and write only what concerns its own node.
                    "--authorization-mode=Node,RBAC".into(),
                    // NodeRestriction: the same at admission. PodNodeSelector and
                    // PodTolerationRestriction: a namespace can put all its pods on the real
                    // node (see realnode::namespace_placement).
                    "--enable-admission-plugins=NodeRestriction,PodNodeSelector,PodTolerationRestriction".into(),
                    format!("--kubelet-client-certificate={}", kubelet_client_cert.display()),
                    format!("--kubelet-client-key={}", kubelet_client_key.display()),
                    // A node's name is not in any DNS here.
                    "--kubelet-preferred-address-types=InternalIP".into(),
                    "--service-account-issuer=https://kubernetes.default.svc".into(),
                    format!("--service-account-key-file={}", sa_pub_file.display()),
                    format!(
                        "--service-account-signing-key-file={}",
                        sa_key_file.display()
                    ),
                    format!("--service-cluster-ip-range={}", crate::realnode::SERVICE_RANGE),
                    "--allow-privileged=true".into(),
                    "--profiling=false".into(),
                ]
                .into_iter()
                .chain(extra_args)
                .collect(),
                Probe::ApiServer {
                    url: format!("{server}/readyz"),
                    token: admin_token.clone(),
                },
            ),
            (
                "kube-controller-manager",
                vec![
                    format!("--kubeconfig={}", kcm_kubeconfig.display()),
                    "--leader-elect=false".into(),
                    "--bind-address=127.0.0.1".into(),
                    format!("--secure-port={kcm_port}"),
                    format!("--cert-dir={}", d("controller-manager-certs")),
                    format!(
                        "--service-account-private-key-file={}",
                        sa_key_file.display()
                    ),
                    format!("--root-ca-file={}", ca_file.display()),
                    "--use-service-account-credentials=true".into(),
                    format!("--service-cluster-ip-range={}", crate::realnode::SERVICE_RANGE),
                    "--controllers=*".into(),
                    "--kube-api-qps=200".into(),
                    "--kube-api-burst=400".into(),
                ],
                Probe::Healthz {
                    url: format!("https://127.0.0.1:{kcm_port}/healthz"),
                },
            ),
            (
                "kube-scheduler",
                vec![
                    format!("--kubeconfig={}", scheduler_kubeconfig.display()),
                    "--leader-elect=false".into(),
                    "--bind-address=127.0.0.1".into(),
                    format!("--secure-port={scheduler_port}"),
                    format!("--cert-dir={}", d("scheduler-certs")),
                ],
                Probe::Healthz {
                    url: format!("https://127.0.0.1:{scheduler_port}/healthz"),
                },
            ),
            (
                "kwok",
                kwok::args(&kwok_kubeconfig, &kwok_config, kwok_port),
                Probe::Healthz {
                    url: format!("http://127.0.0.1:{kwok_port}/healthz"),
                },
            ),
        ];

        // Everything starts at once: each component retries its dependencies by itself.
        let mut processes = Vec::with_capacity(components.len());
        let mut probes = Vec::with_capacity(components.len());
        for (name, args, probe) in components {
            let log = dir.join(format!("{name}.log"));
            processes.push(Process::spawn(name, &binaries.path(name), &args, &log)?);
            probes.push(probe);
        }
        let cluster = Cluster::from_kubeconfig_file(&kubeconfig_file).await?;
        let mut plane = ControlPlane {
            processes,
            dir,
            remove_dir,
            cluster,
            started_in: Duration::ZERO,
            node_access: options.real_node.then(|| NodeAccess {
                server: server.clone(),
                ca_cert: pki.ca_cert.clone(),
                certs: pki.node.clone(),
            }),
        };

        let prober = Prober::new(&pki.ca_cert)?;
        let deadline = Instant::now() + options.timeout;
        let mut healthy = vec![false; probes.len()];
        while healthy.iter().any(|h| !h) {
            plane.check_running()?;
            for (i, probe) in probes.iter().enumerate() {
                if !healthy[i] && prober.healthy(probe).await {
                    healthy[i] = true;
                    progress(
                        show,
                        &format!(
                            "{} healthy after {:.1} s",
                            plane.processes[i].name(),
                            begin.elapsed().as_secs_f64()
                        ),
                    );
                }
            }
            if Instant::now() >= deadline {
                let waiting: Vec<&str> = plane
                    .processes
                    .iter()
                    .zip(&healthy)
                    .filter(|(_, h)| !**h)
                    .map(|(p, _)| p.name())
                    .collect();
                return Err(Error::Timeout {
                    what: format!(
                        "{} to become healthy (logs in {})",
                        waiting.join(", "),
                        plane.dir.display()
                    ),
                    seconds: options.timeout.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        let client = plane.cluster.client().await?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        kwok::create_nodes(&client, options.nodes, remaining).await?;
        progress(
            show,
            &format!(
                "{} kwok nodes Ready after {:.1} s",
                options.nodes,
                begin.elapsed().as_secs_f64()
            ),
        );

        // The serviceaccount and token controllers are working once `default` exists.
        let accounts: Api<ServiceAccount> = Api::namespaced(client, "default");
        while accounts.get_opt("default").await?.is_none() {
            plane.check_running()?;
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: "the default service account (kube-controller-manager's serviceaccount controller)".into(),
                    seconds: options.timeout.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        if options.install_berth {
            plane.cluster.install_berth().await?;
        }
        plane.started_in = begin.elapsed();
        progress(
            show,
            &format!(
                "control plane ready in {:.1} s",
                plane.started_in.as_secs_f64()
            ),
        );
        Ok(plane)
    }

    /// What the real node needs to join, when started with [`Options::real_node`].
    pub(crate) fn node_access(&self) -> Option<&NodeAccess> {
        self.node_access.as_ref()
    }

    /// The cluster, for clients.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The admin kubeconfig.
    pub fn kubeconfig_path(&self) -> &Path {
        self.cluster.kubeconfig_path()
    }

    /// The API server's `AuthenticationConfiguration`, when started with [`Options::trust`]
    /// (the API server reloads it when it changes).
    pub fn authentication_config_path(&self) -> PathBuf {
        self.dir.join("authentication-config.yaml")
    }

    /// The audit log, when started with [`Options::audit`].
    pub fn audit_log(&self) -> PathBuf {
        self.dir.join("audit.log")
    }

    /// Where data and logs live.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How long the start took, from the first process started to Berth's CRDs established.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// Fails with the component's log tail if any component has exited.
    pub fn check_running(&mut self) -> Result<(), Error> {
        for process in &mut self.processes {
            if let Some(status) = process.exited() {
                return Err(Error::Exited {
                    name: process.name().to_owned(),
                    status: status.to_string(),
                    log: process.log_path().to_path_buf(),
                    tail: process.log_tail(4000),
                });
            }
        }
        Ok(())
    }

    /// Stops every component, newest first, each with time to shut down cleanly.
    pub fn stop(mut self) {
        self.stop_all(Duration::from_secs(10));
    }

    /// Kills every component at once and removes the data directory: for the end of a test run,
    /// where nothing needs a clean shutdown.
    pub fn kill(mut self) {
        self.stop_all(Duration::ZERO);
    }

    fn stop_all(&mut self, grace: Duration) {
        while let Some(mut process) = self.processes.pop() {
            process.stop(grace);
        }
        if self.remove_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop_all(Duration::from_secs(10));
    }
}
