//! Krum and Multi-Krum (Blanchard, El Mhamdi, Guerraoui, Stainer, NeurIPS 2017).

use super::distance::pairwise_sq_distances;
use super::{check_inputs, check_weights, mean_of, AggregateError, Aggregation, Rule};

/// Krum scores: `s(i) = sum of the k smallest |x_i - x_j|^2 over j != i`, with
/// `k = n - f - 2` (at least 1), from an `n x n` squared-distance matrix.
///
/// This is the neighbour count of the paper and of Flower's `aggregate_krum`; ByzFL's
/// `Krum` instead averages the `n - f - 1` nearest, which can rank inputs differently.
/// The neighbours are summed in ascending order, so a score depends only on the set of
/// distances and is the same bits under any permutation of the inputs.
pub fn krum_scores(dist: &[f64], n: usize, f: usize) -> Vec<f64> {
    let all: Vec<usize> = (0..n).collect();
    krum_scores_among(dist, n, &all, f)
}

/// Krum scores of the inputs in `among` (indices into the `n x n` matrix), each against the
/// others in `among` only; `k = |among| - f - 2`, at least 1, as in Bulyan's inner Krum.
pub(crate) fn krum_scores_among(dist: &[f64], n: usize, among: &[usize], f: usize) -> Vec<f64> {
    let k = among.len().saturating_sub(f + 2).max(1);
    let mut row = Vec::with_capacity(among.len());
    among
        .iter()
        .map(|&i| {
            row.clear();
            row.extend(among.iter().filter(|&&j| j != i).map(|&j| dist[i * n + j]));
            row.sort_unstable_by(f64::total_cmp);
            row.iter().take(k).sum()
        })
        .collect()
}

