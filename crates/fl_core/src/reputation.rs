//! Reputation: a fixed-point score in `[0, 1]` that follows an agent's behaviour.
//!
//! Reputation is stored as millionths ([`Reputation`], `1_000_000 = 1.0`) and updated
//! with integer arithmetic only, so every peer and every validator computes the same
//! value. Per round, an agent's reputation changes by the [`Evidence`] of that round:
//!
//! ```text
//! Accepted          r' = r + gain * (1 - r)          (rise towards 1, slower near the top)
//! RejectedDisputed  r' = r * disputed_keep           (slow fall: contested evidence)
//! RejectedClear     r' = r * clear_keep              (fast fall: plain evidence)
//! IncludedSilent    r' = r + gain * (c - r), r < c   (back towards c = min(initial,
//!                                                     just under the committee threshold);
//!                                                     c = initial when the round's committee
//!                                                     is short, see update_short_committee)
//! Absent            r' = r
//! ```
//!
//! "Disputed" is a rejection on contested evidence, "clear" one on plain evidence (see
//! [`Evidence`]); the robust aggregator's own verdict never moves reputation, because at
//! high Byzantine fractions a tight cluster of attackers makes honest work look far. So a
//! narrow committee majority only costs its victims a little, while plain attacks are
//! punished fast. Agents below `floor` are left out of aggregation; only agents at or above
//! `committee_threshold` can be drawn for a committee.
//!
//! **Absence.** Each row also counts the aggregated rounds in a row the agent took no part
//! in (no listed submission, no cited ballot): [`age_for_absence`]. Rounds closed without a
//! quorum (carry-overs) do not count. Beyond [`ABSENCE_GRACE`] such rounds, each further
//! one keeps [`ABSENCE_KEEP`] of an agent's reputation, but never takes it below just
//! under the committee threshold: absence takes an agent out of the committee pool, where
//! its seats would pass unused, and costs nothing more. One round of taking part resets
//! the count, and one accepted update takes the agent back over the threshold (0.399999
//! -> 0.46 at the default gain). The grace makes the count hard to abuse: an aggregator
//! that leaves an agent out of its evidence adds one to the count, and
//! only a run of more than [`ABSENCE_GRACE`] such aggregators in a row costs the agent
//! anything, and then only its committee seat until it next takes part.

use thiserror::Error;

/// Aggregated rounds in a row an agent may miss before absence costs it reputation.
pub const ABSENCE_GRACE: u32 = 10;

/// Share of reputation an absent agent keeps for each round missed beyond
/// [`ABSENCE_GRACE`], in millionths.
pub const ABSENCE_KEEP: Reputation = Reputation(900_000);

/// Ages a round's new table for absence (see the module docs). `table` is the table the
/// round produced, sorted by agent; `previous_missed` the counts of the round's base table,
/// sorted by agent; `present` the agents who took part in the round (listed submitters,
/// cited voters). Lowers the reputation of agents absent for more than [`ABSENCE_GRACE`]
/// rounds and returns each row's new count, aligned with `table`.
pub fn age_for_absence<K: Ord>(
    params: &ReputationParams,
    table: &mut [(K, Reputation)],
    previous_missed: &[(K, u32)],
    present: &[K],
) -> Vec<u32> {
    table
        .iter_mut()
        .map(|(agent, r)| {
            if present.contains(agent) {
                return 0;
            }
            let missed = previous_missed
                .binary_search_by(|(k, _)| k.cmp(agent))
                .map_or(0, |i| previous_missed[i].1)
                .saturating_add(1);
            *r = params.after_absence(*r, missed);
            missed
        })
        .collect()
}

/// Reputation in millionths: `Reputation(1_000_000)` is `1.0`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Reputation(pub u32);

impl Reputation {
    /// Fixed-point unit: `ONE.0 == 1_000_000`.
    pub const ONE: Reputation = Reputation(1_000_000);

    /// From a fraction in `[0, 1]`, rounded to the nearest millionth and clamped.
    pub fn from_f64(x: f64) -> Reputation {
        if x.is_nan() {
            return Reputation(0);
        }
        Reputation((x.clamp(0.0, 1.0) * 1e6).round() as u32)
    }

