//! A participant's commands: `peer`, `task`, `bootstrap` and `data`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use federated_learning::TaskInfo;
use fl_learn::attacks::Attack;
use fl_learn::data::{builtin, load_for_task, write_csv, Dataset};
use fl_node::conductor::{
    connect_remote, default_happ, start_bootstrap, Client, OwnConductor, OwnConductorConfig, APP_ID,
};
use fl_node::peer::{Behaviour, Participant};
use fl_node::taskfile::TaskFile;
use holochain::prelude::ActionHash;
use rand::SeedableRng;

/// The environment variable a passphrase may come from.
const PASSPHRASE_ENV: &str = "MYCELIX_FL_PASSPHRASE";

/// Which conductor a participant acts through.
#[derive(clap::Args, Debug)]
pub struct ConductorArgs {
    /// Data directory of this participant's own conductor, in this process: its keys and
    /// its copy of the DHT. Created on first use; start again with the same directory to
    /// resume as the same agent.
    #[arg(long, conflicts_with = "admin_port")]
    data_dir: Option<PathBuf>,
    /// File whose first line is the passphrase locking the data directory (else
    /// MYCELIX_FL_PASSPHRASE, else a prompt).
    #[arg(long)]
    passphrase_file: Option<PathBuf>,
    /// The network's bootstrap server and relay (`mycelix-fl bootstrap` starts one).
    #[arg(long)]
    bootstrap_url: Option<String>,
    /// The network's seed: every participant of one network uses the same (fixed when a
    /// data directory is first used).
    #[arg(long)]
    network_seed: Option<String>,
    /// Instead of an own conductor: the admin port (on 127.0.0.1) of a conductor already
    /// running with the hApp installed (`hc sandbox`, `hc launch`).
    #[arg(long)]
    admin_port: Option<u16>,
    /// Installed app id on that conductor.
    #[arg(long, default_value = APP_ID)]
    app_id: String,
    /// The hApp bundle an own conductor installs on first start.
    #[arg(long, default_value_os_t = default_happ())]
    happ: PathBuf,
}

/// A connected participant: its client and, for an own conductor, the conductor.
pub struct Connection {
    /// The client.
    pub client: Client,
    own: Option<OwnConductor>,
}

impl Connection {
    /// Shuts an own conductor down.
    pub async fn close(self) -> Result<()> {
        match self.own {
            Some(own) => own.shutdown().await,
            None => Ok(()),
        }
    }
}

fn passphrase(file: Option<&PathBuf>) -> Result<Vec<u8>> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the passphrase file {}", path.display()))?;
        let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
        if line.is_empty() {
            bail!("the passphrase file {} is empty", path.display());
        }
        return Ok(line.as_bytes().to_vec());
    }
    if let Ok(p) = std::env::var(PASSPHRASE_ENV) {
        if !p.is_empty() {
            return Ok(p.into_bytes());
        }
    }
    let p = rpassword::prompt_password("passphrase for the data directory: ")
        .context("reading the passphrase (give --passphrase-file or MYCELIX_FL_PASSPHRASE when there is no terminal)")?;
    if p.is_empty() {
        bail!("an empty passphrase locks nothing");
    }
    Ok(p.into_bytes())
}

impl ConductorArgs {
    /// Connects: the own conductor (started, with the hApp installed on first use) or the
    /// running one on `--admin-port`.
    pub async fn connect(&self) -> Result<Connection> {
        if let Some(port) = self.admin_port {
            let client = connect_remote(&[port], &self.app_id)
                .await
                .with_context(|| format!("connecting to the conductor on admin port {port}"))?
                .pop()
                .ok_or_else(|| anyhow!("no client"))?;
            return Ok(Connection { client, own: None });
        }
        let Some(data_dir) = self.data_dir.clone() else {
            bail!("give --data-dir (an own conductor) or --admin-port (a running one)");
        };
        let Some(bootstrap_url) = self.bootstrap_url.clone() else {
            bail!(
                "an own conductor needs --bootstrap-url (`mycelix-fl bootstrap` starts a server)"
            );
        };
        check_reachable(&bootstrap_url).await?;
        let cfg = OwnConductorConfig {
            data_dir,
            passphrase: passphrase(self.passphrase_file.as_ref())?,
            bootstrap_url,
            network_seed: self.network_seed.clone(),
            happ: self.happ.clone(),
        };
        let own = OwnConductor::open(&cfg).await?;
        Ok(Connection {
            client: own.client.clone(),
            own: Some(own),
        })
    }
}

