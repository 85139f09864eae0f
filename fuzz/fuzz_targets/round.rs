//! `fl_core::decide_round` and `fl_core::trust::voter_standing` on structured input: a few
//! agents, small models, arbitrary proofs, votes, reputations and task parameters (those
//! that pass the task's own checks, as validation guarantees). Errors are fine; panics
//! are not, and a decided round must be consistent: one outcome per submission, the
//! model's length, a sorted reputation table within [0, 1], trusted voters sorted.
#![no_main]

use arbitrary::Arbitrary;
use fl_core::aggregate::Rule;
use fl_core::trust::voter_standing;
use fl_core::{
    decide_round, PogqMeasurement, PogqParams, Reputation, RoundParams, SubmissionInput,
};
use libfuzzer_sys::fuzz_target;
use mycelix_fl_fuzz::{reputation_params, rule_of, Val};

#[derive(Arbitrary, Debug)]
struct Sub {
    agent: u8,
    update: Vec<Val>,
    proof: Option<(f64, f64, u32)>,
    votes: Vec<(u8, bool)>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    rule: u8,
    f: u8,
    nnm: bool,
    multi_m: Option<u8>,
    weiszfeld: (f64, u8, f64),
    server_lr: f32,
    pogq: (f32, f64, f64, f64),
    reputation: [u32; 6],
    default_reputation: bool,
    dims: u8,
    base: Vec<Val>,
    earlier: Option<Vec<Val>>,
    subs: Vec<Sub>,
    previous: Vec<(u8, u32)>,
    sort_previous: bool,
}

fn rule(input: &Input) -> Rule {
    rule_of(input.rule, input.multi_m, input.weiszfeld)
}

/// `len` values from `vals`, cycled (zeros if none).
fn vector(vals: &[Val], len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| vals.get(i % vals.len().max(1)).map_or(0.0, |v| v.get()))
        .collect()
}

fuzz_target!(|input: Input| {
    if input.subs.len() > 16 {
        return;
    }
    let mut params = RoundParams::new(rule(&input), u32::from(input.f % 8));
    params.aggregator.nnm = input.nnm;
    params.server_lr = input.server_lr;
    params.aligned_credit = input.earlier.is_some();
    params.pogq = PogqParams {
        probe_lr: input.pogq.0,
        min_score: input.pogq.1,
        mad_band: input.pogq.2,
        loss_scale: input.pogq.3,
    };
    if !input.default_reputation {
        params.reputation = reputation_params(input.reputation);
    }
    if params.pogq.check().is_err() || params.reputation.check().is_err() {
        return;
    }
    let dims = usize::from(input.dims % 6);
    let base = vector(&input.base, dims);
    if base.iter().any(|v| !v.is_finite()) {
        return;
    }
    let updates: Vec<Vec<f32>> = input
        .subs
        .iter()
        .map(|s| {
            // An empty update list stands for a wrong length.
            let len = if s.update.is_empty() { dims + 1 } else { dims };
            vector(&s.update, len)
        })
        .collect();
    let subs: Vec<SubmissionInput<'_, u8>> = input
        .subs
        .iter()
        .zip(&updates)
        .map(|(s, u)| SubmissionInput {
            agent: s.agent % 24,
            update: u,
            proof: s
                .proof
                .map(|(loss_before, loss_after, samples)| PogqMeasurement {
                    loss_before,
                    loss_after,
                    samples,
                }),
            votes: s.votes.iter().take(32).map(|&(k, a)| (k % 24, a)).collect(),
        })
        .collect();
    let mut previous: Vec<(u8, Reputation)> = input
        .previous
        .iter()
        .take(32)
        .map(|&(k, r)| (k % 24, Reputation(r)))
        .collect();
    if input.sort_previous {
        previous.sort();
        previous.dedup_by_key(|(k, _)| *k);
    }

    let authors: Vec<&u8> = subs.iter().map(|s| &s.agent).collect();
    let ballots: Vec<&[(u8, bool)]> = subs.iter().map(|s| s.votes.as_slice()).collect();
    // The committee: the agents 0..12 (votes by the others are ignored).
    let committee: Vec<u8> = (0..12).collect();
    let trust = voter_standing(&committee, &authors, &ballots, |k| u64::from(*k) * 1_000);
    assert!(trust.windows(2).all(|w| w[0].0 < w[1].0));

    let earlier = input.earlier.as_ref().map(|e| vector(e, dims));
    let Ok(r) = decide_round(
        &params,
        &base,
        earlier.as_deref(),
        &previous,
        &committee,
        &subs,
    ) else {
        return;
    };
    assert_eq!(r.outcomes.len(), subs.len());
    assert_eq!(r.model.len(), base.len());
    assert!(r.effective_f <= params.aggregator.f);
    if input.sort_previous {
        assert!(r.reputation.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(r
            .reputation
            .iter()
            .all(|(_, rep)| *rep <= Reputation::ONE || previous.iter().any(|(_, p)| p == rep)));
    }
    assert!(r.distrusted.windows(2).all(|w| w[0] < w[1]));
});
