//! Real Holochain conductors, and the client that calls a peer's cell on one.
//!
//! [`EmbeddedNetwork::start`] runs N conductors inside this process: the holochain crate as
//! a library, an in-process kitsune2 bootstrap server (which also serves the iroh relay)
//! on 127.0.0.1, each conductor with its own data directory, in-process lair keystore and
//! the packed hApp installed. Nothing outside the process is needed.
//!
//! [`connect_remote`] reaches conductors that run elsewhere (an `hc sandbox` network, for
//! one) through their admin websockets with holochain_client, and returns the same
//! [`Client`]s. [`Client`] is what a participant talks to: every zome call of every
//! backend goes through [`Client::call`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use federated_learning_integrity::rejection::Code;
use futures::{StreamExt, TryStreamExt};
use holochain::conductor::config::{ConductorConfig, KeystoreConfig};
use holochain::conductor::{Conductor, ConductorHandle};
use holochain::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The coordinator zome every client calls.
pub const ZOME: &str = "federated_learning";

/// The installed app id on every conductor.
pub const APP_ID: &str = "mycelix_fl";

/// A peer's handle on its own cell.
#[derive(Clone)]
pub enum Client {
    /// A conductor in this process.
    Embedded {
        /// The conductor.
        handle: ConductorHandle,
        /// The peer's cell.
        cell: CellId,
    },
    /// A conductor behind an app websocket.
    Remote {
        /// The authenticated app connection (signs zome calls with authorised credentials).
        app: Arc<holochain_client::AppWebsocket>,
        /// The peer's cell.
        cell: CellId,
    },
}

/// A failed zome call: the zome's own message (validation rejections included) or a
/// transport failure.
#[derive(Debug, thiserror::Error)]
#[error("{function}: {message}")]
pub struct CallError {
    /// The zome function.
    pub function: String,
    /// What went wrong.
    pub message: String,
}

/// Holochain's own words for a commit whose validation awaits entries that have not
/// reached the conductor yet (`SourceChainError::IncompleteCommit`, holochain_state 0.6):
/// the one refusal that carries no [`Code`], matched as Holochain writes it.
const INCOMPLETE_COMMIT: &str = "The commit could not be completed but may be retried";

impl CallError {
    /// The code of the rule that refused the call, when a rule did.
    pub fn code(&self) -> Option<Code> {
        Code::of(&self.message)
    }

    /// Whether the same call may succeed later: a rule said it is not possible yet, or
    /// Holochain could not validate the commit for want of entries.
    pub fn retriable(&self) -> bool {
        retriable(&self.message)
    }
}

/// Whether a refusal's `message` says the same call may succeed later
/// ([`CallError::retriable`]).
pub fn retriable(message: &str) -> bool {
    Code::of(message).is_some_and(Code::retriable) || message.contains(INCOMPLETE_COMMIT)
}

impl Client {
    /// The peer's agent key.
    pub fn agent(&self) -> &AgentPubKey {
        match self {
            Client::Embedded { cell, .. } | Client::Remote { cell, .. } => cell.agent_pubkey(),
        }
    }

    /// Calls `function` of the coordinator zome on the peer's cell.
    pub async fn call<I, O>(&self, function: &str, input: I) -> Result<O, CallError>
    where
        I: Serialize + std::fmt::Debug,
        O: DeserializeOwned + std::fmt::Debug,
    {
        let failed = |message: String| CallError {
            function: function.to_string(),
            message,
        };
        match self {
            Client::Embedded { handle, cell } => handle
                .easy_call_zome(
                    cell.agent_pubkey(),
                    None,
                    cell.clone(),
                    ZOME,
                    function,
                    input,
                )
                .await
                .map_err(|e| failed(zome_message(e.to_string()))),
            Client::Remote { app, cell } => {
                let payload = ExternIO::encode(input).map_err(|e| failed(e.to_string()))?;
                let out = app
                    .call_zome(
                        holochain_client::ZomeCallTarget::CellId(cell.clone()),
                        ZOME.into(),
                        function.into(),
                        payload,
                    )
                    .await
                    .map_err(|e| failed(zome_message(e.to_string())))?;
                out.decode().map_err(|e| failed(e.to_string()))
            }
        }
    }
}

/// Wakes a participant when its cell emits an app signal: the coordinator zome announces
/// every submission, ballot, aggregate and evaluation to the round's participants by
/// remote signal. Signals are hints, not the truth: they may be lost, and what they
/// announce may not be readable yet, so a participant still reads the DHT.
pub struct SignalWake {
    notify: Arc<tokio::sync::Notify>,
    /// The app connection the signals arrive on, when it was opened for them.
    _socket: Option<holochain_client::AppWebsocket>,
}

impl SignalWake {
    /// Resolves at the next signal (at once when one arrived since the last call).
    pub async fn notified(&self) {
        self.notify.notified().await
    }
}

