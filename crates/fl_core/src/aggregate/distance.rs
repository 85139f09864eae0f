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
//!
//! `f32` partial sums overflow once values approach `sqrt(f32::MAX)` (about `1.8e19`): a
//! product becomes `inf`, and `inf - inf` in the Gram identity becomes NaN, which a
//! clamp to zero would read as "identical". Overflow is sticky (an infinite or NaN block
//! sum never turns finite again), so the fast results are checked once: if any Gram
//! entry or distance is not finite, the same quantities are computed again from the
//! exact differences in `f64` ([`sq_dist_exact`]), where the square of the difference of
//! any two finite `f32` values is at most `4.7e77`. For every finite input the returned
//! distances are finite and never negative; inputs within a task's norm bound never leave
//! the fast path.

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
    if !gram.iter().all(|g| g.is_finite()) {
        // An f32 partial sum overflowed: exact differences in f64 instead (module docs).
        for i in 0..n {
            for j in (i + 1)..n {
                let d = sq_dist_exact(inputs[i].as_ref(), inputs[j].as_ref());
                dist[i * n + j] = d;
                dist[j * n + i] = d;
            }
        }
        return dist;
    }
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
            return unsafe { avx2::gram(&rows) };
        }
    }
    gram_blocked(&rows, dot_block_x4, dot_block)
}

/// One dot product with the fixed evaluation order described in the module docs.
pub fn dot(a: &[f32], b: &[f32]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    a.chunks(BLOCK)
        .zip(b.chunks(BLOCK))
        .map(|(x, y)| f64::from(dot_block(x, y)))
        .sum()
}

/// `|a - b|^2` with the same fixed evaluation order as [`dot`] of `a - b` with itself, or,
/// when that overflows `f32`, [`sq_dist_exact`]. Always finite and never negative for
/// finite inputs.
pub fn sq_dist(a: &[f32], b: &[f32]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    let fast = sq_dist_fast(a, b);
    if fast.is_finite() {
        fast
    } else {
        sq_dist_exact(a, b)
    }
}

fn sq_dist_fast(a: &[f32], b: &[f32]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { avx2::sq_dist(a, b) };
        }
    }
    sq_dist_portable(a, b)
}

/// `|a - b|^2` with every difference and square taken in `f64`, summed in index order: the
/// slow path for inputs whose `f32` sums overflow. Finite for any finite `f32` inputs of
/// up to `2^200` values.
pub fn sq_dist_exact(a: &[f32], b: &[f32]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let t = f64::from(x) - f64::from(y);
            t * t
        })
        .sum()
}

/// `|a|^2` with every square taken in `f64`, summed in index order (finite for any finite
/// input); [`l2_norm`] is its square root.
pub fn sq_norm(a: &[f32]) -> f64 {
    a.iter().map(|&x| f64::from(x) * f64::from(x)).sum()
}

/// The Euclidean norm of `a`, computed in `f64` (see [`sq_norm`]). This is the norm a
/// task's update bound is checked against.
pub fn l2_norm(a: &[f32]) -> f64 {
    sq_norm(a).sqrt()
}

/// Portable [`sq_dist`]; also compiled with AVX2 enabled, where the compiler widens the
/// independent lanes but must keep every IEEE operation, so the bits stay the same.
#[inline(always)]
fn sq_dist_portable(a: &[f32], b: &[f32]) -> f64 {
    a.chunks(BLOCK)
        .zip(b.chunks(BLOCK))
        .map(|(x, y)| {
            let mut acc = [0.0f32; LANES];
            let (cx, cy) = (x.chunks_exact(LANES), y.chunks_exact(LANES));
            let (rx, ry) = (cx.remainder(), cy.remainder());
            for (p, q) in cx.zip(cy) {
                for l in 0..LANES {
                    let t = p[l] - q[l];
                    acc[l] += t * t;
                }
            }
            for (l, (p, q)) in rx.iter().zip(ry).enumerate() {
                let t = p - q;
                acc[l] += t * t;
            }
            f64::from(fold_lanes(acc))
        })
        .sum()
}

/// `acc += w * x` in `f64`, element by element (dispatched like [`sq_dist`]).
pub fn axpy(acc: &mut [f64], w: f64, x: &[f32]) {
    debug_assert_eq!(acc.len(), x.len());
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { avx2::axpy(acc, w, x) };
        }
    }
    axpy_portable(acc, w, x)
}

#[inline(always)]
fn axpy_portable(acc: &mut [f64], w: f64, x: &[f32]) {
    for (a, &v) in acc.iter_mut().zip(x) {
        *a += w * f64::from(v);
    }
}

