//! Proof of Gradient Quality (PoGQ): how much an update improves the loss.
//!
//! A peer measures the loss of the current global model `w` on some of its data, applies
//! its update `u` with the task's probe learning rate `eta` and measures again:
//!
//! ```text
//! loss_before = L(w)            loss_after = L(w + eta * u)
//! score       = (loss_before - loss_after) / max(loss_before, loss_scale, MIN_LOSS)
//! ```
//!
//! The score is the loss improvement relative to the loss, or to the task's
//! [`PogqParams::loss_scale`] once the loss is below it: positive when the update helps,
//! `0` for an update that changes nothing (a zero update), negative when it hurts, and at
//! most `1`.
//!
//! Why the scale: as the model converges the loss shrinks, and a purely relative score
//! inflates the few hundredths of a nat that an honest update from a peer with other
//! labels costs a member's data into a harm of many per cent. Below `loss_scale`
//! ([`PogqParams::for_classes`]: 1 nat for ten classes) the score measures the change in
//! units of `loss_scale` instead, so the thresholds below keep the meaning they have
//! early in training.
//!
//! An update passes when `score >= min_score`. The default threshold tolerates a small
//! loss increase (-1 %), because on label-skewed (non-IID) data an honest update can hurt
//! a little on someone else's data; sign-flipped and noise updates hurt far more.
//!
//! The submitter publishes its own measurement in a `PogqProof`; committee members repeat
//! it on their own held-out data and vote with the same formula. Validation can recompute
//! the score from the stated losses; it cannot recompute the losses (the data is private),
//! which is why the committee re-scores.
//!
//! ## Votes are also judged against the rest of the ballot
//!
//! A member scores every submission of a round on the same data, in one ballot. Late in
//! training an honest update, applied in full, moves the model towards its author's own
//! data and raises the loss on everyone else's by a few per cent: every honest score in
//! the ballot is then slightly negative, and an absolute threshold alone rejects honest
//! work more and more often as the model converges. So a vote also passes when its score
//! is close to the ballot's typical score ([`ballot_verdicts`]):
//!
//! ```text
//! relative  = max(median(scores) - band * MAD(scores), RELATIVE_FLOOR)
//! threshold = min(min_score, relative)          (ballots of at least MIN_RELATIVE_VOTES)
//! ```
//!
//! where `MAD` is the median absolute deviation from the median and `band` is
//! [`PogqParams::mad_band`] (`0` turns the relative path off). While most submissions a
//! member scores are honest, the median and the MAD come from honest scores, so an update
//! passes the relative path only if it does about as well as honest work does this round,
//! and never if it costs the member's data more than [`RELATIVE_FLOOR`].

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
    /// Width of a ballot's relative path in median absolute deviations below the ballot's
    /// median score (module docs); `0` judges votes by `min_score` alone. Tasks written
    /// before this field existed read as `0`.
    #[serde(default)]
    pub mad_band: f64,
    /// Losses below this divide the score as this (module docs): the loss improvement is
    /// relative to the loss while the loss is above it, in units of it below. Tasks
    /// written before this field existed read as `0` (purely relative).
    #[serde(default)]
    pub loss_scale: f64,
}

/// Fewest votes in a ballot for the relative path of the vote rule: with two, the median
/// is their midpoint and either vote would pass.
pub const MIN_RELATIVE_VOTES: usize = 3;

/// The relative path never passes a vote whose score is below this (an update that raises
/// the member's loss by more than 3 %, or by more than 0.03 of the task's `loss_scale`
/// once the loss is below it), however wide the ballot's scores are spread.
///
/// Measured in the simulation (docs/results/detection.md): with no floor, at
/// 45 % Byzantine on label-skewed data the honest scores spread so widely that label_flip
/// and adaptive updates fell inside the band (TPR 0.00); -3 % keeps every attack caught
/// as before while forgiving the few per cent an honest update costs late in training.
pub const RELATIVE_FLOOR: f64 = -0.03;