    /// As a fraction in `[0, 1]`.
    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 1e6
    }

    /// `self * factor`, both in millionths, rounded down.
    fn scale(self, factor: Reputation) -> Reputation {
        Reputation((u64::from(self.0) * u64::from(factor.0) / 1_000_000) as u32)
    }
}

impl std::fmt::Display for Reputation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.4}", self.as_f64())
    }
}

/// What one round showed about an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Evidence {
    /// The committee accepted the agent's update (and it was aggregated, or the agent is
    /// below the floor and works its way back).
    Accepted,
    /// Rejected on contested evidence: a committee rejection by less than two to one (of an
    /// agent above the floor), or the agent's votes as a committee member distrusted (see
    /// [`crate::trust`]).
    RejectedDisputed,
    /// Rejected on clear evidence: a committee rejection by two to one or more, a missing
    /// proof, a forked chain, an update above the norm bound or one that does no work.
    RejectedClear,
    /// Aggregated without a committee verdict (no committee, a silent one, or nobody
    /// trusted): a reputation below [`ReputationParams::silent_ceiling`] (the initial
    /// value, but under the committee threshold) moves towards it by the gain. Disputed
    /// or noisy evidence fades this way while the agent's work is used, and an agent
    /// back above the floor is aggregated again; a committee seat needs acceptance.
    IncludedSilent,
    /// Nothing to go on: the agent did not submit; only the aggregator judged it; its
    /// update was a copy or was copied; or its own proof failed and the committee had no
    /// verdict.
    Absent,
}

/// The parameters of the rule, as a task fixes them (all in millionths).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReputationParams {
    /// Reputation of an agent the first time it appears.
    pub initial: Reputation,
    /// Fraction of the gap to `1.0` gained per accepted round.
    pub gain: Reputation,
    /// Factor kept on a disputed rejection.
    pub disputed_keep: Reputation,
    /// Factor kept on a clear rejection.
    pub clear_keep: Reputation,
    /// Below this, an agent's updates are left out of aggregation.
    pub floor: Reputation,
    /// At or above this, an agent can sit on a committee.
    pub committee_threshold: Reputation,
}

impl Default for ReputationParams {
    /// Start at 0.5; gain 10 % of the gap per accepted round; keep 90 % on a disputed and
    /// 50 % on a clear rejection; floor 0.1; committee threshold 0.4.
    ///
    /// With these, a newcomer that attacks falls below the floor after three clear
    /// rejections (0.5 -> 0.25 -> 0.125 -> 0.0625), while an honest agent wrongly rejected
    /// by a captured committee leaves the committee pool after three disputed rejections
    /// (0.5 -> 0.45 -> 0.405 -> 0.3645) but is aggregated for sixteen.
    fn default() -> Self {
        ReputationParams {
            initial: Reputation(500_000),
            gain: Reputation(100_000),
            disputed_keep: Reputation(900_000),
            clear_keep: Reputation(500_000),
            floor: Reputation(100_000),
            committee_threshold: Reputation(400_000),
        }
    }
}

/// Why reputation parameters are unusable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid reputation parameters: {0}")]
pub struct ReputationParamsError(String);

impl ReputationParams {
    /// Every value must lie in `[0, 1]`, and a clear rejection must cost at least as much
    /// as a disputed one.
    pub fn check(&self) -> Result<(), ReputationParamsError> {
        let fields = [
            ("initial", self.initial),
            ("gain", self.gain),
            ("disputed_keep", self.disputed_keep),
            ("clear_keep", self.clear_keep),
            ("floor", self.floor),
            ("committee_threshold", self.committee_threshold),
        ];
        for (name, value) in fields {
            if value > Reputation::ONE {
                return Err(ReputationParamsError(format!("{name} = {value} exceeds 1")));
            }
        }
        if self.clear_keep > self.disputed_keep {
            return Err(ReputationParamsError(format!(
                "clear_keep ({}) must not exceed disputed_keep ({})",
                self.clear_keep, self.disputed_keep
            )));
        }
        Ok(())
    }

