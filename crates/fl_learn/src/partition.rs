//! Splitting a training set across peers: IID shards, or label skew drawn from a
//! Dirichlet distribution (Hsu, Qi, Brown 2019), the standard non-IID benchmark setting.

use rand::seq::SliceRandom;
use rand::Rng;
use rand_distr::{Distribution, Gamma};
use thiserror::Error;

/// How examples are spread over peers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scheme {
    /// A uniform random shard per peer.
    Iid,
    /// For every class, the share of each peer is drawn from `Dir(alpha, ..., alpha)`:
    /// small `alpha` gives each peer few classes, large `alpha` approaches IID.
    Dirichlet {
        /// Concentration, `> 0`.
        alpha: f64,
    },
}

/// Why a partition could not be made.
#[derive(Debug, Error, PartialEq)]
pub enum PartitionError {
    /// No peers, or more peers than examples allow.
    #[error("cannot give {peers} peers at least {min} examples each from {examples} examples")]
    TooFewExamples {
        /// Peers asked for.
        peers: usize,
        /// Minimum per peer.
        min: usize,
        /// Examples available.
        examples: usize,
    },
    /// `alpha` is not a positive finite number.
    #[error("dirichlet alpha must be finite and > 0, got {0}")]
    BadAlpha(f64),
    /// Repeated Dirichlet draws kept leaving a peer with too few examples.
    #[error("dirichlet(alpha = {alpha}) left a peer with fewer than {min} examples in {tries} draws; use a larger alpha or fewer peers")]
    Degenerate {
        /// The concentration.
        alpha: f64,
        /// Minimum per peer.
        min: usize,
        /// Draws tried.
        tries: usize,
    },
}

/// Indices of the examples of each peer; every example goes to exactly one peer and
/// every peer gets at least `min` examples.
pub fn partition<R: Rng>(
    labels: &[usize],
    classes: usize,
    peers: usize,
    min: usize,
    scheme: Scheme,
    rng: &mut R,
) -> Result<Vec<Vec<usize>>, PartitionError> {
    if peers == 0 || peers * min > labels.len() {
        return Err(PartitionError::TooFewExamples {
            peers,
            min,
            examples: labels.len(),
        });
    }
    match scheme {
        Scheme::Iid => {
            let mut idx: Vec<usize> = (0..labels.len()).collect();
            idx.shuffle(rng);
            Ok((0..peers)
                .map(|p| idx.iter().skip(p).step_by(peers).copied().collect())
                .collect())
        }
        Scheme::Dirichlet { alpha } => {
            if !(alpha.is_finite() && alpha > 0.0) {
                return Err(PartitionError::BadAlpha(alpha));
            }
            let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
            for (i, &y) in labels.iter().enumerate() {
                by_class[y].push(i);
            }
            let tries = 100;
            for _ in 0..tries {
                let mut shards: Vec<Vec<usize>> = vec![Vec::new(); peers];
                for members in &by_class {
                    let mut members = members.clone();
                    members.shuffle(rng);
                    // Dir(alpha, ..., alpha) as normalised Gamma(alpha, 1) draws.
                    let gamma =
                        Gamma::new(alpha, 1.0).map_err(|_| PartitionError::BadAlpha(alpha))?;
                    let draws: Vec<f64> = (0..peers).map(|_| gamma.sample(rng)).collect();
                    let total: f64 = draws.iter().sum();
                    let shares: Vec<f64> = if total > 0.0 {
                        draws.iter().map(|g| g / total).collect()
                    } else {
                        vec![1.0 / peers as f64; peers]
                    };
                    let mut start = 0;
                    let mut cumulative = 0.0;
                    for (p, share) in shares.iter().enumerate() {
                        cumulative += share;
                        let end = if p + 1 == peers {
                            members.len()
                        } else {
                            ((cumulative * members.len() as f64).round() as usize)
                                .min(members.len())
                        };
                        shards[p].extend_from_slice(&members[start..end.max(start)]);
                        start = end.max(start);
                    }
                }
                if shards.iter().all(|s| s.len() >= min) {
                    // Shards were filled class by class; shuffle so any slice is a sample.
                    shards.iter_mut().for_each(|s| s.shuffle(rng));
                    return Ok(shards);
                }
            }
            Err(PartitionError::Degenerate { alpha, min, tries })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn labels() -> Vec<usize> {
        (0..1000).map(|i| i % 10).collect()
    }

    fn covers_everything_once(shards: &[Vec<usize>], n: usize) {
        let mut all: Vec<usize> = shards.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..n).collect::<Vec<_>>());
    }

    #[test]
    fn iid_shards_are_balanced_and_disjoint() {
        let s = partition(
            &labels(),
            10,
            7,
            10,
            Scheme::Iid,
            &mut ChaCha8Rng::seed_from_u64(1),
        )
        .unwrap();
        covers_everything_once(&s, 1000);
        assert!(s.iter().all(|p| p.len() == 142 || p.len() == 143));
    }

    #[test]
    fn small_alpha_skews_labels() {
        let y = labels();
        let skewed = partition(
            &y,
            10,
            10,
            5,
            Scheme::Dirichlet { alpha: 0.1 },
            &mut ChaCha8Rng::seed_from_u64(2),
        )
        .unwrap();
        let even = partition(
            &y,
            10,
            10,
            5,
            Scheme::Dirichlet { alpha: 100.0 },
            &mut ChaCha8Rng::seed_from_u64(2),
        )
        .unwrap();
        covers_everything_once(&skewed, 1000);
        covers_everything_once(&even, 1000);
        // Share of each peer's most common class: high under skew, near 1/10 when even.
        let top_share = |shards: &[Vec<usize>]| {
            shards
                .iter()
                .map(|s| {
                    let mut counts = [0usize; 10];
                    s.iter().for_each(|&i| counts[y[i]] += 1);
                    *counts.iter().max().unwrap() as f64 / s.len() as f64
                })
                .sum::<f64>()
                / shards.len() as f64
        };
        assert!(top_share(&skewed) > 0.5, "{}", top_share(&skewed));
        assert!(top_share(&even) < 0.2, "{}", top_share(&even));
    }

    #[test]
    fn impossible_requests_are_errors() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        assert!(matches!(
            partition(&labels(), 10, 0, 1, Scheme::Iid, &mut rng),
            Err(PartitionError::TooFewExamples { .. })
        ));
        assert!(matches!(
            partition(&labels(), 10, 200, 10, Scheme::Iid, &mut rng),
            Err(PartitionError::TooFewExamples { .. })
        ));
        assert_eq!(
            partition(
                &labels(),
                10,
                5,
                1,
                Scheme::Dirichlet { alpha: -1.0 },
                &mut rng
            ),
            Err(PartitionError::BadAlpha(-1.0))
        );
    }
}
