//! `mycelix-fl`: run federated training with attackers and report what happened.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use federated_learning_integrity::Admission;
use fl_core::aggregate::{AggregatorConfig, Rule, WeiszfeldParams};
use fl_core::{PogqParams, ReputationParams, RoundParams};
use fl_learn::attacks::Attack;
use fl_learn::data::{builtin, load_csv, Dataset};
use fl_learn::model::Model;
use fl_learn::partition::Scheme;
use fl_learn::train::Sgd;
use fl_node::conductor::{connect_remote, dir_size, EmbeddedNetwork};
use fl_node::local::{run_peers, Faults, Restart};
use fl_node::sim::{simulate, Experiment, Protocol, RoundReport, Shards};
use indicatif::{ProgressBar, ProgressStyle};

#[path = "mycelix-fl/participant.rs"]
mod participant;

#[derive(Parser)]
#[command(
    name = "mycelix-fl",
    version,
    about = "Byzantine-resistant federated learning on Holochain"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train one model across peers, some of them attacking, and report every round.
    Run(RunArgs),
    /// Sweep attacks x Byzantine fractions x aggregators x partitions; write JSON and a
    /// markdown table of accuracy (against a clean run) and detection.
    Matrix(MatrixArgs),
    /// Serve the web dashboard for one agent of a running conductor (for example a
    /// sandbox started by scripts/sandbox.sh) until interrupted.
    Dashboard(DashboardArgs),
    /// Take part in a task as one participant, on an own conductor (or a running one)
    /// with own data, following its rounds until they are done or Ctrl-C.
    Peer(participant::PeerArgs),
    /// Create, list, show tasks; invite into closed ones; write a task file.
    #[command(subcommand)]
    Task(participant::TaskCommand),
    /// Run a network's bootstrap server and relay, print its URL, serve until Ctrl-C.
    Bootstrap {
        /// Address to listen on (port 0: any free one).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
    },
    /// Write a bundled data set's demo shards as CSV tables, one per participant.
    Split {
        /// digits, breast_cancer or iris.
        #[arg(long, default_value = "digits")]
        dataset: String,
        /// Participants.
        #[arg(long, default_value_t = 4)]
        peers: usize,
        /// Folder for peer-0.csv, peer-1.csv, ...
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(clap::Args)]
struct DashboardArgs {
    /// Admin port of the conductor whose agent the dashboard acts as (on 127.0.0.1).
    #[arg(long)]
    admin_port: u16,
    /// Installed app id on that conductor.
    #[arg(long, default_value = fl_node::conductor::APP_ID)]
    app_id: String,
    /// Port to serve the dashboard on (127.0.0.1); 0 picks a free one.
    #[arg(long, default_value_t = 8888)]
    port: u16,
    /// The built UI (`npm run build` in ui/).
    #[arg(long, default_value = "ui/dist")]
    ui: PathBuf,
}

#[derive(clap::Args)]
struct MatrixArgs {
    /// Attacks to sweep, comma-separated, or `all`.
    #[arg(long, default_value = "all")]
    attacks: String,
    /// Byzantine fractions, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0.1,0.3,0.45")]
    fractions: Vec<f64>,
    /// Aggregators, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "multi-krum,median"
    )]
    aggregators: Vec<AggregatorName>,
    /// Partitions, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "dirichlet")]
    partitions: Vec<PartitionName>,
    /// Directory for matrix.json and matrix.md (with --byzfl: byzfl.json and byzfl.md).
    #[arg(long, default_value = "mycelix-fl-matrix")]
    output_dir: PathBuf,
    /// Run ByzFL's benchmark grid from its own config.json instead (its f, data
    /// distributions, attacks, steps, seeds and optimiser; D-SGD steps on Fashion-MNIST
    /// scaled to [0, 1]), with Mycelix FL's full defence: committee, reputation and each
    /// of --aggregators. Writes ByzFL's heatmap metric per aggregator.
    #[arg(long)]
    byzfl: Option<PathBuf>,
    /// With --byzfl: check the config and print the grid, run nothing.
    #[arg(long, requires = "byzfl")]
    dry_run: bool,
    /// Everything else, as for `run` (its --attack, --aggregator, --partition and
    /// --byzantine-fraction are replaced by the lists above).
    #[command(flatten)]
    base: RunArgs,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum Backend {
    /// Real Holochain conductors in this process, one per peer, on a local bootstrap/relay.
    Embedded,
    /// Running conductors reached through their admin websockets (--admin-ports).
    Remote,
    /// The protocol's rules without conductors (fl_core decides every round).
    Sim,
}

impl Backend {
    fn describe(self) -> &'static str {
        match self {
            Backend::Embedded => "embedded (one real Holochain conductor per peer in this process)",
            Backend::Remote => "remote (running conductors through their admin websockets)",
            Backend::Sim => "simulation (no conductors; fl_core decides every round)",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Debug, ValueEnum)]
enum AggregatorName {
    Mean,
    Krum,
    MultiKrum,
    Median,
    TrimmedMean,
    GeometricMedian,
    Bulyan,
}

#[derive(Clone, Copy, PartialEq, Debug, ValueEnum)]
enum PartitionName {
    Iid,
    Dirichlet,
    /// Sorted by label, one contiguous run per peer (ByzFL's extreme_niid).
    Extreme,
    /// A share --similarity spread IID, the rest extreme (ByzFL's gamma_similarity_niid).
    Gamma,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModelName {
    /// Multinomial logistic regression on the data set's features.
    Logreg,
    /// One hidden ReLU layer of `--hidden` units.
    Mlp,
    /// ByzFL's `logreg_mnist`: logistic regression on 28x28 images.
    #[value(name = "logreg_mnist")]
    LogregMnist,
    /// ByzFL's `fc_mnist`: an MLP 784-100-10.
    #[value(name = "fc_mnist")]
    FcMnist,
    /// ByzFL's `cnn_mnist`: two 5x5 convolutions and two dense layers, 431,080 parameters.
    #[value(name = "cnn_mnist")]
    CnnMnist,
}

impl ModelName {
    /// ByzFL's name of a fixed 28x28 model.
    fn byzfl(self) -> Option<&'static str> {
        match self {
            ModelName::Logreg | ModelName::Mlp => None,
            ModelName::LogregMnist => Some("logreg_mnist"),
            ModelName::FcMnist => Some("fc_mnist"),
            ModelName::CnnMnist => Some("cnn_mnist"),
        }
    }
}

