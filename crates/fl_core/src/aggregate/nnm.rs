//! Nearest-neighbour mixing (Allouah et al., "Fixing by Mixing", AISTATS 2023).

use super::distance::{axpy, pairwise_sq_distances, BLOCK};
use super::{check_inputs, AggregateError};

/// NNM pre-aggregation: replaces every input `x_i` by the mean of its `n - f` nearest
/// inputs, itself included (ties broken by lower index, `x_i` itself always first).
/// Composed in front of any rule, it lowers the heterogeneity the rule must tolerate.
/// Output `i` corresponds to input `i`; each mean is accumulated in `f64` in index order.
///
/// The means are computed block by block along the parameter axis, so each block of every
/// input is read from cache by all the means that need it.
///
/// Precondition: `f < n`. Cost: `O(n^2 d)`.
pub fn nnm<V: AsRef<[f32]>>(inputs: &[V], f: usize) -> Result<Vec<Vec<f32>>, AggregateError> {
    let (n, d) = check_inputs(inputs)?;
    if f >= n {
        return Err(AggregateError::TooManyByzantine {
            rule: "nnm",
            requirement: "f + 1",
            n,
            f,
        });
    }
    let dist = pairwise_sq_distances(inputs);
    let k = n - f;
    let neighbours: Vec<Vec<usize>> = (0..n)
        .map(|i| {
            let row = &dist[i * n..(i + 1) * n];
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| {
                (a != i)
                    .cmp(&(b != i))
                    .then(row[a].total_cmp(&row[b]))
                    .then(a.cmp(&b))
            });
            order.truncate(k);
            order.sort_unstable();
            order
        })
        .collect();
    let mut mixed = vec![vec![0.0f32; d]; n];
    let mut acc = vec![0.0f64; BLOCK];
    let mut start = 0;
    while start < d {
        let end = (start + BLOCK).min(d);
        let acc = &mut acc[..end - start];
        for (out, nb) in mixed.iter_mut().zip(&neighbours) {
            acc.fill(0.0);
            for &j in nb {
                axpy(acc, 1.0, &inputs[j].as_ref()[start..end]);
            }
            for (o, a) in out[start..end].iter_mut().zip(acc.iter()) {
                *o = (a / k as f64) as f32;
            }
        }
        start = end;
    }
    Ok(mixed)
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
