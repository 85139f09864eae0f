//! Coordinate-wise rules: median and trimmed mean (Yin, Chen, Ramchandran, Bartlett, ICML 2018).
//!
//! Both work on one coordinate at a time. The inputs are transposed in blocks of [`COLS`]
//! coordinates into a scratch buffer of order-preserving integer keys (the IEEE bit
//! pattern with the magnitude bits of negatives flipped), and each coordinate's column is
//! reduced by selection (`select_nth_unstable`, expected `O(n)`), never by a full sort.

use super::{check_inputs, require, with_distance_verdicts, AggregateError, Aggregation};

/// Coordinates per transposed block.
const COLS: usize = 256;

/// Order-preserving map from finite `f32` to `i32`.
#[inline(always)]
fn key(x: f32) -> i32 {
    let b = x.to_bits() as i32;
    b ^ ((((b >> 31) as u32) >> 1) as i32)
}

/// Inverse of [`key`].
#[inline(always)]
fn unkey(k: i32) -> f32 {
    f32::from_bits((k ^ ((((k >> 31) as u32) >> 1) as i32)) as u32)
}

/// Applies `reduce` to every coordinate's column of keys (length `n`, reorderable).
fn per_coordinate<V: AsRef<[f32]>>(
    inputs: &[V],
    d: usize,
    mut reduce: impl FnMut(&mut [i32]) -> f32,
) -> Vec<f32> {
    let n = inputs.len();
    let mut out = vec![0.0f32; d];
    let mut buf = vec![0i32; n * COLS];
    let mut start = 0;
    while start < d {
        let width = COLS.min(d - start);
        for (i, v) in inputs.iter().enumerate() {
            for (c, &x) in v.as_ref()[start..start + width].iter().enumerate() {
                buf[c * n + i] = key(x);
            }
        }
        for (c, o) in out[start..start + width].iter_mut().enumerate() {
            *o = reduce(&mut buf[c * n..(c + 1) * n]);
        }
        start += width;
    }
    out
}

/// Coordinate-wise median: for every coordinate the middle value, or for even `n` the
/// midpoint of the two middle values (as `numpy.median`, ByzFL `Median` and Flower
/// `aggregate_median`). Within the range of the honest values on each coordinate as long
/// as fewer than half the inputs are arbitrary.
///
/// Scores are squared distances to the median; outliers are inputs more than twice the
/// median distance away. Unweighted. Precondition: `2f < n`. Cost: `O(nd)` expected.
pub fn coordinate_median<V: AsRef<[f32]>>(
    inputs: &[V],
    f: usize,
) -> Result<Aggregation, AggregateError> {
    let (n, d) = check_inputs(inputs)?;
    require(2 * f < n, "median", "2f < n", n, f)?;
    let mid = n / 2;
    let aggregate = per_coordinate(inputs, d, |col| {
        let (lower, upper, _) = col.select_nth_unstable(mid);
        let upper = unkey(*upper);
        if n % 2 == 1 {
            upper
        } else {
            let lower = unkey(*lower.iter().max().expect("n >= 2 when n is even"));
            ((f64::from(lower) + f64::from(upper)) * 0.5) as f32
        }
    });
    Ok(with_distance_verdicts(inputs, aggregate))
}

/// Trimmed mean: for every coordinate, drop the `f` smallest and `f` largest values and
/// average the `n - 2f` others (ByzFL `TrMean(f)`; Flower's `aggregate_trimmed_avg` with
/// `proportiontocut = p` trims `floor(p n)` per side). `f = 0` is the plain mean.
///
/// Scores are squared distances to the aggregate; outliers are inputs more than twice the
/// median distance away. Unweighted. Precondition: `2f < n`. Cost: `O(nd)` expected.
pub fn trimmed_mean<V: AsRef<[f32]>>(
    inputs: &[V],
    f: usize,
) -> Result<Aggregation, AggregateError> {
    let (n, d) = check_inputs(inputs)?;
    require(2 * f < n, "trimmed_mean", "2f < n", n, f)?;
    let kept = n - 2 * f;
    let aggregate = per_coordinate(inputs, d, |col| {
        if f > 0 {
            col.select_nth_unstable(f);
            if kept >= 2 {
                col[f + 1..].select_nth_unstable(kept - 2);
            }
        }
        let sum: f64 = col[f..n - f].iter().map(|&k| f64::from(unkey(k))).sum();
        (sum / kept as f64) as f32
    });
    Ok(with_distance_verdicts(inputs, aggregate))
}

