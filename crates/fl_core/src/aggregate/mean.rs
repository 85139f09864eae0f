//! Weighted mean (FedAvg).

use super::{
    check_inputs, check_weights, mean_of, with_distance_verdicts, AggregateError, Aggregation,
};

/// FedAvg: `sum_i w_i x_i / sum_i w_i` (McMahan et al. 2017), unweighted when `weights`
/// is `None`. Not robust: one arbitrary input moves it arbitrarily far. Scores are squared
/// distances to the mean; nothing is left out, so verdicts only flag far inputs.
///
/// Precondition: `n >= 1`. Cost: `O(nd)`.
pub fn mean<V: AsRef<[f32]>>(
    inputs: &[V],
    weights: Option<&[f64]>,
) -> Result<Aggregation, AggregateError> {
    let (n, d) = check_inputs(inputs)?;
    check_weights(weights, n)?;
    let all: Vec<usize> = (0..n).collect();
    Ok(with_distance_verdicts(
        inputs,
        mean_of(inputs, &all, weights, d),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unweighted_and_weighted_hand_checked() {
        let x = [vec![1.0f32, 2.0], vec![3.0, 6.0]];
        assert_eq!(mean(&x, None).unwrap().aggregate, vec![2.0, 4.0]);
        assert_eq!(
            mean(&x, Some(&[3.0, 1.0])).unwrap().aggregate,
            vec![1.5, 3.0]
        );
        assert_eq!(mean(&x, None).unwrap().scores, vec![5.0, 5.0]);
    }

    #[test]
    fn rejects_bad_weights() {
        let x = [vec![1.0f32], vec![2.0]];
        assert!(matches!(
            mean(&x, Some(&[1.0])),
            Err(AggregateError::InvalidWeights(_))
        ));
        assert!(matches!(
            mean(&x, Some(&[1.0, -1.0])),
            Err(AggregateError::InvalidWeights(_))
        ));
        assert!(matches!(
            mean(&x, Some(&[0.0, 0.0])),
            Err(AggregateError::InvalidWeights(_))
        ));
        assert!(matches!(
            mean(&x, Some(&[f64::NAN, 1.0])),
            Err(AggregateError::InvalidWeights(_))
        ));
    }

    #[test]
    fn huge_weights_give_the_same_finite_mean() {
        // Found by fuzzing: finite weights whose products or sum overflowed gave inf or NaN.
        let x = [vec![1.0f32, f32::MAX], vec![3.0, f32::MAX]];
        assert_eq!(
            mean(&x, Some(&[1e308, 1e308])).unwrap().aggregate,
            vec![2.0, f32::MAX]
        );
        assert_eq!(
            mean(&x, Some(&[3e300, 1e300])).unwrap().aggregate,
            mean(&x, Some(&[3.0, 1.0])).unwrap().aggregate
        );
    }

    #[test]
    fn rejects_empty_ragged_and_non_finite_inputs() {
        let empty: [Vec<f32>; 0] = [];
        assert_eq!(mean(&empty, None), Err(AggregateError::Empty));
        assert_eq!(
            mean(&[vec![1.0f32, 2.0], vec![1.0]], None),
            Err(AggregateError::LengthMismatch {
                index: 1,
                expected: 2,
                found: 1
            })
        );
        assert_eq!(
            mean(&[vec![1.0f32, 2.0], vec![1.0, f32::INFINITY]], None),
            Err(AggregateError::NonFinite {
                index: 1,
                coordinate: 1
            })
        );
    }
}