/// Fails at once, with the address, when nothing answers at the bootstrap URL.
async fn check_reachable(url: &str) -> Result<()> {
    let parsed = url2::Url2::try_parse(url).map_err(|e| anyhow!("--bootstrap-url {url}: {e}"))?;
    let host = parsed.host_str().unwrap_or("127.0.0.1").to_string();
    let port = parsed.port_or_known_default().unwrap_or(80);
    match tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => bail!("the bootstrap server {url} is unreachable: {e}"),
        Err(_) => bail!("the bootstrap server {url} did not answer within 5 s"),
    }
}

/// `mycelix-fl peer`.
#[derive(clap::Args, Debug)]
pub struct PeerArgs {
    #[command(flatten)]
    conductor: ConductorArgs,
    /// The task to take part in (its hash; `mycelix-fl task list` shows them).
    #[arg(long)]
    task: String,
    /// This participant's own table (CSV with a header row, in the task's schema).
    #[arg(long, conflicts_with = "dataset")]
    data: Option<PathBuf>,
    /// For demos: a bundled data set (digits, breast_cancer, iris) instead of own data,
    /// with --shard.
    #[arg(long, requires = "shard")]
    dataset: Option<String>,
    /// For demos: this participant's shard of the bundled set, as K/N (shard K of N,
    /// counted from 0; an IID split, the same on every machine).
    #[arg(long)]
    shard: Option<String>,
    /// The invite a member issued for this agent, for a closed task.
    #[arg(long)]
    invite: Option<String>,
    /// Behave as an attacker (for tests and demos): sign_flip, noise, zero, random,
    /// label_flip, ...
    #[arg(long)]
    attack: Option<String>,
    /// Stop once this many rounds have closed (default: follow the task until Ctrl-C).
    #[arg(long)]
    rounds: Option<u32>,
    /// One JSON object per round instead of a line of text.
    #[arg(long)]
    json: bool,
    /// Seed of local training's shuffles.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// How long to wait, in seconds, for the task to reach this conductor before calling
    /// it unknown (a conductor that has just started receives the network's entries
    /// first).
    #[arg(long, default_value_t = DEFAULT_TASK_WAIT.as_secs())]
    task_wait: u64,
}

fn action_hash(what: &str, text: &str) -> Result<ActionHash> {
    ActionHash::try_from(text.trim().to_string())
        .map_err(|e| anyhow!("{what} {text:?} is not an action hash: {e:?}"))
}

/// The participant's data: its own table in the task's schema, or a shard of a bundled
/// set run through the task's preprocessing.
fn participant_data(args: &PeerArgs, task: &federated_learning_integrity::Task) -> Result<Dataset> {
    let spec = &task.spec;
    if let Some(path) = &args.data {
        return Ok(load_for_task(
            path,
            &spec.data,
            spec.model.inputs() as usize,
        )?);
    }
    let (Some(name), Some(shard)) = (&args.dataset, &args.shard) else {
        bail!("give --data mine.csv (own data) or --dataset NAME --shard K/N (a demo shard)");
    };
    let (k, n) = shard
        .split_once('/')
        .and_then(|(k, n)| Some((k.parse::<usize>().ok()?, n.parse::<usize>().ok()?)))
        .filter(|(k, n)| k < n)
        .ok_or_else(|| anyhow!("--shard {shard:?} must be K/N with K < N"))?;
    let data = demo_shard(name, k, n)?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(format!("{name}-{k}-of-{n}.csv"));
    write_csv(&data, &path)?;
    Ok(load_for_task(
        &path,
        &spec.data,
        spec.model.inputs() as usize,
    )?)
}

