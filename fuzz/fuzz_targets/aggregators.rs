//! Every aggregation rule of `fl_core::aggregate`, with and without NNM, on a few small
//! vectors and arbitrary `f` and weights. Errors are fine; a result must have one score and
//! one verdict per input and, when every input is finite, a finite aggregate of the
//! inputs' length.
#![no_main]

use arbitrary::Arbitrary;
use fl_core::aggregate::AggregatorConfig;
use libfuzzer_sys::fuzz_target;
use mycelix_fl_fuzz::{rule_of, Val};

#[derive(Arbitrary, Debug)]
struct Input {
    rule: u8,
    f: u8,
    nnm: bool,
    multi_m: Option<u8>,
    weiszfeld: (f64, u8, f64),
    dims: u8,
    inputs: Vec<Vec<Val>>,
    ragged: bool,
    weights: Option<Vec<f64>>,
}

fuzz_target!(|input: Input| {
    if input.inputs.len() > 12 {
        return;
    }
    let rule = rule_of(input.rule, input.multi_m, input.weiszfeld);
    let config = AggregatorConfig {
        rule,
        f: u32::from(input.f % 8),
        nnm: input.nnm,
    };
    let dims = usize::from(input.dims % 6);
    let vectors: Vec<Vec<f32>> = input
        .inputs
        .iter()
        .map(|vals| {
            let len = if input.ragged {
                vals.len().min(8)
            } else {
                dims
            };
            (0..len)
                .map(|i| match vals.get(i % vals.len().max(1)) {
                    Some(v) => v.get(),
                    None => 0.0,
                })
                .collect()
        })
        .collect();
    let weights = input
        .weights
        .as_ref()
        .map(|w| w.iter().take(16).copied().collect::<Vec<_>>());
    let Ok(a) = config.aggregate(&vectors, weights.as_deref()) else {
        return;
    };
    assert_eq!(a.scores.len(), vectors.len());
    assert_eq!(a.outliers.len(), vectors.len());
    assert_eq!(a.aggregate.len(), vectors[0].len());
    if vectors.iter().flatten().all(|v| v.is_finite()) {
        assert!(
            a.aggregate.iter().all(|v| v.is_finite()),
            "finite inputs gave a non-finite aggregate: {:?}",
            a.aggregate
        );
    }
});