    /// The reputation after one round with `evidence`.
    pub fn update(&self, r: Reputation, evidence: Evidence) -> Reputation {
        let r = r.min(Reputation::ONE);
        match evidence {
            Evidence::Accepted => {
                Reputation(r.0 + Reputation(Reputation::ONE.0 - r.0).scale(self.gain).0)
            }
            Evidence::RejectedDisputed => r.scale(self.disputed_keep),
            Evidence::RejectedClear => r.scale(self.clear_keep),
            Evidence::IncludedSilent if r < self.silent_ceiling() => {
                self.toward(r, self.silent_ceiling())
            }
            Evidence::IncludedSilent | Evidence::Absent => r,
        }
    }

    /// The reputation after one round with `evidence` in a round whose committee has fewer
    /// members than the task's trusted voter minimum (a short committee, always silent):
    /// as [`ReputationParams::update`], except that [`Evidence::IncludedSilent`] restores
    /// up to the initial value, over the committee threshold, so that agents whose work
    /// is aggregated refill the committee pool. Without it, a pool that skewed data had
    /// emptied below the minimum would stay silent for good: only acceptance lifts an
    /// agent over the threshold, and a silent committee accepts nobody.
    pub fn update_short_committee(&self, r: Reputation, evidence: Evidence) -> Reputation {
        let r = r.min(Reputation::ONE);
        match evidence {
            Evidence::IncludedSilent if r < self.initial => self.toward(r, self.initial),
            _ => self.update(r, evidence),
        }
    }

    /// `r` moved towards `ceiling` (above it) by the gain.
    fn toward(&self, r: Reputation, ceiling: Reputation) -> Reputation {
        Reputation(r.0 + Reputation(ceiling.0 - r.0).scale(self.gain).0)
    }

    /// The reputation of an agent with `r` that has now missed `missed` aggregated rounds in
    /// a row (see the module docs): unchanged within [`ABSENCE_GRACE`] and below the
    /// committee threshold, else `r * ABSENCE_KEEP`, but not below one millionth under the
    /// threshold, nor below the floor.
    pub fn after_absence(&self, r: Reputation, missed: u32) -> Reputation {
        if missed <= ABSENCE_GRACE || !self.committee_eligible(r) {
            return r;
        }
        // Never below the floor either, should a task set its threshold at or under it.
        let lowest = Reputation(self.committee_threshold.0.saturating_sub(1)).max(self.floor);
        r.scale(ABSENCE_KEEP).max(lowest).min(r)
    }

    /// How far [`Evidence::IncludedSilent`] restores reputation: the initial value, but
    /// below the committee threshold. Silence gives back the right to be aggregated,
    /// never a committee seat; only acceptance does.
    pub fn silent_ceiling(&self) -> Reputation {
        self.initial
            .min(Reputation(self.committee_threshold.0.saturating_sub(1)))
    }

    /// Whether updates by an agent with reputation `r` are aggregated.
    pub fn above_floor(&self, r: Reputation) -> bool {
        r >= self.floor
    }

