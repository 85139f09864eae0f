//! The deterministic, reputation-weighted committee draw.
//!
//! Given a 32-byte seed (the integrity zome derives it from the task and the round, so no
//! aggregator can choose it) and the agents with their reputations, every peer and every
//! validator draws the same ranked committee:
//!
//! 1. Keep the agents at or above the committee threshold; order them by key, so the
//!    caller's order does not matter.
//! 2. Seed ChaCha20 with the seed. `size` times, draw an integer `r` uniformly from
//!    `[0, W)` where `W` is the total reputation (in millionths) of the agents still in
//!    the pool (rejection sampling, no modulo bias), pick the agent whose cumulative
//!    interval contains `r`, and remove it from the pool.
//!
//! The order of the draw is the committee's rank: the first member aggregates the round,
//! lower-ranked members only in later slots of the task's schedule. Only integer arithmetic and the
//! ChaCha20 keystream are used, so the result is the same on every platform.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use thiserror::Error;

use crate::reputation::Reputation;

/// Why no committee could be drawn.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CommitteeError {
    /// Fewer eligible agents than seats.
    #[error(
        "committee of {size} needs {size} agents at or above the threshold, only {eligible} are"
    )]
    TooFewEligible {
        /// Seats to fill.
        size: usize,
        /// Eligible agents.
        eligible: usize,
    },
    /// The same agent appears twice among the candidates.
    #[error("candidate {index} appears more than once")]
    DuplicateCandidate {
        /// Position (after sorting by key) of the second occurrence.
        index: usize,
    },
}

/// Draws a ranked committee of `size` agents (see the module docs).
///
/// `candidates` pairs each agent's key with its reputation; `threshold` is the task's
/// committee threshold. Agents with zero reputation are never drawn.
pub fn draw_committee<K: Ord + Clone>(
    seed: [u8; 32],
    candidates: &[(K, Reputation)],
    size: usize,
    threshold: Reputation,
) -> Result<Vec<K>, CommitteeError> {
    let mut pool: Vec<(K, u64)> = candidates
        .iter()
        .filter(|(_, r)| *r >= threshold && r.0 > 0)
        .map(|(k, r)| (k.clone(), u64::from(r.0)))
        .collect();
    pool.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(index) = pool.windows(2).position(|w| w[0].0 == w[1].0) {
        return Err(CommitteeError::DuplicateCandidate { index: index + 1 });
    }
    if pool.len() < size {
        return Err(CommitteeError::TooFewEligible {
            size,
            eligible: pool.len(),
        });
    }
    let mut rng = ChaCha20Rng::from_seed(seed);
    let mut total: u64 = pool.iter().map(|(_, w)| w).sum();
    let mut committee = Vec::with_capacity(size);
    for _ in 0..size {
        let mut r = uniform_below(&mut rng, total);
        let pick = pool
            .iter()
            .position(|(_, w)| {
                if r < *w {
                    true
                } else {
                    r -= w;
                    false
                }
            })
            .expect("r < total weight of the pool");
        let (key, w) = pool.remove(pick);
        total -= w;
        committee.push(key);
    }
    Ok(committee)
}

/// Uniform integer in `[0, bound)` by rejection sampling; `bound > 0`.
fn uniform_below(rng: &mut ChaCha20Rng, bound: u64) -> u64 {
    let zone = u64::MAX - (u64::MAX % bound) - 1;
    loop {
        let x = rng.next_u64();
        if x <= zone {
            return x % bound;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agents(reps: &[u32]) -> Vec<(u8, Reputation)> {
        reps.iter()
            .enumerate()
            .map(|(i, &r)| (i as u8, Reputation(r)))
            .collect()
    }

    #[test]
    fn same_seed_same_committee_regardless_of_candidate_order() {
        let a = agents(&[500_000, 600_000, 700_000, 800_000, 900_000]);
        let mut b = a.clone();
        b.reverse();
        let ca = draw_committee([7; 32], &a, 3, Reputation(0)).unwrap();
        let cb = draw_committee([7; 32], &b, 3, Reputation(0)).unwrap();
        assert_eq!(ca, cb);
        assert_eq!(ca.len(), 3);
        let mut unique = ca.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 3);
    }

    #[test]
    fn golden_draw_is_stable_across_platforms_and_releases() {
        // Changing this value changes every network's committees: a protocol change.
        let a = agents(&[
            500_000, 600_000, 700_000, 800_000, 900_000, 100_000, 450_000,
        ]);
        let c = draw_committee([42; 32], &a, 4, Reputation(400_000)).unwrap();
        assert_eq!(c, GOLDEN);
    }
    const GOLDEN: [u8; 4] = [4, 0, 1, 2];

    #[test]
    fn below_threshold_and_zero_reputation_are_never_drawn() {
        let a = agents(&[1_000_000, 0, 399_999, 400_000]);
        for s in 0..50u8 {
            let c = draw_committee([s; 32], &a, 2, Reputation(400_000)).unwrap();
            let mut c = c.clone();
            c.sort();
            assert_eq!(c, vec![0, 3]);
        }
        assert_eq!(
            draw_committee([0; 32], &a, 3, Reputation(400_000)),
            Err(CommitteeError::TooFewEligible {
                size: 3,
                eligible: 2
            })
        );
    }

    #[test]
    fn selection_frequency_follows_reputation() {
        // One seat among weights 1:3: over 4000 seeds the heavy agent wins about 75 %.
        let a = agents(&[250_000, 750_000]);
        let wins = (0..4000u32)
            .filter(|s| {
                let mut seed = [0u8; 32];
                seed[..4].copy_from_slice(&s.to_le_bytes());
                draw_committee(seed, &a, 1, Reputation(0)).unwrap()[0] == 1
            })
            .count();
        assert!((2850..3150).contains(&wins), "{wins}");
    }

    #[test]
    fn duplicate_candidates_are_an_error() {
        let a = vec![(1u8, Reputation(500_000)), (1u8, Reputation(500_000))];
        assert_eq!(
            draw_committee([0; 32], &a, 1, Reputation(0)),
            Err(CommitteeError::DuplicateCandidate { index: 1 })
        );
    }
}