#[derive(clap::Args, Clone)]
struct RunArgs {
    /// Peers taking part (`--nodes` is an older name for it).
    #[arg(long, alias = "nodes", default_value_t = 7)]
    peers: usize,
    /// Share of peers that attack (rounded down).
    #[arg(long, default_value_t = 0.3)]
    byzantine_fraction: f64,
    /// Attack of the Byzantine peers (see `fl_learn::attacks`).
    #[arg(long, default_value = "sign_flip")]
    attack: String,
    /// Robust aggregator.
    #[arg(long, value_enum, default_value_t = AggregatorName::Median)]
    aggregator: AggregatorName,
    /// Byzantine bound the aggregator assumes (default: the number of attackers).
    #[arg(long)]
    f: Option<u32>,
    /// Run nearest-neighbour mixing before the aggregator.
    #[arg(long)]
    nnm: bool,
    /// Rounds.
    #[arg(long, default_value_t = 6)]
    rounds: usize,
    /// A bundled data set (digits, breast_cancer, iris), fashion_mnist (Debian's
    /// dataset-fashion-mnist package, or MYCELIX_FL_FASHION_MNIST) or the path of a CSV file.
    #[arg(long, default_value = "digits")]
    dataset: String,
    /// Label column of a CSV file (default: the last one).
    #[arg(long)]
    label_column: Option<String>,
    /// How training data is spread over peers.
    #[arg(long, value_enum, default_value_t = PartitionName::Dirichlet)]
    partition: PartitionName,
    /// Dirichlet concentration (smaller: more label skew).
    #[arg(long, default_value_t = 0.5)]
    alpha: f64,
    /// Gamma partition: the share of the examples spread IID (1: IID, 0: extreme).
    #[arg(long, default_value_t = 0.5)]
    similarity: f64,
    /// Model.
    #[arg(long, value_enum, default_value_t = ModelName::Logreg)]
    model: ModelName,
    /// Hidden units of the MLP.
    #[arg(long, default_value_t = 32)]
    hidden: usize,
    /// Train on a seeded sample of this many training examples (default: all of them):
    /// quick runs of the large data sets.
    #[arg(long, value_name = "N")]
    train_examples: Option<usize>,
    /// Local training: the learning rate.
    #[arg(long, default_value_t = fl_core::TrainingSettings::default().learning_rate)]
    lr: f32,
    /// Local training: passes over a peer's data per round.
    #[arg(long, default_value_t = fl_core::TrainingSettings::default().epochs)]
    local_epochs: u32,
    /// Local training: examples per step.
    #[arg(long, default_value_t = fl_core::TrainingSettings::default().batch_size)]
    batch_size: u32,
    /// Local training: momentum, as PyTorch's SGD applies it (ByzFL uses 0.9 and damps it
    /// by 1 - momentum).
    #[arg(long, default_value_t = 0.0)]
    momentum: f32,
    /// Local training: L2 weight decay (ByzFL uses 1e-4).
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f32,
    /// Committee seats per round (default: every peer). Trust is decided over the whole
    /// committee; a small one is captured often at high Byzantine fractions.
    #[arg(long)]
    committee: Option<usize>,
    /// Fewest trusted committee members a verdict needs; a round with fewer has a silent
    /// committee and the aggregator alone decides. Default: a majority of the seats, at
    /// most 3.
    #[arg(long)]
    min_trusted_voters: Option<u32>,
    /// Reputation only for updates along the line of the previous round's global step
    /// (absolute cosine at least min(3/sqrt(d), 0.1)): noise that passes the committee
    /// gains none.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    aligned_credit: bool,
    /// A committee vote also passes when its score is within this many median absolute
    /// deviations below the median score of the member's ballot; 0 judges votes by the
    /// absolute PoGQ threshold (-1 %) alone.
    #[arg(long, default_value_t = 3.0)]
    mad_band: f64,
    /// PoGQ scores measure a loss change relative to the loss, or in units of this loss
    /// (nats) once the loss is below it; 0 keeps every score relative to the loss.
    /// Default: log10 of the number of classes (1 for ten classes, 0.3 for two), a share
    /// of 0.43 of a uniform guess's loss.
    #[arg(long)]
    loss_scale: Option<f64>,
    /// The task's bound on an update's Euclidean norm: validation rejects larger updates,
    /// and every peer clips its update to it. Honest updates of the bundled models stay
    /// well below the default.
    #[arg(long, default_value_t = 10.0)]
    max_update_norm: f32,
    /// The task's participant bound: most agents its reputation table may hold. Task
    /// validation refuses a bound whose aggregates could exceed an entry at this model
    /// size and committee, and says how many fit.
    #[arg(long, default_value_t = fl_core::round::DEFAULT_MAX_PARTICIPANTS)]
    max_participants: u32,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Publish an open task: any agent on the network may submit and enter the reputation
    /// table. By default the task is closed and its author invites every peer.
    #[arg(long)]
    open: bool,
    /// Embedded backend: every K rounds take a random peer (never the task's author) and
    /// its conductor down for a round and restart it from its data after; at the end, read
    /// every included submission back from every conductor. 0: no faults.
    #[arg(long, default_value_t = 0, value_name = "K")]
    faults: usize,
    /// Conductor backends: the task's submission window in seconds. A round whose
    /// expected submitters are all in moves on at once; one that waits for an absent peer
    /// waits this long.
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    submit_window: u64,
    /// Conductor backends: the task's ballot window in seconds, after the submission
    /// window (how long an aggregator waits for an absent committee member).
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    vote_window: u64,
    /// Where rounds are decided.
    #[arg(long, value_enum, default_value_t = Backend::Embedded)]
    backend: Backend,
    /// The hApp bundle the embedded conductors install (built by scripts/pack.sh).
    #[arg(long, default_value_os_t = fl_node::conductor::default_happ())]
    happ: PathBuf,
    /// Remote backend: the admin websocket port of every conductor on 127.0.0.1, one peer
    /// each, comma-separated (sets --peers).
    #[arg(long, value_delimiter = ',')]
    admin_ports: Vec<u16>,
    /// Remote backend: the installed app id on those conductors.
    #[arg(long, default_value = fl_node::conductor::APP_ID)]
    app_id: String,
    /// Write every round and the summary as JSON here.
    #[arg(long, default_value = "mycelix-fl-results.json")]
    output: PathBuf,
    /// Rounds treated as warm-up in the averaged detection rates.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
}

