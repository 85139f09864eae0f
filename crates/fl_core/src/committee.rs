//! The deterministic, reputation-weighted committee draw.
//!
//! Given a 32-byte seed (the integrity zome derives it from the task and the round, so no
//! aggregator can choose it) and the agents with their reputations, every peer and every
//! validator draws the same ranked committee:
//!
//! 1. Keep the agents at or above the committee threshold and above zero.
//! 2. Give each its own *ticket*: `u` = the first 53 bits of
//!    SHA-256(domain, seed, the agent's key bytes) as a number in `(0, 1]`, and
//!    `ticket = -ln(u) / w`, where `w` is its reputation in millionths. `-ln(u)` is an
//!    exponential variate, so the ticket is exponential with rate `w`.
//! 3. The `size` smallest tickets (ties by key) form the committee, smallest first; that
//!    order is the rank.
//!
//! This is weighted sampling without replacement (Efraimidis and Spirakis): the first seat
//! goes to an agent with probability proportional to its reputation, the next to one of
//! the rest in the same proportion, and so on. What matters for the protocol is that an
//! agent's ticket depends on the seed, its key and its own reputation only. An aggregator
//! that can choose among several evidence sets, and so among several reputation tables,
//! cannot re-roll the whole draw: a change of one agent's reputation moves that agent's
//! ticket and nobody else's, so the committee can change only by that agent entering or
//! leaving it (`tests/properties.rs`,
//! `changing_one_reputation_moves_only_that_agents_place`). A draw over cumulative weights
//! (one random number per seat) would instead redraw every seat when any weight changed.
//!
//! The ticket uses SHA-256 and `libm::log`, a software logarithm, and IEEE division, so the
//! result is the same on every platform, native and wasm32.

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::reputation::Reputation;

/// Domain separation for the tickets; changing it changes every network's committees.
const TICKET_DOMAIN: &[u8] = b"mycelix-fl committee ticket v1";

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

/// An agent's ticket in the draw seeded with `seed` (see the module docs): smaller is
/// better. Finite and non-negative for any reputation above zero.
pub fn ticket(seed: &[u8; 32], key: &[u8], reputation: Reputation) -> f64 {
    let digest = Sha256::new()
        .chain_update(TICKET_DOMAIN)
        .chain_update(seed)
        .chain_update((key.len() as u64).to_be_bytes())
        .chain_update(key)
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // 53 bits, shifted into (0, 1]: ln never sees zero.
    let u = ((u64::from_be_bytes(first) >> 11) + 1) as f64 / (1u64 << 53) as f64;
    -libm::log(u) / f64::from(reputation.0.max(1))
}

/// Draws a ranked committee of `size` agents (see the module docs).
///
/// `candidates` pairs each agent's key with its reputation; `threshold` is the task's
/// committee threshold. Agents with zero reputation are never drawn.
pub fn draw_committee<K: Ord + Clone + AsRef<[u8]>>(
    seed: [u8; 32],
    candidates: &[(K, Reputation)],
    size: usize,
    threshold: Reputation,
) -> Result<Vec<K>, CommitteeError> {
    let mut pool: Vec<(&K, Reputation)> = candidates
        .iter()
        .filter(|(_, r)| *r >= threshold && r.0 > 0)
        .map(|(k, r)| (k, *r))
        .collect();
    pool.sort_by(|a, b| a.0.cmp(b.0));
    if let Some(index) = pool.windows(2).position(|w| w[0].0 == w[1].0) {
        return Err(CommitteeError::DuplicateCandidate { index: index + 1 });
    }
    if pool.len() < size {
        return Err(CommitteeError::TooFewEligible {
            size,
            eligible: pool.len(),
        });
    }
    let mut ranked: Vec<(f64, &K)> = pool
        .into_iter()
        .map(|(k, r)| (ticket(&seed, k.as_ref(), r), k))
        .collect();
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1)));
    Ok(ranked
        .into_iter()
        .take(size)
        .map(|(_, k)| k.clone())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agents(reps: &[u32]) -> Vec<([u8; 1], Reputation)> {
        reps.iter()
            .enumerate()
            .map(|(i, &r)| ([i as u8], Reputation(r)))
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
    const GOLDEN: [[u8; 1]; 4] = [[1], [2], [4], [3]];

    #[test]
    fn below_threshold_and_zero_reputation_are_never_drawn() {
        let a = agents(&[1_000_000, 0, 399_999, 400_000]);
        for s in 0..50u8 {
            let c = draw_committee([s; 32], &a, 2, Reputation(400_000)).unwrap();
            let mut c = c.clone();
            c.sort();
            assert_eq!(c, vec![[0], [3]]);
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
                draw_committee(seed, &a, 1, Reputation(0)).unwrap()[0] == [1]
            })
            .count();
        assert!((2850..3150).contains(&wins), "{wins}");
    }

    #[test]
    fn duplicate_candidates_are_an_error() {
        let a = vec![([1u8], Reputation(500_000)), ([1u8], Reputation(500_000))];
        assert_eq!(
            draw_committee([0; 32], &a, 1, Reputation(0)),
            Err(CommitteeError::DuplicateCandidate { index: 1 })
        );
    }
}
