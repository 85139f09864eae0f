//! Property tests: the guarantees every aggregator, the codec, the reputation rule and the
//! committee draw make for all inputs, not just hand-picked ones.

use fl_core::aggregate::{self, AggregatorConfig, Rule, WeiszfeldParams};
use fl_core::{draw_committee, Encoding, Evidence, Reputation, ReputationParams, Tensor};
use proptest::prelude::*;

/// `n` inputs of length `d` with values in [-100, 100].
fn inputs(
    n: std::ops::Range<usize>,
    d: std::ops::Range<usize>,
) -> impl Strategy<Value = Vec<Vec<f32>>> {
    (n, d).prop_flat_map(|(n, d)| {
        prop::collection::vec(prop::collection::vec(-100.0f32..100.0, d), n)
    })
}

fn permuted<T: Clone>(x: &[T], seed: u64) -> (Vec<T>, Vec<usize>) {
    // Fisher-Yates driven by a fixed LCG: a different permutation per seed.
    let mut order: Vec<usize> = (0..x.len()).collect();
    let mut s = seed | 1;
    for i in (1..order.len()).rev() {
        s = s
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        order.swap(i, (s >> 33) as usize % (i + 1));
    }
    (order.iter().map(|&i| x[i].clone()).collect(), order)
}

fn close(a: &[f32], b: &[f32], tol: f32) -> bool {
    a.iter()
        .zip(b)
        .all(|(x, y)| (x - y).abs() <= tol * (1.0 + x.abs().max(y.abs())))
}

fn config(rule: Rule, f: u32) -> AggregatorConfig {
    AggregatorConfig {
        rule,
        f,
        nnm: false,
    }
}

const ALL_RULES: [Rule; 7] = [
    Rule::Mean,
    Rule::Krum,
    Rule::MultiKrum { m: None },
    Rule::Median,
    Rule::TrimmedMean,
    Rule::GeometricMedian(WeiszfeldParams {
        nu: 1e-6,
        max_iterations: 200,
        tolerance: 0.0,
    }),
    Rule::Bulyan,
];

/// Any finite `f32`, weighted towards the extremes an attacker would send: `+-f32::MAX`,
/// huge and tiny normals, and ordinary small values.
fn extreme() -> impl Strategy<Value = f32> {
    prop_oneof![
        4 => -1.0f32..1.0,
        1 => Just(f32::MAX),
        1 => Just(-f32::MAX),
        1 => prop::num::f32::POSITIVE | prop::num::f32::NEGATIVE | prop::num::f32::NORMAL
            | prop::num::f32::SUBNORMAL | prop::num::f32::ZERO,
    ]
}

