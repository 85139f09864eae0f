//! ByzFL's benchmark grid ([`fl_learn::byzfl`]) run with Mycelix FL's full defence in the
//! simulation backend ([`crate::sim`]): every cell is ByzFL's D-SGD run (one momentum
//! gradient per honest peer per step, `nb_steps` steps), with the committee, the
//! reputation table and the aggregator deciding every step as the hApp would.
//!
//! The metric is ByzFL's own (`test_heatmap` in `byzfl/benchmark/evaluate_results.py`):
//! for every (f, data distribution), the worst case over attacks of the best test accuracy
//! over the evaluation checkpoints of the seed-averaged accuracy curve.

use std::collections::BTreeMap;

use federated_learning_integrity::Admission;
use fl_core::aggregate::Rule;
use fl_core::{PogqParams, ReputationParams, RoundParams};
use fl_learn::byzfl::{self, Cell, Config, ConfigError};
use fl_learn::data::Dataset;
use fl_learn::model::Model;
use fl_learn::train::Sgd;

use crate::experiment::{Experiment, Protocol, RoundReport, Shards, SimError};
use crate::sim::{initial_model, simulate};

/// The share of each honest peer's shard it keeps to score updates (its PoGQ proofs and
/// committee votes): 5 %, about 240 images of a 4,800-image shard. A D-SGD step is one
/// minibatch, so a grid makes thousands of rounds, each scored by every committee member
/// against every update; ByzFL's clients have no such share and train on all of theirs.
pub const VALIDATION_FRACTION: f64 = 0.05;

/// Mycelix FL's side of the comparison: the round's rules every cell runs with.
#[derive(Debug, Clone)]
pub struct Defence {
    /// The aggregation rule (told each cell's `tolerated_f`).
    pub rule: Rule,
    /// Nearest-neighbour mixing before the rule.
    pub nnm: bool,
    /// Committee seats from round 1 on.
    pub committee_size: usize,
    /// PoGQ scoring.
    pub pogq: PogqParams,
    /// Reputation.
    pub reputation: ReputationParams,
    /// The task's bound on an update's norm.
    pub max_update_norm: f32,
    /// Fewest trusted committee members a verdict needs; `None`: the default for each
    /// cell's committee ([`fl_core::round::default_min_trusted_voters_for`]).
    pub min_trusted_voters: Option<u32>,
    /// Reputation only for updates along the line of the previous step
    /// ([`fl_core::RoundParams::aligned_credit`]).
    pub aligned_credit: bool,
}