/// Shard `k` of `n` of a bundled set: an IID split by a fixed seed, the same on every
/// machine, features as the set holds them.
pub fn demo_shard(name: &str, k: usize, n: usize) -> Result<Dataset> {
    use rand::seq::SliceRandom;
    let data = builtin(name)?;
    let mut idx: Vec<usize> = (0..data.len()).collect();
    idx.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0x5eed));
    let mine: Vec<usize> = idx.into_iter().skip(k).step_by(n).collect();
    Ok(data.subset(&mine))
}

/// `mycelix-fl peer`: one participant until the rounds asked for closed or Ctrl-C.
pub fn peer(args: PeerArgs) -> Result<()> {
    let task_hash = action_hash("--task", &args.task)?;
    let behaviour = match &args.attack {
        None => Behaviour::Honest,
        Some(a) => Behaviour::Attack(a.parse::<Attack>().map_err(anyhow::Error::msg)?),
    };
    let invite = args
        .invite
        .as_deref()
        .map(|i| action_hash("--invite", i))
        .transpose()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let conn = args.conductor.connect().await?;
        let result = async {
            let wait = Duration::from_secs(args.task_wait);
            let info = find_task(&conn.client, &task_hash, wait).await?;
            let data = participant_data(&args, &info.task)?;
            let mut p = Participant::new(
                conn.client.clone(),
                task_hash.clone(),
                data,
                invite,
                behaviour,
                args.seed,
            )
            .await?;
            if !args.json {
                println!(
                    "agent {} in task {:?} ({}, {} parameters), {}",
                    p.agent(),
                    p.task().name,
                    p.task().spec.model.describe(),
                    p.task().model_len,
                    match behaviour {
                        Behaviour::Honest => "honest".to_string(),
                        Behaviour::Attack(a) => format!("attacking with {a}"),
                    }
                );
            }
            let json = args.json;
            p.run(
                args.rounds,
                async {
                    let _ = tokio::signal::ctrl_c().await;
                },
                |line| {
                    if json {
                        println!("{}", serde_json::to_string(line).unwrap_or_default());
                    } else {
                        println!("{line}");
                    }
                },
            )
            .await
        }
        .await;
        conn.close().await?;
        result
    })
}

/// How long `peer` (unless `--task-wait` says otherwise) and `task show` wait for a task
/// to reach their conductor.
const DEFAULT_TASK_WAIT: Duration = Duration::from_secs(60);