/// `n` inputs of length `d`, any finite values (see [`extreme`]).
fn extreme_inputs(
    n: std::ops::Range<usize>,
    d: std::ops::Range<usize>,
) -> impl Strategy<Value = Vec<Vec<f32>>> {
    (n, d).prop_flat_map(|(n, d)| prop::collection::vec(prop::collection::vec(extreme(), d), n))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// For any finite inputs, however large: no distance or score is NaN or infinite, and
    /// every rule's aggregate is finite and inside the inputs' range at every coordinate
    /// (so no overflow can hand an input a score of "close", and no rule can produce a
    /// model outside what the inputs span).
    #[test]
    fn no_finite_input_makes_a_score_nan_or_an_aggregate_unbounded(
        x in extreme_inputs(7..12, 1..40),
    ) {
        let dist = aggregate::distance::pairwise_sq_distances(&x);
        prop_assert!(dist.iter().all(|d| d.is_finite() && *d >= 0.0), "{:?}", dist);
        let f = ((x.len() - 3) / 4) as u32;
        for rule in ALL_RULES {
            for nnm in [false, true] {
                let a = AggregatorConfig { rule, f, nnm }.aggregate(&x, None).unwrap();
                prop_assert!(a.scores.iter().all(|s| s.is_finite() && *s >= 0.0), "{:?} nnm={}: {:?}", rule, nnm, a.scores);
                for (c, v) in a.aggregate.iter().enumerate() {
                    let (lo, hi) = x.iter().map(|u| u[c]).fold((f32::MAX, -f32::MAX), |(lo, hi), u| (lo.min(u), hi.max(u)));
                    let slack = 1e-6 * lo.abs().max(hi.abs());
                    prop_assert!(v.is_finite() && *v >= lo - slack && *v <= hi + slack,
                        "{:?} nnm={}: coordinate {} is {} outside [{}, {}]", rule, nnm, c, v, lo, hi);
                }
            }
        }
    }

    /// A round never includes an update above the task's norm bound, whatever the others
    /// are, and its next model stays finite.
    #[test]
    fn nothing_above_the_norm_bound_is_included(
        x in extreme_inputs(7..12, 1..24),
        bound in 0.5f32..20.0,
        rule in 0usize..7,
    ) {
        let mut params = fl_core::RoundParams::new(ALL_RULES[rule], ((x.len() - 3) / 4) as u32);
        params.max_update_norm = bound;
        let subs: Vec<fl_core::SubmissionInput<'_, usize>> = x
            .iter()
            .enumerate()
            .map(|(i, u)| fl_core::SubmissionInput {
                agent: i,
                update: u,
                proof: Some(fl_core::PogqMeasurement { loss_before: 1.0, loss_after: 0.9, samples: 10 }),
                votes: Vec::new(),
            })
            .collect();
        let base = vec![0.0f32; x[0].len()];
        let r = fl_core::decide_round(&params, &base, None, &[], &[], &subs).unwrap();
        for (u, o) in x.iter().zip(&r.outcomes) {
            let norm = aggregate::distance::l2_norm(u);
            if norm > f64::from(bound) {
                prop_assert_eq!(o.verdict, fl_core::Verdict::Excluded(fl_core::Exclusion::AboveNormBound));
            }
        }
        prop_assert!(r.model.iter().all(|v| v.is_finite()));
        let step = aggregate::distance::l2_norm(&r.model);
        // Every kept rule lies in the coordinate range of bounded inputs: at most sqrt(n) bounds.
        prop_assert!(step <= f64::from(bound) * (x.len() as f64).sqrt() * (1.0 + 1e-6), "{}", step);
    }

    /// Order of the inputs does not matter: bit for bit for the rules that select or read
    /// sorted columns, to rounding for the ones that sum in input order.
    #[test]
    fn every_rule_is_permutation_invariant(x in inputs(7..16, 1..40), seed in any::<u64>()) {
        // Distinct inputs (shrinking would otherwise make many equal, and Krum ties are
        // broken by index, which a permutation changes).
        let x: Vec<Vec<f32>> = x
            .into_iter()
            .enumerate()
            .map(|(i, v)| v.into_iter().enumerate().map(|(c, a)| a + ((i * 7919 + c * 104_729) % 1000) as f32 * 1e-3).collect())
            .collect();
        let f = ((x.len() - 3) / 4) as u32;
        let (y, order) = permuted(&x, seed);
        for rule in ALL_RULES {
            for nnm in [false, true] {
                let cfg = AggregatorConfig { rule, f, nnm };
                let a = cfg.aggregate(&x, None).unwrap();
                let b = cfg.aggregate(&y, None).unwrap();
                let exact = !nnm && matches!(rule, Rule::Krum | Rule::Median | Rule::TrimmedMean | Rule::Bulyan);
                if exact {
                    prop_assert_eq!(&a.aggregate, &b.aggregate, "{:?}", rule);
                } else {
                    prop_assert!(close(&a.aggregate, &b.aggregate, 1e-4), "{:?} nnm={}", rule, nnm);
                }
                let mut scores = a.scores.clone();
                scores.sort_by(f64::total_cmp);
                let tied = scores.windows(2).any(|w| w[0] == w[1]);
                // Ties are broken by index, which a permutation changes.
                if !nnm && exact && !tied {
                    for (j, &i) in order.iter().enumerate() {
                        prop_assert_eq!(a.outliers[i], b.outliers[j], "{:?}", rule);
                    }
                }
            }
        }
    }

    /// Integer weights act like repeating inputs (mean, geometric median), and scaling
    /// every weight changes nothing (Multi-Krum).
    #[test]
    fn weights_act_as_multiplicities(x in inputs(3..8, 1..20), w in prop::collection::vec(1u32..4, 8)) {
        let w: Vec<f64> = w[..x.len()].iter().map(|&v| f64::from(v)).collect();
        let repeated: Vec<Vec<f32>> = x.iter().zip(&w).flat_map(|(v, &k)| std::iter::repeat_n(v.clone(), k as usize)).collect();
        let weighted = aggregate::mean(&x, Some(&w)).unwrap().aggregate;
        let plain = aggregate::mean(&repeated, None).unwrap().aggregate;
        prop_assert!(close(&weighted, &plain, 1e-5));

        let p = WeiszfeldParams { nu: 1e-9, max_iterations: 500, tolerance: 0.0 };
        let weighted = aggregate::geometric_median(&x, 0, Some(&w), p).unwrap().aggregate;
        let plain = aggregate::geometric_median(&repeated, 0, None, p).unwrap().aggregate;
        prop_assert!(close(&weighted, &plain, 1e-3), "{:?} vs {:?}", weighted, plain);

        if x.len() >= 5 {
            let scaled: Vec<f64> = w.iter().map(|v| v * 3.5).collect();
            let a = aggregate::multi_krum(&x, 1, 3, Some(&w)).unwrap().aggregate;
            let b = aggregate::multi_krum(&x, 1, 3, Some(&scaled)).unwrap().aggregate;
            prop_assert!(close(&a, &b, 1e-6));
        }
    }

    /// With at most f arbitrary inputs, median and trimmed mean stay within the honest
    /// inputs' range on every coordinate.
    #[test]
    fn coordinate_rules_stay_in_the_honest_range(
        honest in inputs(4..14, 1..30),
        attack in prop::collection::vec(prop_oneof![Just(-1e30f32), Just(1e30f32), -1e6f32..1e6], 30 * 6),
    ) {
        let d = honest[0].len();
        let f = (honest.len() - 1) / 2;
        let f = f.min(6);
        let mut x = honest.clone();
        for k in 0..f {
            x.push(attack[k * 30..k * 30 + d].to_vec());
        }
        let median = aggregate::coordinate_median(&x, f).unwrap().aggregate;
        let trimmed = aggregate::trimmed_mean(&x, f).unwrap().aggregate;
        for c in 0..d {
            let lo = honest.iter().map(|v| v[c]).fold(f32::INFINITY, f32::min);
            let hi = honest.iter().map(|v| v[c]).fold(f32::NEG_INFINITY, f32::max);
            prop_assert!(lo <= median[c] && median[c] <= hi, "median {} not in [{lo}, {hi}]", median[c]);
            // The trimmed mean's f64 sum can land one f32 step outside the range.
            let slack = (hi.abs().max(lo.abs())) * 1e-6;
            prop_assert!(lo - slack <= trimmed[c] && trimmed[c] <= hi + slack, "trimmed {} not in [{lo}, {hi}]", trimmed[c]);
        }
    }

    /// Krum and Multi-Krum never select an input far from a tight honest cluster, however
    /// the f attackers are placed (even all at one point). Bulyan may select colluding
    /// attackers in its last Krum rounds (few inputs remain, one neighbour counts), but its
    /// coordinate-wise stage keeps the aggregate inside the honest range.
    #[test]
    fn selection_rules_never_pick_a_far_input(
        n in 7usize..20,
        d in 2usize..24,
        center in prop::collection::vec(-10.0f32..10.0, 24),
        noise in prop::collection::vec(-0.01f32..0.01, 24 * 20),
        far in prop::collection::vec(prop_oneof![Just(-1.0f32), Just(1.0f32)], 24 * 20),
        colluding in any::<bool>(),
    ) {
        // Krum's bound: honest scores <= (n-f-2) (2r)^2 < 2 (D-r)^2 <= Byzantine scores
        // once D > r (1 + sqrt(2 (n-f-2))); D = 10 is far beyond that for r = 0.01 sqrt(d).
        let f = (n - 3) / 4;
        let mut x: Vec<Vec<f32>> = (0..n - f)
            .map(|i| (0..d).map(|c| center[c] + noise[i * 24 + c]).collect())
            .collect();
        for k in 0..f {
            let k = if colluding { 0 } else { k };
            x.push((0..d).map(|c| center[c] + 10.0 * far[k * 24 + c]).collect());
        }
        let honest = n - f;
        let krum = aggregate::krum(&x, f).unwrap();
        prop_assert!(krum.outliers[honest..].iter().all(|&o| o));
        let mk = aggregate::multi_krum(&x, f, n - f, None).unwrap();
        prop_assert_eq!(mk.outlier_indices(), (honest..n).collect::<Vec<_>>());
        let b = aggregate::bulyan(&x, f).unwrap();
        for c in 0..d {
            let lo = x[..honest].iter().map(|v| v[c]).fold(f32::INFINITY, f32::min);
            let hi = x[..honest].iter().map(|v| v[c]).fold(f32::NEG_INFINITY, f32::max);
            prop_assert!(lo - 1e-5 <= b.aggregate[c] && b.aggregate[c] <= hi + 1e-5);
        }
    }

    /// Preconditions are errors, never panics, for any n, f and shape.
    #[test]
    fn preconditions_never_panic(x in inputs(0..6, 0..4), f in 0u32..6, m in proptest::option::of(0u32..7)) {
        for rule in ALL_RULES.into_iter().chain([Rule::MultiKrum { m }]) {
            for nnm in [false, true] {
                let _ = AggregatorConfig { rule, f, nnm }.aggregate(&x, None);
            }
        }
    }

    /// f32 encoding is lossless; int8 loses at most half a quantisation step per value.
    #[test]
    fn codec_round_trips(v in prop::collection::vec(-1e6f32..1e6, 0..600), block in 1u32..300) {
        let t = Tensor::new(v.clone()).unwrap();
        prop_assert_eq!(Tensor::decode(&t.canonical_bytes(), v.len()).unwrap(), t.clone());
        let q = Tensor::decode(&t.encode(Encoding::Int8 { block }).unwrap(), v.len()).unwrap();
        for (chunk, back) in v.chunks(block as usize).zip(q.as_slice().chunks(block as usize)) {
            let step = chunk.iter().fold(0.0f32, |m, x| m.max(x.abs())) / 127.0;
            for (a, b) in chunk.iter().zip(back) {
                prop_assert!((a - b).abs() <= step * 0.5 + step * 1e-5 + 1e-30, "{a} {b} {step}");
            }
        }
    }

    /// Arbitrary bytes decode to a tensor or a typed error, never a panic.
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64), len in 0usize..20) {
        let _ = Tensor::decode(&bytes, len);
    }

    /// Reputation stays in [0, 1], rises on acceptance, falls on rejection, and silent
    /// inclusion moves it towards its ceiling (under the committee threshold) without
    /// crossing it.
    #[test]
    fn reputation_is_bounded_and_monotone(r in 0u32..=1_000_000, evidence in prop::collection::vec(0u8..5, 0..50)) {
        let p = ReputationParams::default();
        let mut r = Reputation(r);
        for e in evidence {
            let e = [Evidence::Accepted, Evidence::RejectedDisputed, Evidence::RejectedClear, Evidence::Absent, Evidence::IncludedSilent][e as usize];
            let next = p.update(r, e);
            prop_assert!(next <= Reputation::ONE);
            match e {
                Evidence::Accepted => prop_assert!(next >= r),
                Evidence::Absent => prop_assert_eq!(next, r),
                Evidence::IncludedSilent if r < p.silent_ceiling() => prop_assert!(r <= next && next <= p.silent_ceiling()),
                Evidence::IncludedSilent => prop_assert_eq!(next, r),
                _ => prop_assert!(next <= r),
            }
            r = next;
        }
    }

    /// The committee is distinct, eligible, of the requested size, and independent of the
    /// order in which candidates are listed.
    #[test]
    fn committee_draw_is_canonical(reps in prop::collection::vec(0u32..=1_000_000, 1..30), size in 0usize..8, seed in any::<[u8; 32]>(), rot in 0usize..30) {
        let threshold = Reputation(400_000);
        let candidates: Vec<([u8; 2], Reputation)> = reps.iter().enumerate().map(|(i, &r)| ((i as u16).to_be_bytes(), Reputation(r))).collect();
        let mut rotated = candidates.clone();
        rotated.rotate_left(rot % candidates.len());
        let a = draw_committee(seed, &candidates, size, threshold);
        let b = draw_committee(seed, &rotated, size, threshold);
        prop_assert_eq!(&a, &b);
        let eligible = reps.iter().filter(|&&r| r >= threshold.0 && r > 0).count();
        match a {
            Ok(c) => {
                prop_assert_eq!(c.len(), size);
                let mut u = c.clone();
                u.sort();
                u.dedup();
                prop_assert_eq!(u.len(), size);
                prop_assert!(c.iter().all(|&k| reps[usize::from(u16::from_be_bytes(k))] >= threshold.0));
            }
            Err(_) => prop_assert!(eligible < size),
        }
    }

    /// An aggregator that can choose among evidence sets chooses among reputation tables.
    /// Changing one agent's reputation must not redraw the committee: every other agent
    /// keeps its ticket, so without that agent the two committees agree, one a prefix of
    /// the other, in the same order.
    #[test]
    fn changing_one_reputation_moves_only_that_agents_place(reps in prop::collection::vec(400_000u32..=1_000_000, 2..40), size in 1usize..10, seed in any::<[u8; 32]>(), who in 0usize..40, to in 0u32..=1_000_000) {
        let threshold = Reputation(400_000);
        let candidates: Vec<([u8; 2], Reputation)> = reps.iter().enumerate().map(|(i, &r)| ((i as u16).to_be_bytes(), Reputation(r))).collect();
        let who = who % candidates.len();
        let mut changed = candidates.clone();
        changed[who].1 = Reputation(to);
        let size = size.min(candidates.len() - 1);
        let a = draw_committee(seed, &candidates, size, threshold).unwrap();
        let b = draw_committee(seed, &changed, size, threshold).unwrap();
        let key = candidates[who].0;
        let a: Vec<_> = a.into_iter().filter(|k| *k != key).collect();
        let b: Vec<_> = b.into_iter().filter(|k| *k != key).collect();
        let common = a.len().min(b.len());
        prop_assert_eq!(&a[..common], &b[..common]);
        prop_assert!(a.len().abs_diff(b.len()) <= 1);
    }
}

