//! Coordinate-wise rules: median and trimmed mean (Yin, Chen, Ramchandran, Bartlett, ICML
//! 2018), and Bulyan's closest-to-median average.
//!
//! All of them are functions of each coordinate's sorted column of values, so that is what
//! is computed: the values are mapped to order-preserving integer keys (the IEEE bit pattern
//! with the magnitude bits of negatives flipped) and sorted per coordinate. With AVX2, eight
//! coordinates are sorted at once by a Batcher odd-even merge network (min/max on eight
//! lanes, straight from the row-major inputs, no transposition); elsewhere the inputs are
//! transposed in blocks of [`COLS`] coordinates and each column is sorted. A sorted column
//! of integers is unique, and every reduction reads it in ascending order, so both paths
//! give the same bits, and so does any permutation of the inputs.

use super::{check_inputs, with_distance_verdicts, AggregateError, Aggregation, Rule};

/// Coordinates per transposed block on the portable path.
const COLS: usize = 64;

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

/// A reduction of sorted columns to one value each, for `W` columns side by side:
/// `sorted[r][c]` is the key of rank `r` in column `c`. Implementations read ranks in
/// ascending order, the same for every `W`, so one column's result never depends on how
/// many columns are reduced together.
trait SortedReduce {
    fn reduce<const W: usize>(&self, sorted: &[[i32; W]]) -> [f32; W];
}

/// Applies `reducer` to every coordinate's sorted column of keys.
fn per_coordinate_sorted<V: AsRef<[f32]>, R: SortedReduce>(
    inputs: &[V],
    d: usize,
    reducer: &R,
) -> Vec<f32> {
    #[cfg(target_arch = "x86_64")]
    {
        if inputs.len() > 1 && std::arch::is_x86_feature_detected!("avx2") {
            let rows: Vec<&[f32]> = inputs.iter().map(AsRef::as_ref).collect();
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { avx2::per_coordinate_sorted(&rows, d, reducer) };
        }
    }
    per_coordinate_sorted_portable(inputs, d, reducer)
}

fn per_coordinate_sorted_portable<V: AsRef<[f32]>, R: SortedReduce>(
    inputs: &[V],
    d: usize,
    reducer: &R,
) -> Vec<f32> {
    let n = inputs.len();
    let mut out = vec![0.0f32; d];
    let mut buf = vec![[0i32; 1]; n * COLS];
    let mut start = 0;
    while start < d {
        let width = COLS.min(d - start);
        for (i, v) in inputs.iter().enumerate() {
            for (c, &x) in v.as_ref()[start..start + width].iter().enumerate() {
                buf[c * n + i] = [key(x)];
            }
        }
        for (c, o) in out[start..start + width].iter_mut().enumerate() {
            let col = &mut buf[c * n..(c + 1) * n];
            col.sort_unstable();
            *o = reducer.reduce(col)[0];
        }
        start += width;
    }
    out
}

/// Comparators `(a, b)`, `a < b`, of Batcher's odd-even merge sort for `n` elements: the
/// network for the next power of two with every comparator that touches an index `>= n`
/// dropped (as if padded with `+inf`, which never moves).
#[cfg(any(target_arch = "x86_64", test))]
fn batcher_network(n: usize) -> Vec<(usize, usize)> {
    let size = n.next_power_of_two();
    let mut out = Vec::new();
    let mut p = 1;
    while p < size {
        let mut k = p;
        while k >= 1 {
            let mut j = k % p;
            while j + k < size {
                for i in 0..k.min(size - j - k) {
                    let (a, b) = (i + j, i + j + k);
                    if a / (2 * p) == b / (2 * p) && b < n {
                        out.push((a, b));
                    }
                }
                j += 2 * k;
            }
            k /= 2;
        }
        p *= 2;
    }
    out
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{batcher_network, per_coordinate_sorted_portable, SortedReduce};
    use std::arch::x86_64::*;

    /// Sorts eight coordinates at a time with the Batcher network on `__m256i` keys, then
    /// reduces the eight sorted columns together.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn per_coordinate_sorted<R: SortedReduce>(
        rows: &[&[f32]],
        d: usize,
        reducer: &R,
    ) -> Vec<f32> {
        let n = rows.len();
        let network = batcher_network(n);
        let full = d / 8 * 8;
        let mut out = vec![0.0f32; d];
        let mut lanes = vec![_mm256_setzero_si256(); n];
        let mut sorted = vec![[0i32; 8]; n];
        let mut start = 0;
        while start < full {
            for (l, row) in lanes.iter_mut().zip(rows) {
                // SAFETY: start + 8 <= full <= d == row.len().
                let bits = unsafe { _mm256_loadu_si256(row.as_ptr().add(start) as *const __m256i) };
                let flip = _mm256_srli_epi32::<1>(_mm256_srai_epi32::<31>(bits));
                *l = _mm256_xor_si256(bits, flip);
            }
            for &(a, b) in &network {
                let (x, y) = (lanes[a], lanes[b]);
                lanes[a] = _mm256_min_epi32(x, y);
                lanes[b] = _mm256_max_epi32(x, y);
            }
            for (s, l) in sorted.iter_mut().zip(&lanes) {
                // SAFETY: s holds eight i32.
                unsafe { _mm256_storeu_si256(s.as_mut_ptr() as *mut __m256i, *l) };
            }
            out[start..start + 8].copy_from_slice(&reducer.reduce(&sorted));
            start += 8;
        }
        if full < d {
            let tail: Vec<&[f32]> = rows.iter().map(|r| &r[full..]).collect();
            let rest = per_coordinate_sorted_portable(&tail, d - full, reducer);
            out[full..].copy_from_slice(&rest);
        }
        out
    }
}

