//! One round's outcome: who is included and why, the next global model, and the
//! reputation changes. The coordinator zome computes it, the integrity zome recomputes it
//! from the referenced entries, and the simulator runs it without conductors.
//!
//! For every submission, in this order:
//!
//! 1. **Proof**: a missing PoGQ proof, or one whose own measurement fails the task's
//!    threshold, excludes the update (`InvalidProof`, clear evidence).
//! 2. **Floor**: an agent below the reputation floor is not aggregated
//!    (`BelowReputationFloor`); the committee's opinion alone moves its reputation, so an
//!    agent can work its way back.
//! 3. **Committee**: the votes (one per committee member) reject the update when rejections
//!    outnumber acceptances, accept it when acceptances outnumber rejections, and say
//!    nothing on a tie or without votes.
//! 4. **Aggregator**: the task's rule runs on the remaining updates, weighted by reputation
//!    where the rule allows it. Selection rules (Krum, Multi-Krum, Bulyan) leave inputs
//!    out; the coordinate-wise rules and the geometric median flag far inputs, which are
//!    then dropped and the rule re-run on the rest; the plain mean flags but keeps.
//!
//! A committee rejection alone never excludes an update: a captured committee cannot
//! remove honest work, only slow its owner's reputation. The combinations:
//!
//! | aggregator | committee | verdict | evidence |
//! |---|---|---|---|
//! | outlier | rejects | `CommitteeRejected` | clear |
//! | outlier | silent | `AggregatorOutlier` | disputed |
//! | outlier | accepts | `AggregatorOutlier` | none (conflicting) |
//! | kept | rejects | included | disputed |
//! | kept | accepts or silent | included | accepted |
//!
//! The new model is `base + server_lr * aggregate`, element by element in `f32`. When the
//! remaining updates are too few for the rule's bound `f`, the largest `f` that fits is
//! used, and a rule that cannot run at all (Krum with two inputs) falls back to the
//! coordinate median.

use thiserror::Error;

use crate::aggregate::{AggregateError, Aggregation, AggregatorConfig, Rule};
use crate::pogq::{PogqMeasurement, PogqParams};
use crate::reputation::{Evidence, Reputation, ReputationParams};

/// Task parameters that decide a round.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RoundParams {
    /// Aggregation rule, bound `f` and NNM.
    pub aggregator: AggregatorConfig,
    /// PoGQ probe rate and threshold.
    pub pogq: PogqParams,
    /// Reputation rule.
    pub reputation: ReputationParams,
    /// Server learning rate applied to the aggregated update.
    pub server_lr: f32,
}

impl RoundParams {
    /// `rule` with Byzantine bound `f` (no NNM), the default PoGQ and reputation rules and
    /// a server learning rate of 1.
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
        }
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
    /// Accept (`true`) or reject, one per committee member that voted.
    pub votes: Vec<bool>,
}

/// Why an update was left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exclusion {
    /// No PoGQ proof, or the submitter's own measurement fails the threshold.
    InvalidProof,
    /// The agent's reputation is below the floor.
    BelowReputationFloor,
    /// The committee rejected it and the aggregator agreed.
    CommitteeRejected,
    /// The aggregator left it out.
    AggregatorOutlier,
}