/// A handler for the signals of `cell` that notifies `notify` of those about a round of
/// `task`. Anyone may send a cell remote signals, so others are dropped here: a peer that
/// floods this one with signals about other tasks does not wake it.
fn notify_on_signals(
    cell: CellId,
    task: ActionHash,
    notify: Arc<tokio::sync::Notify>,
) -> impl Fn(holochain_types::prelude::Signal) + Send + Sync + 'static {
    move |signal| {
        let holochain_types::prelude::Signal::App {
            cell_id, signal, ..
        } = signal
        else {
            return;
        };
        let about_a_round = cell_id == cell
            && signal
                .into_inner()
                .decode::<federated_learning::Event>()
                .is_ok_and(|e| {
                    !matches!(e, federated_learning::Event::TaskCreated { .. }) && e.task() == &task
                });
        if about_a_round {
            notify.notify_one();
        }
    }
}

impl Client {
    /// Subscribes to the app signals of the peer's cell about the rounds of `task`. A
    /// remote client listens on its own app connection; an embedded conductor gets an app
    /// interface on 127.0.0.1 and a one-use token for it, as any client of a conductor
    /// would.
    pub async fn signal_wake(&self, task: ActionHash) -> Result<SignalWake> {
        let notify = Arc::new(tokio::sync::Notify::new());
        match self {
            Client::Remote { app, cell } => {
                app.on_signal(notify_on_signals(cell.clone(), task, notify.clone()))
                    .await;
                Ok(SignalWake {
                    notify,
                    _socket: None,
                })
            }
            Client::Embedded { handle, cell } => {
                let port = handle
                    .clone()
                    .add_app_interface(
                        either::Either::Left(0),
                        None,
                        holochain_types::websocket::AllowedOrigins::Any,
                        Some(APP_ID.to_string()),
                    )
                    .await
                    .context("attaching an app interface for signals")?;
                let token = handle
                    .issue_app_authentication_token(
                        holochain_client::IssueAppAuthenticationTokenPayload {
                            installed_app_id: APP_ID.to_string(),
                            expiry_seconds: 30,
                            single_use: true,
                        },
                    )
                    .context("issuing an app token for signals")?
                    .token;
                // No zome calls go through this connection: it needs no signing
                // credentials.
                let socket = holochain_client::AppWebsocket::connect(
                    (std::net::Ipv4Addr::LOCALHOST, port),
                    token,
                    holochain_client::ClientAgentSigner::default().into(),
                    Some("mycelix-fl".into()),
                )
                .await
                .with_context(|| format!("connecting to the app interface on port {port}"))?;
                socket
                    .on_signal(notify_on_signals(cell.clone(), task, notify.clone()))
                    .await;
                Ok(SignalWake {
                    notify,
                    _socket: Some(socket),
                })
            }
        }
    }
}

/// The first provisioned cell of an installed app.
fn provisioned_cell(app: &holochain_client::AppInfo) -> Option<CellId> {
    app.cell_info.values().flatten().find_map(|c| match c {
        holochain_client::CellInfo::Provisioned(p) => Some(p.cell_id.clone()),
        _ => None,
    })
}

/// What a client needs to act as the agent of one app on a running conductor, set up
/// through its admin interface: an attached app interface (any origin), a reusable app
/// token and zome-call signing credentials for the app's cell.
pub struct AppAccess {
    /// The admin connection it was set up through.
    pub admin: holochain_client::AdminWebsocket,
    /// The app's provisioned cell.
    pub cell_id: CellId,
    /// The attached app interface's port on 127.0.0.1.
    pub app_port: u16,
    /// A reusable app authentication token.
    pub token: Vec<u8>,
    /// Signing credentials authorised for the cell.
    pub credentials: holochain_client::SigningCredentials,
}

