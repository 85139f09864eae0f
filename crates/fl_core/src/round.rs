//! One round's outcome: who is included and why, the next global model, and the
//! reputation changes. The coordinator zome computes it, the integrity zome recomputes it
//! from the referenced entries, and the simulator runs it without conductors.
//!
//! For every submission, in this order:
//!
//! 0. **Room, forks and bound**: when the reputation table would grow beyond the task's
//!    [`RoundParams::max_participants`], the newcomers (agents not yet in the table) take
//!    the free rows in evidence order and the rest are excluded (`TableFull`, no evidence,
//!    no row). Every submission of an agent that submitted more than once in
//!    the round (one key writing on two forks of its chain, each fork passing the
//!    one-per-round rule on its own) is excluded (`Equivocation`, clear evidence, applied
//!    once), so the round goes on without it whichever fork a reader saw. An update whose
//!    Euclidean norm (in `f64`, [`l2_norm`]) exceeds the task's
//!    [`RoundParams::max_update_norm`] is excluded (`AboveNormBound`, clear evidence).
//!    Validation already rejects such submissions; the step keeps every backend on the
//!    same rule, and keeps every later step's arithmetic far from `f32` overflow.
//! 1. **Proof**: a missing PoGQ proof excludes the update (`InvalidProof`, clear
//!    evidence). A proof whose own measurement fails the task's threshold excludes it too,
//!    with no evidence, when the trusted committee has no verdict on the update (on a
//!    small validation share a failing self-measurement is noise as often as harm); when
//!    it has one, the committee decides with its own evidence, so a failing proof never
//!    shields a rejected update.
//! 2. **Floor**: an agent below the reputation floor is not aggregated
//!    (`BelowReputationFloor`); the committee's opinion alone moves its reputation (a
//!    rejection is clear at two to one, disputed below), so an agent can work its way
//!    back.
//! 3. **Work and copies**: an update whose Euclidean norm is below [`MIN_RELATIVE_NORM`]
//!    of the (lower) median norm of the updates still in the round does no work (a free
//!    rider's zero update); it is excluded (`NegligibleUpdate`, clear evidence). An update
//!    closer than [`DUPLICATE_DISTANCE`] of its own norm to one kept before it (in order of
//!    reputation, then key) is a copy (`DuplicateUpdate`, no evidence: the copier may be
//!    the honest one), and the update it copies earns no reputation either. Copies are how
//!    colluders over-represent one update (mimic, ALIE and min-max send one vector from
//!    every attacker); copies spread further apart are not caught here. With
//!    [`RoundParams::aligned_credit`], an update nearly orthogonal to the previous
//!    round's global step (the base model minus the model before it: the absolute value
//!    of its cosine with it below [`alignment_bound`]) earns no reputation either, though
//!    it is judged and aggregated as any other (an agent below the floor gains nothing
//!    from its acceptance either): noise drawn without regard to the model passes a
//!    committee on skewed data as often as honest work does, and would otherwise gain the
//!    reputation that takes the committee. Honest work continues or corrects the last
//!    step, so it lies along that line either way. The direction is fixed before the
//!    round opens, so the round's own submissions cannot move it; in round 0, and after a
//!    round that moved nothing, there is none and the rule rests. Noise with a component
//!    of about the bound along the step passes; the rule stops attackers that do not
//!    follow the model, not those that do.
//! 4. **Committee**: only the votes of *trusted* members count (see [`crate::trust`]: a
//!    member is trusted when its bloc, the members linked to it by agreeing over the
//!    whole round, carries more than half of the whole committee's reputation), weighted
//!    by reputation; a member's vote on its own update is ignored. When the rejecting
//!    weight exceeds the accepting weight the update is excluded before aggregation
//!    (`CommitteeRejected`; clear evidence at two to one or more, disputed below).
//!    Members who voted and are distrusted, while others are trusted, lose reputation as
//!    on disputed evidence unless their own update was rejected in the same round (one
//!    penalty per agent and round); members who voted on fewer than half of the round
//!    abstain. A round with fewer trusted members than the task's
//!    [`RoundParams::min_trusted_voters`] has a silent committee (nobody trusted, nobody
//!    distrusted): on skewed data a committee can shrink to the one or two members still
//!    above the committee threshold, and those would then decide every update alone. When
//!    the drawn committee itself has fewer members than the minimum, the round's
//!    `IncludedSilent` evidence restores up to the initial reputation, over the committee
//!    threshold, so that the pool refills
//!    ([`ReputationParams::update_short_committee`]).
//! 5. **Aggregator**: the task's rule runs on the remaining updates with the task's `f`
//!    (lowered only when too few remain for it), weighted by reputation where the rule
//!    allows it. Selection rules (Krum, Multi-Krum, Bulyan) leave inputs out; the
//!    coordinate-wise rules and the geometric median flag far inputs, which are dropped
//!    and the rule re-run on the rest; the median and the geometric median keep an input
//!    the trusted committee accepted by two to one or more (skewed honest work sits far
//!    from the median too), the trimmed mean does not; the plain mean flags but keeps.
//!    Exclusions before the aggregator do not
//!    lower `f`: without sybil-resistant membership, junk submissions from extra
//!    identities would use it up.
//!
//! The aggregator's verdict alone never moves reputation: at high Byzantine fractions a
//! tight cluster of attackers can make honest work look far. A captured committee
//! (colluders holding the trusted majority by reputation) could exclude honest work, so
//! the committee should be the whole cohort: colluders then need most of the committee's
//! reputation to capture it. After the committee:
//!
//! | committee | aggregator | verdict | evidence |
//! |---|---|---|---|
//! | rejects | (not run) | `CommitteeRejected` | clear at 2:1, else disputed |
//! | accepts by less than 2:1 (median, geometric median), accepts (other rules), or silent | left out or flagged | `AggregatorOutlier` | none |
//! | accepts | kept | included | accepted (none if others copied it, or it is not aligned) |
//! | silent | kept | included | included silently: back towards the initial value, under the committee threshold (none if others copied it, or it is not aligned) |
//!
//! (The plain mean flags far inputs but keeps them.)
//!
//! A round that closes without a quorum is a [`carry_over`]: the model is unchanged and
//! nobody's reputation moves.
//!
//! The new model is `base + server_lr * aggregate`, element by element in `f32`. When the
//! remaining updates are too few for the rule's bound `f`, the largest `f` that fits is
//! used, and a rule that cannot run at all (Krum with two inputs) falls back to the
//! coordinate median.

use thiserror::Error;

use crate::aggregate::distance::{gram_matrix, l2_norm, sq_dist};
use crate::aggregate::{AggregateError, Aggregation, AggregatorConfig, Rule};
use crate::pogq::{PogqMeasurement, PogqParams};
use crate::reputation::{Evidence, Reputation, ReputationParams};
use crate::trust::{voter_standing, Standing};

/// An update whose norm is below this share of the round's median update norm does no
/// work and is excluded (step 3 of the module docs).
pub const MIN_RELATIVE_NORM: f64 = 0.1;

/// Two updates closer to each other than this share of the smaller one's norm are copies
/// (step 3 of the module docs): honest peers train on different data and never come that
/// close. Relative to the pair itself, so other updates cannot widen it.
pub const DUPLICATE_DISTANCE: f64 = 0.01;

/// The update norm bound of [`RoundParams::new`] and of tasks that do not name one: loose,
/// so that it never cuts honest work of any model; a task should set a bound close to its
/// honest updates' norms (`mycelix-fl` derives one from its training settings).
pub const DEFAULT_MAX_UPDATE_NORM: f32 = 1000.0;

/// Largest update norm bound a task may set. Below it every `f32` partial sum of the
/// distance kernels stays finite (`1e12^2` is far below `f32::MAX`), so bounded updates
/// never need the slow exact path of [`crate::aggregate::distance`].
pub const MAX_UPDATE_NORM: f32 = 1e12;

/// Largest server learning rate a task may set: with bounded updates it keeps every
/// round's step, and so the global model, finite.
pub const MAX_SERVER_LR: f32 = 10.0;

/// The participant bound of [`RoundParams::new`] and of tasks that do not name one.
pub const DEFAULT_MAX_PARTICIPANTS: u32 = 1000;

/// Largest participant bound a task may set (the entry size limit binds far earlier for
/// any real model; see the integrity zome's task check).
pub const MAX_PARTICIPANTS: u32 = 100_000;

fn default_max_participants() -> u32 {
    DEFAULT_MAX_PARTICIPANTS
}

fn default_max_update_norm() -> f32 {
    DEFAULT_MAX_UPDATE_NORM
}

fn default_min_trusted_voters() -> u32 {
    1
}

/// Trusted committee members a verdict needs by default (see
/// [`RoundParams::min_trusted_voters`]), in committees of five seats or more. Below it,
/// the one or two members left on a committee that skewed data has shrunk would decide
/// every update alone.
pub const DEFAULT_MIN_TRUSTED_VOTERS: u32 = 3;

/// The largest [`RoundParams::min_trusted_voters`] a task with `committee_size` seats may
/// set: a majority of the seats. A larger minimum would let a few members who are away,
/// or who vote apart from the rest, silence every round (the integrity zome refuses it).
pub fn max_min_trusted_voters(committee_size: usize) -> u32 {
    u32::try_from(committee_size / 2 + 1).unwrap_or(u32::MAX)
}

/// The default [`RoundParams::min_trusted_voters`] of a task with `committee_size` seats:
/// a majority of the seats ([`max_min_trusted_voters`]), at most
/// [`DEFAULT_MIN_TRUSTED_VOTERS`] (1, 2, 2, 3 for one to four seats, 3 from five on).
pub fn default_min_trusted_voters_for(committee_size: usize) -> u32 {
    DEFAULT_MIN_TRUSTED_VOTERS.min(max_min_trusted_voters(committee_size))
}

/// Most a random direction's cosine with a fixed one drifts, in standard deviations
/// (`1/sqrt(d)` in `d` dimensions): the alignment bound of step 3 of the module docs.
pub const ALIGNMENT_SIGMAS: f64 = 3.0;

/// Highest alignment bound, which small models reach (`d < 900`).
pub const MAX_ALIGNMENT_BOUND: f64 = 0.1;

/// The absolute cosine with the previous round's global step below which an included
/// update earns no reputation, in a model of `d` parameters (step 3 of the module docs):
/// `min(ALIGNMENT_SIGMAS / sqrt(d), MAX_ALIGNMENT_BOUND)`. Noise drawn independently of the
/// model falls below it almost always (at 0.1, from 2.5 standard deviations at `d = 650`);
/// work that continues or corrects the model's descent sits above it.
pub fn alignment_bound(d: usize) -> f64 {
    // `d as f64` is exact for every model that fits in memory.
    (ALIGNMENT_SIGMAS / (d.max(1) as f64).sqrt()).min(MAX_ALIGNMENT_BOUND)
}