/// Aggregation slot of the tasks `run` creates: how long each committee rank waits after
/// the one before it (a fault run whose first-ranked member is down waits this long for
/// the second).
const SLOT_MS: u64 = 10_000;

fn main() {
    // RUST_LOG (e.g. `holochain::core::workflow=debug`) logs the conductors' workflows.
    holochain_trace::test_run();
    if let Err(e) = match Cli::parse().command {
        Command::Run(args) => run(args),
        Command::Matrix(args) => matrix(args),
        Command::Dashboard(args) => dashboard(args),
        Command::Peer(args) => participant::peer(args),
        Command::Task(command) => participant::task(command),
        Command::Bootstrap { listen } => participant::bootstrap(listen),
        Command::Split {
            dataset,
            peers,
            out,
        } => participant::split(&dataset, peers, &out),
    } {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn dashboard(args: DashboardArgs) -> Result<()> {
    let ui = fl_node::dashboard::UiDir::new(&args.ui)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let session = fl_node::dashboard::AgentSession::open(args.admin_port, &args.app_id).await?;
        let (addr, server) = fl_node::dashboard::serve(ui, session.script(), args.port).await?;
        println!(
            "dashboard: http://{addr}/ (agent of the conductor on admin port {}, app interface {})",
            args.admin_port, session.app_port
        );
        tokio::select! {
            r = server => r.context("serving the dashboard")?,
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok(())
    })
}

/// The data set split into train and test, standardised with the training part's
/// statistics (the transformation is returned, for the task's spec).
fn load(args: &RunArgs) -> Result<(Dataset, Dataset, fl_core::Preprocess)> {
    let data = if std::path::Path::new(&args.dataset)
        .extension()
        .is_some_and(|e| e == "csv")
    {
        load_csv(
            std::path::Path::new(&args.dataset),
            args.label_column.as_deref(),
        )?
    } else if args.dataset == "fashion_mnist" {
        // Its own split: 60,000 training and 10,000 test images.
        let (mut train, mut test) =
            fl_learn::idx::fashion_mnist(&fl_learn::idx::fashion_mnist_dir())?;
        if let Some(n) = args.train_examples {
            train = sample(&train, n, args.seed)?;
        }
        let preprocess = train.standardize(&mut [&mut test]);
        return Ok((train, test, preprocess));
    } else {
        builtin(&args.dataset)?
    };
    let (mut train, mut test) = data.split(0.2, args.seed);
    if let Some(n) = args.train_examples {
        train = sample(&train, n, args.seed)?;
    }
    let preprocess = train.standardize(&mut [&mut test]);
    Ok((train, test, preprocess))
}

/// A seeded sample of `n` examples of `data` (all of them when it has no more).
fn sample(data: &Dataset, n: usize, seed: u64) -> Result<Dataset> {
    if n == 0 {
        bail!("--train-examples must be at least 1");
    }
    if n >= data.len() {
        return Ok(data.clone());
    }
    Ok(data.split(1.0 - n as f64 / data.len() as f64, seed).0)
}

/// The rule an aggregator's command-line name stands for.
fn aggregator_rule(name: AggregatorName) -> Rule {
    match name {
        AggregatorName::Mean => Rule::Mean,
        AggregatorName::Krum => Rule::Krum,
        AggregatorName::MultiKrum => Rule::MultiKrum { m: None },
        AggregatorName::Median => Rule::Median,
        AggregatorName::TrimmedMean => Rule::TrimmedMean,
        AggregatorName::GeometricMedian => Rule::GeometricMedian(WeiszfeldParams::default()),
        AggregatorName::Bulyan => Rule::Bulyan,
    }
}

fn aggregator(args: &RunArgs, byzantine: usize) -> Result<AggregatorConfig> {
    let f = args.f.unwrap_or(byzantine as u32);
    let rule = aggregator_rule(args.aggregator);
    if args.peers < rule.min_inputs(f as usize) {
        bail!(
            "{} with f = {f} needs n >= {}, but there are {} peers",
            rule.name(),
            rule.min_inputs_formula(),
            args.peers
        );
    }
    Ok(AggregatorConfig {
        rule,
        f,
        nnm: args.nnm,
    })
}

/// The PoGQ parameters `args` give a task of `classes` classes: `--mad-band`, and
/// `--loss-scale` or its default (`PogqParams::for_classes`).
fn pogq_params(args: &RunArgs, classes: usize) -> Result<PogqParams> {
    let defaults = PogqParams::for_classes(classes);
    let pogq = PogqParams {
        mad_band: args.mad_band,
        loss_scale: args.loss_scale.unwrap_or(defaults.loss_scale),
        ..defaults
    };
    pogq.check()
        .map_err(|e| anyhow!("--mad-band or --loss-scale: {e}"))?;
    Ok(pogq)
}

/// The task's trusted voter minimum: `--min-trusted-voters`, at most a majority of a
/// committee of `committee_size` seats (as task validation requires), or the default for it.
fn min_trusted_voters(args: &RunArgs, committee_size: usize) -> Result<u32> {
    match args.min_trusted_voters {
        None => Ok(fl_core::round::default_min_trusted_voters_for(committee_size)),
        Some(0) => bail!("--min-trusted-voters must be at least 1"),
        Some(m) if m > fl_core::round::max_min_trusted_voters(committee_size) => bail!(
            "--min-trusted-voters {m} is above a majority of the committee's {committee_size} seats: members away or voting apart could silence every round"
        ),
        Some(m) => Ok(m),
    }
}

/// The experiment `args` describe, on `train`.
fn experiment(
    args: &RunArgs,
    train: &Dataset,
    preprocess: &fl_core::Preprocess,
) -> Result<Experiment> {
    if args.peers < 2 {
        bail!("--peers must be at least 2");
    }
    if !(0.0..1.0).contains(&args.byzantine_fraction) {
        bail!(
            "--byzantine-fraction must be in [0, 1), got {}",
            args.byzantine_fraction
        );
    }
    let attack: Attack = args.attack.parse().map_err(anyhow::Error::msg)?;
    let byzantine = (args.peers as f64 * args.byzantine_fraction).floor() as usize;
    let model = match args.model {
        ModelName::Logreg => Model::LogReg {
            inputs: train.features(),
            classes: train.classes,
        },
        ModelName::Mlp => Model::Mlp {
            inputs: train.features(),
            hidden: args.hidden,
            classes: train.classes,
        },
        named => {
            let name = named.byzfl().unwrap_or_default();
            let model = Model::byzfl(name).ok_or_else(|| anyhow!("unknown model {name}"))?;
            if model.inputs() != train.features()
                || model.spec().classes() as usize != train.classes
            {
                bail!(
                    "--model {name} takes 28x28 images in 10 classes; {} has {} features and {} classes",
                    args.dataset,
                    train.features(),
                    train.classes
                );
            }
            model
        }
    };
    let training = fl_core::TrainingSettings {
        learning_rate: args.lr,
        epochs: args.local_epochs,
        batch_size: args.batch_size,
        momentum: args.momentum,
        weight_decay: args.weight_decay,
    };
    training.check().map_err(|e| {
        anyhow!("--lr, --local-epochs, --batch-size, --momentum or --weight-decay: {e}")
    })?;
    if let Model::Cnn { .. } = model {
        fl_learn::train::tune_allocator();
    }
    let round = RoundParams {
        aggregator: aggregator(args, byzantine)?,
        pogq: pogq_params(args, train.classes)?,
        reputation: ReputationParams::default(),
        server_lr: 1.0,
        max_update_norm: args.max_update_norm,
        max_participants: args.max_participants,
        // A committee is drawn from the peers: never more seats than peers.
        min_trusted_voters: min_trusted_voters(
            args,
            args.committee.unwrap_or(args.peers).min(args.peers),
        )?,
        aligned_credit: args.aligned_credit,
    };
    round
        .check()
        .map_err(|e| anyhow!("--max-update-norm or --max-participants: {e}"))?;
    Ok(Experiment {
        peers: args.peers,
        byzantine,
        attack,
        round,
        committee_size: args.committee.unwrap_or(args.peers),
        rounds: args.rounds,
        scheme: match args.partition {
            PartitionName::Iid => Scheme::Iid,
            PartitionName::Dirichlet => Scheme::Dirichlet { alpha: args.alpha },
            PartitionName::Extreme => Scheme::Extreme,
            PartitionName::Gamma => Scheme::GammaSimilarity {
                similarity: args.similarity,
            },
        },
        model,
        sgd: Sgd::from(training),
        preprocess: preprocess.clone(),
        validation_fraction: 0.2,
        seed: args.seed,
        admission: if args.open {
            Admission::Open
        } else {
            Admission::CLOSED
        },

        protocol: Protocol::LocalTraining,
        shards: Shards::AllPeers,
        evaluate_every: 1,
    })
}

/// Final accuracy, and TPR and FPR averaged after the warm-up (over every round when there
/// are fewer); returns the warm-up used too.
fn summarize(reports: &[RoundReport], warmup: usize) -> (f64, f64, f64, usize) {
    let warmup = warmup.min(reports.len().saturating_sub(1));
    let after: Vec<&RoundReport> = reports.iter().skip(warmup).collect();
    let avg = |f: fn(&RoundReport) -> f64| {
        after.iter().map(|r| f(r)).fold(0.0, |a, b| a + b) / after.len().max(1) as f64
    };
    let final_acc = reports.last().map_or(0.0, |r| r.accuracy);
    (final_acc, avg(|r| r.tpr), avg(|r| r.fpr), warmup)
}

fn run(mut args: RunArgs) -> Result<()> {
    if args.backend == Backend::Remote {
        if args.admin_ports.is_empty() {
            bail!("--backend remote needs --admin-ports, one per conductor");
        }
        args.peers = args.admin_ports.len();
    }
    if args.faults > 0 && args.backend != Backend::Embedded {
        bail!("--faults needs the embedded backend (it stops and restarts conductors in this process)");
    }
    let schedule = federated_learning_integrity::RoundSchedule {
        submit_ms: args.submit_window.saturating_mul(1000),
        vote_ms: args.vote_window.saturating_mul(1000),
        slot_ms: SLOT_MS,
    };
    schedule
        .check()
        .map_err(|e| anyhow!("--submit-window or --vote-window: {e}"))?;
    let (train, test, preprocess) = load(&args).context("loading the data set")?;
    let exp = experiment(&args, &train, &preprocess)?;
    let (attack, byzantine, model) = (exp.attack, exp.byzantine, exp.model);
    let backend = args.backend.describe();
    println!("backend: {backend}");
    println!(
        "{} peers ({} Byzantine, attack {}), {}, committee of {}, on {} ({} train / {} test, {}), {}, {} rounds, seed {}",
        exp.peers,
        byzantine,
        attack,
        exp.round.aggregator.rule.name(),
        exp.committee_size.min(exp.peers),
        train.name,
        train.len(),
        test.len(),
        model.describe(),
        exp.scheme.label(),
        exp.rounds,
        args.seed
    );
    println!(
        "task: {}",
        match (args.backend, exp.admission) {
            (Backend::Sim, _) => "no membership in the simulation (every peer takes part)",
            (_, Admission::Open) =>
                "open (any agent on the network may submit: no sybil resistance beyond reputation)",
            (_, _) => "closed (the task's author invites every peer; only members may submit)",
        }
    );
    if args.backend != Backend::Sim {
        println!(
            "peers: each an autonomous participant on its own conductor, nobody stepping them; windows of {} s to submit and {} s to vote",
            args.submit_window, args.vote_window
        );
    }
    let bar = ProgressBar::new(exp.rounds as u64).with_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} rounds {elapsed} (eta {eta}) {msg}")
            .expect("valid template"),
    );
    let started = Instant::now();
    let mut last = Instant::now();
    let mut round_ms: Vec<f64> = Vec::new();
    // Conductor backends: per round, resident memory, bytes on disk, the peer that was down
    // and how long it took to catch up.
    let mut footprint: Vec<serde_json::Value> = Vec::new();
    let mut readback: Option<fl_node::local::Readback> = None;
    let mut agents: Vec<String> = Vec::new();
    let print_round = |r: &RoundReport, ms: f64, detail: String| {
        let excluded: Vec<String> = r
            .excluded
            .iter()
            .map(|(p, why)| format!("{p} ({why})"))
            .collect();
        let line = format!(
            "round {:>3}  acc {:.3}  loss {:.3}  TPR {:.2}  FPR {:.2}  {:>6.0} ms{detail}  excluded: {}",
            r.round,
            r.accuracy,
            r.loss,
            r.tpr,
            r.fpr,
            ms,
            if excluded.is_empty() { "none".into() } else { excluded.join(", ") }
        );
        // Printed above the bar on a terminal, plainly when stdout is a file or pipe.
        bar.suspend(|| println!("{line}"));
        bar.inc(1);
    };
    let reports = match args.backend {
        Backend::Sim => simulate(&exp, &train, &test, |r: &RoundReport| {
            let ms = last.elapsed().as_secs_f64() * 1e3;
            round_ms.push(ms);
            print_round(r, ms, String::new());
            last = Instant::now();
        })?,
        Backend::Embedded | Backend::Remote => {
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            runtime.block_on(async {
                bar.set_message("starting conductors");
                let (mut network, clients) = if args.backend == Backend::Embedded {
                    let network = EmbeddedNetwork::start(exp.peers, &args.happ, |step| {
                        bar.suspend(|| println!("conductors: {step}"))
                    })
                    .await?;
                    let clients = network.clients.clone();
                    (Some(network), clients)
                } else {
                    let clients = connect_remote(&args.admin_ports, &args.app_id).await?;
                    bar.suspend(|| {
                        println!("conductors: connected to {} conductors", clients.len())
                    });
                    (None, clients)
                };
                bar.set_message("");
                agents = clients.iter().map(|c| c.agent().to_string()).collect();
                let data_dirs: Vec<PathBuf> = network
                    .iter()
                    .flat_map(|n| (0..exp.peers).map(|i| n.data_dir(i)))
                    .collect();
                let faults = match network.as_mut() {
                    Some(n) if args.faults > 0 => Some(Faults {
                        every: args.faults,
                        backend: n as &mut dyn Restart,
                    }),
                    _ => None,
                };
                // The run owns the clients: a restarted peer's old conductor handle is
                // dropped when the run replaces it.
                let step = |line: String| bar.suspend(|| println!("run: {line}"));
                let result = run_peers(
                    &exp,
                    clients,
                    &train,
                    &test,
                    schedule,
                    faults,
                    step,
                    |r, t| {
                        let ms = t.elapsed.as_secs_f64() * 1e3;
                        round_ms.push(ms);
                        let part = |d: std::time::Duration| d.as_secs_f64() * 1e3;
                        let disk: u64 = data_dirs.iter().map(|d| dir_size(d)).sum();
                        let mb = |b: u64| b as f64 / 1e6;
                        footprint.push(serde_json::json!({
                            "rss_mb": mb(t.rss_bytes),
                            "disk_mb": (!data_dirs.is_empty()).then(|| mb(disk)),
                            "down": t.down,
                            "catch_up_ms": t.down.map(|_| part(t.catch_up)),
                        }));
                        let down = match t.down {
                            Some(v) => format!(
                                "; peer {v} down, restarted and caught up in {:.0} ms",
                                part(t.catch_up)
                            ),
                            None => String::new(),
                        };
                        let disk = if data_dirs.is_empty() {
                            String::new()
                        } else {
                            format!(", disk {:.0} MB", mb(disk))
                        };
                        print_round(
                            r,
                            ms,
                            format!(" (RSS {:.0} MB{disk}{down})", mb(t.rss_bytes)),
                        )
                    },
                )
                .await;
                if let Some(network) = network {
                    network.shutdown().await;
                }
                let result = result?;
                readback = result.readback;
                anyhow::Ok(result.reports)
            })?
        }
    };
    bar.finish_and_clear();
    let mut sorted = round_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let median_ms = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
    let (final_acc, tpr, fpr, warmup) = summarize(&reports, args.warmup);
    if let Some(rb) = readback {
        println!(
            "faults: every {} rounds a conductor was down for a round; all {} included submissions read back from each of the {} conductors",
            args.faults, rb.submissions, rb.conductors
        );
    }
    if let Some(line) = history_line(&round_ms, &footprint) {
        println!("{line}");
    }
    println!(
        "summary: final accuracy {:.3}; after {} warm-up rounds TPR {:.3}, FPR {:.3}; median round {:.0} ms; {:.1} s in all",
        final_acc,
        warmup,
        tpr,
        fpr,
        median_ms,
        started.elapsed().as_secs_f64()
    );
    let json = serde_json::json!({
        "backend": backend,
        "config": {
            "peers": exp.peers, "byzantine": byzantine, "attack": attack.to_string(),
            "aggregator": exp.round.aggregator, "pogq": exp.round.pogq, "rounds": exp.rounds, "dataset": train.name,
            "model": model.describe(), "committee": exp.committee_size, "seed": args.seed,
            "admission": exp.admission.label(),
            "partition": exp.scheme.label(),
            "training": fl_core::TrainingSettings::from(exp.sgd),
            "train_examples": train.len(),
        },
        "rounds": reports.iter().map(|r| serde_json::json!({
            "round": r.round, "ms": round_ms.get(r.round), "accuracy": r.accuracy, "loss": r.loss, "tpr": r.tpr, "fpr": r.fpr,
            "footprint": footprint.get(r.round),
            "excluded": r.excluded.iter().map(|(p, why)| serde_json::json!({"peer": p, "reason": why})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "summary": { "final_accuracy": final_acc, "warmup": warmup, "tpr": tpr, "fpr": fpr, "median_round_ms": median_ms,
            "readback": readback.map(|rb| serde_json::json!({"submissions": rb.submissions, "conductors": rb.conductors})) },
        // Conductor backends: each peer's agent key, in peer order; peers 0..byzantine attack.
        "agents": agents,
    });
    std::fs::write(&args.output, serde_json::to_string_pretty(&json)?)
        .with_context(|| format!("writing {}", args.output.display()))?;
    println!("results: {}", args.output.display());
    Ok(())
}

/// For runs of 20 rounds or more on conductors: whether history slows rounds down or grows
/// memory, as rounds 1-10 against the last 10 (median round time; resident memory and
/// disk after round 10 and after the last round).
fn history_line(round_ms: &[f64], footprint: &[serde_json::Value]) -> Option<String> {
    let n = round_ms.len();
    if n < 20 || footprint.len() < n {
        return None;
    }
    let median = |xs: &[f64]| {
        let mut v = xs.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (early, late) = (median(&round_ms[1..11]), median(&round_ms[n - 10..]));
    let at = |i: usize, key: &str| footprint[i][key].as_f64().unwrap_or(0.0);
    let pct = |a: f64, b: f64| if a > 0.0 { (b / a - 1.0) * 100.0 } else { 0.0 };
    Some(format!(
        "history: median round {early:.0} ms in rounds 1-10, {late:.0} ms in rounds {}-{} ({:+.0} %); RSS {:.0} MB after round 10, {:.0} MB after round {} ({:+.1} %); disk {:.0} MB -> {:.0} MB",
        n - 10,
        n - 1,
        pct(early, late),
        at(10, "rss_mb"),
        at(n - 1, "rss_mb"),
        n - 1,
        pct(at(10, "rss_mb"), at(n - 1, "rss_mb")),
        at(10, "disk_mb"),
        at(n - 1, "disk_mb"),
    ))
}

fn matrix(args: MatrixArgs) -> Result<()> {
    if let Some(config) = &args.byzfl {
        return byzfl_matrix(&args, config);
    }
    let attacks: Vec<String> = if args.attacks == "all" {
        fl_learn::attacks::ALL
            .iter()
            .map(|a| a.to_string())
            .collect()
    } else {
        args.attacks
            .split(',')
            .map(|a| a.trim().to_string())
            .collect()
    };
    for a in &attacks {
        a.parse::<Attack>().map_err(anyhow::Error::msg)?;
    }
    let (train, test, preprocess) = load(&args.base).context("loading the data set")?;
    let cells =
        args.aggregators.len() * args.partitions.len() * (1 + attacks.len() * args.fractions.len());
    println!("backend: simulation (no conductors; fl_core decides every round)");
    println!(
        "{cells} runs of {} rounds on {}",
        args.base.rounds, train.name
    );
    let bar = ProgressBar::new(cells as u64).with_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} runs {elapsed} (eta {eta}) {msg}")
            .expect("valid template"),
    );
    std::fs::create_dir_all(&args.output_dir)
        .with_context(|| format!("creating {}", args.output_dir.display()))?;
    let mut pngs = Vec::new();
    let mut rows = Vec::new();
    let mut md = String::from("# mycelix-fl matrix (simulation backend)\n\n");
    md += &format!(
        "{} peers, {} rounds, {} on {}, seed {}; TPR/FPR averaged after {} warm-up rounds; \
         each cell: final accuracy (change against the clean run) / TPR / FPR\n",
        args.base.peers,
        args.base.rounds,
        args.base.model_name(),
        train.name,
        args.base.seed,
        args.base.warmup
    );
    for &aggregator in &args.aggregators {
        for &partition in &args.partitions {
            let mut base = args.base.clone();
            base.aggregator = aggregator;
            base.partition = partition;
            base.byzantine_fraction = 0.0;
            base.attack = "zero".into();
            bar.set_message(format!("{aggregator:?} {partition:?} clean"));
            // The clean run bounds f by the largest fraction, as the attacked runs do.
            let f = (base.peers as f64 * args.fractions.iter().copied().fold(0.0, f64::max)).floor()
                as u32;
            base.f = Some(base.f.unwrap_or(f));
            let clean = simulate(
                &experiment(&base, &train, &preprocess)?,
                &train,
                &test,
                |_| {},
            )?;
            let (clean_acc, _, clean_fpr, _) = summarize(&clean, base.warmup);
            bar.inc(1);
            md += &format!(
                "\n## {aggregator:?}, {partition:?} partition (clean accuracy {clean_acc:.3}, clean FPR {clean_fpr:.2})\n\n| attack |"
            );
            for fr in &args.fractions {
                md += &format!(" {:.0} % Byzantine |", fr * 100.0);
            }
            md += "\n|---|";
            md += &"---|".repeat(args.fractions.len());
            md += "\n";
            rows.push(serde_json::json!({"aggregator": format!("{aggregator:?}"), "partition": format!("{partition:?}"),
                "attack": "none", "fraction": 0.0, "final_accuracy": clean_acc, "fpr": clean_fpr}));
            let mut cells = Vec::new();
            for attack in &attacks {
                md += &format!("| {attack} |");
                for &fraction in &args.fractions {
                    let mut cell = base.clone();
                    cell.attack = attack.clone();
                    cell.byzantine_fraction = fraction;
                    bar.set_message(format!("{aggregator:?} {partition:?} {attack} {fraction}"));
                    let reports = simulate(
                        &experiment(&cell, &train, &preprocess)?,
                        &train,
                        &test,
                        |_| {},
                    )?;
                    let (acc, tpr, fpr, _) = summarize(&reports, cell.warmup);
                    md += &format!(
                        " {acc:.3} ({:+.3}) / {tpr:.2} / {fpr:.2} |",
                        acc - clean_acc
                    );
                    rows.push(serde_json::json!({"aggregator": format!("{aggregator:?}"), "partition": format!("{partition:?}"),
                        "attack": attack, "fraction": fraction, "final_accuracy": acc, "accuracy_change": acc - clean_acc,
                        "tpr": tpr, "fpr": fpr}));
                    cells.push(fl_node::plot::Cell {
                        attack: attack.clone(),
                        fraction,
                        accuracy: acc,
                        tpr,
                        fpr,
                    });
                    bar.inc(1);
                }
                md += "\n";
            }
            let file = format!("matrix-{aggregator:?}-{partition:?}").to_lowercase();
            let png = fl_node::plot::matrix_png(
                &args.output_dir,
                &file,
                &format!(
                    "{aggregator:?}, {partition:?} partition: {} peers, {} rounds, {} on {} (simulation backend)",
                    args.base.peers,
                    args.base.rounds,
                    args.base.model_name(),
                    train.name
                ),
                clean_acc,
                &cells,
            )?;
            md += &format!("\n![{aggregator:?}, {partition:?}]({file}.png)\n");
            pngs.push(png);
        }
    }
    bar.finish_and_clear();
    let json_path = args.output_dir.join("matrix.json");
    let md_path = args.output_dir.join("matrix.md");
    std::fs::write(&json_path, serde_json::to_string_pretty(&rows)?)
        .with_context(|| format!("writing {}", json_path.display()))?;
    std::fs::write(&md_path, &md).with_context(|| format!("writing {}", md_path.display()))?;
    print!("{md}");
    println!(
        "\nresults: {}, {} and {}",
        json_path.display(),
        md_path.display(),
        pngs.iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// `matrix --byzfl`: ByzFL's grid with Mycelix FL's defence, one pass per aggregator.
fn byzfl_matrix(args: &MatrixArgs, path: &std::path::Path) -> Result<()> {
    use fl_learn::byzfl::Config;
    use fl_node::benchmark::{run_cell, worst_case, Defence};
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let config = Config::parse(&text).with_context(|| format!("{}", path.display()))?;
    let dataset = config.dataset()?;
    if dataset != "fashionmnist" {
        bail!("{}: dataset_name {dataset:?}: only fashionmnist is on this machine (Debian's dataset-fashion-mnist)", path.display());
    }
    let cells = config.cells();
    {
        let one = |v: Vec<f64>, what: &str| -> Result<()> {
            if v.len() > 1 {
                bail!("{}: one {what} per grid (ByzFL's hyperparameter selection is not reproduced), got {v:?}", path.display());
            }
            Ok(())
        };
        let b = &config.benchmark_config;
        if b.nb_honest_clients.values().len() > 1
            || b.tolerated_f.as_ref().is_some_and(|t| t.values().len() > 1)
        {
            bail!(
                "{}: one nb_honest_clients and one tolerated_f per grid (ByzFL draws a heatmap for each)",
                path.display()
            );
        }
        one(config.model.learning_rate.values(), "learning_rate")?;
        one(config.honest_clients.momentum.values(), "momentum")?;
        one(config.honest_clients.weight_decay.values(), "weight_decay")?;
    }
    for &aggregator in &args.aggregators {
        let rule = aggregator_rule(aggregator);
        if let Some(c) = cells
            .iter()
            .find(|c| c.honest + c.f < rule.min_inputs(c.tolerated_f))
        {
            bail!(
                "{} with f = {} needs n >= {}, but the grid has a cell of {} peers",
                rule.name(),
                c.tolerated_f,
                rule.min_inputs_formula(),
                c.honest + c.f
            );
        }
    }
    if args.dry_run {
        let b = &config.benchmark_config;
        println!(
            "{}: {} cells x {} seeds x {} steps of {}, per aggregator ({}); nothing run (--dry-run)",
            path.display(),
            cells.len(),
            config.seeds().len(),
            b.nb_steps,
            config.model()?.describe(),
            args.aggregators
                .iter()
                .map(|a| format!("{a:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Ok(());
    }
    // ByzFL's data: ToTensor (pixels / 255), its training share of the 60,000 images (the
    // rest is its validation set, used only for hyperparameter selection), the 10,000
    // test images. Its random horizontal flip is not applied.
    let (mut train, mut test) = fl_learn::idx::fashion_mnist(&fl_learn::idx::fashion_mnist_dir())?;
    train.x.mapv_inplace(|v| v / 255.0);
    test.x.mapv_inplace(|v| v / 255.0);
    let b = &config.benchmark_config;
    let train = train
        .split(1.0 - b.size_train_set, b.data_distribution_seed)
        .0;
    let model = config.model()?;
    if let Model::Cnn { .. } = model {
        fl_learn::train::tune_allocator();
    }
    let seeds = config.seeds().len();
    let steps = cells.len() * seeds * b.nb_steps * args.aggregators.len();
    println!("backend: simulation (no conductors; fl_core decides every step)");
    println!(
        "ByzFL grid from {}: {} cells x {seeds} seeds x {} steps of {} on {} ({} training images), per aggregator: {}",
        path.display(),
        cells.len(),
        b.nb_steps,
        model.describe(),
        dataset,
        train.len(),
        args.aggregators.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>().join(", ")
    );
    let bar = ProgressBar::new(steps as u64).with_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps {elapsed} (eta {eta}) {msg}")
            .expect("valid template"),
    );
    std::fs::create_dir_all(&args.output_dir)
        .with_context(|| format!("creating {}", args.output_dir.display()))?;
    let distributions: Vec<String> = config.distributions().iter().map(|d| d.label()).collect();
    let fs: Vec<usize> = {
        let mut f: Vec<usize> = cells.iter().map(|c| c.f).collect();
        f.sort_unstable();
        f.dedup();
        f
    };
    let mut md = format!(
        "# mycelix-fl matrix --byzfl {}\n\n{} on {dataset}, {} honest peers, D-SGD for {} steps \
         (batch {}, lr {}, momentum {}, weight decay {}), {seeds} seed(s); committee: {}; \
         each cell: ByzFL's metric, the worst case over attacks of the best checkpoint of the \
         seed-averaged test accuracy (the worst attack in brackets)\n",
        path.display(),
        model.describe(),
        cells.first().map_or(0, |c| c.honest),
        b.nb_steps,
        config.honest_clients.batch_size,
        cells.first().map_or(0.0, |c| c.learning_rate),
        cells.first().map_or(0.0, |c| c.momentum),
        cells.first().map_or(0.0, |c| c.weight_decay),
        args.base
            .committee
            .map_or("every peer".to_string(), |c| format!("{c} seats")),
    );
    let mut rows = Vec::new();
    for &aggregator in &args.aggregators {
        let rule = aggregator_rule(aggregator);
        let defence = Defence {
            rule,
            nnm: args.base.nnm,
            // Every peer by default, as in `run`: a small committee is captured often.
            committee_size: args.base.committee.unwrap_or(usize::MAX),
            // Fashion-MNIST's ten classes: the only data set a ByzFL config may name here.
            pogq: pogq_params(&args.base, 10)?,
            reputation: ReputationParams::default(),
            max_update_norm: args.base.max_update_norm,
            min_trusted_voters: match args.base.min_trusted_voters {
                // Checked against the smallest committee of the grid.
                Some(_) => Some(min_trusted_voters(
                    &args.base,
                    cells.iter().map(|c| c.honest + c.f).min().unwrap_or(0),
                )?),
                None => None,
            },
            aligned_credit: args.base.aligned_credit,
        };
        let mut runs = Vec::new();
        for cell in &cells {
            bar.set_message(format!(
                "{aggregator:?} f={} {} {}",
                cell.f,
                cell.distribution.label(),
                cell.attack.name
            ));
            let run = run_cell(&config, cell, &defence, &train, &test, |_| bar.inc(1))?;
            rows.push(serde_json::json!({
                "aggregator": format!("{aggregator:?}"),
                "honest": cell.honest, "f": cell.f, "tolerated_f": cell.tolerated_f,
                "distribution": cell.distribution.label(), "attack": cell.attack.name,
                "checkpoints": config.checkpoints(), "curves": run.curves,
                "best_accuracy": run.best_accuracy(), "tpr": run.tpr, "fpr": run.fpr,
                "honest_exclusions": run.honest_exclusions,
            }));
            runs.push(run);
        }
        let table = worst_case(&runs);
        md += &format!("\n## {aggregator:?}\n\n| distribution |");
        for f in &fs {
            md += &format!(" f = {f} |");
        }
        md += "\n|---|";
        md += &"---|".repeat(fs.len());
        md += "\n";
        for d in &distributions {
            md += &format!("| {d} |");
            for f in &fs {
                match table.get(&(*f, d.clone())) {
                    Some((acc, attack)) => md += &format!(" {acc:.3} ({attack}) |"),
                    None => md += " |",
                }
            }
            md += "\n";
        }
    }
    bar.finish_and_clear();
    let json_path = args.output_dir.join("byzfl.json");
    let md_path = args.output_dir.join("byzfl.md");
    std::fs::write(&json_path, serde_json::to_string_pretty(&rows)?)
        .with_context(|| format!("writing {}", json_path.display()))?;
    std::fs::write(&md_path, &md).with_context(|| format!("writing {}", md_path.display()))?;
    print!("{md}");
    println!(
        "\nresults: {} and {}",
        json_path.display(),
        md_path.display()
    );
    Ok(())
}

impl RunArgs {
    fn model_name(&self) -> &'static str {
        match self.model {
            ModelName::Logreg => "logreg",
            ModelName::Mlp => "mlp",
            named => named.byzfl().unwrap_or_default(),
        }
    }
}
