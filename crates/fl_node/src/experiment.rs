//! An experiment: who takes part, who attacks and how, the round's rules and the data's
//! spread, the same for the simulation ([`crate::sim`]) and a run on conductors
//! ([`crate::local`]); and what a round did, scored against the run's list of attackers.

use federated_learning_integrity::Admission;
use fl_core::RoundParams;

use fl_learn::attacks::Attack;
use fl_learn::model::Model;
use fl_learn::partition::{PartitionError, Scheme};
use fl_learn::train::Sgd;

/// One simulated experiment.
#[derive(Debug, Clone)]
pub struct Experiment {
    /// Peers, honest and Byzantine.
    pub peers: usize,
    /// Byzantine peers (the first `byzantine` peers).
    pub byzantine: usize,
    /// The attack they run.
    pub attack: Attack,
    /// Round parameters (aggregator, PoGQ, reputation, server learning rate).
    pub round: RoundParams,
    /// Committee seats from round 1 on.
    pub committee_size: usize,
    /// Rounds.
    pub rounds: usize,
    /// How the training data is spread.
    pub scheme: Scheme,
    /// Model architecture.
    pub model: Model,
    /// Local optimiser.
    pub sgd: Sgd,
    /// What was done to the features before training (recorded in the task's spec on
    /// conductors).
    pub preprocess: fl_core::Preprocess,
    /// Share of each peer's shard kept for its own validation (PoGQ and committee votes).
    pub validation_fraction: f64,
    /// Seed of every random choice.
    pub seed: u64,
    /// Who may join the task on conductors (closed: the task's author invites every peer).
    /// The simulation has no membership: every peer is a member either way.
    pub admission: Admission,
    /// What an honest peer publishes each round.
    pub protocol: Protocol,
    /// Who holds the partitioned training data.
    pub shards: Shards,
    /// The simulation evaluates the global model on the test set after every
    /// `evaluate_every`-th round and after the last (1: every round); the other rounds
    /// report `NaN` accuracy and loss.
    pub evaluate_every: usize,
}

/// What an honest peer publishes each round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// Local training: `sgd.epochs` passes of minibatch SGD over its shard from the global
    /// model; the update is `local - global`. What peers on conductors do.
    #[default]
    LocalTraining,
    /// Distributed SGD as ByzFL's benchmark runs it: one minibatch gradient `g` at the
    /// global model `w`, folded into the peer's own momentum `m <- beta m + (1 - beta) g`
    /// (`beta` = `sgd.momentum`, `m` kept across rounds), and the update
    /// `-lr (m + weight_decay w)`: aggregated and added to `w`, it is the server's plain
    /// SGD step with weight decay.
    Dsgd,
}

/// Who holds the partitioned training data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shards {
    /// The partition covers every peer, attackers included.
    #[default]
    AllPeers,
    /// ByzFL's layout: the partition covers the honest peers only, and each attacker holds
    /// a uniform sample of the training data as large as an honest peer's shard, so an
    /// attacker's statistics come from data like everyone's, and no honest class goes to
    /// an attacker under a skewed partition.
    HonestPeers,
}

/// Who attacks in a run: peers `0..byzantine` of `peers`. Read only to score a round
/// after it closed ([`RoundReport::new`]), never by a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroundTruth {
    /// Peers in the run.
    pub peers: usize,
    /// Peers `0..byzantine` attack.
    pub byzantine: usize,
}

impl GroundTruth {
    /// Whether peer `p` attacks.
    pub fn is_byzantine(&self, p: usize) -> bool {
        p < self.byzantine
    }
}

/// What one round did.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundReport {
    /// Round number.
    pub round: usize,
    /// Test accuracy of the new global model.
    pub accuracy: f64,
    /// Test loss of the new global model.
    pub loss: f64,
    /// Excluded Byzantine submissions / Byzantine peers (1 when there are none).
    pub tpr: f64,
    /// Excluded honest submissions / honest peers.
    pub fpr: f64,
    /// Excluded peers with the reason.
    pub excluded: Vec<(usize, String)>,
}

impl RoundReport {
    /// The report of a round that excluded `excluded` (peer, reason), with the new global
    /// model's test `(accuracy, loss)`; TPR and FPR come from the run's ground truth,
    /// over the peers that took part (not those in `absent`).
    pub fn new(
        round: usize,
        truth: GroundTruth,
        absent: &[usize],
        (accuracy, loss): (f64, f64),
        mut excluded: Vec<(usize, String)>,
    ) -> Self {
        excluded.sort();
        let caught = excluded
            .iter()
            .filter(|(p, _)| truth.is_byzantine(*p))
            .count();
        let wrong = excluded.len() - caught;
        // Peers that took no part (their conductor was down) count on neither side.
        let absent_byzantine = absent.iter().filter(|p| truth.is_byzantine(**p)).count();
        let byzantine = truth.byzantine - absent_byzantine;
        let honest = truth.peers - truth.byzantine - (absent.len() - absent_byzantine);
        RoundReport {
            round,
            accuracy,
            loss,
            tpr: if byzantine == 0 {
                1.0
            } else {
                caught as f64 / byzantine as f64
            },
            fpr: if honest == 0 {
                0.0
            } else {
                wrong as f64 / honest as f64
            },
            excluded,
        }
    }
}

/// Why an experiment cannot run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The data cannot be split as asked.
    #[error(transparent)]
    Partition(#[from] PartitionError),
    /// The round could not be decided.
    #[error(transparent)]
    Round(#[from] fl_core::RoundError),
    /// A committee ballot could not be judged (a malformed measurement).
    #[error("committee ballot: {0}")]
    Ballot(#[from] fl_core::PogqError),
    /// Inconsistent settings.
    #[error("{0}")]
    Invalid(String),
}
