//! Golden vectors: fl_core against the published definitions of ByzFL 0.0.11
//! (`byzfl/aggregators/aggregators.py`, `preaggregators.py`) and Flower 1.42.0
//! (`flwr/server/strategy/aggregate.py`), on inputs small enough to check by hand. The
//! expected values were produced by running those libraries (numpy inputs, float64) and are
//! quoted here; `bench/peers.sh` repeats the comparison on large random inputs.
//!
//! Neighbour counts differ between the two: Flower's `aggregate_krum` sums the squared
//! distances to the `n - f - 2` nearest other inputs (Blanchard et al.), as fl_core does;
//! ByzFL's `Krum` averages the `n - f - 1` nearest. ByzFL's `MultiKrum` averages `n - f`
//! inputs, Flower's averages `to_keep`. Flower has no geometric median, ByzFL no Bulyan.

use fl_core::aggregate::{self, WeiszfeldParams};

fn x5() -> Vec<Vec<f32>> {
    vec![
        vec![1.0, 2.0, 3.0],
        vec![2.0, 3.0, 4.0],
        vec![3.0, 5.0, 1.0],
        vec![10.0, -4.0, 7.0],
        vec![2.5, 2.5, 2.5],
    ]
}

fn assert_close(got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!(
            (f64::from(*g) - w).abs() <= tol,
            "got {got:?}, want {want:?}"
        );
    }
}

#[test]
fn mean_matches_byzfl_average() {
    assert_close(
        &aggregate::mean(&x5(), None).unwrap().aggregate,
        &[3.7, 1.7, 3.5],
        1e-6,
    );
}

#[test]
fn median_matches_byzfl_and_flower_for_odd_and_even_n() {
    let x = x5();
    assert_close(
        &aggregate::coordinate_median(&x, 1).unwrap().aggregate,
        &[2.5, 2.5, 3.0],
        0.0,
    );
    // Even n: the midpoint of the two middle values, as numpy.median.
    assert_close(
        &aggregate::coordinate_median(&x[..4], 1).unwrap().aggregate,
        &[2.5, 2.5, 3.5],
        0.0,
    );
}

#[test]
fn trimmed_mean_matches_byzfl_trmean_and_flower_trimmed_avg() {
    // ByzFL TrMean(f=1); Flower aggregate_trimmed_avg(proportiontocut=0.2) trims
    // int(0.2 * 5) = 1 per side.
    let got = aggregate::trimmed_mean(&x5(), 1).unwrap().aggregate;
    assert_close(&got, &[2.5, 2.5, 3.166_666_666_7], 1e-6);
}

#[test]
fn krum_scores_match_flower_and_choice_matches_both() {
    let agg = aggregate::krum(&x5(), 1).unwrap();
    // Flower aggregate_krum(num_malicious=1): scores [5.75, 5.75, 22.75, 240.75, 5.5].
    assert_eq!(agg.scores, vec![5.75, 5.75, 22.75, 240.75, 5.5]);
    // Flower to_keep=0 and ByzFL Krum(f=1) (scores [7.58, 6.58, 13.25, 124.58, 4.75]) both
    // return input 4.
    assert_close(&agg.aggregate, &[2.5, 2.5, 2.5], 0.0);
}

#[test]
fn multi_krum_matches_flower_to_keep_and_byzfl_n_minus_f() {
    // Flower aggregate_krum(num_malicious=1, to_keep=3) -> [1.8333, 2.5, 3.1667].
    let got = aggregate::multi_krum(&x5(), 1, 3, None).unwrap().aggregate;
    assert_close(&got, &[1.833_333_333_3, 2.5, 3.166_666_666_7], 1e-6);
    // ByzFL MultiKrum(f=1) averages the n - f = 4 best: [2.125, 3.125, 2.625].
    let got = aggregate::multi_krum(&x5(), 1, 4, None).unwrap().aggregate;
    assert_close(&got, &[2.125, 3.125, 2.625], 1e-6);
}

#[test]
fn multi_krum_weights_match_flower_num_examples() {
    // Flower weights the kept updates by num_examples: weight 100 on input 4 with
    // to_keep=3 gives [2.480, 2.5, 2.520].
    let w = [1.0, 1.0, 1.0, 1.0, 100.0];
    let got = aggregate::multi_krum(&x5(), 1, 3, Some(&w))
        .unwrap()
        .aggregate;
    assert_close(&got, &[2.480_392_156_9, 2.5, 2.519_607_843_1], 1e-6);
}

#[test]
fn geometric_median_matches_byzfl() {
    // ByzFL GeometricMedian(nu=0.1, T=3): start at 0, exactly three iterations.
    let p = WeiszfeldParams {
        nu: 0.1,
        max_iterations: 3,
        tolerance: 0.0,
    };
    let got = aggregate::geometric_median(&x5(), 1, None, p)
        .unwrap()
        .aggregate;
    assert_close(&got, &[2.368_773_13, 2.562_546_11, 2.852_000_84], 1e-6);
    // ByzFL GeometricMedian(nu=1e-6, T=100).
    let p = WeiszfeldParams {
        nu: 1e-6,
        max_iterations: 100,
        tolerance: 0.0,
    };
    let got = aggregate::geometric_median(&x5(), 1, None, p)
        .unwrap()
        .aggregate;
    assert_close(&got, &[2.427_231_64, 2.539_443_09, 2.703_425_52], 1e-5);
}

#[test]
fn bulyan_matches_flower() {
    // Flower aggregate_bulyan(num_malicious=1, aggregation_rule=aggregate_krum, to_keep=0)
    // selects [4, 1, 2, 3, 0] and returns [1.5, 2.4, 2.96666667]. Its last Krum rounds tie
    // (one neighbour counts); Flower takes the first index, fl_core the smallest input,
    // which agree here because the inputs are listed in lexicographic order.
    let x = vec![
        vec![0.3, -0.2, 0.9],
        vec![1.0, 2.0, 3.0],
        vec![1.5, 2.7, 3.4],
        vec![2.0, 3.0, 4.0],
        vec![2.5, 2.5, 2.5],
        vec![3.0, 5.0, 1.0],
        vec![10.0, -4.0, 7.0],
    ];
    let agg = aggregate::bulyan(&x, 1).unwrap();
    assert_eq!(agg.outlier_indices(), vec![5, 6]);
    assert_close(&agg.aggregate, &[1.5, 2.4, 2.966_666_666_7], 1e-6);
}

#[test]
fn nnm_matches_byzfl() {
    // ByzFL NNM(f=1): rows 0, 1, 2, 4 -> [2.125, 3.125, 2.625], row 3 -> [3.875, 0.875, 4.125].
    let mixed = aggregate::nnm(&x5(), 1).unwrap();
    for i in [0, 1, 2, 4] {
        assert_close(&mixed[i], &[2.125, 3.125, 2.625], 0.0);
    }
    assert_close(&mixed[3], &[3.875, 0.875, 4.125], 0.0);
}
