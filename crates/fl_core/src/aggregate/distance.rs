//! Pairwise squared Euclidean distances through one blocked Gram matrix.
//!
//! `|a - b|^2 = |a|^2 + |b|^2 - 2 a.b`, so all `n(n-1)/2` distances come from the `n(n+1)/2`
//! dot products of the Gram matrix. The parameter axis is cut into blocks of [`BLOCK`]
//! values; one block of every input (`n x 2 KiB`) stays in cache while all pairs are
//! accumulated over it, and the inner kernel multiplies one row against four columns at
//! once so each loaded value of the row serves four products.
//!
//! Every dot product has one fixed evaluation order, whatever the kernel or CPU: within a
//! block, [`LANES`] `f32` partial sums take every `LANES`-th product, they are folded
//! pairwise, and the block's `f32` sum is added to an `f64` total block by block. Only
//! correctly rounded IEEE operations are involved and no fused multiply-add is ever
//! formed, so the wide (AVX2) and the portable path, native and wasm32, agree to the bit.

/// Values per block of the parameter axis.
pub const BLOCK: usize = 512;
/// Independent `f32` partial sums per block.
pub const LANES: usize = 16;

/// Squared distances, row-major `n x n`, symmetric, zero diagonal, never negative.
///
/// Every input must have the same length (callers check).
pub fn pairwise_sq_distances<V: AsRef<[f32]>>(inputs: &[V]) -> Vec<f64> {
    let gram = gram_matrix(inputs);
    let n = inputs.len();
    let mut dist = vec![0.0f64; n * n];
    for i in 0..n {
        for j in (i + 1)..n {
            let d = (gram[i * n + i] + gram[j * n + j] - 2.0 * gram[i * n + j]).max(0.0);
            dist[i * n + j] = d;
            dist[j * n + i] = d;
        }
    }
    dist
}

/// The Gram matrix `G[i][j] = x_i . x_j`, row-major `n x n`, symmetric.
pub fn gram_matrix<V: AsRef<[f32]>>(inputs: &[V]) -> Vec<f64> {
    let rows: Vec<&[f32]> = inputs.iter().map(AsRef::as_ref).collect();
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { gram_avx2(&rows) };
        }
    }
    gram_portable(&rows)
}

/// One dot product with the fixed evaluation order described in the module docs.
pub fn dot(a: &[f32], b: &[f32]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    a.chunks(BLOCK)
        .zip(b.chunks(BLOCK))
        .map(|(x, y)| f64::from(dot_block(x, y)))
        .sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn gram_avx2(rows: &[&[f32]]) -> Vec<f64> {
    gram_blocked(rows)
}

fn gram_portable(rows: &[&[f32]]) -> Vec<f64> {
    gram_blocked(rows)
}

#[inline(always)]
fn gram_blocked(rows: &[&[f32]]) -> Vec<f64> {
    let n = rows.len();
    let d = rows.first().map_or(0, |r| r.len());
    let mut gram = vec![0.0f64; n * n];
    let mut start = 0;
    while start < d {
        let end = (start + BLOCK).min(d);
        for i in 0..n {
            let a = &rows[i][start..end];
            let mut j = i;
            while j + 4 <= n {
                let s = dot_block_x4(
                    a,
                    [
                        &rows[j][start..end],
                        &rows[j + 1][start..end],
                        &rows[j + 2][start..end],
                        &rows[j + 3][start..end],
                    ],
                );
                for (k, v) in s.into_iter().enumerate() {
                    gram[i * n + j + k] += f64::from(v);
                }
                j += 4;
            }
            while j < n {
                gram[i * n + j] += f64::from(dot_block(a, &rows[j][start..end]));
                j += 1;
            }
        }
        start = end;
    }
    for i in 0..n {
        for j in 0..i {
            gram[i * n + j] = gram[j * n + i];
        }
    }
    gram
}

#[inline(always)]
fn fold_lanes(mut acc: [f32; LANES]) -> f32 {
    let mut width = LANES / 2;
    while width > 0 {
        for l in 0..width {
            acc[l] += acc[l + width];
        }
        width /= 2;
    }
    acc[0]
}

#[inline(always)]
fn dot_block(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    for (l, (x, y)) in ra.iter().zip(rb).enumerate() {
        acc[l] += x * y;
    }
    fold_lanes(acc)
}

/// Four dot products sharing the row `a`; each equals `dot_block(a, b[k])` to the bit.
#[inline(always)]
fn dot_block_x4(a: &[f32], b: [&[f32]; 4]) -> [f32; 4] {
    let mut acc = [[0.0f32; LANES]; 4];
    let full = a.len() / LANES * LANES;
    let mut off = 0;
    while off < full {
        let x = &a[off..off + LANES];
        for k in 0..4 {
            let y = &b[k][off..off + LANES];
            for l in 0..LANES {
                acc[k][l] += x[l] * y[l];
            }
        }
        off += LANES;
    }
    for k in 0..4 {
        for (l, (x, y)) in a[full..].iter().zip(&b[k][full..]).enumerate() {
            acc[k][l] += x * y;
        }
    }
    acc.map(fold_lanes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(n: usize, d: usize) -> Vec<Vec<f32>> {
        // A cheap deterministic generator keeps the test free of dependencies.
        let mut s = 0x9e37_79b9_u32;
        (0..n)
            .map(|_| {
                (0..d)
                    .map(|_| {
                        s ^= s << 13;
                        s ^= s >> 17;
                        s ^= s << 5;
                        (s as f32 / u32::MAX as f32) - 0.5
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn hand_checked_distances() {
        let x = [vec![0.0f32, 0.0], vec![3.0, 4.0], vec![1.0, 0.0]];
        let d = pairwise_sq_distances(&x);
        assert_eq!(d, vec![0.0, 25.0, 1.0, 25.0, 0.0, 20.0, 1.0, 20.0, 0.0]);
    }

    #[test]
    fn gram_entries_match_the_reference_dot_bit_for_bit() {
        // n = 7 exercises the 4-wide kernel and the remainder; d = 1300 a partial block and
        // a partial lane group.
        let x = inputs(7, 1300);
        let rows: Vec<&[f32]> = x.iter().map(|v| v.as_slice()).collect();
        let g = gram_matrix(&x);
        let portable = gram_portable(&rows);
        for i in 0..7 {
            for j in 0..7 {
                let r = dot(&x[i], &x[j]);
                assert_eq!(g[i * 7 + j].to_bits(), r.to_bits(), "({i},{j})");
                assert_eq!(portable[i * 7 + j].to_bits(), r.to_bits(), "({i},{j})");
            }
        }
    }

    #[test]
    fn distances_agree_with_direct_difference() {
        let x = inputs(5, 3000);
        let d = pairwise_sq_distances(&x);
        for i in 0..5 {
            for j in 0..5 {
                let direct: f64 = x[i]
                    .iter()
                    .zip(&x[j])
                    .map(|(a, b)| f64::from(a - b).powi(2))
                    .sum();
                assert!(
                    (d[i * 5 + j] - direct).abs() <= 1e-6 * (1.0 + direct),
                    "({i},{j})"
                );
            }
        }
    }
}
