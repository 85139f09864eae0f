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
//! Absent            r' = r
//! ```
//!
//! "Disputed" is a rejection on contested evidence, "clear" one on plain evidence (see
//! [`Evidence`]); the robust aggregator's own verdict never moves reputation, because at
//! high Byzantine fractions a tight cluster of attackers makes honest work look far. So a
//! narrow committee majority only costs its victims a little, while plain attacks are
//! punished fast. Agents below `floor` are left out of aggregation; only agents at or above
//! `committee_threshold` can be drawn for a committee.

use thiserror::Error;

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
    /// Rejected on clear evidence: a committee rejection by two to one or more (any margin
    /// for an agent below the floor), an invalid proof, or an update that does no work.
    RejectedClear,
    /// Nothing to go on: the agent did not submit, or only the aggregator judged it.
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
            Evidence::Absent => r,
        }
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
}
