//! Proof of Gradient Quality (PoGQ): how much an update improves the loss.
//!
//! A peer measures the loss of the current global model `w` on some of its data, applies
//! its update `u` with the task's probe learning rate `eta` and measures again:
//!
//! ```text
//! loss_before = L(w)            loss_after = L(w + eta * u)
//! score       = (loss_before - loss_after) / max(loss_before, MIN_LOSS)
//! ```
//!
//! The score is the relative loss improvement: positive when the update helps, `0` for an
//! update that changes nothing (a zero update), negative when it hurts, and at most `1`.
//! An update passes when `score >= min_score`. The default threshold tolerates a small
//! loss increase (-1 %), because on label-skewed (non-IID) data an honest update can hurt
//! a little on someone else's data; sign-flipped and noise updates hurt far more.
//!
//! The submitter publishes its own measurement in a `PogqProof`; committee members repeat
//! it on their own held-out data and vote with the same formula. Validation can recompute
//! the score from the stated losses; it cannot recompute the losses (the data is private),
//! which is why the committee re-scores.

use thiserror::Error;

/// Losses below this count as this when dividing, so a near-perfect model does not turn
/// rounding noise into huge relative changes.
pub const MIN_LOSS: f64 = 1e-6;

/// Thresholds and the probe step, as a task fixes them.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PogqParams {
    /// Probe learning rate `eta` applied to the update before re-measuring the loss.
    pub probe_lr: f32,
    /// Lowest passing score.
    pub min_score: f64,
}

impl Default for PogqParams {
    /// `eta = 1` (the update is a model delta, applied as is), pass at `score >= -0.01`.
    fn default() -> Self {
        PogqParams {
            probe_lr: 1.0,
            min_score: -0.01,
        }
    }
}

impl PogqParams {
    /// Rejects non-finite or non-positive probe rates and non-finite thresholds.
    pub fn check(&self) -> Result<(), PogqError> {
        if !(self.probe_lr.is_finite() && self.probe_lr > 0.0) {
            return Err(PogqError::InvalidParams(format!(
                "probe_lr must be finite and > 0, got {}",
                self.probe_lr
            )));
        }
        if !self.min_score.is_finite() || self.min_score > 1.0 {
            return Err(PogqError::InvalidParams(format!(
                "min_score must be finite and <= 1, got {}",
                self.min_score
            )));
        }
        Ok(())
    }
}

/// One loss measurement of an update.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PogqMeasurement {
    /// Loss of the base model.
    pub loss_before: f64,
    /// Loss after applying the update with the probe learning rate.
    pub loss_after: f64,
    /// Number of examples the losses were measured on.
    pub samples: u32,
}

/// Why a measurement cannot be scored.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum PogqError {
    /// A loss is NaN, infinite or negative.
    #[error("{which} is {value}, but a loss must be finite and >= 0")]
    InvalidLoss {
        /// `loss_before` or `loss_after`.
        which: &'static str,
        /// The offending value.
        value: f64,
    },
    /// The measurement used no examples.
    #[error("a PoGQ measurement needs at least one sample")]
    NoSamples,
    /// The task's PoGQ parameters are unusable.
    #[error("invalid PoGQ parameters: {0}")]
    InvalidParams(String),
}

/// The outcome of checking a measurement against the thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PogqVerdict {
    /// `score >= min_score`.
    Pass {
        /// The score.
        score: f64,
    },
    /// `score < min_score`.
    Fail {
        /// The score.
        score: f64,
    },
}

impl PogqVerdict {
    /// Whether the update passed.
    pub fn passed(&self) -> bool {
        matches!(self, PogqVerdict::Pass { .. })
    }

    /// The score, pass or fail.
    pub fn score(&self) -> f64 {
        match *self {
            PogqVerdict::Pass { score } | PogqVerdict::Fail { score } => score,
        }
    }
}

impl PogqMeasurement {
    /// The relative loss improvement (module docs), after checking the losses.
    pub fn score(&self) -> Result<f64, PogqError> {
        for (which, value) in [
            ("loss_before", self.loss_before),
            ("loss_after", self.loss_after),
        ] {
            if !value.is_finite() || value < 0.0 {
                return Err(PogqError::InvalidLoss { which, value });
            }
        }
        if self.samples == 0 {
            return Err(PogqError::NoSamples);
        }
        Ok((self.loss_before - self.loss_after) / self.loss_before.max(MIN_LOSS))
    }

    /// Scores the measurement and applies the threshold.
    pub fn verdict(&self, params: &PogqParams) -> Result<PogqVerdict, PogqError> {
        params.check()?;
        let score = self.score()?;
        Ok(if score >= params.min_score {
            PogqVerdict::Pass { score }
        } else {
            PogqVerdict::Fail { score }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(before: f64, after: f64) -> PogqMeasurement {
        PogqMeasurement {
            loss_before: before,
            loss_after: after,
            samples: 10,
        }
    }

    #[test]
    fn score_is_relative_improvement() {
        assert_eq!(m(2.0, 1.5).score().unwrap(), 0.25);
        assert_eq!(m(2.0, 2.0).score().unwrap(), 0.0);
        assert_eq!(m(2.0, 3.0).score().unwrap(), -0.5);
        // A zero loss divides by MIN_LOSS instead.
        assert_eq!(m(0.0, 1e-6).score().unwrap(), -1.0);
    }

    #[test]
    fn threshold_decides_the_verdict() {
        let p = PogqParams::default();
        assert!(m(2.0, 1.5).verdict(&p).unwrap().passed());
        assert!(m(2.0, 2.01).verdict(&p).unwrap().passed()); // -0.5 % tolerated
        assert!(!m(2.0, 2.1).verdict(&p).unwrap().passed()); // -5 %
        assert_eq!(
            m(2.0, 2.1).verdict(&p).unwrap().score(),
            -0.050000000000000044
        );
    }

    #[test]
    fn rejects_invalid_measurements_and_params() {
        assert!(matches!(
            m(f64::NAN, 1.0).score(),
            Err(PogqError::InvalidLoss {
                which: "loss_before",
                ..
            })
        ));
        assert!(matches!(
            m(1.0, -1.0).score(),
            Err(PogqError::InvalidLoss {
                which: "loss_after",
                ..
            })
        ));
        assert_eq!(
            PogqMeasurement {
                samples: 0,
                ..m(1.0, 1.0)
            }
            .score(),
            Err(PogqError::NoSamples)
        );
        let bad = PogqParams {
            probe_lr: 0.0,
            ..PogqParams::default()
        };
        assert!(matches!(
            m(1.0, 1.0).verdict(&bad),
            Err(PogqError::InvalidParams(_))
        ));
    }
}
