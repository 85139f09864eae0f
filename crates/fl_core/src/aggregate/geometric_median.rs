//! Geometric median by smoothed Weiszfeld iterations (Pillutla, Kakade, Harchaoui, "Robust
//! Aggregation for Federated Learning", IEEE TSP 2022).

use super::distance::axpy;
use super::{
    check_inputs, check_weights, sq_distances_to, with_distance_verdicts, AggregateError,
    Aggregation, Rule,
};

/// Parameters of the smoothed Weiszfeld iteration.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WeiszfeldParams {
    /// Smoothing `nu > 0`: distances below it count as `nu`, which keeps the step finite
    /// when the estimate lands on an input.
    pub nu: f64,
    /// Maximum number of iterations.
    pub max_iterations: u32,
    /// Stop once an iteration moves the estimate by at most `tolerance` (Euclidean);
    /// `0` runs all `max_iterations`.
    pub tolerance: f64,
}

impl Default for WeiszfeldParams {
    /// `nu = 1e-6`, up to 100 iterations, stop below a move of `1e-7`.
    fn default() -> Self {
        WeiszfeldParams {
            nu: 1e-6,
            max_iterations: 100,
            tolerance: 1e-7,
        }
    }
}

/// Approximate (weighted) geometric median `argmin_z sum_i w_i |x_i - z|`.
///
/// Starting from `z = 0` (as ByzFL's `GeometricMedian`), each iteration sets
/// `b_i = max(|x_i - z|, nu)` and `z = sum_i (w_i / b_i) x_i / sum_i (w_i / b_i)`.
/// ByzFL's defaults are `nu = 0.1` and exactly three iterations. The breakdown point is
/// one half: fewer than `n/2` arbitrary inputs move it a bounded distance.
///
/// Scores are squared distances to the result; outliers are inputs more than three times the
/// median distance away. Precondition: `n >= 2f + 1`, `nu > 0`. Cost: `O(T nd)`.
pub fn geometric_median<V: AsRef<[f32]>>(
    inputs: &[V],
    f: usize,
    weights: Option<&[f64]>,
    params: WeiszfeldParams,
) -> Result<Aggregation, AggregateError> {
    let (n, d) = check_inputs(inputs)?;
    Rule::GeometricMedian(params).check_inputs(n, f)?;
    check_weights(weights, n)?;
    let usable = params.nu.is_finite()
        && params.nu > 0.0
        && params.tolerance.is_finite()
        && params.tolerance >= 0.0;
    if !usable {
        return Err(AggregateError::InvalidParameter(format!(
            "geometric_median needs nu > 0 and tolerance >= 0, got nu = {}, tolerance = {}",
            params.nu, params.tolerance
        )));
    }
    let weight = |i: usize| weights.map_or(1.0, |w| w[i]);
    let mut z = vec![0.0f32; d];
    let mut acc = vec![0.0f64; d];
    for _ in 0..params.max_iterations {
        let b: Vec<f64> = sq_distances_to(inputs, &z)
            .into_iter()
            .map(|s| s.sqrt().max(params.nu))
            .collect();
        let mut total = weighted_sum(inputs, &mut acc, |i| weight(i) / b[i]);
        if !(total.is_finite() && acc.iter().all(|a| a.is_finite())) {
            // A tiny `nu` (1/nu overflows) or large weights overflowed a term: the same step
            // with every weight scaled into [0, 1], which only changes the rounding.
            let w_max = (0..n).map(weight).fold(0.0, f64::max);
            let b_min = b.iter().copied().fold(f64::INFINITY, f64::min);
            total = weighted_sum(inputs, &mut acc, |i| (weight(i) / w_max) * (b_min / b[i]));
        }
        if !(total > 0.0 && total.is_finite()) {
            // Every scaled weight underflowed: no step to take.
            break;
        }
        let mut moved = 0.0f64;
        for (zi, a) in z.iter_mut().zip(&acc) {
            let next = (a / total) as f32;
            moved += f64::from(next - *zi) * f64::from(next - *zi);
            *zi = next;
        }
        if moved.sqrt() <= params.tolerance {
            break;
        }
    }
    Ok(with_distance_verdicts(inputs, z))
}

/// `acc = sum_i w(i) x_i`, accumulated in input order; returns `sum_i w(i)`.
fn weighted_sum<V: AsRef<[f32]>>(inputs: &[V], acc: &mut [f64], w: impl Fn(usize) -> f64) -> f64 {
    acc.iter_mut().for_each(|a| *a = 0.0);
    let mut total = 0.0f64;
    for (i, v) in inputs.iter().enumerate() {
        let wi = w(i);
        total += wi;
        axpy(acc, wi, v.as_ref());
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collinear_points_converge_to_the_middle_one() {
        let x = [vec![0.0f32, 0.0], vec![1.0, 0.0], vec![10.0, 0.0]];
        let agg = geometric_median(&x, 1, None, WeiszfeldParams::default()).unwrap();
        assert!((agg.aggregate[0] - 1.0).abs() < 1e-3, "{:?}", agg.aggregate);
        assert!(agg.aggregate[1].abs() < 1e-6);
    }

    #[test]
    fn weights_pull_towards_the_heavy_input() {
        let x = [vec![0.0f32], vec![1.0], vec![2.0]];
        let agg =
            geometric_median(&x, 0, Some(&[1.0, 1.0, 5.0]), WeiszfeldParams::default()).unwrap();
        assert!((agg.aggregate[0] - 2.0).abs() < 1e-3);
    }

    #[test]
    fn tiny_nu_and_huge_weights_keep_the_median_finite() {
        // Found by fuzzing: with a subnormal `nu` (a task may set any nu > 0), an input at
        // the estimate got the weight 1/nu = inf and the aggregate was NaN; huge weights
        // overflowed the same way.
        let zeros = [vec![0.0f32; 3]];
        let tiny = WeiszfeldParams {
            nu: 3.3e-310,
            ..WeiszfeldParams::default()
        };
        let agg = geometric_median(&zeros, 0, None, tiny).unwrap();
        assert_eq!(agg.aggregate, vec![0.0; 3]);
        let x = [vec![0.0f32], vec![1.0], vec![f32::MAX]];
        let agg = geometric_median(&x, 1, None, tiny).unwrap();
        assert!(agg.aggregate[0].is_finite(), "{:?}", agg.aggregate);
        let heavy = [1e305, 1e305, 1e305];
        let agg = geometric_median(&x, 1, Some(&heavy), WeiszfeldParams::default()).unwrap();
        let unit = geometric_median(&x, 1, Some(&[1.0; 3]), WeiszfeldParams::default()).unwrap();
        assert!(agg.aggregate[0].is_finite(), "{:?}", agg.aggregate);
        assert!(
            (agg.aggregate[0] - unit.aggregate[0]).abs() < 1e-3,
            "{:?} vs {:?}",
            agg.aggregate,
            unit.aggregate
        );
    }

    #[test]
    fn rejects_bad_parameters() {
        let x = [vec![0.0f32], vec![1.0], vec![2.0]];
        let bad = WeiszfeldParams {
            nu: 0.0,
            ..WeiszfeldParams::default()
        };
        assert!(matches!(
            geometric_median(&x, 0, None, bad),
            Err(AggregateError::InvalidParameter(_))
        ));
        assert!(matches!(
            geometric_median(&x, 2, None, WeiszfeldParams::default()),
            Err(AggregateError::TooManyByzantine { .. })
        ));
    }
}
