//! Bulyan (El Mhamdi, Guerraoui, Rouault, "The Hidden Vulnerability of Distributed
//! Learning in Byzantium", ICML 2018).

use super::coordinatewise::closest_to_median_mean;
use super::distance::pairwise_sq_distances;
use super::krum::{argmin, krum_scores, krum_scores_among};
use super::{check_inputs, AggregateError, Aggregation, Rule};

/// Bulyan over Krum.
///
/// 1. Selection: `theta = n - 2f` times, run Krum on the inputs not yet selected (with
///    `k = max(1, remaining - f - 2)` neighbours, ties to the lexicographically smaller
///    input, so the result does not depend on the order of the inputs) and move the
///    winner into the selection set.
/// 2. Aggregation: for every coordinate, average the `beta = theta - 2f = n - 4f` selected
///    values closest to the coordinate median of the selection set.
///
/// This is Flower's `aggregate_bulyan` with `aggregate_krum` (ByzFL has no Bulyan).
/// Scores are the Krum scores over all inputs; inputs not selected in step 1 are outliers.
/// In the last rounds of step 1 few inputs remain and Krum counts a single neighbour, so
/// attackers that collude on one point can be selected (and then are not flagged); step 2
/// still keeps every coordinate of the aggregate within the honest values' range.
/// Unweighted. Precondition: `n >= 4f + 3`. Cost: `O(n^2 d + n^3 log n)`.
pub fn bulyan<V: AsRef<[f32]>>(inputs: &[V], f: usize) -> Result<Aggregation, AggregateError> {
    let (n, d) = check_inputs(inputs)?;
    Rule::Bulyan.check_inputs(n, f)?;
    let dist = pairwise_sq_distances(inputs);
    let theta = n - 2 * f;
    let mut remaining: Vec<usize> = (0..n).collect();
    let mut selected = Vec::with_capacity(theta);
    while selected.len() < theta {
        let scores = krum_scores_among(&dist, n, &remaining, f);
        selected.push(remaining.remove(argmin(&scores, &remaining, inputs)));
    }
    let chosen: Vec<&[f32]> = selected.iter().map(|&i| inputs[i].as_ref()).collect();
    let aggregate = closest_to_median_mean(&chosen, d, theta - 2 * f);
    let mut outliers = vec![true; n];
    for &i in &selected {
        outliers[i] = false;
    }
    Ok(Aggregation {
        aggregate,
        scores: krum_scores(&dist, n, f),
        outliers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Agreement with Flower's aggregate_bulyan is in tests/golden.rs.

    #[test]
    fn needs_4f_plus_3_inputs() {
        let x = vec![vec![0.0f32]; 6];
        assert!(matches!(
            bulyan(&x, 1),
            Err(AggregateError::TooManyByzantine {
                rule: "bulyan",
                n: 6,
                f: 1,
                ..
            })
        ));
        assert!(bulyan(&vec![vec![0.0f32]; 7], 1).is_ok());
    }
}