    /// Whether an agent with reputation `r` can be drawn for a committee.
    pub fn committee_eligible(&self, r: Reputation) -> bool {
        r >= self.committee_threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_checked_updates() {
        let p = ReputationParams::default();
        let r = p.initial;
        assert_eq!(p.update(r, Evidence::Accepted), Reputation(550_000));
        assert_eq!(p.update(r, Evidence::RejectedDisputed), Reputation(450_000));
        assert_eq!(p.update(r, Evidence::RejectedClear), Reputation(250_000));
        assert_eq!(p.update(r, Evidence::Absent), r);
        // Silent inclusion pulls a low reputation back towards just under the committee
        // threshold (0.4), no further.
        assert_eq!(p.update(r, Evidence::IncludedSilent), r);
        assert_eq!(
            p.update(Reputation(100_000), Evidence::IncludedSilent),
            Reputation(129_999)
        );
        let mut low = Reputation(100_000);
        for _ in 0..200 {
            low = p.update(low, Evidence::IncludedSilent);
        }
        assert!(
            low < p.committee_threshold && low > Reputation(399_000),
            "{low}"
        );
        assert_eq!(
            p.update(Reputation(900_000), Evidence::IncludedSilent),
            Reputation(900_000)
        );
        assert_eq!(
            p.update(Reputation::ONE, Evidence::Accepted),
            Reputation::ONE
        );
    }

    #[test]
    fn attacker_falls_below_floor_after_three_clear_rejections() {
        let p = ReputationParams::default();
        let mut r = p.initial;
        for _ in 0..3 {
            assert!(p.above_floor(r));
            r = p.update(r, Evidence::RejectedClear);
        }
        assert_eq!(r, Reputation(62_500));
        assert!(!p.above_floor(r));
    }

    #[test]
    fn disputed_rejections_fall_slowly() {
        let p = ReputationParams::default();
        let mut r = p.initial;
        let mut rounds = 0;
        while p.above_floor(r) {
            r = p.update(r, Evidence::RejectedDisputed);
            rounds += 1;
        }
        assert_eq!(rounds, 16);
    }

    #[test]
    fn check_rejects_out_of_range_and_inverted_params() {
        assert!(ReputationParams::default().check().is_ok());
        let p = ReputationParams {
            gain: Reputation(1_000_001),
            ..Default::default()
        };
        assert!(p.check().is_err());
        let p = ReputationParams {
            clear_keep: Reputation(950_000),
            ..Default::default()
        };
        assert!(p.check().is_err());
    }

    #[test]
    fn from_f64_rounds_and_clamps() {
        assert_eq!(Reputation::from_f64(0.1234567), Reputation(123_457));
        assert_eq!(Reputation::from_f64(2.0), Reputation::ONE);
        assert_eq!(Reputation::from_f64(-1.0), Reputation(0));
        assert_eq!(Reputation::from_f64(f64::NAN), Reputation(0));
    }

    #[test]
    fn absence_takes_an_agent_out_of_the_committee_pool_and_no_further() {
        let p = ReputationParams::default();
        let r = Reputation(900_000);
        for missed in 0..=ABSENCE_GRACE {
            assert_eq!(p.after_absence(r, missed), r);
        }
        assert_eq!(p.after_absence(r, ABSENCE_GRACE + 1), Reputation(810_000));
        let mut r = r;
        for _ in 0..40 {
            r = p.after_absence(r, ABSENCE_GRACE + 1);
        }
        assert_eq!(r, Reputation(399_999));
        assert!(!p.committee_eligible(r) && p.above_floor(r));
        // Below the threshold (a punished agent) absence changes nothing, so leaving is
        // never a way to launder reputation, up or down.
        assert_eq!(
            p.after_absence(Reputation(50_000), 1000),
            Reputation(50_000)
        );
        // A task whose threshold is at or under its floor: absence stops at the floor.
        let low = ReputationParams {
            committee_threshold: Reputation(0),
            ..p
        };
        let mut r = Reputation(500_000);
        for _ in 0..100 {
            r = low.after_absence(r, ABSENCE_GRACE + 1);
        }
        assert_eq!(r, p.floor);
        let r = Reputation(399_999);
        // One accepted round takes it back into the pool.
        assert!(p.committee_eligible(p.update(r, Evidence::Accepted)));
    }

    #[test]
    fn taking_part_resets_the_count_and_new_rows_start_at_zero() {
        let p = ReputationParams::default();
        let mut table = vec![
            (1u8, Reputation(900_000)),
            (2, Reputation(900_000)),
            (3, Reputation(500_000)),
        ];
        let previous = vec![(1u8, ABSENCE_GRACE), (2, ABSENCE_GRACE)];
        let missed = age_for_absence(&p, &mut table, &previous, &[2]);
        assert_eq!(missed, vec![ABSENCE_GRACE + 1, 0, 1]);
        assert_eq!(table[0].1, Reputation(810_000));
        assert_eq!(table[1].1, Reputation(900_000));
        assert_eq!(table[2].1, Reputation(500_000));
    }
}