#[test]
fn nnm_config_keeps_verdicts_aligned_with_inputs() {
    // Eight honest inputs around 1 and one far input: with NNM in front of Krum, the far
    // input is still the one reported, by its own index.
    let mut x: Vec<Vec<f32>> = (0..8).map(|i| vec![1.0 + i as f32 * 0.01; 4]).collect();
    x.insert(3, vec![100.0; 4]);
    let agg = config(Rule::MultiKrum { m: None }, 1)
        .aggregate(&x, None)
        .unwrap();
    assert!(agg.outliers[3]);
    let with_nnm = AggregatorConfig {
        nnm: true,
        ..config(Rule::MultiKrum { m: None }, 1)
    }
    .aggregate(&x, None)
    .unwrap();
    assert!(with_nnm.outliers[3]);
    assert!(with_nnm.aggregate.iter().all(|v| (0.9..1.2).contains(v)));
}

proptest! {
    /// `Rule::min_inputs` is the one statement of each rule's bound on `f`: every
    /// aggregator accepts exactly that many inputs and refuses one fewer, naming the bound.
    #[test]
    fn every_rule_accepts_exactly_its_minimum_inputs(f in 0u32..4, d in 1usize..4, seed in any::<u64>()) {
        for rule in ALL_RULES {
            let need = rule.min_inputs(f as usize);
            let x: Vec<Vec<f32>> = (0..need)
                .map(|i| (0..d).map(|j| (((seed % 1000) as usize + 7 * i + j) % 13) as f32).collect())
                .collect();
            prop_assert!(config(rule, f).aggregate(&x, None).is_ok(), "{} n = {need} f = {f}", rule.name());
            if need > 1 {
                match config(rule, f).aggregate(&x[..need - 1], None) {
                    Err(aggregate::AggregateError::TooManyByzantine { rule: name, requirement, n, .. }) => {
                        prop_assert_eq!(name, rule.name());
                        prop_assert_eq!(requirement, rule.min_inputs_formula());
                        prop_assert_eq!(n, need - 1);
                    }
                    other => prop_assert!(false, "{} with {} inputs and f = {f}: {:?}", rule.name(), need - 1, other),
                }
            }
        }
    }
}