impl Exclusion {
    /// A sentence for people.
    pub fn describe(self) -> &'static str {
        match self {
            Exclusion::InvalidProof => "missing or failing PoGQ proof",
            Exclusion::BelowReputationFloor => "reputation below the floor",
            Exclusion::CommitteeRejected => "rejected by the committee and the aggregator",
            Exclusion::AggregatorOutlier => "left out by the robust aggregator",
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
    /// The committee majority: `Some(true)` accept, `Some(false)` reject, `None` silent.
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
    /// The same agent submitted twice.
    #[error("submission {index} is the agent's second in this round")]
    DuplicateAgent {
        /// Index of the second submission.
        index: usize,
    },
    /// The server learning rate is not a finite positive number.
    #[error("server learning rate {0} must be finite and > 0")]
    InvalidServerLr(f32),
    /// The aggregator failed on valid input.
    #[error("aggregation failed: {0}")]
    Aggregate(#[from] AggregateError),
}

/// Decides a round (see the module docs).
///
/// `previous` is the reputation table after the previous round (agents not in it start at
/// the task's initial reputation); it must be sorted by agent, as [`RoundResult::reputation`]
/// is.
pub fn decide_round<K: Ord + Clone>(
    params: &RoundParams,
    base_model: &[f32],
    previous: &[(K, Reputation)],
    submissions: &[SubmissionInput<'_, K>],
) -> Result<RoundResult<K>, RoundError> {
    if !(params.server_lr.is_finite() && params.server_lr > 0.0) {
        return Err(RoundError::InvalidServerLr(params.server_lr));
    }
    let rp = &params.reputation;
    let reputation_of = |agent: &K| {
        previous
            .binary_search_by(|(k, _)| k.cmp(agent))
            .map_or(rp.initial, |i| previous[i].1)
    };
    let mut seen: Vec<&K> = Vec::with_capacity(submissions.len());
    for (index, s) in submissions.iter().enumerate() {
        if s.update.len() != base_model.len() {
            return Err(RoundError::LengthMismatch {
                index,
                expected: base_model.len(),
                found: s.update.len(),
            });
        }
        seen.push(&s.agent);
    }
    seen.sort();
    if let Some(w) = seen.windows(2).position(|w| w[0] == w[1]) {
        let dup = seen[w + 1];
        let index = submissions
            .iter()
            .enumerate()
            .filter(|(_, s)| &s.agent == dup)
            .nth(1)
            .map_or(0, |(i, _)| i);
        return Err(RoundError::DuplicateAgent { index });
    }

    let committee: Vec<Option<bool>> = submissions.iter().map(|s| majority(&s.votes)).collect();
    let mut outcomes: Vec<Option<SubmissionOutcome>> = vec![None; submissions.len()];
    let mut candidates = Vec::new();
    for (i, s) in submissions.iter().enumerate() {
        let proof_ok = s
            .proof
            .and_then(|m| m.verdict(&params.pogq).ok())
            .is_some_and(|v| v.passed());
        if !proof_ok {
            outcomes[i] = Some(SubmissionOutcome {
                verdict: Verdict::Excluded(Exclusion::InvalidProof),
                evidence: Evidence::RejectedClear,
                committee: committee[i],
                aggregator_outlier: false,
            });
        } else if !rp.above_floor(reputation_of(&s.agent)) {
            outcomes[i] = Some(SubmissionOutcome {
                verdict: Verdict::Excluded(Exclusion::BelowReputationFloor),
                evidence: match committee[i] {
                    Some(true) => Evidence::Accepted,
                    Some(false) => Evidence::RejectedClear,
                    None => Evidence::Absent,
                },
                committee: committee[i],
                aggregator_outlier: false,
            });
        } else {
            candidates.push(i);
        }
    }

    let (outlier_of, aggregate, effective_f) =
        aggregate_candidates(params, submissions, &candidates, &reputation_of)?;
    for (&i, &outlier) in candidates.iter().zip(&outlier_of) {
        let (verdict, evidence) = match (outlier, committee[i]) {
            (true, Some(false)) => (
                Verdict::Excluded(Exclusion::CommitteeRejected),
                Evidence::RejectedClear,
            ),
            (true, None) => (
                Verdict::Excluded(Exclusion::AggregatorOutlier),
                Evidence::RejectedDisputed,
            ),
            (true, Some(true)) => (
                Verdict::Excluded(Exclusion::AggregatorOutlier),
                Evidence::Absent,
            ),
            (false, Some(false)) => (Verdict::Included, Evidence::RejectedDisputed),
            (false, _) => (Verdict::Included, Evidence::Accepted),
        };
        outcomes[i] = Some(SubmissionOutcome {
            verdict,
            evidence,
            committee: committee[i],
            aggregator_outlier: outlier,
        });
    }
    let outcomes: Vec<SubmissionOutcome> = outcomes
        .into_iter()
        .map(|o| o.expect("every submission has an outcome"))
        .collect();

    let model = match aggregate {
        Some(update) => base_model
            .iter()
            .zip(&update)
            .map(|(w, u)| w + params.server_lr * u)
            .collect(),
        None => base_model.to_vec(),
    };

    let mut table: Vec<(K, Reputation)> = previous.to_vec();
    for (s, o) in submissions.iter().zip(&outcomes) {
        match table.binary_search_by(|(k, _)| k.cmp(&s.agent)) {
            Ok(pos) => table[pos].1 = rp.update(table[pos].1, o.evidence),
            Err(pos) => table.insert(pos, (s.agent.clone(), rp.update(rp.initial, o.evidence))),
        }
    }
    Ok(RoundResult {
        outcomes,
        model,
        reputation: table,
        effective_f,
    })
}

/// `Some(true)` when acceptances outnumber rejections, `Some(false)` the reverse.
fn majority(votes: &[bool]) -> Option<bool> {
    let accepts = votes.iter().filter(|&&v| v).count();
    let rejects = votes.len() - accepts;
    match accepts.cmp(&rejects) {
        std::cmp::Ordering::Greater => Some(true),
        std::cmp::Ordering::Less => Some(false),
        std::cmp::Ordering::Equal => None,
    }
}

/// The largest `f' <= f` the rule accepts for `n` inputs, if any.
fn fitting_f(rule: Rule, n: usize, f: usize) -> Option<usize> {
    let max = match rule {
        Rule::Krum | Rule::MultiKrum { .. } => n.checked_sub(3).map(|v| v / 2),
        Rule::Bulyan => n.checked_sub(3).map(|v| v / 4),
        Rule::Median | Rule::TrimmedMean | Rule::GeometricMedian(_) => {
            n.checked_sub(1).map(|v| v / 2)
        }
        Rule::Mean => Some(f),
    }?;
    Some(f.min(max))
}

type Aggregated = (Vec<bool>, Option<Vec<f32>>, u32);

/// Runs the aggregator on the candidates; returns their outlier flags, the aggregate
/// update (if any candidate) and the `f` used.
fn aggregate_candidates<K>(
    params: &RoundParams,
    submissions: &[SubmissionInput<'_, K>],
    candidates: &[usize],
    reputation_of: &impl Fn(&K) -> Reputation,
) -> Result<Aggregated, RoundError> {
    if candidates.is_empty() {
        return Ok((Vec::new(), None, params.aggregator.f));
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
    if !drops_flagged || !first.outliers.iter().any(|&o| o) {
        let outliers = if config.rule == Rule::Mean {
            vec![false; n]
        } else {
            first.outliers
        };
        return Ok((outliers, Some(first.aggregate), f as u32));
    }
    let kept: Vec<usize> = (0..n).filter(|&j| !first.outliers[j]).collect();
    let kept_updates: Vec<&[f32]> = kept.iter().map(|&j| updates[j]).collect();
    let kept_weights: Option<Vec<f64>> = weights.map(|w| kept.iter().map(|&j| w[j]).collect());
    let mut second = config;
    second.f = fitting_f(config.rule, kept.len(), f).unwrap_or(0) as u32;
    let again = second.aggregate(&kept_updates, kept_weights.as_deref())?;
    Ok((first.outliers, Some(again.aggregate), second.f))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn sub<'a>(agent: u8, update: &'a [f32], votes: &[bool]) -> SubmissionInput<'a, u8> {
        SubmissionInput {
            agent,
            update,
            proof: proof(1.0, 0.9),
            votes: votes.to_vec(),
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
        let r = decide_round(
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
        // m = n - f = 6 of 7 kept: every honest update is in the mean.
        assert!(r.outcomes[..6]
            .iter()
            .all(|o| o.verdict == Verdict::Included));
        assert!(
            (r.model[0] - 1.0).abs() < 0.05 && (r.model[1] - 1.0).abs() < 0.05,
            "{:?}",
            r.model
        );
        let rep = |k: u8| r.reputation.iter().find(|(a, _)| *a == k).unwrap().1;
        assert_eq!(rep(9), Reputation(250_000));
        assert_eq!(rep(0), Reputation(550_000));
    }

    #[test]
    fn a_captured_committee_cannot_exclude_honest_work() {
        let honest = [
            [1.0f32, 1.0],
            [1.1, 1.0],
            [0.9, 1.0],
            [1.0, 1.1],
            [1.0, 0.9],
        ];
        let subs: Vec<_> = honest
            .iter()
            .enumerate()
            .map(|(i, u)| sub(i as u8, u, &[false, false, true]))
            .collect();
        let r = decide_round(&params(Rule::Median, 1), &[0.0, 0.0], &[], &subs).unwrap();
        assert!(r.outcomes.iter().all(|o| o.verdict == Verdict::Included));
        assert!(r
            .outcomes
            .iter()
            .all(|o| o.evidence == Evidence::RejectedDisputed));
        assert!(r
            .reputation
            .iter()
            .all(|(_, rep)| *rep == Reputation(450_000)));
    }

    #[test]
    fn missing_or_failing_proofs_and_low_reputation_are_excluded_first() {
        let u = [1.0f32, 1.0];
        let mut subs = vec![
            sub(0, &u, &[]),
            sub(1, &u, &[]),
            sub(2, &u, &[true]),
            sub(3, &u, &[]),
        ];
        subs[0].proof = None;
        subs[1].proof = proof(1.0, 2.0);
        let previous = vec![(2u8, Reputation(50_000))];
        let r = decide_round(&params(Rule::Mean, 0), &[0.0, 0.0], &previous, &subs).unwrap();
        assert_eq!(
            r.outcomes[0].verdict,
            Verdict::Excluded(Exclusion::InvalidProof)
        );
        assert_eq!(
            r.outcomes[1].verdict,
            Verdict::Excluded(Exclusion::InvalidProof)
        );
        assert_eq!(
            r.outcomes[2].verdict,
            Verdict::Excluded(Exclusion::BelowReputationFloor)
        );
        // The committee accepted the low-reputation agent's work: it climbs back.
        assert_eq!(r.outcomes[2].evidence, Evidence::Accepted);
        assert_eq!(r.outcomes[3].verdict, Verdict::Included);
        assert_eq!(r.model, vec![1.0, 1.0]);
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
        let r = decide_round(&params(Rule::Krum, 2), &[0.0], &[], &subs).unwrap();
        assert_eq!(r.effective_f, 0);
        assert_eq!(r.model, vec![1.0]);
        // Two updates: Krum cannot run at all; the coordinate median of {1, 3} is 2.
        let r = decide_round(&params(Rule::Krum, 1), &[0.0], &[], &subs[..2]).unwrap();
        assert_eq!(r.model, vec![2.0]);
    }

    #[test]
    fn median_drops_flagged_inputs_and_reruns() {
        let updates = [[1.0f32], [1.1], [1.0], [1.05], [50.0]];
        let subs: Vec<_> = updates
            .iter()
            .enumerate()
            .map(|(i, u)| sub(i as u8, u, &[]))
            .collect();
        let r = decide_round(&params(Rule::Median, 1), &[0.0], &[], &subs).unwrap();
        assert_eq!(
            r.outcomes[4].verdict,
            Verdict::Excluded(Exclusion::AggregatorOutlier)
        );
        assert_eq!(r.outcomes[4].evidence, Evidence::RejectedDisputed);
        assert_eq!(r.model, vec![1.025]);
    }

    #[test]
    fn no_submissions_keep_the_model_and_duplicates_are_errors() {
        let r = decide_round::<u8>(&params(Rule::Krum, 1), &[0.5], &[], &[]).unwrap();
        assert_eq!(r.model, vec![0.5]);
        let u = [1.0f32];
        let subs = vec![sub(1, &u, &[]), sub(1, &u, &[])];
        assert_eq!(
            decide_round(&params(Rule::Mean, 0), &[0.0], &[], &subs),
            Err(RoundError::DuplicateAgent { index: 1 })
        );
        let short = [1.0f32];
        assert!(matches!(
            decide_round(
                &params(Rule::Mean, 0),
                &[0.0, 0.0],
                &[],
                &[sub(0, &short, &[])]
            ),
            Err(RoundError::LengthMismatch { .. })
        ));
    }
}