/// Task parameters that decide a round.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RoundParams {
    /// Aggregation rule, bound `f` and NNM.
    pub aggregator: AggregatorConfig,
    /// PoGQ probe rate and threshold.
    pub pogq: PogqParams,
    /// Reputation rule.
    pub reputation: ReputationParams,
    /// Server learning rate applied to the aggregated update, in `(0, MAX_SERVER_LR]`.
    pub server_lr: f32,
    /// Largest Euclidean norm an update may have (norm bounding): validation rejects a
    /// submission above it and the round excludes one (step 0 of the module docs). In
    /// `(0, MAX_UPDATE_NORM]`; [`DEFAULT_MAX_UPDATE_NORM`] when a task omits it.
    #[serde(default = "default_max_update_norm")]
    pub max_update_norm: f32,
    /// Most agents the reputation table may hold: once it is full, a newcomer's submission
    /// is excluded (`TableFull`, step 0 of the module docs) and the newcomer gets no row.
    /// In `1..=MAX_PARTICIPANTS`; [`DEFAULT_MAX_PARTICIPANTS`] when a task omits it. The
    /// integrity zome checks, when a task is created, that an aggregate of this many
    /// participants fits an entry at the task's model size.
    #[serde(default = "default_max_participants")]
    pub max_participants: u32,
    /// Fewest trusted committee members a verdict needs (step 4 of the module docs): with
    /// fewer, the committee is silent for the round. At least 1 (the committee's verdict
    /// whenever anyone is trusted), which is also what tasks that omit it read; the
    /// integrity zome keeps it at or below a majority of the task's committee seats.
    #[serde(default = "default_min_trusted_voters")]
    pub min_trusted_voters: u32,
    /// Whether an update earns reputation only when it lies along the line of the previous
    /// round's global step, either way (step 3 of the module docs, [`alignment_bound`]).
    /// Off in tasks that omit it, which keeps their rounds as they were decided.
    #[serde(default)]
    pub aligned_credit: bool,
}

impl RoundParams {
    /// `rule` with Byzantine bound `f` (no NNM), the default PoGQ and reputation rules, a
    /// server learning rate of 1 and the default update norm bound.
    pub fn new(rule: Rule, f: u32) -> Self {
        RoundParams {
            aggregator: AggregatorConfig {
                rule,
                f,
                nnm: false,
            },
            pogq: PogqParams::default(),
            reputation: ReputationParams::default(),
            server_lr: 1.0,
            max_update_norm: DEFAULT_MAX_UPDATE_NORM,
            max_participants: DEFAULT_MAX_PARTICIPANTS,
            min_trusted_voters: 1,
            aligned_credit: false,
        }
    }

    /// The server learning rate and the update norm bound must be in range (the PoGQ and
    /// reputation parameters have checks of their own).
    pub fn check(&self) -> Result<(), RoundError> {
        let lr = self.server_lr;
        if !(lr.is_finite() && lr > 0.0 && lr <= MAX_SERVER_LR) {
            return Err(RoundError::InvalidServerLr(lr));
        }
        let bound = self.max_update_norm;
        if !(bound.is_finite() && bound > 0.0 && bound <= MAX_UPDATE_NORM) {
            return Err(RoundError::InvalidNormBound(bound));
        }
        if !(1..=MAX_PARTICIPANTS).contains(&self.max_participants) {
            return Err(RoundError::InvalidParticipantBound(self.max_participants));
        }
        if self.min_trusted_voters == 0 {
            return Err(RoundError::NoTrustedVoters);
        }
        Ok(())
    }

    /// Whether `update` is within [`RoundParams::max_update_norm`].
    pub fn within_norm_bound(&self, update: &[f32]) -> bool {
        l2_norm(update) <= f64::from(self.max_update_norm)
    }
}

/// One submission as the round sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct SubmissionInput<'a, K> {
    /// The submitting agent.
    pub agent: K,
    /// The decoded update.
    pub update: &'a [f32],
    /// The submitter's PoGQ measurement, if it published one.
    pub proof: Option<PogqMeasurement>,
    /// The committee's votes on it: `(member, accept)`.
    pub votes: Vec<(K, bool)>,
}

/// Why an update was left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exclusion {
    /// The agent submitted more than once in the round (a forked chain).
    Equivocation,
    /// The update's norm exceeds the task's bound.
    AboveNormBound,
    /// No PoGQ proof, or the submitter's own measurement fails the threshold.
    InvalidProof,
    /// The agent's reputation is below the floor.
    BelowReputationFloor,
    /// The update's norm is negligible next to the round's others: it does no work.
    NegligibleUpdate,
    /// The update is a copy of a more reputable agent's update in the same round.
    DuplicateUpdate,
    /// The committee's trusted members rejected it.
    CommitteeRejected,
    /// The aggregator left it out.
    AggregatorOutlier,
    /// The round closed without a quorum of submitters (a carry-over round): nothing was
    /// aggregated.
    NoQuorum,
    /// The reputation table already holds the task's participant bound: a newcomer gets
    /// no row and its update is not aggregated.
    TableFull,
}

impl Exclusion {
    /// Every reason, for callers that must bound or list them all.
    pub const ALL: [Exclusion; 10] = [
        Exclusion::Equivocation,
        Exclusion::AboveNormBound,
        Exclusion::InvalidProof,
        Exclusion::BelowReputationFloor,
        Exclusion::NegligibleUpdate,
        Exclusion::DuplicateUpdate,
        Exclusion::CommitteeRejected,
        Exclusion::AggregatorOutlier,
        Exclusion::NoQuorum,
        Exclusion::TableFull,
    ];

    /// A sentence for people.
    pub fn describe(self) -> &'static str {
        match self {
            Exclusion::Equivocation => "one of several submissions by the same agent",
            Exclusion::AboveNormBound => "update norm above the task's bound",
            Exclusion::InvalidProof => "missing or failing PoGQ proof",
            Exclusion::BelowReputationFloor => "reputation below the floor",
            Exclusion::NegligibleUpdate => "negligible update (no work done)",
            Exclusion::DuplicateUpdate => "copy of another update in the round",
            Exclusion::CommitteeRejected => "rejected by the trusted committee members",
            Exclusion::AggregatorOutlier => "left out by the robust aggregator",
            Exclusion::NoQuorum => "the round closed without a quorum (carry-over)",
            Exclusion::TableFull => {
                "the task's participant bound is reached (no room for a newcomer)"
            }
        }
    }
}

/// Included, or excluded with the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Part of the aggregate.
    Included,
    /// Left out.
    Excluded(Exclusion),
}

/// What the round decided about one submission.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SubmissionOutcome {
    /// Included or excluded, and why.
    pub verdict: Verdict,
    /// How the submitter's reputation moves.
    pub evidence: Evidence,
    /// The trusted members' weighted majority: `Some(true)` accept, `Some(false)` reject,
    /// `None` silent (a tie, or no trusted votes).
    pub committee: Option<bool>,
    /// Whether the aggregator flagged or left out the update (`false` if it never ran on it).
    pub aggregator_outlier: bool,
}

/// The full outcome of a round.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundResult<K> {
    /// One per submission, in input order.
    pub outcomes: Vec<SubmissionOutcome>,
    /// The next global model.
    pub model: Vec<f32>,
    /// The reputation table after the round, sorted by agent.
    pub reputation: Vec<(K, Reputation)>,
    /// The `f` the aggregator ran with (may be below the task's when few updates remain).
    pub effective_f: u32,
    /// Members who voted but were not trusted (see [`crate::trust`]), sorted.
    pub distrusted: Vec<K>,
}

/// Why a round cannot be decided.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum RoundError {
    /// An update's length differs from the model's.
    #[error("submission {index} has {found} values but the model has {expected}")]
    LengthMismatch {
        /// Index of the submission.
        index: usize,
        /// Model length.
        expected: usize,
        /// Update length.
        found: usize,
    },
    /// The server learning rate is outside `(0, MAX_SERVER_LR]`.
    #[error("server learning rate {0} must be finite, > 0 and <= {MAX_SERVER_LR}")]
    InvalidServerLr(f32),
    /// The update norm bound is outside `(0, MAX_UPDATE_NORM]`.
    #[error("update norm bound {0} must be finite, > 0 and <= {MAX_UPDATE_NORM:e}")]
    InvalidNormBound(f32),
    /// The participant bound is outside `1..=MAX_PARTICIPANTS`.
    #[error("participant bound {0} must be in 1..={MAX_PARTICIPANTS}")]
    InvalidParticipantBound(u32),
    /// The model before the base model has another length.
    #[error("the earlier model has {found} values but the model has {expected}")]
    EarlierModelLength {
        /// Model length.
        expected: usize,
        /// Earlier model length.
        found: usize,
    },
    /// The trusted voter minimum is zero.
    #[error("min_trusted_voters must be at least 1")]
    NoTrustedVoters,
    /// The aggregator failed on valid input.
    #[error("aggregation failed: {0}")]
    Aggregate(#[from] AggregateError),
}