/// The largest `loss_scale` a task may set. Scores are at most `loss_before / loss_scale`
/// in size below the scale, so a huge scale would shrink every score towards `0` and pass
/// everything `min_score` allows; ten nats is the loss of a uniform guess over 22,026
/// classes.
pub const MAX_LOSS_SCALE: f64 = 10.0;

impl Default for PogqParams {
    /// `eta = 1` (the update is a model delta, applied as is), pass at `score >= -0.01`,
    /// a committee vote also within 3 MADs below its ballot's median, and scores in units
    /// of one nat once the loss is below it.
    fn default() -> Self {
        PogqParams {
            probe_lr: 1.0,
            min_score: -0.01,
            mad_band: 3.0,
            loss_scale: 1.0,
        }
    }
}

impl PogqParams {
    /// The defaults, with the loss scale for a task of `classes` classes: `log10(classes)`
    /// nats, a share of 0.43 of the loss of a uniform guess (`ln(classes)`): 1 for ten
    /// classes, 0.30 for two. A fixed scale would score a two-class task in nats from its
    /// first round, where its loss starts at 0.69, and let attacks through that the same
    /// thresholds catch on ten classes.
    pub fn for_classes(classes: usize) -> Self {
        PogqParams {
            loss_scale: (classes.max(2) as f64).log10().min(MAX_LOSS_SCALE),
            ..PogqParams::default()
        }
    }

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
        if !(self.mad_band.is_finite() && self.mad_band >= 0.0) {
            return Err(PogqError::InvalidParams(format!(
                "mad_band must be finite and >= 0, got {}",
                self.mad_band
            )));
        }
        if !(self.loss_scale.is_finite() && (0.0..=MAX_LOSS_SCALE).contains(&self.loss_scale)) {
            return Err(PogqError::InvalidParams(format!(
                "loss_scale must be in [0, {MAX_LOSS_SCALE}], got {}",
                self.loss_scale
            )));
        }
        if self.loss_scale > 0.0 && self.min_score > 0.0 {
            // Below the scale no score can exceed loss_before / loss_scale: a positive
            // threshold would end up rejecting every update as the model converges.
            return Err(PogqError::InvalidParams(format!(
                "a positive min_score ({}) needs loss_scale 0, got {}",
                self.min_score, self.loss_scale
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
    /// One vote of a ballot cannot be scored.
    #[error("vote {index}: {source}")]
    Vote {
        /// Position of the vote in the ballot.
        index: usize,
        /// Why it cannot be scored.
        source: Box<PogqError>,
    },
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
    /// The loss improvement under `params` (module docs), after [`Self::check`].
    pub fn score(&self, params: &PogqParams) -> Result<f64, PogqError> {
        self.check()?;
        let scale = self.loss_before.max(params.loss_scale).max(MIN_LOSS);
        Ok((self.loss_before - self.loss_after) / scale)
    }

    /// Whether the measurement can be scored: finite, non-negative losses measured on at
    /// least one example.
    pub fn check(&self) -> Result<(), PogqError> {
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
        Ok(())
    }

    /// Scores the measurement and applies the threshold.
    pub fn verdict(&self, params: &PogqParams) -> Result<PogqVerdict, PogqError> {
        params.check()?;
        let score = self.score(params)?;
        Ok(if score >= params.min_score {
            PogqVerdict::Pass { score }
        } else {
            PogqVerdict::Fail { score }
        })
    }
}

/// A committee member's ballot judged as a whole (module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct BallotVerdicts {
    /// The lowest passing score in this ballot: `min_score` or the relative path's bound,
    /// whichever is lower.
    pub threshold: f64,
    /// One verdict per vote, in the ballot's order.
    pub verdicts: Vec<PogqVerdict>,
}

/// Scores every vote of a ballot and judges each against the ballot's threshold (module
/// docs). The order of `votes` does not matter to any verdict.
pub fn ballot_verdicts(
    votes: &[PogqMeasurement],
    params: &PogqParams,
) -> Result<BallotVerdicts, PogqError> {
    params.check()?;
    let scores = votes
        .iter()
        .enumerate()
        .map(|(index, v)| {
            v.score(params).map_err(|e| PogqError::Vote {
                index,
                source: Box::new(e),
            })
        })
        .collect::<Result<Vec<f64>, _>>()?;
    let threshold = ballot_threshold(&scores, params);
    let verdicts = scores
        .iter()
        .map(|&score| {
            if score >= threshold {
                PogqVerdict::Pass { score }
            } else {
                PogqVerdict::Fail { score }
            }
        })
        .collect();
    Ok(BallotVerdicts {
        threshold,
        verdicts,
    })
}

/// The lowest passing score of a ballot with these (finite) scores.
fn ballot_threshold(scores: &[f64], params: &PogqParams) -> f64 {
    if params.mad_band == 0.0 || scores.len() < MIN_RELATIVE_VOTES {
        return params.min_score;
    }
    let mid = median(scores.to_vec());
    let mad = median(scores.iter().map(|s| (s - mid).abs()).collect());
    let relative = (mid - params.mad_band * mad).max(RELATIVE_FLOOR);
    params.min_score.min(relative)
}

/// Median of finite values (the mean of the middle two for an even count); `xs` is not
/// empty.
fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let mid = xs.len() / 2;
    if xs.len() % 2 == 1 {
        xs[mid]
    } else {
        xs[mid - 1] / 2.0 + xs[mid] / 2.0
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
    fn score_is_relative_improvement_above_the_loss_scale() {
        let p = PogqParams::default();
        assert_eq!(m(2.0, 1.5).score(&p).unwrap(), 0.25);
        assert_eq!(m(2.0, 2.0).score(&p).unwrap(), 0.0);
        assert_eq!(m(2.0, 3.0).score(&p).unwrap(), -0.5);
        // Without a scale, a zero loss divides by MIN_LOSS instead.
        let relative = PogqParams {
            loss_scale: 0.0,
            ..p
        };
        assert_eq!(m(0.0, 1e-6).score(&relative).unwrap(), -1.0);
    }

    #[test]
    fn the_default_scale_follows_the_number_of_classes() {
        assert!((PogqParams::for_classes(10).loss_scale - 1.0).abs() < 1e-12);
        assert!((PogqParams::for_classes(2).loss_scale - std::f64::consts::LOG10_2).abs() < 1e-12);
        assert!(PogqParams::for_classes(usize::MAX).check().is_ok());
    }

    #[test]
    fn below_the_loss_scale_the_score_is_in_units_of_it() {
        // A converged member (loss 0.2) and an update that costs it 0.01 nats: 5 % of its
        // loss, but 1 % of a nat.
        let p = PogqParams::default();
        let converged = m(0.2, 0.21);
        assert!((converged.score(&p).unwrap() + 0.01).abs() < 1e-12);
        assert!(converged.verdict(&p).unwrap().passed());
        // Tasks from before the scale judge it relative to the loss, and reject it.
        let relative = PogqParams {
            loss_scale: 0.0,
            ..p
        };
        assert!((converged.score(&relative).unwrap() + 0.05).abs() < 1e-12);
        assert!(!converged.verdict(&relative).unwrap().passed());
        // A sign flip on the same model still fails by far.
        assert!(m(0.2, 0.6).score(&p).unwrap() < -0.3);
        for loss_scale in [-1.0, f64::NAN, f64::INFINITY, MAX_LOSS_SCALE * 1.01, 1e6] {
            let bad = PogqParams { loss_scale, ..p };
            assert!(matches!(bad.check(), Err(PogqError::InvalidParams(_))));
        }
        // A positive threshold only with purely relative scores.
        let strict = PogqParams {
            min_score: 0.1,
            ..p
        };
        assert!(matches!(strict.check(), Err(PogqError::InvalidParams(_))));
        assert!(PogqParams {
            loss_scale: 0.0,
            ..strict
        }
        .check()
        .is_ok());
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
            m(f64::NAN, 1.0).check(),
            Err(PogqError::InvalidLoss {
                which: "loss_before",
                ..
            })
        ));
        assert!(matches!(
            m(1.0, -1.0).check(),
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
            .check(),
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
        for mad_band in [-1.0, f64::NAN, f64::INFINITY] {
            let bad = PogqParams {
                mad_band,
                ..PogqParams::default()
            };
            assert!(matches!(
                ballot_verdicts(&[m(1.0, 1.0)], &bad),
                Err(PogqError::InvalidParams(_))
            ));
        }
        let err =
            ballot_verdicts(&[m(1.0, 1.0), m(1.0, f64::NAN)], &PogqParams::default()).unwrap_err();
        assert!(matches!(err, PogqError::Vote { index: 1, .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "vote 1: loss_after is NaN, but a loss must be finite and >= 0"
        );
    }

    fn passes(ballot: &[PogqMeasurement], params: &PogqParams) -> Vec<bool> {
        ballot_verdicts(ballot, params)
            .unwrap()
            .verdicts
            .iter()
            .map(PogqVerdict::passed)
            .collect()
    }

    #[test]
    fn converged_honest_votes_pass_relative_to_their_ballot_and_outliers_do_not() {
        // Late in training: honest scores -2 % to -1.2 %, a sign flip -40 %.
        let ballot = [
            m(1.0, 1.012),
            m(1.0, 1.015),
            m(1.0, 1.018),
            m(1.0, 1.02),
            m(1.0, 1.4),
        ];
        let p = PogqParams::default();
        assert_eq!(passes(&ballot, &p), [true, true, true, true, false]);
        // median -0.018, MAD 0.003: threshold -0.027.
        let t = ballot_verdicts(&ballot, &p).unwrap().threshold;
        assert!((t + 0.027).abs() < 1e-12, "{t}");
        // The absolute rule alone rejects every one of them.
        let absolute = PogqParams { mad_band: 0.0, ..p };
        assert_eq!(passes(&ballot, &absolute), [false; 5]);
        // The order of the votes does not change a verdict.
        let mut reversed = ballot;
        reversed.reverse();
        let mut back = passes(&reversed, &p);
        back.reverse();
        assert_eq!(back, passes(&ballot, &p));
    }

    #[test]
    fn the_relative_path_only_widens_and_needs_three_votes() {
        let p = PogqParams::default();
        // Early in training everything honest improves: min_score is the lower bound.
        let early = [m(1.0, 0.7), m(1.0, 0.72), m(1.0, 0.69), m(1.0, 1.2)];
        assert_eq!(ballot_verdicts(&early, &p).unwrap().threshold, p.min_score);
        assert_eq!(passes(&early, &p), [true, true, true, false]);
        // Two votes: only the absolute threshold.
        assert_eq!(passes(&[m(1.0, 1.02), m(1.0, 1.03)], &p), [false, false]);
        // However wide the spread, the relative path never passes more than -3 %.
        let wide = [m(1.0, 1.0), m(1.0, 1.02), m(1.0, 1.2), m(1.0, 1.5)];
        let v = ballot_verdicts(&wide, &p).unwrap();
        assert_eq!(v.threshold, RELATIVE_FLOOR);
        assert_eq!(passes(&wide, &p), [true, true, false, false]);
        // Overflowing spreads do not turn the bound into -inf.
        let huge = [m(1.0, 1.0), m(1.0, f64::MAX), m(1e-300, f64::MAX)];
        assert_eq!(
            ballot_verdicts(&huge, &p).unwrap().threshold,
            RELATIVE_FLOOR
        );
    }
}
