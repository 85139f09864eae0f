//! `mycelix-fl`: run federated training with attackers and report what happened.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use fl_core::aggregate::{AggregatorConfig, Rule, WeiszfeldParams};
use fl_core::{PogqParams, ReputationParams, RoundParams};
use fl_node::attacks::Attack;
use fl_node::data::{builtin, load_csv, Dataset};
use fl_node::model::Model;
use fl_node::partition::Scheme;
use fl_node::sim::{simulate, Experiment, RoundReport};
use fl_node::train::Sgd;
use indicatif::{ProgressBar, ProgressStyle};

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
}

#[derive(Clone, Copy, ValueEnum)]
enum Backend {
    /// The protocol's rules without conductors (fl_core decides every round).
    Sim,
}

#[derive(Clone, Copy, ValueEnum)]
enum AggregatorName {
    Mean,
    Krum,
    MultiKrum,
    Median,
    TrimmedMean,
    GeometricMedian,
    Bulyan,
}

#[derive(Clone, Copy, ValueEnum)]
enum PartitionName {
    Iid,
    Dirichlet,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModelName {
    Logreg,
    Mlp,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Peers taking part.
    #[arg(long, default_value_t = 10)]
    nodes: usize,
    /// Share of peers that attack (rounded down).
    #[arg(long, default_value_t = 0.3)]
    byzantine_fraction: f64,
    /// Attack of the Byzantine peers (see `fl_node::attacks`).
    #[arg(long, default_value = "sign_flip")]
    attack: String,
    /// Robust aggregator.
    #[arg(long, value_enum, default_value_t = AggregatorName::MultiKrum)]
    aggregator: AggregatorName,
    /// Byzantine bound the aggregator assumes (default: the number of attackers).
    #[arg(long)]
    f: Option<u32>,
    /// Run nearest-neighbour mixing before the aggregator.
    #[arg(long)]
    nnm: bool,
    /// Rounds.
    #[arg(long, default_value_t = 20)]
    rounds: usize,
    /// A bundled data set (digits, breast_cancer, iris) or the path of a CSV file.
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
    /// Model.
    #[arg(long, value_enum, default_value_t = ModelName::Logreg)]
    model: ModelName,
    /// Hidden units of the MLP.
    #[arg(long, default_value_t = 32)]
    hidden: usize,
    /// Committee seats per round.
    #[arg(long, default_value_t = 5)]
    committee: usize,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Where rounds are decided. Only the simulation exists so far; the embedded and
    /// remote conductor backends are being built.
    #[arg(long, value_enum, default_value_t = Backend::Sim)]
    backend: Backend,
    /// Write every round and the summary as JSON here.
    #[arg(long, default_value = "mycelix-fl-results.json")]
    output: PathBuf,
    /// Rounds treated as warm-up in the averaged detection rates.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
}

fn main() {
    if let Err(e) = match Cli::parse().command {
        Command::Run(args) => run(args),
    } {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn load(args: &RunArgs) -> Result<(Dataset, Dataset)> {
    let data = if std::path::Path::new(&args.dataset)
        .extension()
        .is_some_and(|e| e == "csv")
    {
        load_csv(
            std::path::Path::new(&args.dataset),
            args.label_column.as_deref(),
        )?
    } else {
        builtin(&args.dataset)?
    };
    let (mut train, mut test) = data.split(0.2, args.seed);
    train.standardize(&mut [&mut test]);
    Ok((train, test))
}

fn aggregator(args: &RunArgs, byzantine: usize) -> Result<AggregatorConfig> {
    let f = args.f.unwrap_or(byzantine as u32);
    let (rule, need, ok) = match args.aggregator {
        AggregatorName::Mean => (Rule::Mean, "", true),
        AggregatorName::Krum => (Rule::Krum, "n > 2f + 2", args.nodes > 2 * f as usize + 2),
        AggregatorName::MultiKrum => (
            Rule::MultiKrum { m: None },
            "n > 2f + 2",
            args.nodes > 2 * f as usize + 2,
        ),
        AggregatorName::Median => (Rule::Median, "n > 2f", args.nodes > 2 * f as usize),
        AggregatorName::TrimmedMean => (Rule::TrimmedMean, "n > 2f", args.nodes > 2 * f as usize),
        AggregatorName::GeometricMedian => (
            Rule::GeometricMedian(WeiszfeldParams::default()),
            "n > 2f",
            args.nodes > 2 * f as usize,
        ),
        AggregatorName::Bulyan => (Rule::Bulyan, "n >= 4f + 3", args.nodes > 4 * f as usize + 2),
    };
    if !ok {
        bail!(
            "{} with f = {f} needs {need}, but there are {} nodes",
            rule.name(),
            args.nodes
        );
    }
    Ok(AggregatorConfig {
        rule,
        f,
        nnm: args.nnm,
    })
}

fn run(args: RunArgs) -> Result<()> {
    if args.nodes < 2 {
        bail!("--nodes must be at least 2");
    }
    if !(0.0..1.0).contains(&args.byzantine_fraction) {
        bail!(
            "--byzantine-fraction must be in [0, 1), got {}",
            args.byzantine_fraction
        );
    }
    let attack: Attack = args.attack.parse().map_err(anyhow::Error::msg)?;
    let byzantine = (args.nodes as f64 * args.byzantine_fraction).floor() as usize;
    let (train, test) = load(&args).context("loading the data set")?;
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
    };
    let exp = Experiment {
        peers: args.nodes,
        byzantine,
        attack,
        round: RoundParams {
            aggregator: aggregator(&args, byzantine)?,
            pogq: PogqParams::default(),
            reputation: ReputationParams::default(),
            server_lr: 1.0,
        },
        committee_size: args.committee,
        rounds: args.rounds,
        scheme: match args.partition {
            PartitionName::Iid => Scheme::Iid,
            PartitionName::Dirichlet => Scheme::Dirichlet { alpha: args.alpha },
        },
        model,
        sgd: Sgd::default(),
        validation_fraction: 0.2,
        seed: args.seed,
    };
    let backend = match args.backend {
        Backend::Sim => "simulation (no conductors; fl_core decides every round)",
    };
    println!("backend: {backend}");
    println!(
        "{} peers ({} Byzantine, attack {}), {} on {} ({} train / {} test, {}), {}, {} rounds, seed {}",
        exp.peers,
        byzantine,
        attack,
        exp.round.aggregator.rule.name(),
        train.name,
        train.len(),
        test.len(),
        model.describe(),
        match exp.scheme {
            Scheme::Iid => "IID".to_string(),
            Scheme::Dirichlet { alpha } => format!("Dirichlet {alpha}"),
        },
        exp.rounds,
        args.seed
    );
    let bar = ProgressBar::new(exp.rounds as u64).with_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} rounds {elapsed} (eta {eta})")
            .expect("valid template"),
    );
    let started = Instant::now();
    let mut last = Instant::now();
    let reports = simulate(&exp, &train, &test, |r: &RoundReport| {
        let excluded: Vec<String> = r
            .excluded
            .iter()
            .map(|(p, why)| format!("{p} ({why})"))
            .collect();
        let line =
            format!(
            "round {:>3}  acc {:.3}  loss {:.3}  TPR {:.2}  FPR {:.2}  {:>6.0} ms  excluded: {}",
            r.round,
            r.accuracy,
            r.loss,
            r.tpr,
            r.fpr,
            last.elapsed().as_secs_f64() * 1e3,
            if excluded.is_empty() { "none".into() } else { excluded.join(", ") }
        );
        // Printed above the bar on a terminal, plainly when stdout is a file or pipe.
        bar.suspend(|| println!("{line}"));
        last = Instant::now();
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    // With fewer rounds than the warm-up, average over all of them.
    let warmup = args.warmup.min(reports.len().saturating_sub(1));
    let after: Vec<&RoundReport> = reports.iter().skip(warmup).collect();
    let avg = |f: fn(&RoundReport) -> f64| {
        after.iter().map(|r| f(r)).sum::<f64>() / after.len().max(1) as f64
    };
    let final_acc = reports.last().map_or(0.0, |r| r.accuracy);
    println!(
        "summary: final accuracy {:.3}; after {} warm-up rounds TPR {:.3}, FPR {:.3}; {:.1} s",
        final_acc,
        warmup,
        avg(|r| r.tpr),
        avg(|r| r.fpr),
        started.elapsed().as_secs_f64()
    );
    let json = serde_json::json!({
        "backend": backend,
        "config": {
            "nodes": exp.peers, "byzantine": byzantine, "attack": attack.to_string(),
            "aggregator": exp.round.aggregator, "rounds": exp.rounds, "dataset": train.name,
            "model": model.describe(), "committee": exp.committee_size, "seed": args.seed,
            "partition": match exp.scheme { Scheme::Iid => "iid".to_string(), Scheme::Dirichlet { alpha } => format!("dirichlet:{alpha}") },
        },
        "rounds": reports.iter().map(|r| serde_json::json!({
            "round": r.round, "accuracy": r.accuracy, "loss": r.loss, "tpr": r.tpr, "fpr": r.fpr,
            "excluded": r.excluded.iter().map(|(p, why)| serde_json::json!({"peer": p, "reason": why})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "summary": { "final_accuracy": final_acc, "warmup": warmup, "tpr": avg(|r| r.tpr), "fpr": avg(|r| r.fpr) },
    });
    std::fs::write(&args.output, serde_json::to_string_pretty(&json)?)
        .with_context(|| format!("writing {}", args.output.display()))?;
    println!("results: {}", args.output.display());
    Ok(())
}