/// Decides a round (see the module docs).
///
/// `previous` is the reputation table after the previous round (agents not in it start at
/// the task's initial reputation); it must be sorted by agent, as [`RoundResult::reputation`]
/// is.
///
/// `earlier_model` is the global model one round before `base_model` (`None` in round 0):
/// with [`RoundParams::aligned_credit`], the step between the two is the direction included
/// updates must point along to earn reputation.
pub fn decide_round<K: Ord + Clone>(
    params: &RoundParams,
    base_model: &[f32],
    earlier_model: Option<&[f32]>,
    previous: &[(K, Reputation)],
    committee: &[K],
    submissions: &[SubmissionInput<'_, K>],
) -> Result<RoundResult<K>, RoundError> {
    params.check()?;
    check_lengths(base_model, submissions)?;
    let last_step = match earlier_model {
        Some(earlier) if params.aligned_credit => LastStep::between(base_model, earlier)?,
        _ => None,
    };
    let standing = Standings {
        previous,
        params: &params.reputation,
    };
    let forked = forked_agents(submissions);
    let turned_away = turned_away(params, previous, submissions);
    let votes = tally_votes(committee, submissions, &standing, params.min_trusted_voters);
    let mut verdicts = Verdicts::new(&votes.committee);
    // Step 0 to 2: room, forks, bound, proof, floor.
    let working = screen(
        params,
        submissions,
        &standing,
        (&forked, &turned_away),
        &votes.tallies,
        last_step.as_ref(),
        &mut verdicts,
    );
    // Step 3 and 4: work and copies, then the committee.
    let (candidates, mut uncredited) = work_copies_and_committee(
        submissions,
        &standing,
        &working,
        &votes.tallies,
        &mut verdicts,
    );
    if let Some(step) = &last_step {
        for &i in &candidates {
            uncredited[i] |= !step.aligns(submissions[i].update);
        }
    }
    // Step 5: the aggregator.
    let vouched: Vec<bool> = votes
        .tallies
        .iter()
        .map(|&(yes, no)| yes > 0 && yes >= 2 * no)
        .collect();
    let agg = aggregate_candidates(params, submissions, &candidates, &vouched, &|k: &K| {
        standing.of(k)
    })?;
    for (j, &i) in candidates.iter().enumerate() {
        verdicts.after_aggregator(i, agg.left_out[j], agg.flagged[j], uncredited[i]);
    }
    let outcomes = verdicts.into_outcomes();
    let model = next_model(params, base_model, agg.aggregate.as_deref());
    let reputation = next_reputation(
        short_committee(committee, params.min_trusted_voters),
        &params.reputation,
        previous,
        submissions,
        &outcomes,
        &forked,
        &votes.distrusted,
    );
    Ok(RoundResult {
        outcomes,
        model,
        reputation,
        effective_f: agg.f,
        distrusted: votes.distrusted,
    })
}

/// The previous round's global step (step 3 of the module docs), in `f64`.
struct LastStep {
    step: Vec<f64>,
    /// Its Euclidean norm.
    norm: f64,
    /// [`alignment_bound`] of its length.
    bound: f64,
}

impl LastStep {
    /// `base_model - earlier_model`; `None` when the two are equal (a round that moved
    /// nothing gives no direction).
    fn between(base_model: &[f32], earlier_model: &[f32]) -> Result<Option<Self>, RoundError> {
        if earlier_model.len() != base_model.len() {
            return Err(RoundError::EarlierModelLength {
                expected: base_model.len(),
                found: earlier_model.len(),
            });
        }
        let step: Vec<f64> = base_model
            .iter()
            .zip(earlier_model)
            .map(|(b, e)| f64::from(*b) - f64::from(*e))
            .collect();
        let norm = step.iter().map(|v| v * v).sum::<f64>().sqrt();
        Ok((norm > 0.0).then(|| LastStep {
            bound: alignment_bound(step.len()),
            step,
            norm,
        }))
    }

    /// Whether `update` lies along the step's line: the absolute value of its cosine with
    /// the step reaches the bound. Sums run in `f64`, element by element in order, so
    /// every validator gets the same answer; a zero update is not aligned.
    fn aligns(&self, update: &[f32]) -> bool {
        let (mut dot, mut uu) = (0.0f64, 0.0f64);
        for (u, s) in update.iter().zip(&self.step) {
            let u = f64::from(*u);
            dot += u * s;
            uu += u * u;
        }
        dot != 0.0 && dot.abs() >= self.bound * uu.sqrt() * self.norm
    }
}

/// Every update has the model's length.
fn check_lengths<K>(
    base_model: &[f32],
    submissions: &[SubmissionInput<'_, K>],
) -> Result<(), RoundError> {
    match submissions
        .iter()
        .position(|s| s.update.len() != base_model.len())
    {
        Some(index) => Err(RoundError::LengthMismatch {
            index,
            expected: base_model.len(),
            found: submissions[index].update.len(),
        }),
        None => Ok(()),
    }
}

/// Reputation before the round: the previous table, the task's initial reputation for
/// agents not in it.
struct Standings<'a, K> {
    previous: &'a [(K, Reputation)],
    params: &'a ReputationParams,
}

impl<K: Ord> Standings<'_, K> {
    fn of(&self, agent: &K) -> Reputation {
        self.previous
            .binary_search_by(|(k, _)| k.cmp(agent))
            .map_or(self.params.initial, |i| self.previous[i].1)
    }

    fn weight(&self, agent: &K) -> u64 {
        u64::from(self.of(agent).0)
    }
}

