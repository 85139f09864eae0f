//! Splitting a training set across peers: IID shards; label skew drawn from a Dirichlet
//! distribution (Hsu, Qi, Brown 2019), the standard non-IID benchmark setting; and the two
//! further settings of ByzFL's benchmark: examples sorted by label and cut into one
//! contiguous run per peer ("extreme"), and a mix of the two ("gamma similarity").

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
    /// The examples sorted by label and cut into one contiguous run per peer, of sizes
    /// differing by at most one: each peer holds one or two classes (ByzFL's
    /// `extreme_niid`).
    Extreme,
    /// A random share `similarity` of the examples spread IID, the rest as in
    /// [`Scheme::Extreme`]; every peer gets its part of both (ByzFL's
    /// `gamma_similarity_niid`). 1 is IID, 0 is extreme.
    GammaSimilarity {
        /// The IID share, in `[0, 1]`.
        similarity: f64,
    },
}

impl Scheme {
    /// A short label: `iid`, `dirichlet:0.5`, `extreme`, `gamma:0.5`.
    pub fn label(&self) -> String {
        match self {
            Scheme::Iid => "iid".into(),
            Scheme::Dirichlet { alpha } => format!("dirichlet:{alpha}"),
            Scheme::Extreme => "extreme".into(),
            Scheme::GammaSimilarity { similarity } => format!("gamma:{similarity}"),
        }
    }
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
    /// The gamma-similarity share is not in `[0, 1]`.
    #[error("the gamma similarity must be between 0 and 1, got {0}")]
    BadSimilarity(f64),
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
            Ok(deal(&idx, peers))
        }
        Scheme::Extreme => {
            let idx: Vec<usize> = (0..labels.len()).collect();
            let mut shards = by_label_runs(labels, idx, peers);
            shards.iter_mut().for_each(|s| s.shuffle(rng));
            Ok(shards)
        }
        Scheme::GammaSimilarity { similarity } => {
            if !(0.0..=1.0).contains(&similarity) {
                return Err(PartitionError::BadSimilarity(similarity));
            }
            let mut idx: Vec<usize> = (0..labels.len()).collect();
            idx.shuffle(rng);
            let similar = (labels.len() as f64 * similarity).floor() as usize;
            let (iid, rest) = idx.split_at(similar);
            let mut shards = deal(iid, peers);
            for (shard, run) in shards
                .iter_mut()
                .zip(by_label_runs(labels, rest.to_vec(), peers))
            {
                shard.extend(run);
                shard.shuffle(rng);
            }
            Ok(shards)
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

/// `idx` dealt round-robin to `peers` (sizes differ by at most one).
fn deal(idx: &[usize], peers: usize) -> Vec<Vec<usize>> {
    (0..peers)
        .map(|p| idx.iter().skip(p).step_by(peers).copied().collect())
        .collect()
}

/// `idx` sorted by label (then index) and cut into `peers` contiguous runs whose sizes
/// differ by at most one, the longer ones first.
fn by_label_runs(labels: &[usize], mut idx: Vec<usize>, peers: usize) -> Vec<Vec<usize>> {
    idx.sort_unstable_by_key(|&i| (labels[i], i));
    let (base, extra) = (idx.len() / peers, idx.len() % peers);
    let mut start = 0;
    (0..peers)
        .map(|p| {
            let len = base + usize::from(p < extra);
            let run = idx[start..start + len].to_vec();
            start += len;
            run
        })
        .collect()
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

    /// Distinct labels in each shard.
    fn classes_per_shard(shards: &[Vec<usize>], y: &[usize]) -> Vec<usize> {
        shards
            .iter()
            .map(|s| {
                let mut seen: Vec<usize> = s.iter().map(|&i| y[i]).collect();
                seen.sort_unstable();
                seen.dedup();
                seen.len()
            })
            .collect()
    }

    #[test]
    fn extreme_gives_each_peer_a_contiguous_run_of_labels() {
        let y = labels();
        let s = partition(
            &y,
            10,
            10,
            1,
            Scheme::Extreme,
            &mut ChaCha8Rng::seed_from_u64(4),
        )
        .unwrap();
        covers_everything_once(&s, 1000);
        // 100 examples of each class, 100 per peer: one class each.
        assert!(classes_per_shard(&s, &y).iter().all(|&c| c == 1));
        // Uneven counts: sizes differ by at most one, at most two classes per peer.
        let s = partition(
            &y,
            10,
            7,
            1,
            Scheme::Extreme,
            &mut ChaCha8Rng::seed_from_u64(4),
        )
        .unwrap();
        covers_everything_once(&s, 1000);
        assert!(s.iter().all(|p| p.len() == 142 || p.len() == 143));
        assert!(classes_per_shard(&s, &y).iter().all(|&c| c <= 3));
    }

    #[test]
    fn gamma_similarity_runs_from_extreme_to_iid() {
        let y = labels();
        let split = |similarity| {
            partition(
                &y,
                10,
                10,
                1,
                Scheme::GammaSimilarity { similarity },
                &mut ChaCha8Rng::seed_from_u64(5),
            )
            .unwrap()
        };
        for g in [0.0, 0.5, 1.0] {
            let s = split(g);
            covers_everything_once(&s, 1000);
            assert!(s.iter().all(|p| p.len() == 100), "{g}");
        }
        assert!(classes_per_shard(&split(0.0), &y).iter().all(|&c| c == 1));
        // Half IID: 50 examples of any class plus a run of 50 of one or two classes.
        assert!(classes_per_shard(&split(0.5), &y).iter().all(|&c| c >= 5));
        assert!(classes_per_shard(&split(1.0), &y).iter().all(|&c| c >= 8));
        assert_eq!(
            partition(
                &y,
                10,
                10,
                1,
                Scheme::GammaSimilarity { similarity: 1.5 },
                &mut ChaCha8Rng::seed_from_u64(5)
            ),
            Err(PartitionError::BadSimilarity(1.5))
        );
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