/// The blocked Gram loop over any pair of kernels that follow the fixed evaluation order.
#[inline(always)]
fn gram_blocked(
    rows: &[&[f32]],
    kernel4: impl Fn(&[f32], [&[f32]; 4]) -> [f32; 4],
    kernel1: impl Fn(&[f32], &[f32]) -> f32,
) -> Vec<f64> {
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
                let s = kernel4(
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
                gram[i * n + j] += f64::from(kernel1(a, &rows[j][start..end]));
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

/// Adds the products of the tail (fewer than `LANES` values) into lanes `0..tail.len()`.
#[inline(always)]
fn add_tail(acc: &mut [f32; LANES], a: &[f32], b: &[f32]) {
    for (l, (x, y)) in a.iter().zip(b).enumerate() {
        acc[l] += x * y;
    }
}

fn dot_block(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    add_tail(&mut acc, ra, rb);
    fold_lanes(acc)
}

/// Four dot products sharing the row `a`; each equals `dot_block(a, b[k])` to the bit.
fn dot_block_x4(a: &[f32], b: [&[f32]; 4]) -> [f32; 4] {
    let mut out = [0.0; 4];
    for k in 0..4 {
        out[k] = dot_block(a, b[k]);
    }
    out
}

/// The same kernels with explicit 8-wide AVX2 arithmetic: lanes `0..8` and `8..16` of the
/// portable accumulator are two `__m256` registers, multiplied and added separately (never
/// fused), so every result equals the portable one to the bit.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{add_tail, axpy_portable, fold_lanes, gram_blocked, BLOCK, LANES};
    use std::arch::x86_64::*;

    /// [`super::sq_dist`]: lanes `0..8` and `8..16` in two registers, subtract, multiply,
    /// add (never fused), tail and fold as in the portable code.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn sq_dist(a: &[f32], b: &[f32]) -> f64 {
        assert_eq!(a.len(), b.len());
        let mut total = 0.0f64;
        for (x, y) in a.chunks(BLOCK).zip(b.chunks(BLOCK)) {
            let full = x.len() / LANES * LANES;
            let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            let mut off = 0;
            while off < full {
                // SAFETY: off + 16 <= full <= x.len() == y.len().
                unsafe {
                    let d0 = _mm256_sub_ps(
                        _mm256_loadu_ps(x.as_ptr().add(off)),
                        _mm256_loadu_ps(y.as_ptr().add(off)),
                    );
                    let d1 = _mm256_sub_ps(
                        _mm256_loadu_ps(x.as_ptr().add(off + 8)),
                        _mm256_loadu_ps(y.as_ptr().add(off + 8)),
                    );
                    lo = _mm256_add_ps(lo, _mm256_mul_ps(d0, d0));
                    hi = _mm256_add_ps(hi, _mm256_mul_ps(d1, d1));
                }
                off += LANES;
            }
            let mut acc = [0.0f32; LANES];
            // SAFETY: acc holds 16 floats, two stores of 8.
            unsafe {
                _mm256_storeu_ps(acc.as_mut_ptr(), lo);
                _mm256_storeu_ps(acc.as_mut_ptr().add(8), hi);
            }
            for (l, (p, q)) in x[full..].iter().zip(&y[full..]).enumerate() {
                let t = p - q;
                acc[l] += t * t;
            }
            total += f64::from(fold_lanes(acc));
        }
        total
    }

    /// [`super::axpy`]: four `f64` lanes, convert, multiply, add (never fused).
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn axpy(acc: &mut [f64], w: f64, x: &[f32]) {
        assert_eq!(acc.len(), x.len());
        let full = x.len() / 4 * 4;
        let wv = _mm256_set1_pd(w);
        let mut off = 0;
        while off < full {
            // SAFETY: off + 4 <= full <= x.len() == acc.len().
            unsafe {
                let v = _mm256_cvtps_pd(_mm_loadu_ps(x.as_ptr().add(off)));
                let p = acc.as_mut_ptr().add(off);
                _mm256_storeu_pd(p, _mm256_add_pd(_mm256_loadu_pd(p), _mm256_mul_pd(wv, v)));
            }
            off += 4;
        }
        axpy_portable(&mut acc[full..], w, &x[full..]);
    }

    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn gram(rows: &[&[f32]]) -> Vec<f64> {
        // SAFETY (both closures): only reached on CPUs with AVX2.
        gram_blocked(
            rows,
            |a, b| unsafe { dot_block_x4(a, b) },
            |a, b| unsafe { dot_block_x4(a, [b, b, b, b])[0] },
        )
    }

    #[target_feature(enable = "avx2")]
    unsafe fn dot_block_x4(a: &[f32], b: [&[f32]; 4]) -> [f32; 4] {
        let full = a.len() / LANES * LANES;
        for bk in &b {
            assert_eq!(bk.len(), a.len());
        }
        let mut lo = [_mm256_setzero_ps(); 4];
        let mut hi = [_mm256_setzero_ps(); 4];
        let mut off = 0;
        while off < full {
            // SAFETY: off + 16 <= full <= len of a and of every b[k] (asserted above).
            unsafe {
                let xa = _mm256_loadu_ps(a.as_ptr().add(off));
                let xb = _mm256_loadu_ps(a.as_ptr().add(off + 8));
                for k in 0..4 {
                    let p = b[k].as_ptr().add(off);
                    lo[k] = _mm256_add_ps(lo[k], _mm256_mul_ps(xa, _mm256_loadu_ps(p)));
                    hi[k] = _mm256_add_ps(hi[k], _mm256_mul_ps(xb, _mm256_loadu_ps(p.add(8))));
                }
            }
            off += LANES;
        }
        let mut out = [0.0f32; 4];
        for k in 0..4 {
            let mut acc = [0.0f32; LANES];
            // SAFETY: acc holds 16 floats, two stores of 8.
            unsafe {
                _mm256_storeu_ps(acc.as_mut_ptr(), lo[k]);
                _mm256_storeu_ps(acc.as_mut_ptr().add(8), hi[k]);
            }
            add_tail(&mut acc, &a[full..], &b[k][full..]);
            out[k] = fold_lanes(acc);
        }
        out
    }
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
        let portable = gram_blocked(&rows, dot_block_x4, dot_block);
        for i in 0..7 {
            for j in 0..7 {
                let r = dot(&x[i], &x[j]);
                assert_eq!(g[i * 7 + j].to_bits(), r.to_bits(), "({i},{j})");
                assert_eq!(portable[i * 7 + j].to_bits(), r.to_bits(), "({i},{j})");
            }
        }
    }

    #[test]
    fn dispatched_kernels_match_portable_bit_for_bit() {
        let x = inputs(2, 2100);
        let direct: Vec<f32> = x[0].iter().zip(&x[1]).map(|(a, b)| a - b).collect();
        assert_eq!(
            sq_dist(&x[0], &x[1]).to_bits(),
            dot(&direct, &direct).to_bits()
        );
        assert_eq!(
            sq_dist(&x[0], &x[1]).to_bits(),
            sq_dist_portable(&x[0], &x[1]).to_bits()
        );
        let mut fast = vec![0.5f64; 2100];
        let mut portable = fast.clone();
        axpy(&mut fast, 0.3, &x[0]);
        axpy_portable(&mut portable, 0.3, &x[0]);
        assert_eq!(fast, portable);
    }

    #[test]
    fn overflowing_inputs_get_exact_finite_distances() {
        // The overflow takeover: honest updates around +-0.02, one input at +-f32::MAX on
        // 512 coordinates with the honest signs. In f32 the Gram identity gives inf - inf.
        let honest: Vec<Vec<f32>> = (0..4)
            .map(|i| {
                (0..2048)
                    .map(|c| if (c + i) % 3 == 0 { -0.02 } else { 0.02 })
                    .collect()
            })
            .collect();
        let mut attacker = vec![0.0f32; 2048];
        for c in 0..512 {
            attacker[c] = f32::MAX.copysign(honest[0][c]);
        }
        let mut x = honest.clone();
        x.push(attacker.clone());
        let d = pairwise_sq_distances(&x);
        assert!(d.iter().all(|v| v.is_finite() && *v >= 0.0), "{d:?}");
        // The attacker is far from everyone; honest pairs keep their exact distances.
        for i in 0..4 {
            assert!(d[i * 5 + 4] > 1e79, "{}", d[i * 5 + 4]);
            assert_eq!(d[i * 5 + 4], sq_dist_exact(&honest[i], &attacker));
        }
        assert_eq!(
            sq_dist(&attacker, &honest[0]),
            sq_dist_exact(&attacker, &honest[0])
        );
        let opposite: Vec<f32> = attacker.iter().map(|v| -v).collect();
        assert!(sq_dist(&attacker, &opposite).is_finite());
        assert_eq!(l2_norm(&[3.0, 4.0]), 5.0);
        assert!(l2_norm(&attacker).is_finite());
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
