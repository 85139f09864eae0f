//! Nearest-neighbour mixing (Allouah et al., "Fixing by Mixing", AISTATS 2023).

use super::distance::pairwise_sq_distances;
use super::{check_inputs, mean_of, require, AggregateError};

/// NNM pre-aggregation: replaces every input `x_i` by the mean of its `n - f` nearest
/// inputs, itself included (ties broken by lower index, `x_i` itself always first).
/// Composed in front of any rule, it lowers the heterogeneity the rule must tolerate.
/// Output `i` corresponds to input `i`.
///
/// Precondition: `f < n`. Cost: `O(n^2 d)`.
pub fn nnm<V: AsRef<[f32]>>(inputs: &[V], f: usize) -> Result<Vec<Vec<f32>>, AggregateError> {
    let (n, d) = check_inputs(inputs)?;
    require(f < n, "nnm", "f < n", n, f)?;
    let dist = pairwise_sq_distances(inputs);
    let k = n - f;
    let mut order: Vec<usize> = Vec::with_capacity(n);
    Ok((0..n)
        .map(|i| {
            order.clear();
            order.extend(0..n);
            let row = &dist[i * n..(i + 1) * n];
            order.sort_by(|&a, &b| {
                (a != i)
                    .cmp(&(b != i))
                    .then(row[a].total_cmp(&row[b]))
                    .then(a.cmp(&b))
            });
            let mut nearest = order[..k].to_vec();
            nearest.sort_unstable();
            mean_of(inputs, &nearest, None, d)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_byzfl_on_five_inputs() {
        // ByzFL 0.0.11 NNM(f=1): rows 0, 1, 2, 4 -> [2.125, 3.125, 2.625],
        // row 3 -> [3.875, 0.875, 4.125].
        let x = [
            vec![1.0f32, 2.0, 3.0],
            vec![2.0, 3.0, 4.0],
            vec![3.0, 5.0, 1.0],
            vec![10.0, -4.0, 7.0],
            vec![2.5, 2.5, 2.5],
        ];
        let mixed = nnm(&x, 1).unwrap();
        for i in [0, 1, 2, 4] {
            assert_eq!(mixed[i], vec![2.125, 3.125, 2.625]);
        }
        assert_eq!(mixed[3], vec![3.875, 0.875, 4.125]);
        assert!(matches!(
            nnm(&x, 5),
            Err(AggregateError::TooManyByzantine { .. })
        ));
    }
}