/// Waits up to `wait` for the task to reach this conductor (a fresh one gossips first);
/// an unknown task is an error that names it.
async fn find_task(client: &Client, task: &ActionHash, wait: Duration) -> Result<TaskInfo> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        match client.call::<_, TaskInfo>("get_task", task.clone()).await {
            Ok(info) => return Ok(info),
            Err(e) if std::time::Instant::now() > deadline => {
                bail!(
                    "task {task} is unknown on this network after {} s ({})",
                    wait.as_secs(),
                    e.message
                )
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// `mycelix-fl task ...`.
#[derive(clap::Subcommand, Debug)]
pub enum TaskCommand {
    /// Publish a task from a task file and print its hash.
    Create {
        #[command(flatten)]
        conductor: ConductorArgs,
        /// The task file (TOML; `mycelix-fl task template` writes one).
        #[arg(long)]
        spec: PathBuf,
    },
    /// List the network's tasks.
    List {
        #[command(flatten)]
        conductor: ConductorArgs,
    },
    /// Show one task.
    Show {
        #[command(flatten)]
        conductor: ConductorArgs,
        /// The task's hash.
        task: String,
    },
    /// Invite an agent into a closed task; prints the invite's hash for its `--invite`.
    Invite {
        #[command(flatten)]
        conductor: ConductorArgs,
        /// The task's hash.
        #[arg(long)]
        task: String,
        /// The invitee's agent key (`mycelix-fl peer` prints it on start).
        #[arg(long)]
        agent: String,
    },
    /// Print a task file for a bundled data set (a starting point to edit).
    Template {
        /// digits, breast_cancer or iris.
        #[arg(long, default_value = "digits")]
        dataset: String,
    },
}

/// `mycelix-fl task ...`.
pub fn task(command: TaskCommand) -> Result<()> {
    if let TaskCommand::Template { dataset } = &command {
        print!("{}", toml::to_string(&TaskFile::for_builtin(dataset)?)?);
        return Ok(());
    }
    // A bad task file is refused before any conductor starts.
    let file = match &command {
        TaskCommand::Create { spec, .. } => Some(TaskFile::read(spec)?.to_task()?),
        _ => None,
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let conductor = match &command {
            TaskCommand::Create { conductor, .. }
            | TaskCommand::List { conductor }
            | TaskCommand::Show { conductor, .. }
            | TaskCommand::Invite { conductor, .. } => conductor,
            TaskCommand::Template { .. } => unreachable!("handled above"),
        };
        let conn = conductor.connect().await?;
        let c = &conn.client;
        let result = async {
            match &command {
                TaskCommand::Create { .. } => {
                    let task = file.expect("read above");
                    let hash: ActionHash = c.call("create_task", task).await?;
                    println!("{hash}");
                }
                TaskCommand::List { .. } => {
                    let tasks: Vec<TaskInfo> = c.call("list_tasks", ()).await?;
                    if tasks.is_empty() {
                        println!(
                            "no tasks on this network yet (this conductor may still be gossiping)"
                        );
                    }
                    for t in tasks {
                        println!(
                            "{}  {:?}  {}, {}",
                            t.hash,
                            t.task.name,
                            t.task.spec.model.describe(),
                            t.task.admission.label()
                        );
                    }
                }
                TaskCommand::Show { task, .. } => {
                    let info = find_task(c, &action_hash("task", task)?, DEFAULT_TASK_WAIT).await?;
                    let t = &info.task;
                    println!(
                        "task {}\nname: {}\nauthor: {}",
                        info.hash, t.name, info.author
                    );
                    println!("description: {}", t.description);
                    println!(
                        "model: {} ({} parameters), {} admission",
                        t.spec.model.describe(),
                        t.model_len,
                        t.admission.label()
                    );
                    println!(
                        "aggregator: {} with f = {}, quorum {}, committee {}",
                        t.round.aggregator.rule.name(),
                        t.round.aggregator.f,
                        t.quorum,
                        t.committee_size
                    );
                    println!(
                        "schedule: submit {} ms, vote {} ms, slot {} ms",
                        t.schedule.submit_ms, t.schedule.vote_ms, t.schedule.slot_ms
                    );
                    println!("spec (TOML):\n{}", toml::to_string(&t.spec)?);
                }
                TaskCommand::Invite { task, agent, .. } => {
                    let invitee =
                        holochain::prelude::AgentPubKey::try_from(agent.trim().to_string())
                            .map_err(|e| anyhow!("--agent {agent:?} is not an agent key: {e:?}"))?;
                    let proof: federated_learning_integrity::InviteProof = c
                        .call(
                            "invite_agent",
                            federated_learning::InviteAgent {
                                task: action_hash("--task", task)?,
                                invitee,
                                standing: None,
                            },
                        )
                        .await?;
                    println!("{}", proof.invite_hash);
                }
                TaskCommand::Template { .. } => {}
            }
            Ok(())
        }
        .await;
        conn.close().await?;
        result
    })
}

/// `mycelix-fl bootstrap`: a network's bootstrap server and relay, until Ctrl-C.
pub fn bootstrap(listen: std::net::SocketAddr) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let (_srv, url) = start_bootstrap(listen).await?;
        println!("{url}");
        let _ = tokio::signal::ctrl_c().await;
        Ok(())
    })
}

/// `mycelix-fl data split`: a bundled set's demo shards as CSV tables, one per participant.
pub fn split(dataset: &str, peers: usize, out: &std::path::Path) -> Result<()> {
    if peers == 0 {
        bail!("--peers must be at least 1");
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    for k in 0..peers {
        let path = out.join(format!("peer-{k}.csv"));
        write_csv(&demo_shard(dataset, k, peers)?, &path)?;
        println!("{}", path.display());
    }
    Ok(())
}