/// Orders inputs by score, ties by content (lexicographic `total_cmp`), then by index, so
/// the order does not depend on the order in which the inputs were given.
pub(crate) fn rank_cmp<'a, V: AsRef<[f32]>>(
    scores: &'a [f64],
    inputs: &'a [V],
) -> impl Fn(&usize, &usize) -> std::cmp::Ordering + 'a {
    move |&a, &b| {
        scores[a]
            .total_cmp(&scores[b])
            .then_with(|| {
                let (x, y) = (inputs[a].as_ref(), inputs[b].as_ref());
                x.iter()
                    .zip(y)
                    .map(|(p, q)| p.total_cmp(q))
                    .find(|o| o.is_ne())
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
            .then(a.cmp(&b))
    }
}

/// Position of the lowest score among `candidates` (indices into `inputs`), ties broken
/// as in [`rank_cmp`]; `scores[k]` belongs to `candidates[k]`.
pub(crate) fn argmin<V: AsRef<[f32]>>(scores: &[f64], candidates: &[usize], inputs: &[V]) -> usize {
    let chosen: Vec<&[f32]> = candidates.iter().map(|&i| inputs[i].as_ref()).collect();
    let cmp = rank_cmp(scores, &chosen);
    (0..scores.len())
        .min_by(|a, b| cmp(a, b))
        .expect("at least one candidate")
}

/// Krum: returns the input with the lowest [`krum_scores`] (on ties, the lexicographically
/// smallest input, so the choice never depends on the order of the inputs).
///
/// Scores are the Krum scores; every input but the chosen one is an outlier.
/// Precondition: `n >= 2f + 3`. Cost: `O(n^2 d)` for the distances, `O(n^2 log n)` for the scores.
pub fn krum<V: AsRef<[f32]>>(inputs: &[V], f: usize) -> Result<Aggregation, AggregateError> {
    let (n, _) = check_inputs(inputs)?;
    Rule::Krum.check_inputs(n, f)?;
    let scores = krum_scores(&pairwise_sq_distances(inputs), n, f);
    let all: Vec<usize> = (0..n).collect();
    let best = argmin(&scores, &all, inputs);
    Ok(Aggregation {
        aggregate: inputs[best].as_ref().to_vec(),
        outliers: (0..n).map(|i| i != best).collect(),
        scores,
    })
}

/// Multi-Krum: the (weighted) mean of the `m` inputs with the lowest [`krum_scores`],
/// scores computed once (as in the paper, ByzFL and Flower). Ties at the cut-off go to the
/// lexicographically smaller input. `m = 1` is Krum; ByzFL uses `m = n - f`.
///
/// Scores are the Krum scores; the `n - m` unselected inputs are outliers.
/// Precondition: `n >= 2f + 3` and `1 <= m <= n - f`. Cost: as [`krum`] plus `O(md)`.
pub fn multi_krum<V: AsRef<[f32]>>(
    inputs: &[V],
    f: usize,
    m: usize,
    weights: Option<&[f64]>,
) -> Result<Aggregation, AggregateError> {
    let (n, d) = check_inputs(inputs)?;
    Rule::MultiKrum { m: None }.check_inputs(n, f)?;
    if m == 0 || m > n - f {
        return Err(AggregateError::InvalidParameter(format!(
            "multi_krum needs 1 <= m <= n - f = {}, got m = {m}",
            n - f
        )));
    }
    check_weights(weights, n)?;
    let scores = krum_scores(&pairwise_sq_distances(inputs), n, f);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(rank_cmp(&scores, inputs));
    let mut selected = order[..m].to_vec();
    selected.sort_unstable();
    let mut outliers = vec![true; n];
    for &i in &selected {
        outliers[i] = false;
    }
    Ok(Aggregation {
        aggregate: mean_of(inputs, &selected, weights, d),
        scores,
        outliers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x() -> Vec<Vec<f32>> {
        vec![
            vec![1.0, 2.0, 3.0],
            vec![2.0, 3.0, 4.0],
            vec![3.0, 5.0, 1.0],
            vec![10.0, -4.0, 7.0],
            vec![2.5, 2.5, 2.5],
        ]
    }

    #[test]
    fn krum_scores_by_hand() {
        // f = 1, n = 5: k = 2 nearest. Squared distances from input 0 are 3, 17, 133 and
        // 2.75, so its score is 2.75 + 3. Flower's aggregate_krum gives the same scores.
        let agg = krum(&x(), 1).unwrap();
        assert_eq!(agg.scores, vec![5.75, 5.75, 22.75, 240.75, 5.5]);
        assert_eq!(agg.aggregate, vec![2.5, 2.5, 2.5]);
        assert_eq!(agg.outlier_indices(), vec![0, 1, 2, 3]);
    }

    #[test]
    fn multi_krum_averages_the_m_best() {
        let agg = multi_krum(&x(), 1, 3, None).unwrap();
        // Inputs 4, 0, 1 (ties between 0 and 1 at 5.75 both inside the cut).
        assert_eq!(agg.outlier_indices(), vec![2, 3]);
        let want = [(1.0 + 2.0 + 2.5) / 3.0, 2.5, (3.0 + 4.0 + 2.5) / 3.0];
        for (a, w) in agg.aggregate.iter().zip(want) {
            assert!((f64::from(*a) - w).abs() < 1e-6);
        }
    }

    #[test]
    fn multi_krum_ties_at_the_cut_go_to_the_smaller_input() {
        let agg = multi_krum(&x(), 1, 2, None).unwrap();
        assert_eq!(agg.outlier_indices(), vec![1, 2, 3]);
    }

    #[test]
    fn preconditions_are_typed_errors() {
        let four = &x()[..4];
        assert!(matches!(
            krum(four, 1),
            Err(AggregateError::TooManyByzantine {
                rule: "krum",
                n: 4,
                f: 1,
                ..
            })
        ));
        assert!(matches!(
            multi_krum(&x(), 1, 0, None),
            Err(AggregateError::InvalidParameter(_))
        ));
        assert!(matches!(
            multi_krum(&x(), 1, 5, None),
            Err(AggregateError::InvalidParameter(_))
        ));
    }

    #[test]
    fn multi_krum_weights_apply_to_the_selected() {
        let agg = multi_krum(&x(), 1, 3, Some(&[1.0, 1.0, 1.0, 1.0, 100.0])).unwrap();
        assert!((agg.aggregate[0] - (1.0 + 2.0 + 250.0) / 102.0).abs() < 1e-6);
    }
}