/// Why a grid cannot run.
#[derive(Debug, thiserror::Error)]
pub enum BenchmarkError {
    /// The config asks for what is not reproduced.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A run failed.
    #[error(transparent)]
    Sim(#[from] SimError),
}

/// One cell's runs.
#[derive(Debug, Clone)]
pub struct CellRun {
    /// The grid point.
    pub cell: Cell,
    /// Test accuracy at each checkpoint ([`Config::checkpoints`]), one curve per seed.
    pub curves: Vec<Vec<f64>>,
    /// Excluded Byzantine submissions over Byzantine submissions, every step and seed.
    pub tpr: f64,
    /// Excluded honest submissions over honest submissions, every step and seed.
    pub fpr: f64,
    /// Why honest submissions were excluded: each reason ([`fl_core::Exclusion::describe`])
    /// with its count over every step and seed.
    pub honest_exclusions: BTreeMap<String, usize>,
}

impl CellRun {
    /// ByzFL's score of one cell: the best checkpoint of the seed-averaged curve.
    pub fn best_accuracy(&self) -> f64 {
        let n = self.curves.len().max(1) as f64;
        let len = self.curves.iter().map(Vec::len).min().unwrap_or(0);
        (0..len)
            .map(|i| self.curves.iter().map(|c| c[i]).sum::<f64>() / n)
            .fold(f64::NAN, f64::max)
    }
}

/// The experiment of `cell` with `seed`: `honest + f` peers (the first `f` attack), the
/// partition over the honest ones, D-SGD steps, evaluated every `evaluation_delta` steps.
pub fn experiment(
    config: &Config,
    cell: &Cell,
    defence: &Defence,
    model: Model,
    seed: u64,
) -> Result<Experiment, BenchmarkError> {
    let hp = &config.honest_clients;
    let mut round = RoundParams::new(defence.rule, cell.tolerated_f as u32);
    round.pogq = defence.pogq;
    round.reputation = defence.reputation;
    round.max_update_norm = defence.max_update_norm;
    round.aggregator.nnm = defence.nnm;
    let committee_size = defence.committee_size.min(cell.honest + cell.f);
    round.min_trusted_voters = defence
        .min_trusted_voters
        .unwrap_or_else(|| fl_core::round::default_min_trusted_voters_for(committee_size));
    round.aligned_credit = defence.aligned_credit;
    Ok(Experiment {
        peers: cell.honest + cell.f,
        byzantine: cell.f,
        attack: byzfl::attack(&cell.attack)?,
        round,
        committee_size,
        rounds: config.benchmark_config.nb_steps,
        scheme: cell.distribution.scheme()?,
        model,
        sgd: Sgd {
            epochs: 1,
            batch_size: hp.batch_size,
            lr: cell.learning_rate as f32,
            momentum: cell.momentum as f32,
            weight_decay: cell.weight_decay as f32,
        },
        preprocess: fl_core::Preprocess::None,
        validation_fraction: VALIDATION_FRACTION,
        seed,
        admission: Admission::CLOSED,
        protocol: Protocol::Dsgd,
        shards: Shards::HonestPeers,
        evaluate_every: config.evaluation_and_results.evaluation_delta,
    })
}

/// Runs `cell` with every seed of the config on `train`, scored on `test`; `on_step` sees
/// every step of every seed (progress output).
pub fn run_cell(
    config: &Config,
    cell: &Cell,
    defence: &Defence,
    train: &Dataset,
    test: &Dataset,
    mut on_step: impl FnMut(&RoundReport),
) -> Result<CellRun, BenchmarkError> {
    let model = config.model()?;
    let mut curves = Vec::new();
    let (mut caught, mut wrong, mut steps) = (0.0, 0.0, 0usize);
    let mut honest_exclusions = BTreeMap::new();
    for (training, distribution) in config.seeds() {
        // One seed for the partition and the training; distinct for every pair.
        let seed = training.wrapping_mul(1_000_003) ^ distribution;
        let exp = experiment(config, cell, defence, model, seed)?;
        let start = initial_model(&exp, train)?;
        let mut curve = vec![model.accuracy(&start, test.x.view(), &test.y)];
        let reports = simulate(&exp, train, test, &mut on_step)?;
        curve.extend(
            reports
                .iter()
                .filter(|r| !r.accuracy.is_nan())
                .map(|r| r.accuracy),
        );
        for r in &reports {
            caught += r.tpr;
            wrong += r.fpr;
            // The first `f` peers attack (`experiment`).
            for (_, why) in r.excluded.iter().filter(|(p, _)| *p >= cell.f) {
                *honest_exclusions.entry(why.clone()).or_insert(0) += 1;
            }
        }
        steps += reports.len();
        curves.push(curve);
    }
    Ok(CellRun {
        cell: cell.clone(),
        curves,
        tpr: caught / steps.max(1) as f64,
        fpr: wrong / steps.max(1) as f64,
        honest_exclusions,
    })
}

/// A heatmap cell's key: f and the data distribution's label.
pub type Key = (usize, String);

/// ByzFL's heatmap: for every (f, distribution), the worst case over attacks of
/// [`CellRun::best_accuracy`], with the attack that achieves it.
pub fn worst_case(runs: &[CellRun]) -> BTreeMap<Key, (f64, String)> {
    let mut table: BTreeMap<Key, (f64, String)> = BTreeMap::new();
    for run in runs {
        let key = (run.cell.f, run.cell.distribution.label());
        let acc = run.best_accuracy();
        let entry = table.entry(key).or_insert((f64::INFINITY, String::new()));
        if acc < entry.0 {
            *entry = (acc, run.cell.attack.name.clone());
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use fl_learn::byzfl::{Distribution, Named};

    fn run(attack: &str, f: usize, curves: Vec<Vec<f64>>) -> CellRun {
        CellRun {
            cell: Cell {
                honest: 10,
                f,
                tolerated_f: f,
                distribution: Distribution {
                    name: "iid".into(),
                    parameter: None,
                },
                attack: Named {
                    name: attack.into(),
                    parameters: Default::default(),
                },
                learning_rate: 0.1,
                momentum: 0.9,
                weight_decay: 1e-4,
            },
            curves,
            tpr: 1.0,
            fpr: 0.0,
            honest_exclusions: BTreeMap::new(),
        }
    }

    #[test]
    fn the_score_is_byzfls_worst_attack_of_the_best_mean_checkpoint() {
        // Seed-mean curves: [0.2, 0.6, 0.5] (best 0.6) and [0.1, 0.8, 0.9] (best 0.9).
        let a = run(
            "SignFlipping",
            1,
            vec![vec![0.1, 0.5, 0.6], vec![0.3, 0.7, 0.4]],
        );
        let b = run("Mimic", 1, vec![vec![0.1, 0.8, 0.9]]);
        assert!((a.best_accuracy() - 0.6).abs() < 1e-12);
        let c = run("Mimic", 2, vec![vec![0.5]]);
        let table = worst_case(&[a, b, c]);
        let iid = "iid_None".to_string();
        let (acc, attack) = &table[&(1, iid.clone())];
        assert!((acc - 0.6).abs() < 1e-12);
        assert_eq!(attack, "SignFlipping");
        assert_eq!(table[&(2, iid)].0, 0.5);
    }
}