/// Agents with more than one submission in the round (forked chains), sorted.
fn forked_agents<'a, K: Ord>(submissions: &'a [SubmissionInput<'_, K>]) -> Vec<&'a K> {
    let mut seen: Vec<&K> = submissions.iter().map(|s| &s.agent).collect();
    seen.sort();
    let mut forked: Vec<&K> = seen
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    forked.dedup();
    forked
}

/// Step 0, room: newcomers (agents not in the table) take the table's free rows in
/// evidence order and the rest are turned away; a forked newcomer takes one row. Per
/// submission, whether it is turned away.
fn turned_away<K: Ord>(
    params: &RoundParams,
    previous: &[(K, Reputation)],
    submissions: &[SubmissionInput<'_, K>],
) -> Vec<bool> {
    let is_newcomer = |k: &K| previous.binary_search_by(|(p, _)| p.cmp(k)).is_err();
    let mut room = (params.max_participants as usize).saturating_sub(previous.len());
    let mut admitted: Vec<&K> = Vec::new();
    let mut turned_away = vec![false; submissions.len()];
    for (i, s) in submissions.iter().enumerate() {
        if !is_newcomer(&s.agent) || admitted.contains(&&s.agent) {
            continue;
        }
        if room > 0 {
            room -= 1;
            admitted.push(&s.agent);
        } else {
            turned_away[i] = true;
        }
    }
    turned_away
}

/// The committee's votes as the round counts them.
struct Votes<K> {
    /// Per submission, (accepting weight, rejecting weight) of the trusted members, first
    /// vote each, a member's vote on its own update ignored.
    tallies: Vec<(u128, u128)>,
    /// Per submission, the weighted majority: accept, reject or silent (a tie).
    committee: Vec<Option<bool>>,
    /// Members who voted and are distrusted while others are trusted, sorted.
    distrusted: Vec<K>,
}

/// Step 4's tally (see [`crate::trust`] for which members are trusted). With fewer than
/// `min_trusted` trusted members nobody is trusted or distrusted: the committee is silent.
fn tally_votes<K: Ord + Clone>(
    committee: &[K],
    submissions: &[SubmissionInput<'_, K>],
    standing: &Standings<'_, K>,
    min_trusted: u32,
) -> Votes<K> {
    let weight = |k: &K| standing.weight(k);
    let authors: Vec<&K> = submissions.iter().map(|s| &s.agent).collect();
    let ballots: Vec<&[(K, bool)]> = submissions.iter().map(|s| s.votes.as_slice()).collect();
    let mut trust = voter_standing(committee, &authors, &ballots, weight);
    let trusted_count = trust
        .iter()
        .filter(|(_, t)| *t == Standing::Trusted)
        .count();
    if trusted_count < min_trusted as usize {
        trust.clear();
    }
    let trusted = |k: &K| {
        trust
            .binary_search_by(|(t, _)| t.cmp(k))
            .is_ok_and(|i| trust[i].1 == Standing::Trusted)
    };
    let distrusted: Vec<K> = if trust.iter().any(|(_, t)| *t == Standing::Trusted) {
        trust
            .iter()
            .filter(|(_, t)| *t == Standing::Distrusted)
            .map(|(k, _)| k.clone())
            .collect()
    } else {
        Vec::new()
    };
    let tallies: Vec<(u128, u128)> = submissions
        .iter()
        .map(|s| {
            let mut counted: Vec<&K> = Vec::with_capacity(s.votes.len());
            let (mut yes, mut no) = (0u128, 0u128);
            for (k, accept) in &s.votes {
                if *k == s.agent || !trusted(k) || counted.contains(&k) {
                    continue;
                }
                counted.push(k);
                let w = u128::from(weight(k));
                if *accept {
                    yes += w;
                } else {
                    no += w;
                }
            }
            (yes, no)
        })
        .collect();
    let committee = tallies
        .iter()
        .map(|&(yes, no)| match yes.cmp(&no) {
            std::cmp::Ordering::Greater => Some(true),
            std::cmp::Ordering::Less => Some(false),
            std::cmp::Ordering::Equal => None,
        })
        .collect();
    Votes {
        tallies,
        committee,
        distrusted,
    }
}

/// Whether the round's committee has fewer distinct members than `min_trusted` (it is then
/// silent whatever its ballots say, and the reputation rule lets aggregated agents back into
/// the committee pool: [`ReputationParams::update_short_committee`]).
fn short_committee<K: Ord>(committee: &[K], min_trusted: u32) -> bool {
    let mut members: Vec<&K> = committee.iter().collect();
    members.sort();
    members.dedup();
    members.len() < min_trusted as usize
}

/// The outcomes decided so far, one per submission.
struct Verdicts<'a> {
    committee: &'a [Option<bool>],
    outcomes: Vec<Option<SubmissionOutcome>>,
}

impl<'a> Verdicts<'a> {
    fn new(committee: &'a [Option<bool>]) -> Self {
        Verdicts {
            committee,
            outcomes: vec![None; committee.len()],
        }
    }

    fn exclude(&mut self, i: usize, exclusion: Exclusion, evidence: Evidence) {
        self.outcomes[i] = Some(SubmissionOutcome {
            verdict: Verdict::Excluded(exclusion),
            evidence,
            committee: self.committee[i],
            aggregator_outlier: false,
        });
    }

    /// Step 5's verdict on a candidate the aggregator ran on (committee rejections never
    /// get there): left out, or included, accepted only when the committee accepted it
    /// and nobody copied it.
    fn after_aggregator(&mut self, i: usize, left_out: bool, flagged: bool, copied: bool) {
        let (verdict, evidence) = match (left_out, self.committee[i]) {
            (true, _) => (
                Verdict::Excluded(Exclusion::AggregatorOutlier),
                Evidence::Absent,
            ),
            (false, Some(true)) if !copied => (Verdict::Included, Evidence::Accepted),
            (false, None) if !copied => (Verdict::Included, Evidence::IncludedSilent),
            (false, _) => (Verdict::Included, Evidence::Absent),
        };
        self.outcomes[i] = Some(SubmissionOutcome {
            verdict,
            evidence,
            committee: self.committee[i],
            aggregator_outlier: flagged,
        });
    }

    fn into_outcomes(self) -> Vec<SubmissionOutcome> {
        self.outcomes
            .into_iter()
            .map(|o| o.expect("every submission has an outcome"))
            .collect()
    }
}

/// Steps 0 to 2: room, forks and the norm bound, then the proof, then the floor. Returns
/// the submissions still in the round, in input order.
fn screen<K: Ord>(
    params: &RoundParams,
    submissions: &[SubmissionInput<'_, K>],
    standing: &Standings<'_, K>,
    (forked, turned_away): (&[&K], &[bool]),
    tallies: &[(u128, u128)],
    last_step: Option<&LastStep>,
    verdicts: &mut Verdicts<'_>,
) -> Vec<usize> {
    let mut working = Vec::new();
    for (i, s) in submissions.iter().enumerate() {
        if turned_away[i] {
            verdicts.exclude(i, Exclusion::TableFull, Evidence::Absent);
            continue;
        }
        if forked.binary_search(&&s.agent).is_ok() {
            verdicts.exclude(i, Exclusion::Equivocation, Evidence::RejectedClear);
            continue;
        }
        if !params.within_norm_bound(s.update) {
            verdicts.exclude(i, Exclusion::AboveNormBound, Evidence::RejectedClear);
            continue;
        }
        let proof_passes = s
            .proof
            .map(|m| m.verdict(&params.pogq).is_ok_and(|v| v.passed()));
        if s.proof.is_none() {
            verdicts.exclude(i, Exclusion::InvalidProof, Evidence::RejectedClear);
        } else if proof_passes == Some(false) && verdicts.committee[i].is_none() {
            // The submitter's own measurement says its update hurts its own held-out
            // data, and the committee has no verdict: the update is left out, and
            // reputation does not move (on a small share a failing self-measurement is
            // noise as often as harm). When the committee has a verdict, it decides, with
            // its own evidence: a failing proof never shields a rejected update.
            verdicts.exclude(i, Exclusion::InvalidProof, Evidence::Absent);
        } else if !params.reputation.above_floor(standing.of(&s.agent)) {
            // An acceptance lifts the agent only for an aligned update (step 3).
            let aligned = last_step.is_none_or(|step| step.aligns(s.update));
            let evidence = match verdicts.committee[i] {
                Some(true) if aligned => Evidence::Accepted,
                Some(false) => rejection_evidence(tallies[i]),
                _ => Evidence::Absent,
            };
            verdicts.exclude(i, Exclusion::BelowReputationFloor, evidence);
        } else {
            working.push(i);
        }
    }
    working
}

/// The evidence of a committee rejection with trusted weights `(yes, no)`: clear at two
/// to one or more, disputed below.
fn rejection_evidence((yes, no): (u128, u128)) -> Evidence {
    if no >= 2 * yes {
        Evidence::RejectedClear
    } else {
        Evidence::RejectedDisputed
    }
}

/// Steps 3 and 4 among the `working` submissions: negligible updates and copies, then the
/// committee's rejections. Returns the candidates for the aggregator (in input order) and,
/// per submission, whether another update copied it (an update others copied earns nobody
/// reputation: who copied whom is unknown).
fn work_copies_and_committee<K: Ord>(
    submissions: &[SubmissionInput<'_, K>],
    standing: &Standings<'_, K>,
    working: &[usize],
    tallies: &[(u128, u128)],
    verdicts: &mut Verdicts<'_>,
) -> (Vec<usize>, Vec<bool>) {
    // Squared norms and a first screen of the pairwise distances come from one Gram
    // matrix; a pair the screen puts near each other is measured again element by element.
    let updates: Vec<&[f32]> = working.iter().map(|&i| submissions[i].update).collect();
    let m = working.len();
    let gram = gram_matrix(&updates);
    let norm = |a: usize| gram[a * m + a];
    let mut norms: Vec<f64> = (0..m).map(norm).filter(|n| n.is_finite()).collect();
    norms.sort_by(f64::total_cmp);
    let floor = norms
        .get(norms.len().saturating_sub(1) / 2)
        .map_or(0.0, |median| median * MIN_RELATIVE_NORM * MIN_RELATIVE_NORM);
    // Copies: in order of reputation (then key), an update within DUPLICATE_DISTANCE of
    // its own norm from one already kept is a copy of it.
    let key = |c: usize| {
        let agent = &submissions[working[c]].agent;
        (std::cmp::Reverse(standing.of(agent)), agent)
    };
    let mut order: Vec<usize> = (0..m)
        .filter(|&a| norm(a).is_finite() && norm(a) >= floor)
        .collect();
    order.sort_by(|&a, &b| key(a).cmp(&key(b)));
    let mut kept: Vec<usize> = Vec::with_capacity(order.len());
    let mut copied = vec![false; m];
    let mut is_copy = vec![false; m];
    for a in order {
        let near = kept.iter().copied().find(|&k| {
            let radius = DUPLICATE_DISTANCE * DUPLICATE_DISTANCE * norm(a).min(norm(k));
            let screen = (norm(a) + norm(k) - 2.0 * gram[a * m + k]).max(0.0);
            screen <= 4.0 * radius && sq_dist(updates[a], updates[k]) <= radius
        });
        match near {
            Some(k) => {
                is_copy[a] = true;
                copied[k] = true;
            }
            None => kept.push(a),
        }
    }
    let mut candidates = Vec::new();
    for (a, &i) in working.iter().enumerate() {
        if norm(a) < floor {
            verdicts.exclude(i, Exclusion::NegligibleUpdate, Evidence::RejectedClear);
        } else if is_copy[a] {
            verdicts.exclude(i, Exclusion::DuplicateUpdate, Evidence::Absent);
        } else if verdicts.committee[i] == Some(false) {
            verdicts.exclude(
                i,
                Exclusion::CommitteeRejected,
                rejection_evidence(tallies[i]),
            );
        } else {
            candidates.push(i);
        }
    }
    let mut copied_by_index = vec![false; submissions.len()];
    for (a, &i) in working.iter().enumerate() {
        copied_by_index[i] = copied[a];
    }
    (candidates, copied_by_index)
}

/// The next global model: the base model moved by the server learning rate along the
/// aggregate, or the base model when nothing was aggregated.
fn next_model(params: &RoundParams, base_model: &[f32], aggregate: Option<&[f32]>) -> Vec<f32> {
    match aggregate {
        Some(update) => base_model
            .iter()
            .zip(update)
            .map(|(w, u)| w + params.server_lr * u)
            .collect(),
        None => base_model.to_vec(),
    }
}

/// The reputation table after the round: each submitter moves by its evidence (a forked
/// agent once; a newcomer turned away not at all), each distrusted voter as on disputed
/// evidence. In a round whose committee is `short` (fewer members than the task's trusted
/// voter minimum), [`ReputationParams::update_short_committee`] applies.
fn next_reputation<K: Ord + Clone>(
    short: bool,
    rp: &ReputationParams,
    previous: &[(K, Reputation)],
    submissions: &[SubmissionInput<'_, K>],
    outcomes: &[SubmissionOutcome],
    forked: &[&K],
    distrusted: &[K],
) -> Vec<(K, Reputation)> {
    let mut table: Vec<(K, Reputation)> = previous.to_vec();
    let update = |r: Reputation, evidence: Evidence| {
        if short {
            rp.update_short_committee(r, evidence)
        } else {
            rp.update(r, evidence)
        }
    };
    let mut apply =
        |agent: &K, evidence: Evidence| match table.binary_search_by(|(k, _)| k.cmp(agent)) {
            Ok(pos) => table[pos].1 = update(table[pos].1, evidence),
            Err(pos) => table.insert(pos, (agent.clone(), update(rp.initial, evidence))),
        };
    let mut punished: Vec<&K> = Vec::new();
    let mut rejected: Vec<&K> = Vec::new();
    for (s, o) in submissions.iter().zip(outcomes) {
        if o.verdict == Verdict::Excluded(Exclusion::TableFull) {
            continue;
        }
        // An agent with several submissions answers for them once.
        if forked.binary_search(&&s.agent).is_ok() {
            if punished.contains(&&s.agent) {
                continue;
            }
            punished.push(&s.agent);
        }
        if matches!(
            o.evidence,
            Evidence::RejectedClear | Evidence::RejectedDisputed
        ) {
            rejected.push(&s.agent);
        }
        apply(&s.agent, o.evidence);
    }
    // One penalty per agent per round: a distrusted voter whose own update was rejected
    // has already answered for the round.
    for k in distrusted {
        if !rejected.contains(&k) {
            apply(k, Evidence::RejectedDisputed);
        }
    }
    table
}

/// A round that closes without a quorum of submitters, after its schedule (a carry-over
/// round): the model stays the base model, no update is aggregated and no submitter's
/// reputation moves (each outcome is `NoQuorum` with no evidence) and the table is the
/// previous one.
pub fn carry_over<K: Ord + Clone>(
    params: &RoundParams,
    base_model: &[f32],
    previous: &[(K, Reputation)],
    submissions: &[SubmissionInput<'_, K>],
) -> Result<RoundResult<K>, RoundError> {
    params.check()?;
    Ok(RoundResult {
        outcomes: submissions
            .iter()
            .map(|_| SubmissionOutcome {
                verdict: Verdict::Excluded(Exclusion::NoQuorum),
                evidence: Evidence::Absent,
                committee: None,
                aggregator_outlier: false,
            })
            .collect(),
        model: base_model.to_vec(),
        reputation: previous.to_vec(),
        effective_f: params.aggregator.f,
        distrusted: Vec::new(),
    })
}

/// The largest `f' <= f` the rule accepts for `n` inputs ([`Rule::min_inputs`]), if any.
fn fitting_f(rule: Rule, n: usize, f: usize) -> Option<usize> {
    if rule.min_inputs(f) <= n {
        return Some(f);
    }
    // min_inputs grows with f, so the largest fitting f' is found by bisection.
    let (mut lo, mut hi) = (0, f);
    if rule.min_inputs(lo) > n {
        return None;
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if rule.min_inputs(mid) <= n {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(lo)
}

/// What the aggregator did with the candidates.
struct Aggregated {
    /// Per candidate: not part of the aggregate.
    left_out: Vec<bool>,
    /// Per candidate: flagged by the rule (the plain mean flags but keeps).
    flagged: Vec<bool>,
    /// The aggregate update, if any candidate.
    aggregate: Option<Vec<f32>>,
    /// The `f` the rule ran with.
    f: u32,
}

/// Runs the aggregator on the candidates; returns their outlier flags, the aggregate
/// update (if any candidate) and the `f` used.
fn aggregate_candidates<K>(
    params: &RoundParams,
    submissions: &[SubmissionInput<'_, K>],
    candidates: &[usize],
    vouched: &[bool],
    reputation_of: &impl Fn(&K) -> Reputation,
) -> Result<Aggregated, RoundError> {
    if candidates.is_empty() {
        return Ok(Aggregated {
            left_out: Vec::new(),
            flagged: Vec::new(),
            aggregate: None,
            f: params.aggregator.f,
        });
    }
    let n = candidates.len();
    let mut config = params.aggregator;
    let (config, f) = match fitting_f(config.rule, n, config.f as usize) {
        Some(f) => {
            config.f = f as u32;
            if let Rule::MultiKrum { m: Some(m) } = config.rule {
                config.rule = Rule::MultiKrum {
                    m: Some(m.min((n - f) as u32).max(1)),
                };
            }
            (config, f)
        }
        None => (
            AggregatorConfig {
                rule: Rule::Median,
                f: 0,
                nnm: false,
            },
            0,
        ),
    };
    let updates: Vec<&[f32]> = candidates.iter().map(|&i| submissions[i].update).collect();
    let weights: Vec<f64> = candidates
        .iter()
        .map(|&i| reputation_of(&submissions[i].agent).as_f64())
        .collect();
    let weights = (weights.iter().sum::<f64>() > 0.0).then_some(weights.as_slice());
    let first: Aggregation = config.aggregate(&updates, weights)?;
    let drops_flagged = matches!(
        config.rule,
        Rule::Median | Rule::TrimmedMean | Rule::GeometricMedian(_)
    );
    if config.rule == Rule::Mean {
        return Ok(Aggregated {
            left_out: vec![false; n],
            flagged: first.outliers,
            aggregate: Some(first.aggregate),
            f: f as u32,
        });
    }
    // Selection rules leave out what they flag. Under the median and the geometric
    // median, which stay within the honest inputs whatever fewer than half of them are,
    // an input the committee accepted by 2:1 stays in: the distance screen judges only
    // what nobody vouched for (skewed honest work sits far from the median too). A
    // trimmed mean would average a kept far input, so it drops every flagged one.
    let keeps_vouched = matches!(config.rule, Rule::Median | Rule::GeometricMedian(_));
    let left_out: Vec<bool> = (0..n)
        .map(|j| first.outliers[j] && !(keeps_vouched && vouched[candidates[j]]))
        .collect();
    if !drops_flagged || !left_out.iter().any(|&o| o) {
        return Ok(Aggregated {
            left_out,
            flagged: first.outliers,
            aggregate: Some(first.aggregate),
            f: f as u32,
        });
    }
    let kept: Vec<usize> = (0..n).filter(|&j| !left_out[j]).collect();
    let kept_updates: Vec<&[f32]> = kept.iter().map(|&j| updates[j]).collect();
    let kept_weights: Option<Vec<f64>> = weights.map(|w| kept.iter().map(|&j| w[j]).collect());
    let mut second = config;
    second.f = fitting_f(config.rule, kept.len(), f).unwrap_or(0) as u32;
    let again = second.aggregate(&kept_updates, kept_weights.as_deref())?;
    Ok(Aggregated {
        left_out,
        flagged: first.outliers,
        aggregate: Some(again.aggregate),
        f: second.f,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fitting_f_is_the_largest_bound_the_rule_accepts() {
        let rules = [
            Rule::Mean,
            Rule::Krum,
            Rule::MultiKrum { m: None },
            Rule::Median,
            Rule::TrimmedMean,
            Rule::Bulyan,
        ];
        for rule in rules {
            for n in 1..40 {
                for f in 0..20 {
                    let expected = (0..=f).rev().find(|&g| rule.min_inputs(g) <= n);
                    assert_eq!(
                        fitting_f(rule, n, f),
                        expected,
                        "{} n = {n} f = {f}",
                        rule.name()
                    );
                }
            }
        }
    }

    /// `decide_round` with every member who voted as the committee.
    fn decide(
        p: &RoundParams,
        base: &[f32],
        previous: &[(u8, Reputation)],
        subs: &[SubmissionInput<'_, u8>],
    ) -> Result<RoundResult<u8>, RoundError> {
        let mut committee: Vec<u8> = subs
            .iter()
            .flat_map(|s| s.votes.iter().map(|(k, _)| *k))
            .collect();
        committee.sort();
        committee.dedup();
        decide_round(p, base, None, previous, &committee, subs)
    }

    fn params(rule: Rule, f: u32) -> RoundParams {
        RoundParams::new(rule, f)
    }

    fn proof(before: f64, after: f64) -> Option<PogqMeasurement> {
        Some(PogqMeasurement {
            loss_before: before,
            loss_after: after,
            samples: 10,
        })
    }

    /// A submission with a passing proof; `votes[j]` is cast by member `100 + j`.
    fn sub<'a>(agent: u8, update: &'a [f32], votes: &[bool]) -> SubmissionInput<'a, u8> {
        SubmissionInput {
            agent,
            update,
            proof: proof(1.0, 0.9),
            votes: votes
                .iter()
                .enumerate()
                .map(|(j, &v)| (100 + j as u8, v))
                .collect(),
        }
    }

    /// Ten updates of 2,048 values around +-0.02 and one at +-f32::MAX on 512 coordinates
    /// with the honest signs: the overflow takeover of Krum.
    fn overflow_attack() -> (Vec<Vec<f32>>, Vec<f32>) {
        let honest: Vec<Vec<f32>> = (0..10)
            .map(|i| {
                (0..2048)
                    .map(|c| {
                        let jitter = ((i * 31 + c * 7) % 13) as f32 * 1e-3;
                        if c % 2 == 0 {
                            0.02 + jitter
                        } else {
                            -0.02 - jitter
                        }
                    })
                    .collect()
            })
            .collect();
        let mut attack = vec![0.0f32; 2048];
        for (c, a) in attack.iter_mut().enumerate().take(512) {
            *a = f32::MAX.copysign(honest[0][c]);
        }
        (honest, attack)
    }

    #[test]
    fn krum_never_selects_an_update_whose_distances_overflow_f32() {
        let (honest, attack) = overflow_attack();
        let mut x = honest.clone();
        x.push(attack);
        for rule in [Rule::Krum, Rule::MultiKrum { m: None }] {
            let a = crate::aggregate::AggregatorConfig {
                rule,
                f: 3,
                nnm: false,
            }
            .aggregate(&x, None)
            .unwrap();
            assert!(a.outliers[10], "{rule:?} selected the attacker");
            assert!(a.scores.iter().all(|s| s.is_finite()), "{:?}", a.scores);
            assert!(a.aggregate.iter().all(|v| v.abs() < 1.0), "{rule:?}");
        }
    }

    #[test]
    fn an_update_above_the_norm_bound_is_excluded_with_clear_evidence() {
        let (honest, attack) = overflow_attack();
        let mut p = params(Rule::Krum, 3);
        p.max_update_norm = 10.0;
        let mut subs: Vec<_> = honest
            .iter()
            .enumerate()
            .map(|(i, u)| sub(i as u8, u, &[]))
            .collect();
        subs.push(sub(10, &attack, &[]));
        let r = decide(&p, &[0.0; 2048], &[], &subs).unwrap();
        assert_eq!(
            r.outcomes[10].verdict,
            Verdict::Excluded(Exclusion::AboveNormBound)
        );
        assert_eq!(r.outcomes[10].evidence, Evidence::RejectedClear);
        assert!(r.model.iter().all(|v| v.abs() < 1.0));
        // Exactly at the bound is within it.
        let edge = [3.0f32, 4.0];
        p.max_update_norm = 5.0;
        assert!(p.within_norm_bound(&edge));
        p.max_update_norm = 4.99;
        assert!(!p.within_norm_bound(&edge));
    }

    /// Three updates along the step `[1, -0.5]` (honest work continuing the descent), one
    /// against it (correcting an overshoot), then noise across it (cosine 0) and nearly
    /// across it (cosine 0.0995).
    const ALONG: [[f32; 2]; 3] = [[1.0, -0.5], [1.1, -0.4], [0.9, -0.6]];
    const AGAINST: [f32; 2] = [-1.0, 0.4];
    const ACROSS: [f32; 2] = [0.5, 1.0];
    const NEARLY_ACROSS: [f32; 2] = [0.619, 0.98];

    /// The updates above, every one accepted by three members, with the plain mean (which
    /// keeps every input); `previous` is the reputation table before the round.
    fn aligned_round(
        aligned_credit: bool,
        base: &[f32],
        earlier: Option<&[f32]>,
        previous: &[(u8, Reputation)],
    ) -> Result<RoundResult<u8>, RoundError> {
        let mut p = params(Rule::Mean, 0);
        p.aligned_credit = aligned_credit;
        let mut updates: Vec<&[f32]> = ALONG.iter().map(|u| &u[..]).collect();
        updates.extend([&AGAINST[..], &ACROSS[..], &NEARLY_ACROSS[..]]);
        let subs: Vec<_> = updates
            .iter()
            .enumerate()
            .map(|(i, u)| sub(i as u8, u, &[true; 3]))
            .collect();
        let committee = [100, 101, 102];
        decide_round(&p, base, earlier, previous, &committee, &subs)
    }

    #[test]
    fn an_update_across_the_last_step_is_aggregated_but_earns_no_reputation() {
        let (base, earlier) = ([1.0f32, -0.5], [0.0f32, 0.0]);
        let cos = |u: &[f32; 2]| {
            (u[0] - 0.5 * u[1]) / ((u[0] * u[0] + u[1] * u[1]).sqrt() * 1.25f32.sqrt())
        };
        assert!(cos(&ACROSS).abs() < 1e-7 && (cos(&NEARLY_ACROSS) - 0.0995).abs() < 1e-3);
        let r = aligned_round(true, &base, Some(&earlier), &[]).unwrap();
        let evidence: Vec<Evidence> = r.outcomes.iter().map(|o| o.evidence).collect();
        let verdicts: Vec<Verdict> = r.outcomes.iter().map(|o| o.verdict).collect();
        assert_eq!(verdicts, vec![Verdict::Included; 6]);
        assert_eq!(
            evidence,
            [
                Evidence::Accepted,
                Evidence::Accepted,
                Evidence::Accepted,
                Evidence::Accepted,
                Evidence::Absent,
                Evidence::Absent
            ]
        );
        let initial = ReputationParams::default().initial;
        let of = |k: u8| r.reputation.iter().find(|(a, _)| *a == k).unwrap().1;
        assert!((0..4).all(|k| of(k) > initial));
        assert!((4..6).all(|k| of(k) == initial));
        // Without the rule, the noise the committee passed earns what honest work earns.
        let off = aligned_round(false, &base, Some(&earlier), &[]).unwrap();
        assert!(off
            .outcomes
            .iter()
            .all(|o| o.evidence == Evidence::Accepted));
        assert_eq!(off.model, r.model, "the rule moves reputation only");
        // Below the floor, an acceptance lifts only an aligned update's author.
        let low = Reputation(ReputationParams::default().floor.0 / 2);
        let table: Vec<(u8, Reputation)> = (0..6).map(|k| (k, low)).collect();
        let r = aligned_round(true, &base, Some(&earlier), &table).unwrap();
        assert!(r
            .outcomes
            .iter()
            .all(|o| o.verdict == Verdict::Excluded(Exclusion::BelowReputationFloor)));
        let evidence: Vec<Evidence> = r.outcomes.iter().map(|o| o.evidence).collect();
        assert_eq!(&evidence[..4], &[Evidence::Accepted; 4]);
        assert_eq!(&evidence[4..], &[Evidence::Absent; 2]);
    }

    #[test]
    fn the_alignment_rule_rests_without_a_last_step() {
        let base = [1.0f32, -0.5];
        for earlier in [None, Some(&base[..])] {
            let r = aligned_round(true, &base, earlier, &[]).unwrap();
            assert!(
                r.outcomes.iter().all(|o| o.evidence == Evidence::Accepted),
                "{earlier:?}"
            );
        }
        assert_eq!(
            aligned_round(true, &base, Some(&[0.0; 3]), &[]),
            Err(RoundError::EarlierModelLength {
                expected: 2,
                found: 3
            })
        );
    }

    /// The direction is fixed before the round: whatever colluders submit in it (two of
    /// five, on a grid of placements, the committee silent or accepting everything),
    /// honest work along the last step or correcting it keeps its credit, unless a
    /// colluder copies it (step 3). Colluders who shape the step itself, in the round
    /// before, are a known gap (docs/PROTOCOL.md, section 6). An in-round reference (the median of the others) lost it to
    /// placements like `[3, 2.5]` and `[0.8, 2.5]`; a one-sided bound lost corrections to
    /// colluders who repeat the last step (`[1, -0.5]`, `[1.05, -0.525]`).
    #[test]
    fn colluders_cannot_deny_credit_within_a_round_to_work_along_the_last_step() {
        const CORRECTING: [[f32; 2]; 3] = [[-0.5, 0.2], [-0.4, 0.3], [-0.6, 0.1]];
        let (base, earlier) = ([1.0f32, -0.5], [0.0f32, 0.0]);
        let grid: Vec<f32> = (-6..=6).map(|i| i as f32 * 0.5).collect();
        let mut p = params(Rule::Median, 2);
        p.aligned_credit = true;
        let mut checked = 0;
        for honest in [ALONG, CORRECTING] {
            let copies = |c: &[f32; 2]| {
                honest
                    .iter()
                    .any(|h| sq_dist(h, c) <= DUPLICATE_DISTANCE * DUPLICATE_DISTANCE * 2.0)
            };
            for &x in &grid {
                for &y in &grid {
                    let placements = [
                        [x, y],
                        [0.8, 2.5],
                        [3.0, 2.5],
                        [y, x],
                        [1.0, -0.5],
                        [1.05, -0.525],
                    ];
                    for pair in placements.windows(2) {
                        if pair.iter().any(copies) {
                            continue;
                        }
                        for votes in [&[][..], &[true; 3][..]] {
                            let mut subs: Vec<_> = honest
                                .iter()
                                .enumerate()
                                .map(|(i, u)| sub(i as u8, u, votes))
                                .collect();
                            subs.push(sub(3, &pair[0], votes));
                            subs.push(sub(4, &pair[1], votes));
                            let committee = [100, 101, 102];
                            let r = decide_round(&p, &base, Some(&earlier), &[], &committee, &subs)
                                .unwrap_or_else(|e| panic!("{pair:?}: {e}"));
                            for o in &r.outcomes[..3] {
                                if o.verdict == Verdict::Included {
                                    assert_ne!(o.evidence, Evidence::Absent, "{pair:?} {votes:?}");
                                    checked += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
        // Most honest updates are included (three of five inputs to the median).
        assert!(checked > 6000, "{checked}");
    }

    /// In a model of 10,000 parameters the bound is 0.03, not 0.1: an update at cosine
    /// 0.05 with the last step earns credit, one at 0.02 does not.
    #[test]
    fn large_models_use_the_three_sigma_bound() {
        let d = 10_000;
        let (earlier, mut base) = (vec![0.0f32; d], vec![0.0f32; d]);
        base[0] = 1.0;
        // Cosine c with e_0: c * e_0 + sqrt(1 - c^2) * e_1.
        let at = |c: f32| {
            let mut u = vec![0.0f32; d];
            u[0] = c;
            u[1] = (1.0 - c * c).sqrt();
            u
        };
        let (above, below) = (at(0.05), at(0.02));
        let mut p = params(Rule::Mean, 0);
        p.aligned_credit = true;
        let subs = [sub(0, &above, &[true; 3]), sub(1, &below, &[true; 3])];
        let r = decide_round(&p, &base, Some(&earlier), &[], &[100, 101, 102], &subs).unwrap();
        assert_eq!(r.outcomes[0].evidence, Evidence::Accepted);
        assert_eq!(r.outcomes[1].evidence, Evidence::Absent);
    }

    #[test]
    fn the_alignment_bound_shrinks_with_the_model() {
        assert_eq!(alignment_bound(2), MAX_ALIGNMENT_BOUND);
        assert_eq!(alignment_bound(900), MAX_ALIGNMENT_BOUND);
        assert!((alignment_bound(10_000) - 0.03).abs() < 1e-12);
        assert!((alignment_bound(431_080) - 3.0 / 431_080f64.sqrt()).abs() < 1e-15);
        assert_eq!(alignment_bound(0), MAX_ALIGNMENT_BOUND);
    }

    #[test]
    fn a_carry_over_keeps_the_model_and_the_table() {
        let previous = vec![(1u8, Reputation(500_000)), (7, Reputation(600_000))];
        let u = [1.0f32];
        let c = carry_over(
            &params(Rule::Mean, 0),
            &[0.5],
            &previous,
            &[sub(1, &u, &[])],
        )
        .unwrap();
        assert_eq!(c.model, vec![0.5]);
        assert_eq!(c.outcomes.len(), 1);
        assert_eq!(
            c.outcomes[0].verdict,
            Verdict::Excluded(Exclusion::NoQuorum)
        );
        assert_eq!(c.outcomes[0].evidence, Evidence::Absent);
        assert_eq!(c.reputation, previous);
    }

    #[test]
    fn round_params_reject_unbounded_learning_rates_and_norm_bounds() {
        let mut p = params(Rule::Median, 0);
        assert_eq!(p.check(), Ok(()));
        for lr in [0.0, -1.0, f32::NAN, f32::INFINITY, MAX_SERVER_LR * 1.01] {
            p.server_lr = lr;
            assert!(
                matches!(p.check(), Err(RoundError::InvalidServerLr(_))),
                "{lr}"
            );
        }
        p.server_lr = MAX_SERVER_LR;
        for bound in [0.0, -1.0, f32::NAN, f32::INFINITY, MAX_UPDATE_NORM * 2.0] {
            p.max_update_norm = bound;
            assert!(
                matches!(p.check(), Err(RoundError::InvalidNormBound(_))),
                "{bound}"
            );
        }
    }

    #[test]
    fn excludes_the_far_update_and_punishes_it_clearly_when_the_committee_agrees() {
        let honest = [
            [1.0f32, 1.0],
            [1.1, 0.9],
            [0.9, 1.1],
            [1.0, 1.05],
            [1.05, 1.0],
            [0.95, 0.95],
        ];
        let attack = [-10.0f32, -10.0];
        let mut subs: Vec<_> = honest
            .iter()
            .enumerate()
            .map(|(i, u)| sub(i as u8, u, &[true, true]))
            .collect();
        subs.push(sub(9, &attack, &[false, false]));
        let r = decide(
            &params(Rule::MultiKrum { m: None }, 1),
            &[0.0, 0.0],
            &[],
            &subs,
        )
        .unwrap();
        assert_eq!(
            r.outcomes[6].verdict,
            Verdict::Excluded(Exclusion::CommitteeRejected)
        );
        assert_eq!(r.outcomes[6].evidence, Evidence::RejectedClear);
        // The committee removed the attack before aggregation; Multi-Krum still assumes
        // f = 1 and keeps m = n - f = 5 of the 6 honest updates. The one it leaves out
        // was accepted by the committee: its reputation does not move.
        let left_out: Vec<_> = r.outcomes[..6]
            .iter()
            .filter(|o| o.verdict != Verdict::Included)
            .collect();
        assert_eq!(left_out.len(), 1);
        assert_eq!(
            left_out[0].verdict,
            Verdict::Excluded(Exclusion::AggregatorOutlier)
        );
        assert_eq!(left_out[0].evidence, Evidence::Absent);
        assert!(
            (r.model[0] - 1.0).abs() < 0.05 && (r.model[1] - 1.0).abs() < 0.05,
            "{:?}",
            r.model
        );
        let rep = |k: u8| r.reputation.iter().find(|(a, _)| *a == k).unwrap().1;
        assert_eq!(rep(9), Reputation(250_000));
        let risen = (0..6).filter(|&k| rep(k) == Reputation(550_000)).count();
        assert_eq!(risen, 5);
        assert!(r.distrusted.is_empty());
    }

    /// Agents 0..4 are honest, 4..7 collude; everyone votes on every update. Honest
    /// members accept honest work and reject the colluders' (far) updates; colluders vote
    /// the other way round.
    fn colluding_round(updates: &[[f32; 2]; 7]) -> Vec<SubmissionInput<'_, u8>> {
        updates
            .iter()
            .enumerate()
            .map(|(s, u)| SubmissionInput {
                agent: s as u8,
                update: u,
                proof: proof(1.0, 0.9),
                votes: (0..7u8).map(|m| (m, (m < 4) == (s < 4))).collect(),
            })
            .collect()
    }

    /// Four honest updates near (1, 1) and three colluders' far ones.
    const FOUR_HONEST_THREE_FAR: [[f32; 2]; 7] = [
        [1.0, 1.0],
        [1.1, 1.0],
        [0.9, 1.0],
        [1.0, 1.1],
        [-5.0, -5.0],
        [-5.0, -5.1],
        [-5.1, -5.0],
    ];

    #[test]
    fn colluding_voters_are_outweighed_distrusted_and_their_updates_rejected() {
        let updates = FOUR_HONEST_THREE_FAR;
        let subs = colluding_round(&updates);
        let r = decide(&params(Rule::Median, 3), &[0.0, 0.0], &[], &subs).unwrap();
        assert_eq!(r.distrusted, vec![4, 5, 6]);
        for (i, o) in r.outcomes.iter().enumerate() {
            if i < 4 {
                assert_eq!(o.verdict, Verdict::Included, "{i}");
            } else {
                assert_eq!(
                    o.verdict,
                    Verdict::Excluded(Exclusion::CommitteeRejected),
                    "{i}"
                );
                assert_eq!(o.evidence, Evidence::RejectedClear);
            }
        }
        assert_eq!(r.model, vec![1.0, 1.0]);
        // Colluders: clear rejection (x 0.5); distrusted as voters too, but one penalty
        // per agent and round.
        assert_eq!(r.reputation[4], (4, Reputation(250_000)));
        assert_eq!(r.reputation[0], (0, Reputation(550_000)));
    }

    #[test]
    fn colluders_with_the_reputation_majority_capture_the_committee() {
        // The limit of the rule: when colluders carry more reputation than the honest
        // voters, they are the trusted members and honest work is rejected.
        let updates = [
            [1.0f32, 1.0],
            [1.1, 1.0],
            [0.9, 1.0],
            [1.0, 1.1],
            [1.0, 0.9],
            [1.05, 1.0],
            [0.95, 1.0],
        ];
        let subs = colluding_round(&updates);
        let previous: Vec<(u8, Reputation)> = (0..7u8)
            .map(|k| (k, Reputation(if k < 4 { 200_000 } else { 900_000 })))
            .collect();
        let r = decide(&params(Rule::Median, 3), &[0.0, 0.0], &previous, &subs).unwrap();
        assert_eq!(r.distrusted, vec![0, 1, 2, 3]);
        assert!(r.outcomes[..4]
            .iter()
            .all(|o| o.verdict == Verdict::Excluded(Exclusion::CommitteeRejected)));
    }

    #[test]
    fn zero_updates_do_no_work_and_outliers_go_even_when_accepted() {
        let updates = [[1.0f32], [1.1], [0.9], [0.0], [0.0], [1e-3], [3.0]];
        let mut subs: Vec<_> = updates
            .iter()
            .enumerate()
            .map(|(i, u)| sub(i as u8, u, &[]))
            .collect();
        // One member accepts the far update at 3.0.
        subs[6].votes = vec![(100, true)];
        let r = decide(&params(Rule::Median, 2), &[0.0], &[], &subs).unwrap();
        for i in [3, 4, 5] {
            assert_eq!(
                r.outcomes[i].verdict,
                Verdict::Excluded(Exclusion::NegligibleUpdate),
                "{i}"
            );
            assert_eq!(r.outcomes[i].evidence, Evidence::RejectedClear);
        }
        // Four updates remain: the median runs with f = 1. Its distance rule flags 3.0;
        // the one member voted on one submission of seven and abstains, so no trusted
        // acceptance keeps the update in, and its author's reputation does not move.
        assert_eq!(r.effective_f, 1);
        assert_eq!(
            r.outcomes[6].verdict,
            Verdict::Excluded(Exclusion::AggregatorOutlier)
        );
        assert_eq!(r.outcomes[6].evidence, Evidence::Absent);
        // The median of what is kept.
        assert_eq!(r.model, vec![1.0]);
    }

    #[test]
    fn copies_are_excluded_and_the_most_reputable_author_keeps_the_update() {
        let honest = [[1.0f32, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, 0.2]];
        let copy = [0.2f32, 0.9];
        let mut subs: Vec<_> = honest
            .iter()
            .enumerate()
            .map(|(i, u)| sub(i as u8, u, &[]))
            .collect();
        for agent in [7u8, 5, 6] {
            subs.push(sub(agent, &copy, &[]));
        }
        let previous = vec![
            (5u8, Reputation(600_000)),
            (6, Reputation(400_000)),
            (7, Reputation(600_000)),
        ];
        let r = decide(&params(Rule::Mean, 0), &[0.0, 0.0], &previous, &subs).unwrap();
        let verdict = |agent: u8| {
            let i = subs.iter().position(|s| s.agent == agent).unwrap();
            (r.outcomes[i].verdict, r.outcomes[i].evidence)
        };
        // 5 and 7 tie on reputation; the smaller key keeps it.
        assert_eq!(verdict(5), (Verdict::Included, Evidence::Absent));
        for agent in [6, 7] {
            assert_eq!(
                verdict(agent),
                (
                    Verdict::Excluded(Exclusion::DuplicateUpdate),
                    Evidence::Absent
                )
            );
        }
        assert!(honest
            .iter()
            .enumerate()
            .all(|(i, _)| r.outcomes[i].verdict == Verdict::Included));
    }

    #[test]
    fn copies_are_judged_pair_by_pair_and_far_updates_do_not_widen_them() {
        // a ~ b and b ~ c, but c is not a copy of a: only b, the copy of a kept update, goes.
        let a = [1.0f32, 0.0];
        let b = [1.0f32, 0.008];
        let c = [1.0f32, 0.016];
        let others = [[0.0f32, 1.0], [0.7, 0.7], [-0.5, 0.9]];
        // Huge, far-apart updates (an attack on a radius taken from the round's median).
        let huge = [[1e30f32, -1e30], [-1e30, 1e30], [1e30, 1e30]];
        let mut subs = vec![sub(0, &a, &[]), sub(1, &b, &[]), sub(2, &c, &[])];
        subs.extend(
            others
                .iter()
                .enumerate()
                .map(|(i, u)| sub(3 + i as u8, u, &[])),
        );
        subs.extend(
            huge.iter()
                .enumerate()
                .map(|(i, u)| sub(10 + i as u8, u, &[])),
        );
        let r = decide(&params(Rule::Median, 3), &[0.0, 0.0], &[], &subs).unwrap();
        let copies: Vec<u8> = subs
            .iter()
            .zip(&r.outcomes)
            .filter(|(_, o)| o.verdict == Verdict::Excluded(Exclusion::DuplicateUpdate))
            .map(|(s, _)| s.agent)
            .collect();
        assert_eq!(copies, vec![1]);
    }

    #[test]
    fn missing_or_failing_proofs_and_low_reputation_are_excluded_first() {
        let u = [1.0f32, 1.0];
        // One member, which accepts everything but agent 4's update and does not vote
        // on agent 5's.
        let mut subs = vec![
            sub(0, &u, &[true]),
            sub(1, &u, &[true]),
            sub(2, &u, &[true]),
            sub(3, &[0.5, 0.7], &[true]),
            sub(4, &[0.2, 0.1], &[false]),
            sub(5, &[0.3, 0.3], &[]),
        ];
        subs[0].proof = None;
        subs[1].proof = proof(1.0, 2.0);
        subs[4].proof = proof(1.0, 2.0);
        subs[5].proof = proof(1.0, 2.0);
        let previous = vec![(2u8, Reputation(50_000))];
        let r = decide(&params(Rule::Mean, 0), &[0.0, 0.0], &previous, &subs).unwrap();
        // A missing proof is clear evidence.
        assert_eq!(
            r.outcomes[0].verdict,
            Verdict::Excluded(Exclusion::InvalidProof)
        );
        assert_eq!(r.outcomes[0].evidence, Evidence::RejectedClear);
        // A failing proof the committee overrules: the update is judged as any other.
        assert_eq!(r.outcomes[1].verdict, Verdict::Included);
        assert_eq!(r.outcomes[1].evidence, Evidence::Accepted);
        // A failing proof never shields an update the committee rejects.
        assert_eq!(
            r.outcomes[4].verdict,
            Verdict::Excluded(Exclusion::CommitteeRejected)
        );
        assert_eq!(r.outcomes[4].evidence, Evidence::RejectedClear);
        // With no committee verdict, a failing proof keeps the update out and costs
        // nothing: on a small validation share it is noise as often as harm.
        assert_eq!(
            r.outcomes[5].verdict,
            Verdict::Excluded(Exclusion::InvalidProof)
        );
        assert_eq!(r.outcomes[5].evidence, Evidence::Absent);
        assert_eq!(
            r.outcomes[2].verdict,
            Verdict::Excluded(Exclusion::BelowReputationFloor)
        );
        // The committee accepted the low-reputation agent's work: it climbs back.
        assert_eq!(r.outcomes[2].evidence, Evidence::Accepted);
        assert_eq!(r.outcomes[3].verdict, Verdict::Included);
        assert_eq!(r.model, vec![0.75, 0.85]);
        assert_eq!(r.reputation[2], (2, Reputation(145_000)));
    }

    #[test]
    fn too_few_updates_lower_f_and_then_fall_back_to_the_median() {
        let a = [1.0f32];
        let b = [3.0f32];
        let c = [2.0f32];
        let subs = vec![sub(0, &a, &[]), sub(1, &b, &[]), sub(2, &c, &[])];
        // Krum with f = 2 needs n > 6; with 3 updates f drops to 0. Every update's single
        // nearest neighbour is 1 away, so all scores tie and the smallest update wins.
        let r = decide(&params(Rule::Krum, 2), &[0.0], &[], &subs).unwrap();
        assert_eq!(r.effective_f, 0);
        assert_eq!(r.model, vec![1.0]);
        // Two updates: Krum cannot run at all; the coordinate median of {1, 3} is 2.
        let r = decide(&params(Rule::Krum, 1), &[0.0], &[], &subs[..2]).unwrap();
        assert_eq!(r.model, vec![2.0]);
    }

    #[test]
    fn median_drops_flagged_inputs_and_reruns() {
        let updates = [[1.0f32], [1.1], [0.95], [1.05], [50.0]];
        let subs: Vec<_> = updates
            .iter()
            .enumerate()
            .map(|(i, u)| sub(i as u8, u, &[]))
            .collect();
        let r = decide(&params(Rule::Median, 1), &[0.0], &[], &subs).unwrap();
        assert_eq!(
            r.outcomes[4].verdict,
            Verdict::Excluded(Exclusion::AggregatorOutlier)
        );
        // Only the aggregator judged it: reputation does not move.
        assert_eq!(r.outcomes[4].evidence, Evidence::Absent);
        assert_eq!(r.model, vec![1.025]);
        // The others were aggregated with no committee verdict.
        assert_eq!(r.outcomes[0].evidence, Evidence::IncludedSilent);
    }

    #[test]
    fn a_failing_self_proof_does_not_shield_an_update_the_committee_rejects() {
        // Every voter, the colluders 4..7 included, votes as the honest do (accept 0..4,
        // reject 4..7): one trusted bloc, nobody distrusted. The colluders publish
        // failing proofs on their far updates, hoping for a free exclusion.
        let updates = FOUR_HONEST_THREE_FAR;
        let subs: Vec<SubmissionInput<'_, u8>> = updates
            .iter()
            .enumerate()
            .map(|(s, u)| SubmissionInput {
                agent: s as u8,
                update: u,
                proof: if s < 4 {
                    proof(1.0, 0.9)
                } else {
                    proof(1.0, 2.0)
                },
                votes: (0..7u8).map(|m| (m, s < 4)).collect(),
            })
            .collect();
        let previous: Vec<(u8, Reputation)> = (0..7u8).map(|k| (k, Reputation(900_000))).collect();
        let r = decide(&params(Rule::Median, 3), &[0.0, 0.0], &previous, &subs).unwrap();
        assert!(r.distrusted.is_empty());
        for i in 4..7 {
            assert_eq!(r.outcomes[i].committee, Some(false));
            assert_eq!(
                r.outcomes[i].verdict,
                Verdict::Excluded(Exclusion::CommitteeRejected)
            );
            assert_eq!(r.outcomes[i].evidence, Evidence::RejectedClear);
            assert_eq!(r.reputation[i], (i as u8, Reputation(450_000)));
        }
    }

    #[test]
    fn vouched_far_updates_do_not_move_a_trimmed_mean_out_of_the_honest_range() {
        // Five honest updates near 1 and two far ones, all accepted by both members: the
        // trimmed mean would average a kept far input, so it drops both as before.
        let updates = [[1.0f32], [1.1], [0.9], [1.05], [0.95], [9.0], [8.8]];
        let subs: Vec<_> = updates
            .iter()
            .enumerate()
            .map(|(i, u)| sub(i as u8, u, &[true, true]))
            .collect();
        let r = decide(&params(Rule::TrimmedMean, 1), &[0.0], &[], &subs).unwrap();
        assert!(r.outcomes[5].aggregator_outlier && r.outcomes[6].aggregator_outlier);
        assert_eq!(
            r.outcomes[5].verdict,
            Verdict::Excluded(Exclusion::AggregatorOutlier)
        );
        assert!((r.model[0] - 1.0).abs() < 1e-5, "{:?}", r.model);
    }

    #[test]
    fn a_flagged_update_the_committee_clearly_accepted_stays_in() {
        let updates = [[1.0f32], [1.1], [0.95], [1.05], [50.0]];
        // Member 100 accepts every update; member 101 rejects the far one.
        let with = |accepts: [bool; 2]| -> Vec<SubmissionInput<'_, u8>> {
            updates
                .iter()
                .enumerate()
                .map(|(i, u)| sub(i as u8, u, if i == 4 { &accepts } else { &[true, true] }))
                .collect()
        };
        let subs = with([true, true]);
        let r = decide(&params(Rule::Median, 1), &[0.0], &[], &subs).unwrap();
        assert_eq!(r.outcomes[4].verdict, Verdict::Included);
        assert!(r.outcomes[4].aggregator_outlier);
        assert_eq!(r.outcomes[4].evidence, Evidence::Accepted);
        assert_eq!(r.model, vec![1.05]);
        // Accepted by less than two to one (here a tie broken by reputation is not
        // possible: one accept against one reject is silent), the distance screen decides.
        let subs = with([true, false]);
        let r = decide(&params(Rule::Median, 1), &[0.0], &[], &subs).unwrap();
        assert_eq!(
            r.outcomes[4].verdict,
            Verdict::Excluded(Exclusion::AggregatorOutlier)
        );
    }

    #[test]
    fn no_submissions_keep_the_model_and_forked_agents_are_excluded() {
        let r = decide(&params(Rule::Krum, 1), &[0.5], &[], &[]).unwrap();
        assert_eq!(r.model, vec![0.5]);
        // Agent 1 submitted on two forks of its chain; the round goes on without it, and it
        // answers once for both.
        let (u, v, w) = ([1.0f32], [9.0f32], [1.2f32]);
        let subs = vec![sub(1, &u, &[]), sub(2, &w, &[]), sub(1, &v, &[])];
        let r = decide(&params(Rule::Mean, 0), &[0.0], &[], &subs).unwrap();
        for i in [0, 2] {
            assert_eq!(
                r.outcomes[i].verdict,
                Verdict::Excluded(Exclusion::Equivocation)
            );
            assert_eq!(r.outcomes[i].evidence, Evidence::RejectedClear);
        }
        assert_eq!(r.outcomes[1].verdict, Verdict::Included);
        assert_eq!(r.model, vec![1.2]);
        let rp = ReputationParams::default();
        assert_eq!(
            r.reputation[0],
            (1, rp.update(rp.initial, Evidence::RejectedClear))
        );
        let short = [1.0f32];
        assert!(matches!(
            decide(
                &params(Rule::Mean, 0),
                &[0.0, 0.0],
                &[],
                &[sub(0, &short, &[])]
            ),
            Err(RoundError::LengthMismatch { .. })
        ));
    }

    #[test]
    fn newcomers_beyond_the_participant_bound_get_no_row_and_no_say() {
        // Two agents in the table, a bound of three: of the three newcomers, the first in
        // evidence order takes the free row, the other two are turned away.
        let mut p = params(Rule::Mean, 0);
        p.max_participants = 3;
        let previous = vec![(1u8, Reputation(600_000)), (2u8, Reputation(600_000))];
        let u = [1.0f32];
        let subs = vec![
            sub(1, &u, &[]),
            sub(7, &u, &[]),
            sub(5, &u, &[]),
            sub(2, &u, &[]),
            sub(9, &u, &[]),
        ];
        let r = decide(&p, &[0.0], &previous, &subs).unwrap();
        let table_full = Verdict::Excluded(Exclusion::TableFull);
        let verdicts: Vec<bool> = r.outcomes.iter().map(|o| o.verdict == table_full).collect();
        assert_eq!(verdicts, [false, false, true, false, true]);
        assert!(r.outcomes.iter().all(|o| o.evidence == Evidence::Absent));
        let agents: Vec<u8> = r.reputation.iter().map(|(k, _)| *k).collect();
        assert_eq!(agents, [1, 2, 7]);
        // A full table turns every newcomer away but keeps serving its members.
        let r = decide(
            &p,
            &[0.0],
            &r.reputation,
            &[sub(8, &u, &[]), sub(7, &u, &[])],
        )
        .unwrap();
        assert_eq!(r.outcomes[0].verdict, table_full);
        assert_eq!(r.outcomes[1].verdict, Verdict::Included);
        assert_eq!(r.reputation.len(), 3);
        p.max_participants = 0;
        assert_eq!(p.check(), Err(RoundError::InvalidParticipantBound(0)));
    }

    #[test]
    fn the_default_trusted_voter_minimum_is_a_majority_of_the_seats_up_to_three() {
        let minimums: Vec<u32> = (0..7).map(default_min_trusted_voters_for).collect();
        assert_eq!(minimums, [1, 1, 2, 2, 3, 3, 3]);
        assert_eq!(default_min_trusted_voters_for(usize::MAX), 3);
    }

    #[test]
    fn a_committee_with_fewer_trusted_members_than_the_task_asks_is_silent() {
        // Two members, both trusted, reject an update by two to one or more.
        let honest = [[1.0f32, 1.0], [1.1, 0.9], [0.9, 1.1]];
        let far = [-1.0f32, -1.0];
        let mut subs: Vec<_> = honest
            .iter()
            .enumerate()
            .map(|(i, u)| sub(i as u8, u, &[true, true]))
            .collect();
        subs.push(sub(9, &far, &[false, false]));
        let mut p = params(Rule::Mean, 1);
        let r = decide(&p, &[0.0, 0.0], &[], &subs).unwrap();
        assert_eq!(
            r.outcomes[3].verdict,
            Verdict::Excluded(Exclusion::CommitteeRejected)
        );
        assert_eq!(r.outcomes[3].evidence, Evidence::RejectedClear);
        assert_eq!(r.outcomes[0].evidence, Evidence::Accepted);
        // The task asks for three: the same ballots carry no verdict, nobody's reputation
        // moves on the committee's word and the mean keeps the far update (it flags it).
        p.min_trusted_voters = 3;
        let r = decide(&p, &[0.0, 0.0], &[], &subs).unwrap();
        assert!(r.outcomes.iter().all(|o| o.committee.is_none()));
        assert!(r.distrusted.is_empty());
        assert_eq!(r.outcomes[3].verdict, Verdict::Included);
        assert_eq!(r.outcomes[0].evidence, Evidence::IncludedSilent);
        // Two is enough.
        p.min_trusted_voters = 2;
        let r = decide(&p, &[0.0, 0.0], &[], &subs).unwrap();
        assert_eq!(r.outcomes[3].committee, Some(false));
        p.min_trusted_voters = 0;
        assert_eq!(p.check(), Err(RoundError::NoTrustedVoters));
    }

    #[test]
    fn a_committee_pool_below_the_minimum_refills_from_aggregated_work() {
        // Skewed data left two members above the committee threshold (0.4); everyone else
        // sits just under it, where silence alone never lifts an agent.
        let rp = ReputationParams::default();
        let under = Reputation(rp.committee_threshold.0 - 1);
        let mut table = vec![(100u8, Reputation(900_000)), (101, Reputation(900_000))];
        table.extend((0..6u8).map(|a| (a, under)));
        table.sort();
        let updates: Vec<[f32; 2]> = (0..6)
            .map(|i| [1.0 + i as f32 / 10.0, 1.0 - i as f32 / 20.0])
            .collect();
        let subs: Vec<_> = updates
            .iter()
            .enumerate()
            .map(|(i, u)| sub(i as u8, u, &[true, true]))
            .collect();
        let eligible = |r: &RoundResult<u8>| {
            r.reputation
                .iter()
                .filter(|(_, x)| rp.committee_eligible(*x))
                .count()
        };
        let mut p = params(Rule::Mean, 1);
        p.min_trusted_voters = 3;
        let r = decide_round(&p, &[0.0, 0.0], None, &table, &[100, 101], &subs).unwrap();
        // The two-member committee is short of three: silent, and the six aggregated
        // agents climb over the threshold (0.399999 -> 0.41).
        assert!(r.outcomes.iter().all(|o| o.committee.is_none()));
        assert!(r
            .outcomes
            .iter()
            .all(|o| o.evidence == Evidence::IncludedSilent));
        assert_eq!(eligible(&r), 8);
        // Three members are not short: their silence (one trusted member of the three
        // voted) keeps the ceiling under the threshold.
        let r = decide_round(&p, &[0.0, 0.0], None, &table, &[100, 101, 0], &subs).unwrap();
        assert!(r.outcomes.iter().all(|o| o.committee.is_none()));
        assert_eq!(eligible(&r), 2);
        // The task's minimum of one: the two members decide, and acceptance lifts all six.
        p.min_trusted_voters = 1;
        let r = decide_round(&p, &[0.0, 0.0], None, &table, &[100, 101], &subs).unwrap();
        assert!(r.outcomes.iter().all(|o| o.committee == Some(true)));
        assert_eq!(eligible(&r), 8);
    }
}
