//! The simulation backend: the protocol's rules without conductors, for large sweeps.
//!
//! Every round, exactly as the hApp decides it: honest peers train on their own shard and
//! publish `local - global` (or, under [`Protocol::Dsgd`], one momentum step, as in
//! ByzFL's benchmark) with a truthful PoGQ proof measured on their own validation data; attackers train on their own (possibly poisoned) data, craft their update with
//! the configured attack and publish a proof that claims an improvement. Updates with
//! non-finite values never reach the round (validation rejects them). From round 1 on a
//! committee is drawn with fl_core's committee draw from the reputation table; honest
//! members vote by re-scoring each update on their own validation data, Byzantine members
//! vote the opposite way. `fl_core::decide_round` then gives verdicts, the next model and
//! the reputation table, and `fl_core::age_for_absence` ages it as the integrity zome does.
//! The simulation has no clock: every peer is online, so the schedule, its fallbacks and
//! carry-over rounds (docs/PROTOCOL.md) never come into play.
//!
//! Ground truth (who is Byzantine) is used only to compute the metrics afterwards:
//! TPR = excluded Byzantine submissions / Byzantine submissions, FPR = excluded honest
//! submissions / honest submissions.

use fl_core::{
    age_for_absence, decide_round, draw_committee, Reputation, SubmissionInput, Verdict,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::cohort::Cohort;
pub use crate::experiment::{Experiment, Protocol, RoundReport, Shards, SimError};
use fl_learn::data::Dataset;

/// The global model an experiment starts from: what [`simulate`] trains, before its first
/// round (ByzFL's first evaluation).
pub fn initial_model(exp: &Experiment, train: &Dataset) -> Result<Vec<f32>, SimError> {
    let mut rng = ChaCha8Rng::seed_from_u64(exp.seed);
    Cohort::new(exp, train, &mut rng)?;
    Ok(exp.model.init(&mut rng))
}

/// Runs an experiment on `train` (split across peers) and reports against `test`.
/// `on_round` sees every round as it finishes (progress output).
pub fn simulate(
    exp: &Experiment,
    train: &Dataset,
    test: &Dataset,
    mut on_round: impl FnMut(&RoundReport),
) -> Result<Vec<RoundReport>, SimError> {
    let mut rng = ChaCha8Rng::seed_from_u64(exp.seed);
    let cohort = Cohort::new(exp, train, &mut rng)?;
    let mut model = exp.model.init(&mut rng);
    // The global model one round before `model` (`None` in round 0).
    let mut earlier: Option<Vec<f32>> = None;
    let mut reputation: Vec<(usize, Reputation)> = Vec::new();
    let mut missed: Vec<(usize, u32)> = Vec::new();
    let mut reports = Vec::with_capacity(exp.rounds);
    let mut momenta = Vec::new();
    for round in 0..exp.rounds {
        // What every peer can read on the DHT: the previous round's global step.
        let last_step: Option<Vec<f32>> = earlier
            .as_ref()
            .map(|e| model.iter().zip(e).map(|(m, e)| m - e).collect());
        let last_step = last_step.as_deref();
        let updates = match exp.protocol {
            Protocol::LocalTraining => cohort.updates(exp, &model, last_step, &mut rng),
            Protocol::Dsgd => cohort.dsgd_updates(exp, &model, &mut momenta, last_step, &mut rng),
        };
        // Validation rejects non-finite updates, and updates above the task's norm bound,
        // before they reach the round.
        let valid: Vec<usize> = (0..exp.peers)
            .filter(|&p| {
                updates[p].iter().all(|v| v.is_finite()) && exp.round.within_norm_bound(&updates[p])
            })
            .collect();
        let committee = if round == 0 {
            Vec::new()
        } else {
            let eligible = reputation
                .iter()
                .filter(|(_, r)| exp.round.reputation.committee_eligible(*r))
                .count();
            // The draw hashes each candidate's key bytes: a peer's index, big-endian.
            let keyed: Vec<([u8; 8], Reputation)> = reputation
                .iter()
                .map(|&(p, r)| ((p as u64).to_be_bytes(), r))
                .collect();
            draw_committee(
                rng.random(),
                &keyed,
                exp.committee_size.min(eligible),
                exp.round.reputation.committee_threshold,
            )
            .unwrap_or_default()
            .into_iter()
            .map(|k| u64::from_be_bytes(k) as usize)
            .collect()
        };
        // Each member's ballot over every valid submission, judged as a whole.
        let scored: Vec<(usize, &[f32])> = valid.iter().map(|&p| (p, &updates[p][..])).collect();
        let ballots: Vec<Vec<bool>> = committee
            .iter()
            .map(|&m| {
                let ballot = cohort.ballot(exp, m, &model, &scored);
                let judged = fl_core::ballot_verdicts(&ballot, &exp.round.pogq)?;
                Ok(judged.verdicts.iter().map(|v| v.passed()).collect())
            })
            .collect::<Result<_, SimError>>()?;
        let inputs: Vec<SubmissionInput<'_, usize>> = valid
            .iter()
            .enumerate()
            .map(|(i, &p)| SubmissionInput {
                agent: p,
                update: &updates[p],
                proof: Some(cohort.proof(exp, p, &model, &updates[p])),
                votes: committee
                    .iter()
                    .zip(&ballots)
                    .map(|(&m, accepts)| (m, accepts[i]))
                    .collect(),
            })
            .collect();
        let mut result = decide_round(
            &exp.round,
            &model,
            earlier.as_deref(),
            &reputation,
            &committee,
            &inputs,
        )?;
        // Absence, as the integrity zome ages the table: listed submitters (not turned away
        // from a full table) and the committee members whose ballots count took part.
        let table_full = Verdict::Excluded(fl_core::Exclusion::TableFull);
        let mut present: Vec<usize> = inputs
            .iter()
            .zip(&result.outcomes)
            .filter(|(_, o)| o.verdict != table_full)
            .map(|(input, _)| input.agent)
            .chain(committee.iter().copied())
            .collect();
        present.sort_unstable();
        present.dedup();
        let counts = age_for_absence(
            &exp.round.reputation,
            &mut result.reputation,
            &missed,
            &present,
        );
        missed = result
            .reputation
            .iter()
            .map(|&(p, _)| p)
            .zip(counts)
            .collect();
        earlier = Some(std::mem::replace(&mut model, result.model));
        reputation = result.reputation;

        let mut excluded: Vec<(usize, String)> = (0..exp.peers)
            .filter(|p| !valid.contains(p))
            .map(|p| (p, "rejected by validation (non-finite values)".to_string()))
            .collect();
        for (input, outcome) in inputs.iter().zip(&result.outcomes) {
            if let Verdict::Excluded(reason) = outcome.verdict {
                excluded.push((input.agent, reason.describe().to_string()));
            }
        }
        let evaluated = (round + 1) % exp.evaluate_every.max(1) == 0 || round + 1 == exp.rounds;
        let report = RoundReport::new(
            round,
            cohort.truth(),
            &[],
            if evaluated {
                (
                    exp.model.accuracy(&model, test.x.view(), &test.y),
                    exp.model.loss(&model, test.x.view(), &test.y),
                )
            } else {
                (f64::NAN, f64::NAN)
            },
            excluded,
        );
        on_round(&report);
        reports.push(report);
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;
    use federated_learning_integrity::Admission;
    use fl_core::RoundParams;
    use fl_learn::attacks::Attack;
    use fl_learn::data::builtin;
    use fl_learn::model::Model;
    use fl_learn::partition::Scheme;
    use fl_learn::train::Sgd;

    fn experiment(attack: Attack, byzantine: usize) -> Experiment {
        Experiment {
            peers: 10,
            byzantine,
            attack,
            round: RoundParams::new(fl_core::aggregate::Rule::MultiKrum { m: None }, 3),
            committee_size: 5,
            rounds: 4,
            scheme: Scheme::Dirichlet { alpha: 0.5 },
            model: Model::LogReg {
                inputs: 64,
                classes: 10,
            },
            sgd: Sgd::default(),
            preprocess: fl_core::Preprocess::None,
            validation_fraction: 0.2,
            seed: 11,
            admission: Admission::CLOSED,
            protocol: Protocol::LocalTraining,
            shards: Shards::AllPeers,
            evaluate_every: 1,
        }
    }

    fn digits() -> (Dataset, Dataset) {
        let (mut train, mut test) = builtin("digits").unwrap().split(0.2, 1);
        train.standardize(&mut [&mut test]);
        (train, test)
    }

    #[test]
    fn sign_flip_attackers_are_caught_and_the_model_still_learns() {
        let (train, test) = digits();
        let clean = simulate(&experiment(Attack::Zero, 0), &train, &test, |_| {}).unwrap();
        let attacked = simulate(
            &experiment(Attack::SignFlip { scale: 4.0 }, 3),
            &train,
            &test,
            |_| {},
        )
        .unwrap();
        let last = attacked.last().unwrap();
        assert!(attacked[1..].iter().all(|r| r.tpr == 1.0), "{attacked:?}");
        assert!(
            last.accuracy > clean.last().unwrap().accuracy - 0.05,
            "{} vs {}",
            last.accuracy,
            clean.last().unwrap().accuracy
        );
        // Ten peers, four rounds, Multi-Krum leaving out f = 3 every round: the clean run
        // itself reaches about 0.80 here; the model has learned far beyond chance (0.1).
        assert!(last.accuracy > 0.7, "{attacked:?}");
    }

    #[test]
    fn non_finite_updates_never_reach_the_round() {
        let (train, test) = digits();
        let r = simulate(&experiment(Attack::NonFinite, 3), &train, &test, |_| {}).unwrap();
        assert!(r.iter().all(|x| x.tpr == 1.0));
        assert!(r[0]
            .excluded
            .iter()
            .filter(|(p, _)| *p < 3)
            .all(|(_, why)| why.contains("non-finite")));
    }

    #[test]
    fn lying_members_reject_every_honest_submission_under_either_vote_rule() {
        let (train, _) = digits();
        let mut exp = experiment(Attack::Zero, 3);
        let mut rng = ChaCha8Rng::seed_from_u64(exp.seed);
        let cohort = Cohort::new(&exp, &train, &mut rng).unwrap();
        let model = exp.model.init(&mut rng);
        let zero = vec![0.0f32; model.len()];
        // Submitters 9, 1, 4, 0, 7, 2, 5: three colluders (0, 1, 2), four honest.
        let subs: Vec<(usize, &[f32])> = [9, 1, 4, 0, 7, 2, 5]
            .iter()
            .map(|&p| (p, &zero[..]))
            .collect();
        let rejected = |exp: &Experiment| -> Vec<usize> {
            let ballot = cohort.ballot(exp, 2, &model, &subs);
            let judged = fl_core::ballot_verdicts(&ballot, &exp.round.pogq).unwrap();
            let mut r: Vec<usize> = subs
                .iter()
                .zip(&judged.verdicts)
                .filter(|(_, v)| !v.passed())
                .map(|((p, _), _)| *p)
                .collect();
            r.sort();
            r
        };
        // A claimed 50 % loss increase is beyond the ballot-relative floor (-3 %).
        assert_eq!(rejected(&exp), vec![4, 5, 7, 9]);
        exp.round.pogq.mad_band = 0.0;
        assert_eq!(rejected(&exp), vec![4, 5, 7, 9]);
    }
}