/// Column values of one rank as `f64`.
#[inline(always)]
fn values<const W: usize>(rank: &[i32; W]) -> [f64; W] {
    rank.map(|k| f64::from(unkey(k)))
}

/// The median of each sorted column: the middle value, or for even length the midpoint of
/// the two middle values.
#[inline(always)]
fn medians<const W: usize>(sorted: &[[i32; W]]) -> [f64; W] {
    let n = sorted.len();
    let upper = values(&sorted[n / 2]);
    if n % 2 == 1 {
        upper
    } else {
        let lower = values(&sorted[n / 2 - 1]);
        std::array::from_fn(|c| (lower[c] + upper[c]) * 0.5)
    }
}

struct Median;

impl SortedReduce for Median {
    #[inline(always)]
    fn reduce<const W: usize>(&self, sorted: &[[i32; W]]) -> [f32; W] {
        medians(sorted).map(|m| m as f32)
    }
}

struct TrimmedMean {
    f: usize,
}

impl SortedReduce for TrimmedMean {
    #[inline(always)]
    fn reduce<const W: usize>(&self, sorted: &[[i32; W]]) -> [f32; W] {
        let kept = &sorted[self.f..sorted.len() - self.f];
        let mut sum = [0.0f64; W];
        for rank in kept {
            let v = values(rank);
            for c in 0..W {
                sum[c] += v[c];
            }
        }
        sum.map(|s| (s / kept.len() as f64) as f32)
    }
}

/// Bulyan's second stage: the mean of the `beta` values closest to the median.
struct ClosestToMedian {
    beta: usize,
}

impl SortedReduce for ClosestToMedian {
    #[inline(always)]
    fn reduce<const W: usize>(&self, sorted: &[[i32; W]]) -> [f32; W] {
        let theta = sorted.len();
        let medians = medians(sorted);
        std::array::from_fn(|c| {
            let median = medians[c];
            let value = |r: usize| f64::from(unkey(sorted[r][c]));
            // The window [lo, hi) starts empty at the middle and takes the closer
            // neighbour each step (the lower one on ties).
            let (mut lo, mut hi) = (theta / 2, theta / 2);
            while hi - lo < self.beta {
                if lo > 0 && (hi == theta || median - value(lo - 1) <= value(hi) - median) {
                    lo -= 1;
                } else {
                    hi += 1;
                }
            }
            let sum: f64 = (lo..hi).map(value).sum();
            (sum / self.beta as f64) as f32
        })
    }
}

/// Coordinate-wise median: for every coordinate the middle value, or for even `n` the
/// midpoint of the two middle values (as `numpy.median`, ByzFL `Median` and Flower
/// `aggregate_median`). Within the range of the honest values on each coordinate as long
/// as fewer than half the inputs are arbitrary.
///
/// Scores are squared distances to the median; outliers are inputs more than three times the
/// median distance away. Unweighted. Precondition: `n >= 2f + 1`. Cost: `O(n log^2 n d)` with
/// AVX2 (eight coordinates per network pass), `O(n log n d)` elsewhere.
pub fn coordinate_median<V: AsRef<[f32]>>(
    inputs: &[V],
    f: usize,
) -> Result<Aggregation, AggregateError> {
    let (n, d) = check_inputs(inputs)?;
    Rule::Median.check_inputs(n, f)?;
    let aggregate = per_coordinate_sorted(inputs, d, &Median);
    Ok(with_distance_verdicts(inputs, aggregate))
}

