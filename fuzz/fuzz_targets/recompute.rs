//! The integrity zome's recomputation of a round (`aggregate::compute_aggregate`), the
//! function validation runs on every `RoundAggregate`, on structured evidence: a task of
//! the fixture's shape with any rule, a few submissions with arbitrary updates, proofs and
//! committee votes, an optional previous aggregate, and with it an optional earlier model
//! (the task then gives reputation only to aligned updates). Errors are fine; an aggregate that
//! is computed must pass the zome's own checks on it, encode as an entry that decodes
//! again, be independent of the evidence's order, and hold a model that the next round
//! can decode.
#![no_main]

use arbitrary::Arbitrary;
use federated_learning_integrity::aggregate::{
    check_outcomes, check_recomputation, compute_aggregate, SubmissionEvidence,
};
use federated_learning_integrity::task::{decode_model, validate_create_task};
use federated_learning_integrity::wire::decode_entry;
use federated_learning_integrity::{CommitteeVote, PogqProof, ReputationEntry, RoundAggregate};
use fl_core::aggregate::{Rule, WeiszfeldParams};
use fl_core::{Encoding, Reputation, Tensor};
use libfuzzer_sys::fuzz_target;
use mycelix_fl_fuzz::{
    action_hash, agent, context, encode, entry_bytes, fixture, task, Val, MODEL_LEN,
};

#[derive(Arbitrary, Debug)]
struct Sub {
    hash: u8,
    author: u8,
    update: Vec<Val>,
    proof: Option<(f64, f64, u32)>,
    votes: Vec<(u8, u8, bool, f64, f64)>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    int8_block: Option<u8>,
    rule: u8,
    f: u8,
    nnm: bool,
    server_lr: f32,
    subs: Vec<Sub>,
    previous: Option<Previous>,
}

/// The previous round's model and reputation table, `(agent, millionths)`, and the model
/// one round before it (`RoundParams::aligned_credit` on when present).
#[derive(Arbitrary, Debug)]
struct Previous {
    model: Vec<Val>,
    table: Vec<(u8, u32)>,
    earlier: Option<Vec<Val>>,
}

fn values(vals: &[Val]) -> Vec<f32> {
    (0..MODEL_LEN as usize)
        .map(|i| vals.get(i % vals.len().max(1)).map_or(0.0, |v| v.get()))
        .collect()
}

fuzz_target!(|input: Input| {
    if input.subs.len() > 10 {
        return;
    }
    let fx = fixture();
    let encoding = match input.int8_block {
        None => Encoding::F32,
        Some(b) => Encoding::Int8 {
            block: u32::from(b % 9) + 1,
        },
    };
    let rule = match input.rule % 7 {
        0 => Rule::Mean,
        1 => Rule::Krum,
        2 => Rule::MultiKrum { m: None },
        3 => Rule::Median,
        4 => Rule::TrimmedMean,
        5 => Rule::GeometricMedian(WeiszfeldParams::default()),
        _ => Rule::Bulyan,
    };
    let f = u32::from(input.f % 3);
    let mut t = task(encoding, rule, f, 4 * f + 3);
    t.round.aggregator.nnm = input.nnm;
    t.round.server_lr = input.server_lr;
    let earlier = match input.previous.as_ref().and_then(|p| p.earlier.as_ref()) {
        None => None,
        Some(e) => match Tensor::new(values(e)) {
            Ok(e) => Some(e.encode(encoding).unwrap()),
            Err(_) => return,
        },
    };
    t.round.aligned_credit = earlier.is_some();
    if validate_create_task(&t).is_err() {
        return;
    }
    let previous = match &input.previous {
        None => None,
        Some(Previous { model, table, .. }) => {
            let Ok(model) = Tensor::new(values(model)) else {
                return;
            };
            let mut reputation: Vec<ReputationEntry> = table
                .iter()
                .take(16)
                .map(|&(a, r)| ReputationEntry {
                    agent: agent(a % 12),
                    reputation: Reputation(r % 1_000_001),
                    missed: r % 16,
                    anchor: Vec::new(),
                })
                .collect();
            reputation.sort_by(|a, b| a.agent.cmp(&b.agent));
            reputation.dedup_by(|a, b| a.agent == b.agent);
            Some(RoundAggregate {
                task: fx.task_hash.clone(),
                round: 0,
                base: fx.task_hash.clone(),
                outcomes: Vec::new(),
                model: model.encode(encoding).unwrap(),
                reputation,
                deadline: hdi::prelude::Timestamp::from_micros(2_000),
                endorsed: true,
            })
        }
    };
    let base = if previous.is_some() {
        action_hash(200)
    } else {
        fx.task_hash.clone()
    };
    let round = u32::from(previous.is_some());
    let mut evidence = Vec::new();
    for s in &input.subs {
        let Ok(update) = Tensor::new(values(&s.update)) else {
            return;
        };
        let hash = action_hash(s.hash);
        let mut submission = fx.submission.clone();
        submission.round = round;
        submission.base = base.clone();
        submission.update = update.encode(encoding).unwrap();
        if let Some((loss_before, loss_after, samples)) = s.proof {
            submission.proof = PogqProof {
                loss_before,
                loss_after,
                samples,
                signature: Vec::new(),
            };
        }
        evidence.push(SubmissionEvidence {
            hash: hash.clone(),
            author: agent(s.author % 12),
            submission,
            votes: s
                .votes
                .iter()
                .take(12)
                .map(|&(ballot, member, accept, loss_before, loss_after)| {
                    (
                        action_hash(ballot),
                        agent(member % 12),
                        CommitteeVote {
                            submission: hash.clone(),
                            loss_before,
                            loss_after,
                            samples: 1,
                            accept,
                        },
                    )
                })
                .collect(),
        });
    }
    let unique_hashes = {
        let mut h: Vec<_> = evidence.iter().map(|e| &e.hash).collect();
        h.sort();
        h.dedup();
        h.len() == evidence.len()
    };
    let reversed: Vec<_> = evidence.iter().rev().cloned().collect();
    // The committee: the members agent(0..12) that votes come from.
    let committee: Vec<_> = (0..12u8).map(agent).collect();
    let ctx = context(
        &fx.task_hash,
        &t,
        round,
        &base,
        previous.as_ref(),
        committee,
    );
    let compute = |evidence| compute_aggregate(&ctx, earlier.as_deref(), evidence);
    let Ok(a) = compute(evidence) else {
        return;
    };
    assert_eq!(a.outcomes.len(), input.subs.len());
    assert_eq!(check_recomputation(&a, &a), Ok(()));
    if unique_hashes {
        if a.outcomes.len() >= t.quorum as usize {
            assert_eq!(check_outcomes(&a), Ok(()));
        }
        assert_eq!(
            compute(reversed).as_ref(),
            Ok(&a),
            "order-dependent recomputation"
        );
    }
    if let Err(e) = decode_model(&t, &a.model) {
        panic!("the next round cannot decode this round's model: {e}");
    }
    let bytes = encode(a.clone());
    let back: RoundAggregate = decode_entry(entry_bytes(&bytes)).expect("aggregate decodes");
    assert_eq!(back, a);
});