/// The `beta` values closest to the coordinate's median among `col`, averaged: the second
/// stage of Bulyan. `col` holds `theta` keys; `beta <= theta`.
pub(crate) fn closest_to_median_mean<V: AsRef<[f32]>>(
    inputs: &[V],
    d: usize,
    beta: usize,
) -> Vec<f32> {
    let theta = inputs.len();
    let mut gaps: Vec<(f64, f32)> = Vec::with_capacity(theta);
    per_coordinate(inputs, d, |col| {
        let mid = theta / 2;
        let (lower, upper, _) = col.select_nth_unstable(mid);
        let upper = unkey(*upper);
        let median = if theta % 2 == 1 {
            f64::from(upper)
        } else {
            (f64::from(unkey(*lower.iter().max().expect("theta >= 2"))) + f64::from(upper)) * 0.5
        };
        gaps.clear();
        gaps.extend(col.iter().map(|&k| {
            let v = unkey(k);
            ((f64::from(v) - median).abs(), v)
        }));
        gaps.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let sum: f64 = gaps[..beta].iter().map(|g| f64::from(g.1)).sum();
        (sum / beta as f64) as f32
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_preserve_order_and_round_trip() {
        let xs = [-f32::MAX, -3.5, -1e-30, -0.0, 0.0, 1e-30, 2.0, f32::MAX];
        for w in xs.windows(2) {
            assert!(key(w[0]) < key(w[1]), "{} {}", w[0], w[1]);
        }
        for x in xs {
            assert_eq!(unkey(key(x)).to_bits(), x.to_bits());
        }
    }

    #[test]
    fn median_hand_checked_odd_and_even() {
        let x = [
            vec![1.0f32, 2.0, 3.0],
            vec![2.0, 3.0, 4.0],
            vec![3.0, 5.0, 1.0],
            vec![10.0, -4.0, 7.0],
            vec![2.5, 2.5, 2.5],
        ];
        assert_eq!(
            coordinate_median(&x, 2).unwrap().aggregate,
            vec![2.5, 2.5, 3.0]
        );
        assert_eq!(
            coordinate_median(&x[..4], 1).unwrap().aggregate,
            vec![2.5, 2.5, 3.5]
        );
        assert!(matches!(
            coordinate_median(&x[..4], 2),
            Err(AggregateError::TooManyByzantine { rule: "median", .. })
        ));
    }

    #[test]
    fn trimmed_mean_hand_checked() {
        let x = [
            vec![1.0f32, 2.0, 3.0],
            vec![2.0, 3.0, 4.0],
            vec![3.0, 5.0, 1.0],
            vec![10.0, -4.0, 7.0],
            vec![2.5, 2.5, 2.5],
        ];
        let agg = trimmed_mean(&x, 1).unwrap();
        // Coordinate 2 keeps 2.5, 3, 4.
        assert_eq!(agg.aggregate[0], 2.5);
        assert_eq!(agg.aggregate[1], 2.5);
        assert!((agg.aggregate[2] - 9.5 / 3.0).abs() < 1e-6);
        assert_eq!(trimmed_mean(&x, 2).unwrap().aggregate, vec![2.5, 2.5, 3.0]);
        let mean: Vec<f32> = trimmed_mean(&x, 0).unwrap().aggregate;
        assert!((mean[0] - 3.7).abs() < 1e-6);
        // Squared distances to [2.5, 2.5, 3.1667]: 2.53, 1.19, 11.19, 113.19, 0.44. The
        // median is 2.53, so inputs 2 (11.19 > 4 x 2.53) and 3 are flagged.
        assert_eq!(agg.outlier_indices(), vec![2, 3]);
    }

    #[test]
    fn spans_several_transposed_blocks() {
        let d = COLS * 2 + 17;
        let x: Vec<Vec<f32>> = (0..7)
            .map(|i| {
                (0..d)
                    .map(|c| ((i * 31 + c * 7) % 11) as f32 - 5.0)
                    .collect()
            })
            .collect();
        let med = coordinate_median(&x, 3).unwrap().aggregate;
        for c in 0..d {
            let mut col: Vec<f32> = x.iter().map(|v| v[c]).collect();
            col.sort_by(f32::total_cmp);
            assert_eq!(med[c], col[3], "coordinate {c}");
        }
    }
}