/// Trimmed mean: for every coordinate, drop the `f` smallest and `f` largest values and
/// average the `n - 2f` others, summed in ascending order (ByzFL `TrMean(f)`; Flower's
/// `aggregate_trimmed_avg` with `proportiontocut = p` trims `floor(p n)` per side).
/// `f = 0` is the plain mean.
///
/// Scores are squared distances to the aggregate; outliers are inputs more than three times the
/// median distance away. Unweighted. Precondition: `n >= 2f + 1`. Cost: as [`coordinate_median`].
pub fn trimmed_mean<V: AsRef<[f32]>>(
    inputs: &[V],
    f: usize,
) -> Result<Aggregation, AggregateError> {
    let (n, d) = check_inputs(inputs)?;
    Rule::TrimmedMean.check_inputs(n, f)?;
    let aggregate = per_coordinate_sorted(inputs, d, &TrimmedMean { f });
    Ok(with_distance_verdicts(inputs, aggregate))
}

/// Bulyan's second stage: per coordinate, the mean of the `beta` values of `inputs`
/// closest to their median (ties to the lower value), summed in ascending order. In a
/// sorted column they form a window around the middle, grown one value at a time.
pub(crate) fn closest_to_median_mean<V: AsRef<[f32]>>(
    inputs: &[V],
    d: usize,
    beta: usize,
) -> Vec<f32> {
    per_coordinate_sorted(inputs, d, &ClosestToMedian { beta })
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
        // median is 2.53, so input 3 (113.19 > 9 x 2.53) is flagged, 2 (11.19) is not.
        assert_eq!(agg.outlier_indices(), vec![3]);
    }

    #[test]
    fn batcher_network_sorts_every_size() {
        // 0/1 principle: a network sorts every input iff it sorts every 0/1 input; check
        // all 0/1 inputs for small sizes and random ones up to 130.
        for n in 1..=12usize {
            let net = batcher_network(n);
            for bits in 0u32..(1 << n) {
                let mut v: Vec<u32> = (0..n).map(|i| (bits >> i) & 1).collect();
                for &(a, b) in &net {
                    if v[a] > v[b] {
                        v.swap(a, b);
                    }
                }
                assert!(
                    v.windows(2).all(|w| w[0] <= w[1]),
                    "n = {n}, bits = {bits:b}"
                );
            }
        }
        let mut s = 12345u32;
        for n in [13usize, 31, 64, 100, 130] {
            let net = batcher_network(n);
            for _ in 0..50 {
                let mut v: Vec<u32> = (0..n)
                    .map(|_| {
                        s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
                        s >> 16
                    })
                    .collect();
                for &(a, b) in &net {
                    if v[a] > v[b] {
                        v.swap(a, b);
                    }
                }
                assert!(v.windows(2).all(|w| w[0] <= w[1]), "n = {n}");
            }
        }
    }

    #[test]
    fn wide_and_portable_paths_agree_bit_for_bit() {
        let d = 8 * 9 + 5;
        let x: Vec<Vec<f32>> = (0..11)
            .map(|i| {
                (0..d)
                    .map(|c| ((i * 37 + c * 11) % 23) as f32 * 0.37 - 4.0)
                    .collect()
            })
            .collect();
        let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
        for f in [0, 2, 5] {
            let r = TrimmedMean { f };
            let fast = per_coordinate_sorted(&x, d, &r);
            assert_eq!(bits(fast), bits(per_coordinate_sorted_portable(&x, d, &r)));
        }
        let fast = per_coordinate_sorted(&x, d, &Median);
        assert_eq!(
            bits(fast),
            bits(per_coordinate_sorted_portable(&x, d, &Median))
        );
        let r = ClosestToMedian { beta: 3 };
        let fast = per_coordinate_sorted(&x, d, &r);
        assert_eq!(bits(fast), bits(per_coordinate_sorted_portable(&x, d, &r)));
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