impl AppAccess {
    /// Sets up access to `app_id` on the conductor whose admin interface listens on
    /// 127.0.0.1:`port`.
    pub async fn open(port: u16, app_id: &str) -> Result<Self> {
        let admin = holochain_client::AdminWebsocket::connect(
            (std::net::Ipv4Addr::LOCALHOST, port),
            Some("mycelix-fl".into()),
        )
        .await
        .with_context(|| {
            format!("cannot reach a conductor's admin interface on 127.0.0.1:{port}")
        })?;
        let apps = admin
            .list_apps(None)
            .await
            .with_context(|| format!("listing the apps of the conductor on port {port}"))?;
        let app = apps
            .iter()
            .find(|a| a.installed_app_id == app_id)
            .with_context(|| {
                format!(
                    "the conductor on port {port} has no app {app_id:?} (it has: {})",
                    apps.iter()
                        .map(|a| a.installed_app_id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
        let cell_id = provisioned_cell(app)
            .with_context(|| format!("app {app_id:?} on port {port} has no provisioned cell"))?;
        let app_port = admin
            .attach_app_interface(
                0,
                None,
                holochain_client::AllowedOrigins::Any,
                Some(app_id.to_string()),
            )
            .await
            .with_context(|| format!("attaching an app interface on port {port}"))?;
        let token = admin
            .issue_app_auth_token(holochain_client::IssueAppAuthenticationTokenPayload {
                installed_app_id: app_id.to_string(),
                expiry_seconds: 0,
                single_use: false,
            })
            .await
            .with_context(|| format!("issuing an app token on port {port}"))?
            .token;
        let credentials = admin
            .authorize_signing_credentials(holochain_client::AuthorizeSigningCredentialsPayload {
                cell_id: cell_id.clone(),
                functions: None,
            })
            .await
            .with_context(|| format!("authorising zome-call signing on port {port}"))?;
        Ok(AppAccess {
            admin,
            cell_id,
            app_port,
            token,
            credentials,
        })
    }
}

/// Connects to running conductors, one peer per admin port on 127.0.0.1: sets up
/// [`AppAccess`] on each and opens an authenticated, signing app websocket.
pub async fn connect_remote(admin_ports: &[u16], app_id: &str) -> Result<Vec<Client>> {
    let mut clients = Vec::with_capacity(admin_ports.len());
    let mut admins = Vec::with_capacity(admin_ports.len());
    for &port in admin_ports {
        let AppAccess {
            admin,
            cell_id: cell,
            app_port,
            token,
            credentials,
        } = AppAccess::open(port, app_id).await?;
        let signer = holochain_client::ClientAgentSigner::default();
        signer.add_credentials(cell.clone(), credentials);
        let app = holochain_client::AppWebsocket::connect(
            (std::net::Ipv4Addr::LOCALHOST, app_port),
            token,
            signer.into(),
            Some("mycelix-fl".into()),
        )
        .await
        .with_context(|| format!("connecting to the app interface on port {app_port}"))?;
        clients.push(Client::Remote {
            app: Arc::new(app),
            cell,
        });
        admins.push((port, admin));
    }
    if let Err(e) = await_remote_peers(&admins, Duration::from_secs(60)).await {
        // Not fatal: the rounds still run, the first ones may wait for gossip.
        eprintln!("warning: {e:#}; starting anyway (the first round may wait for gossip)");
    }
    Ok(clients)
}

/// Waits until the conductors on `admin_ports` (127.0.0.1) each see every one of them
/// with a full storage arc; an error after `timeout` says how far they got.
pub async fn await_full_arcs(admin_ports: &[u16], timeout: Duration) -> Result<()> {
    let mut admins = Vec::with_capacity(admin_ports.len());
    for &port in admin_ports {
        let admin = holochain_client::AdminWebsocket::connect(
            (std::net::Ipv4Addr::LOCALHOST, port),
            Some("mycelix-fl".into()),
        )
        .await
        .with_context(|| {
            format!("cannot reach a conductor's admin interface on 127.0.0.1:{port}")
        })?;
        admins.push((port, admin));
    }
    await_remote_peers(&admins, timeout).await
}

/// Whether a signed agent info (the admin API's JSON) claims the full storage arc.
fn claims_full_arc(info: &str) -> bool {
    let inner = serde_json::from_str::<serde_json::Value>(info)
        .ok()
        .and_then(|outer| {
            outer
                .get("agentInfo")
                .and_then(|v| v.as_str())
                .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
        });
    inner.is_some_and(|i| i.get("storageArc") == Some(&serde_json::json!([0, u32::MAX])))
}

/// Waits until every remote conductor's peer store holds every conductor's agent, each
/// claiming the full storage arc (as [`EmbeddedNetwork`] does for its own conductors):
/// before that, a freshly started network delivers publishes only by gossip, a minute
/// later.
async fn await_remote_peers(
    admins: &[(u16, holochain_client::AdminWebsocket)],
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let n = admins.len();
    loop {
        let mut least = usize::MAX;
        let mut port_least = 0;
        for (port, admin) in admins {
            let infos = admin.agent_info(None).await.with_context(|| {
                format!("reading the peer store of the conductor on port {port}")
            })?;
            let full = infos.iter().filter(|i| claims_full_arc(i)).count();
            if full < least {
                least = full;
                port_least = *port;
            }
        }
        if least >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "after {} s the conductor on port {port_least} knows {least} of {n} peers with a full arc",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The zome's message of a failed call, without the layers of wrapping around it.
fn zome_message(text: String) -> String {
    // Guest errors and validation failures carry the zome's words inside debug wrappers;
    // keep them readable for the per-round output.
    for marker in ["Guest(\"", "InvalidCommit(\"", "Invalid(\""] {
        if let Some(start) = text.find(marker) {
            let rest = &text[start + marker.len()..];
            if let Some(end) = rest.find("\")") {
                return rest[..end].replace("\\\"", "\"");
            }
        }
    }
    text
}

/// Default interval between two gossip rounds a conductor initiates, in milliseconds
/// (kitsune2's own default is 120 s). Publishing, not gossip, carries new ops to their
/// authorities; gossip repairs what publishing missed (a peer that was down catches up
/// through it, its first round 1 s after start). At 200 ms, ten conductors' rounds grew
/// from 25 s to 58 s over 42 rounds; at 2 s they stayed near 25 s (docs/results/conductors.md, "Reliability").
pub const GOSSIP_MS: u32 = 2000;

/// The gossip interval of embedded conductors: `MYCELIX_FL_GOSSIP_MS` when set to a
/// number of milliseconds, else [`GOSSIP_MS`].
pub fn gossip_ms() -> u32 {
    std::env::var("MYCELIX_FL_GOSSIP_MS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&ms: &u32| ms > 0)
        .unwrap_or(GOSSIP_MS)
}

/// N conductors in this process, sharing an in-process bootstrap server and relay.
pub struct EmbeddedNetwork {
    /// One client per conductor, in start order.
    pub clients: Vec<Client>,
    conductors: Vec<ConductorHandle>,
    /// Conductors [`Self::stop`] shut down and [`Self::restart`] has not started again
    /// (holochain panics on a second shutdown).
    stopped: Vec<bool>,
    url: String,
    _bootstrap: kitsune2_bootstrap_srv::BootstrapSrv,
    dir: tempfile::TempDir,
    /// The databases' key, shared by every conductor of the run (written as each one's
    /// `db.key` before it starts), to add the indexes of [`crate::dbtune`].
    db_key: holochain_sqlite::db::DbKey,
}

/// The hApp bundle path [`default_happ`] takes from the environment first.
pub const HAPP_ENV: &str = "MYCELIX_FL_HAPP";

/// The default hApp bundle (packed by `scripts/pack.sh`): `$MYCELIX_FL_HAPP` when set;
/// else `workdir/mycelix_fl.happ` of the clone the current directory is in (the nearest
/// directory upwards that has one); else that of the clone the binary was built from.
///
/// Not the build-time path first: clones on one machine share a target directory, and a
/// binary or library another clone compiled from the same sources is reused as it is, with
/// that clone's path compiled in.
pub fn default_happ() -> PathBuf {
    const BUNDLE: &str = "workdir/mycelix_fl.happ";
    if let Some(p) = std::env::var_os(HAPP_ENV) {
        return PathBuf::from(p);
    }
    if let Ok(cwd) = std::env::current_dir() {
        if let Some(found) = cwd
            .ancestors()
            .map(|d| d.join(BUNDLE))
            .find(|p| p.is_file())
        {
            return found;
        }
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(BUNDLE)
}

impl EmbeddedNetwork {
    /// Starts `n` conductors with `happ` installed and enabled on each, and waits until
    /// every conductor knows every peer. `progress` hears each step.
    pub async fn start(n: usize, happ: &Path, progress: impl Fn(String)) -> Result<Self> {
        if n == 0 {
            bail!("a network needs at least one conductor");
        }
        if !happ.exists() {
            bail!(
                "the hApp bundle {} is missing: run scripts/pack.sh first",
                happ.display()
            );
        }
        let started = Instant::now();
        let bootstrap = tokio::task::spawn_blocking(|| {
            kitsune2_bootstrap_srv::BootstrapSrv::new(kitsune2_bootstrap_srv::Config::testing())
        })
        .await?
        .context("starting the local bootstrap server")?;
        let url = format!("http://{}/", bootstrap.listen_addrs()[0]);
        let dir = tempfile::Builder::new()
            .prefix("mycelix-fl-conductors-")
            .tempdir()
            .context("creating the conductors' data directory")?;
        progress(format!(
            "bootstrap and relay on {url}; data in {}",
            dir.path().display()
        ));
        // One database key for the run: derived once here, loaded by every conductor.
        let db_key = holochain_sqlite::db::DbKey::generate(passphrase())
            .await
            .context("generating the databases' key")?;
        // Built a core's worth at a time: each spends most of its start-up in key
        // derivation, and ten derivations at once on two cores made some conductors' lair
        // connections time out ("starting conductor 1: TimedOut").
        let cores = std::thread::available_parallelism().map_or(2, |c| c.get());
        let builds = (0..n).map(|i| {
            let root = dir.path().join(format!("conductor-{i}"));
            let (url, locked) = (url.clone(), db_key.locked.clone());
            async move {
                std::fs::create_dir_all(root.join("databases"))?;
                std::fs::write(root.join("databases").join("db.key"), locked)?;
                throwaway_keystore(&root).await?;
                let handle = build_conductor(&root, &url, passphrase())
                    .await
                    .with_context(|| format!("starting conductor {i}"))?;
                anyhow::Ok(handle)
            }
        });
        let conductors: Vec<ConductorHandle> = futures::stream::iter(builds)
            .buffered(cores)
            .try_collect()
            .await?;
        progress(format!(
            "{n} conductors started in {:.1} s",
            started.elapsed().as_secs_f64()
        ));
        let install = |i: usize, h: &ConductorHandle| {
            let h = h.clone();
            async move {
                let app = h
                    .clone()
                    .install_app_bundle(InstallAppPayload {
                        source: AppBundleSource::Path(happ.to_path_buf()),
                        agent_key: None,
                        installed_app_id: Some(APP_ID.to_string()),
                        network_seed: None,
                        roles_settings: None,
                        ignore_genesis_failure: false,
                    })
                    .await
                    .with_context(|| format!("installing {} on conductor {i}", happ.display()))?;
                h.clone()
                    .enable_app(APP_ID.to_string())
                    .await
                    .with_context(|| format!("enabling the app on conductor {i}"))?;
                let cell = app
                    .all_cells()
                    .next()
                    .context("the hApp has no cell")?
                    .clone();
                anyhow::Ok(Client::Embedded {
                    handle: h.clone(),
                    cell,
                })
            }
        };
        // The first conductor alone compiles the zomes, a first call included (the
        // coordinator is compiled when first called); every other conductor then finds
        // them compiled in its wasm cache instead of compiling them again, which was most
        // of an install on two cores.
        let first = install(0, &conductors[0]).await?;
        first
            .call::<_, Vec<AgentPubKey>>("list_agents", ())
            .await
            .context("a first call on conductor 0")?;
        let compiled = dir.path().join("conductor-0").join(WASM_CACHE);
        for i in 1..n {
            copy_files(
                &compiled,
                &dir.path().join(format!("conductor-{i}")).join(WASM_CACHE),
            )?;
        }
        let mut clients = vec![first];
        clients.extend(
            futures::future::try_join_all(
                conductors
                    .iter()
                    .enumerate()
                    .skip(1)
                    .map(|(i, h)| install(i, h)),
            )
            .await?,
        );
        progress(format!(
            "hApp installed on {n} conductors after {:.1} s",
            started.elapsed().as_secs_f64()
        ));
        let network = EmbeddedNetwork {
            clients,
            stopped: vec![false; conductors.len()],
            conductors,
            url,
            _bootstrap: bootstrap,
            dir,
            db_key,
        };
        if crate::dbtune::stock() {
            progress(format!(
                "databases left as holochain makes them ({}=1)",
                crate::dbtune::STOCK_ENV
            ));
        } else {
            let mut tuned = 0;
            for i in 0..n {
                tuned += network.tune(i).await?;
            }
            progress(format!(
                "{tuned} cell databases indexed by link base and entry hash (fl_node::dbtune)"
            ));
        }
        network.await_peers(Duration::from_secs(60)).await?;
        progress(format!(
            "every conductor sees {n} peers after {:.1} s",
            started.elapsed().as_secs_f64()
        ));
        Ok(network)
    }

    /// Waits until every conductor's peer store holds every agent, each claiming the full
    /// storage arc: from then on a publish reaches every peer directly instead of waiting
    /// for gossip.
    async fn await_peers(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let n = self.conductors.len();
        loop {
            let mut least = usize::MAX;
            let mut full = usize::MAX;
            for h in &self.conductors {
                let infos = h.get_agent_infos(None).await?;
                least = least.min(infos.len());
                full = full.min(
                    infos
                        .iter()
                        .filter(|i| i.get_agent_info().storage_arc == kitsune2_api::DhtArc::FULL)
                        .count(),
                );
            }
            if least >= n && full >= n {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the conductors did not find each other within {} s (one of them knows {least} of {n} peers)",
                    timeout.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Opens an admin websocket on a free 127.0.0.1 port of every conductor and returns
    /// the ports (what a remote client, or `hc s call`, connects to).
    pub async fn open_admin_ports(&self) -> Result<Vec<u16>> {
        let mut ports = Vec::with_capacity(self.conductors.len());
        for h in &self.conductors {
            let p = h
                .clone()
                .add_admin_interfaces(vec![holochain::conductor::config::AdminInterfaceConfig {
                    driver: holochain::conductor::interface::InterfaceDriver::Websocket {
                        port: 0,
                        danger_bind_addr: None,
                        allowed_origins: holochain_client::AllowedOrigins::Any,
                    },
                }])
                .await?;
            ports.extend(p);
        }
        Ok(ports)
    }

    /// The data directory of conductor `i`.
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("conductor-{i}"))
    }

    /// Bytes on disk under every conductor's data directory, in start order.
    pub fn disk_usage(&self) -> Vec<u64> {
        (0..self.conductors.len())
            .map(|i| dir_size(&self.data_dir(i)))
            .collect()
    }

    /// Adds the indexes of [`crate::dbtune`] to conductor `i`'s cell databases; how many
    /// it tuned. Callers skip it when [`crate::dbtune::STOCK_ENV`] is set.
    async fn tune(&self, i: usize) -> Result<usize> {
        crate::dbtune::tune(&self.data_dir(i), &self.db_key)
            .await
            .with_context(|| format!("indexing conductor {i}'s databases"))
    }

    /// Shuts conductor `i` down; its data directory and keystore stay for
    /// [`Self::restart`].
    pub async fn stop(&mut self, i: usize) -> Result<()> {
        if self.stopped[i] {
            bail!("conductor {i} is already stopped");
        }
        self.stopped[i] = true;
        self.conductors[i]
            .shutdown()
            .await
            .context("waiting for the conductor's tasks")?
            .map_err(|e| anyhow::anyhow!("shutting conductor {i} down: {e}"))
    }

    /// Starts conductor `i` again from its data directory and keystore: the
    /// installed, enabled app comes back with its cell, and catches up with the network by
    /// itself. Returns the peer's new client (also stored in `clients`).
    pub async fn restart(&mut self, i: usize) -> Result<Client> {
        // The in-process keystore stops with its conductor, so a new one is spawned on
        // the same lair directory.
        let handle = build_conductor(&self.data_dir(i), &self.url, passphrase())
            .await
            .with_context(|| format!("restarting conductor {i}"))?;
        let cell = match &self.clients[i] {
            Client::Embedded { cell, .. } | Client::Remote { cell, .. } => cell.clone(),
        };
        let client = Client::Embedded {
            handle: handle.clone(),
            cell,
        };
        self.conductors[i] = handle;
        self.stopped[i] = false;
        self.clients[i] = client.clone();
        if !crate::dbtune::stock() {
            self.tune(i).await?;
        }
        Ok(client)
    }

    /// Shuts every conductor down.
    pub async fn shutdown(self) {
        for (h, stopped) in self.conductors.iter().zip(&self.stopped) {
            if !stopped {
                let _ = h.shutdown().await;
            }
        }
    }
}

/// While any is alive, the process's standard output goes to `/dev/null`: lair's
/// in-process keystore prints its connection URL, secret key parameter included, to stdout
/// when it starts, and a participant's output (JSON lines, for one) must not carry it.
/// Guards nest (conductors start concurrently); the last one dropped restores stdout.
/// Anything else printed meanwhile is lost, so hold them only around starts.
struct SilencedStdout;

/// Live guards, and the saved descriptor of the real stdout while any is alive.
static SILENCED: std::sync::Mutex<(usize, Option<i32>)> = std::sync::Mutex::new((0, None));

impl SilencedStdout {
    fn new() -> Self {
        use std::io::Write;
        let mut state = SILENCED.lock().unwrap_or_else(|e| e.into_inner());
        if state.0 == 0 {
            let _ = std::io::stdout().flush();
            // SAFETY: plain descriptor calls on fd 1 and a freshly opened /dev/null; every
            // failure leaves stdout as it was.
            state.1 = unsafe {
                let saved = libc::dup(1);
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
                if saved >= 0 && null >= 0 && libc::dup2(null, 1) >= 0 {
                    libc::close(null);
                    Some(saved)
                } else {
                    for fd in [saved, null] {
                        if fd >= 0 {
                            libc::close(fd);
                        }
                    }
                    None
                }
            };
        }
        state.0 += 1;
        SilencedStdout
    }
}

impl Drop for SilencedStdout {
    fn drop(&mut self) {
        use std::io::Write;
        let mut state = SILENCED.lock().unwrap_or_else(|e| e.into_inner());
        state.0 -= 1;
        if state.0 == 0 {
            let _ = std::io::stdout().flush();
            if let Some(saved) = state.1.take() {
                // SAFETY: `saved` is the descriptor duplicated when the first guard began.
                unsafe {
                    libc::dup2(saved, 1);
                    libc::close(saved);
                }
            }
        }
    }
}

/// Writes the lair keystore configuration of an embedded run's conductor on `root`, with
/// the cheapest passphrase hashing lair offers. Its keys live only in the run's temporary
/// folder, so a slow hash would protect nothing; lair's default (argon2id at 256 MB per
/// derivation) spent most of a conductor's start-up. A participant's own conductor keeps
/// the default.
async fn throwaway_keystore(root: &Path) -> Result<()> {
    use lair_keystore_api::config::LairServerConfigInner;
    use lair_keystore_api::dependencies::hc_seed_bundle::PwHashLimits;
    let dir = root.join(holochain_keystore::paths::KEYSTORE_DIRECTORY);
    std::fs::create_dir_all(&dir)?;
    // `new` reads the limits when called, so the future carries them.
    let config = PwHashLimits::Minimum
        .with_exec(|| LairServerConfigInner::new(&dir, passphrase()))
        .await
        .map_err(|e| anyhow::anyhow!("writing the keystore configuration: {e}"))?;
    std::fs::write(dir.join("lair-keystore-config.yaml"), config.to_string())?;
    Ok(())
}

/// Builds a conductor on `root` with the keystore passphrase `passphrase`, keeping lair's
/// start-up lines off standard output.
async fn build_conductor(
    root: &Path,
    url: &str,
    passphrase: Arc<std::sync::Mutex<sodoken::LockedArray>>,
) -> Result<ConductorHandle> {
    let config = config(root, url)?;
    let _quiet = SilencedStdout::new();
    Conductor::builder()
        .config(config)
        .passphrase(Some(passphrase))
        .no_print_setup()
        .build()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// A participant's own conductor in this process, on a data directory that outlives the
/// process: its keys (in an in-process lair keystore locked by the participant's
/// passphrase) and its copy of the DHT stay there, so starting again with the same
/// directory and passphrase resumes as the same agent.
pub struct OwnConductor {
    handle: ConductorHandle,
    /// The participant's client.
    pub client: Client,
}

/// How many times [`OwnConductor::open`] starts a conductor whose keystore connection
/// timed out.
const START_ATTEMPTS: u32 = 3;

/// Where and how a participant's own conductor runs.
pub struct OwnConductorConfig {
    /// Data directory (created when missing).
    pub data_dir: PathBuf,
    /// Unlocks the keystore and the databases.
    pub passphrase: Vec<u8>,
    /// The network's bootstrap server, which also serves its relay (`mycelix-fl
    /// bootstrap` prints one).
    pub bootstrap_url: String,
    /// Separates this network's DHT from others on the same bootstrap server; every
    /// participant of a network uses the same seed. Fixed when the app is first installed.
    pub network_seed: Option<String>,
    /// The hApp bundle to install on first start.
    pub happ: PathBuf,
}

impl OwnConductor {
    /// Starts the conductor on `cfg.data_dir`, installing and enabling the hApp on first
    /// start, and returns once the app's cell is running.
    pub async fn open(cfg: &OwnConductorConfig) -> Result<Self> {
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
        url2::Url2::try_parse(&cfg.bootstrap_url)
            .map_err(|e| anyhow::anyhow!("--bootstrap-url {}: {e}", cfg.bootstrap_url))?;
        let passphrase = Arc::new(std::sync::Mutex::new(sodoken::LockedArray::from(
            cfg.passphrase.clone(),
        )));
        // The keystore's key derivation is slow by design; on a loaded machine the
        // conductor's first connection to it can time out. That is worth another try; a
        // wrong passphrase is not.
        let mut attempt = 1;
        let handle = loop {
            match build_conductor(&cfg.data_dir, &cfg.bootstrap_url, passphrase.clone()).await {
                Ok(handle) => break handle,
                Err(e) if attempt < START_ATTEMPTS && e.to_string().contains("TimedOut") => {
                    eprintln!(
                        "starting the conductor in {} timed out (attempt {attempt} of {START_ATTEMPTS}); trying again",
                        cfg.data_dir.display()
                    );
                    attempt += 1;
                }
                Err(e) => bail!(
                    "starting the conductor in {} (a data directory opens only with the passphrase it was made with): {e}",
                    cfg.data_dir.display()
                ),
            }
        };
        let cell = match handle.get_app_info(&APP_ID.to_string()).await? {
            Some(info) => {
                provisioned_cell(&info).context("the installed app has no provisioned cell")?
            }
            None => {
                if !cfg.happ.exists() {
                    bail!(
                        "the hApp bundle {} is missing: run scripts/pack.sh first",
                        cfg.happ.display()
                    );
                }
                let app = handle
                    .clone()
                    .install_app_bundle(InstallAppPayload {
                        source: AppBundleSource::Path(cfg.happ.clone()),
                        agent_key: None,
                        installed_app_id: Some(APP_ID.to_string()),
                        network_seed: cfg.network_seed.clone(),
                        roles_settings: None,
                        ignore_genesis_failure: false,
                    })
                    .await
                    .with_context(|| format!("installing {}", cfg.happ.display()))?;
                let cell = app
                    .all_cells()
                    .next()
                    .context("the hApp has no cell")?
                    .clone();
                cell
            }
        };
        handle
            .clone()
            .enable_app(APP_ID.to_string())
            .await
            .context("enabling the app")?;
        if !crate::dbtune::stock() {
            let locked = std::fs::read_to_string(cfg.data_dir.join("databases").join("db.key"))
                .context("reading the databases' key")?;
            let key = holochain_sqlite::db::DbKey::load(locked, passphrase)
                .await
                .context("unlocking the databases' key")?;
            crate::dbtune::tune(&cfg.data_dir, &key).await?;
        }
        Ok(OwnConductor {
            client: Client::Embedded {
                handle: handle.clone(),
                cell,
            },
            handle,
        })
    }

    /// Peers this conductor knows on the network (itself included).
    pub async fn known_peers(&self) -> Result<usize> {
        Ok(self.handle.get_agent_infos(None).await?.len())
    }

    /// Shuts the conductor down.
    pub async fn shutdown(self) -> Result<()> {
        self.handle
            .shutdown()
            .await
            .context("waiting for the conductor's tasks")?
            .map_err(|e| anyhow::anyhow!("shutting the conductor down: {e}"))
    }
}

/// Starts a kitsune2 bootstrap server with its relay on `addr`: what a network of
/// participants on several machines needs, besides the participants. The URL to give
/// them is `http://<addr>/`.
pub async fn start_bootstrap(
    addr: std::net::SocketAddr,
) -> Result<(kitsune2_bootstrap_srv::BootstrapSrv, String)> {
    let srv = tokio::task::spawn_blocking(move || {
        let mut config = kitsune2_bootstrap_srv::Config::testing();
        config.listen_address_list = vec![addr];
        kitsune2_bootstrap_srv::BootstrapSrv::new(config)
    })
    .await?
    .with_context(|| format!("starting the bootstrap server on {addr}"))?;
    let url = format!("http://{}/", srv.listen_addrs()[0]);
    Ok((srv, url))
}

/// The passphrase of every embedded conductor's in-process lair keystore (the keys live
/// only in the run's temporary folder).
fn passphrase() -> Arc<std::sync::Mutex<sodoken::LockedArray>> {
    Arc::new(std::sync::Mutex::new(sodoken::LockedArray::from(
        b"mycelix-fl".to_vec(),
    )))
}

/// The folder of a conductor's data directory holding its compiled zomes (holochain's
/// file-system module cache).
const WASM_CACHE: &str = "wasm-cache";

/// Copies every file of `from` into `to` (created if missing).
fn copy_files(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Bytes of every file under `dir` (0 for what cannot be read).
pub fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// A conductor configuration on `root` that uses only the local bootstrap server and
/// relay at `url`.
fn config(root: &Path, url: &str) -> Result<ConductorConfig> {
    let mut cfg = ConductorConfig {
        data_root_path: Some(root.to_path_buf().into()),
        keystore: KeystoreConfig::LairServerInProc { lair_root: None },
        ..Default::default()
    };
    cfg.network.bootstrap_url = url2::Url2::parse(url);
    cfg.network.relay_url = url2::Url2::parse(url);
    let gossip = gossip_ms();
    cfg.network.advanced = Some(serde_json::json!({
        // Required for a plain-http relay on 127.0.0.1.
        "irohTransport": { "relayAllowPlainText": true },
        "k2Gossip": {
            "initiateIntervalMs": gossip,
            "initiateJitterMs": 10,
            "minInitiateIntervalMs": gossip
        }
    }));
    // Ops often arrive before the ops they depend on (a vote before its submission).
    // Sys validation retries those after 10 s by default; on a local network the missing
    // op is milliseconds away.
    let mut tuning = holochain::conductor::config::ConductorTuningParams::new();
    tuning.sys_validation_retry_delay = Some(Duration::from_millis(50));
    cfg.tuning_params = Some(tuning);
    // A build with holochain's test_utils feature (cargo unifies it in when the workspace's
    // sweettests are compiled in the same invocation) defaults to a private in-memory
    // bootstrap; the field only exists in such builds, so it is set through serde.
    let mut value = serde_json::to_value(&cfg)?;
    if let Some(net) = value.get_mut("network").and_then(|v| v.as_object_mut()) {
        if net.contains_key("mem_bootstrap") {
            net.insert("mem_bootstrap".into(), serde_json::Value::Bool(false));
        }
    }
    Ok(serde_json::from_value(value)?)
}

#[cfg(test)]
mod tests {
    use super::claims_full_arc;

    fn info(arc: &str) -> String {
        let inner = format!(
            r#"{{"agent":"abc","space":"s","createdAt":"1","expiresAt":"2","isTombstone":false,"url":null,"storageArc":{arc}}}"#
        );
        serde_json::json!({ "agentInfo": inner, "signature": "x" }).to_string()
    }

    #[test]
    fn full_arcs_are_recognised_in_admin_agent_infos() {
        assert!(claims_full_arc(&info("[0,4294967295]")));
        assert!(!claims_full_arc(&info("[0,1000]")));
        assert!(!claims_full_arc(&info("null")));
        assert!(!claims_full_arc("not json"));
    }
}
