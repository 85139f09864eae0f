//! The peers of an experiment and what each of them does in a round, shared by every
//! backend: local training, attacks, PoGQ proofs and committee re-scoring.
//!
//! Peers `0..byzantine` attack; the rest are honest. Which peer is Byzantine is used here
//! only to decide what a peer *does* (train honestly or attack, vote truthfully or lie);
//! detection is left to the protocol, and ground truth is read again only when the
//! metrics are computed after a round.

use fl_core::PogqMeasurement;
use rand::Rng;

use crate::experiment::{Experiment, GroundTruth, Shards, SimError};
use fl_learn::attacks::Knowledge;
use fl_learn::data::Dataset;
use fl_learn::partition::partition;
use fl_learn::train::{clip_to_norm, delta, local_train};

/// The PoGQ measurement an attacker publishes for its own update, and a lying committee
/// member's "accept": a plausible 10 % loss improvement.
pub const CLAIMED_IMPROVEMENT: PogqMeasurement = PogqMeasurement {
    loss_before: 1.0,
    loss_after: 0.9,
    samples: 0,
};

/// A lying committee member's "reject": a 50 % loss increase.
pub const CLAIMED_HARM: PogqMeasurement = PogqMeasurement {
    loss_before: 1.0,
    loss_after: 1.5,
    samples: 0,
};

/// A truthful PoGQ measurement of `update` against the global `params` on `validation`:
/// the loss before and after a probe step of `probe_lr` times the update.
pub fn measure(
    model: &fl_learn::model::Model,
    probe_lr: f32,
    params: &[f32],
    update: &[f32],
    validation: &Dataset,
) -> PogqMeasurement {
    let before = model.loss(params, validation.x.view(), &validation.y);
    measure_after(model, probe_lr, params, before, update, validation)
}

/// [`measure`] with the loss of `params` on `validation` already known (`loss_before`):
/// a committee member scores every update of a round against the same model.
pub fn measure_after(
    model: &fl_learn::model::Model,
    probe_lr: f32,
    params: &[f32],
    loss_before: f64,
    update: &[f32],
    validation: &Dataset,
) -> PogqMeasurement {
    let v = validation;
    let probe: Vec<f32> = params
        .iter()
        .zip(update)
        .map(|(w, u)| w + probe_lr * u)
        .collect();
    // An update that overflows the loss is as harmful as a loss can say; the largest
    // finite value keeps the measurement publishable.
    let finite = |l: f64| if l.is_finite() { l } else { f64::MAX };
    PogqMeasurement {
        loss_before: finite(loss_before),
        loss_after: finite(model.loss(&probe, v.x.view(), &v.y)),
        samples: v.len() as u32,
    }
}

/// Every peer's private training and validation data.
#[derive(Debug, Clone)]
pub struct Cohort {
    /// Training shard of each peer.
    pub data: Vec<Dataset>,
    /// Held-out validation shard of each peer (PoGQ proofs and committee votes).
    pub validation: Vec<Dataset>,
    /// Peers `0..byzantine` attack.
    pub byzantine: usize,
}

impl Cohort {
    /// Splits `train` across the experiment's peers, keeping a validation share of each
    /// shard.
    pub fn new<R: Rng>(exp: &Experiment, train: &Dataset, rng: &mut R) -> Result<Self, SimError> {
        if exp.byzantine > exp.peers {
            return Err(SimError::Invalid(format!(
                "{} Byzantine of {} peers",
                exp.byzantine, exp.peers
            )));
        }
        let shards = match exp.shards {
            Shards::AllPeers => partition(&train.y, train.classes, exp.peers, 4, exp.scheme, rng)?,
            Shards::HonestPeers => {
                let honest = exp.peers - exp.byzantine;
                let honest_shards = if honest > 0 {
                    partition(&train.y, train.classes, honest, 4, exp.scheme, rng)?
                } else {
                    Vec::new()
                };
                let size = train.len() / honest.max(1);
                let mut shards: Vec<Vec<usize>> = (0..exp.byzantine)
                    .map(|_| rand::seq::index::sample(rng, train.len(), size).into_vec())
                    .collect();
                shards.extend(honest_shards);
                shards
            }
        };
        let (data, validation) = shards
            .iter()
            .map(|idx| {
                let cut = ((idx.len() as f64) * (1.0 - exp.validation_fraction))
                    .round()
                    .max(1.0) as usize;
                let cut = cut.min(idx.len() - 1);
                (train.subset(&idx[..cut]), train.subset(&idx[cut..]))
            })
            .unzip();
        Ok(Cohort {
            data,
            validation,
            byzantine: exp.byzantine,
        })
    }

    /// Number of peers.
    pub fn peers(&self) -> usize {
        self.data.len()
    }

    /// Whether peer `p` attacks.
    pub fn is_byzantine(&self, p: usize) -> bool {
        self.truth().is_byzantine(p)
    }

    /// Who attacks, for scoring rounds.
    pub fn truth(&self) -> GroundTruth {
        GroundTruth {
            peers: self.peers(),
            byzantine: self.byzantine,
        }
    }

    /// Every peer's update from the global `model`: honest peers publish `local - global`
    /// after training on their shard; attackers train on their own (possibly poisoned)
    /// shard and craft their update with the attack, sharing their benign updates with
    /// each other where the attack assumes collusion, and knowing the previous round's
    /// global step (`last_step`, public on the DHT). Every update is clipped to the task's
    /// norm bound.
    pub fn updates<R: Rng>(
        &self,
        exp: &Experiment,
        model: &[f32],
        last_step: Option<&[f32]>,
        rng: &mut R,
    ) -> Vec<Vec<f32>> {
        let benign: Vec<Vec<f32>> = (0..self.peers())
            .map(|p| {
                let d = if self.is_byzantine(p) {
                    exp.attack.poison(&self.data[p])
                } else {
                    self.data[p].clone()
                };
                delta(&local_train(&exp.model, model, &d, &exp.sgd, rng), model)
            })
            .collect();
        self.finish(exp, benign, last_step, rng)
    }

    /// Every peer's update from the global `model` under [`crate::experiment::Protocol::Dsgd`]:
    /// one minibatch gradient at `model` on the peer's own (for attackers, possibly
    /// poisoned) shard, folded into the peer's momentum in `momenta` (zeros at first,
    /// kept across rounds), published as `-lr (m + weight_decay w)`; attackers craft theirs
    /// from those benign updates as in [`Cohort::updates`]. Every update is clipped to the
    /// task's norm bound.
    pub fn dsgd_updates<R: Rng>(
        &self,
        exp: &Experiment,
        model: &[f32],
        momenta: &mut Vec<Vec<f32>>,
        last_step: Option<&[f32]>,
        rng: &mut R,
    ) -> Vec<Vec<f32>> {
        momenta.resize_with(self.peers(), || vec![0.0; model.len()]);
        let beta = exp.sgd.momentum;
        let benign: Vec<Vec<f32>> = (0..self.peers())
            .map(|p| {
                let d = &self.data[p];
                let take = exp.sgd.batch_size.min(d.len()).max(1);
                let idx = rand::seq::index::sample(rng, d.len(), take).into_vec();
                let mut batch = d.subset(&idx);
                if self.is_byzantine(p) {
                    batch = exp.attack.poison(&batch);
                }
                let (_, g) = exp.model.loss_and_gradient(model, batch.x.view(), &batch.y);
                let m = &mut momenta[p];
                for (m, g) in m.iter_mut().zip(&g) {
                    *m = beta * *m + (1.0 - beta) * g;
                }
                m.iter()
                    .zip(model)
                    .map(|(m, w)| -exp.sgd.lr * (m + exp.sgd.weight_decay * w))
                    .collect()
            })
            .collect();
        self.finish(exp, benign, last_step, rng)
    }

    /// Attackers' crafted updates from every peer's `benign` one; every update clipped to
    /// the task's norm bound.
    fn finish<R: Rng>(
        &self,
        exp: &Experiment,
        benign: Vec<Vec<f32>>,
        last_step: Option<&[f32]>,
        rng: &mut R,
    ) -> Vec<Vec<f32>> {
        let colluders: Vec<Vec<f32>> = benign[..self.byzantine].to_vec();
        (0..self.peers())
            .map(|p| {
                let mut update = if self.is_byzantine(p) {
                    let k = Knowledge {
                        own: &benign[p],
                        colluders: &colluders,
                        peers: self.peers(),
                        attackers: self.byzantine,
                        last_step,
                    };
                    exp.attack.craft(&k, rng)
                } else {
                    benign[p].clone()
                };
                // Validation rejects an update above the task's norm bound, so every peer
                // clips to it: honest ones as any client would, attackers because an
                // update that is rejected does them no good.
                clip_to_norm(&mut update, exp.round.max_update_norm);
                update
            })
            .collect()
    }

    /// Peer `p`'s truthful PoGQ measurement of `update` against `model` on its own
    /// validation data: the loss before and after a probe step of `update`.
    pub fn measure(
        &self,
        exp: &Experiment,
        p: usize,
        model: &[f32],
        update: &[f32],
    ) -> PogqMeasurement {
        measure(
            &exp.model,
            exp.round.pogq.probe_lr,
            model,
            update,
            &self.validation[p],
        )
    }

    /// Peer `p`'s evaluation of a global model on its own validation data: (loss,
    /// accuracy, examples). Byzantine peers claim a perfect model; readers take the median.
    pub fn evaluation(&self, exp: &Experiment, p: usize, model: &[f32]) -> (f64, f64, u32) {
        let v = &self.validation[p];
        if self.is_byzantine(p) {
            return (0.0, 1.0, v.len() as u32);
        }
        let loss = exp.model.loss(model, v.x.view(), &v.y);
        (
            if loss.is_finite() { loss } else { f64::MAX },
            exp.model.accuracy(model, v.x.view(), &v.y),
            v.len() as u32,
        )
    }

    /// The proof peer `p` publishes with its own `update`: truthful for honest peers, a
    /// claimed improvement for attackers.
    pub fn proof(
        &self,
        exp: &Experiment,
        p: usize,
        model: &[f32],
        update: &[f32],
    ) -> PogqMeasurement {
        if self.is_byzantine(p) {
            PogqMeasurement {
                samples: self.validation[p].len() as u32,
                ..CLAIMED_IMPROVEMENT
            }
        } else {
            self.measure(exp, p, model, update)
        }
    }

    /// Committee member `member`'s ballot on a round's submissions, one measurement per
    /// `(submitter, update)` in order, as the member publishes it (a submitter this
    /// cohort does not know is `usize::MAX`).
    ///
    /// Honest members re-score every update on their own validation data. Byzantine
    /// members claim an improvement for their colluders and harm for honest work (a 50 %
    /// loss increase, beyond what the ballot-relative rule of `fl_core::ballot_verdicts`
    /// forgives).
    pub fn ballot(
        &self,
        exp: &Experiment,
        member: usize,
        model: &[f32],
        submissions: &[(usize, &[f32])],
    ) -> Vec<PogqMeasurement> {
        if !self.is_byzantine(member) {
            let v = &self.validation[member];
            let before = exp.model.loss(model, v.x.view(), &v.y);
            return submissions
                .iter()
                .map(|(_, update)| {
                    measure_after(
                        &exp.model,
                        exp.round.pogq.probe_lr,
                        model,
                        before,
                        update,
                        v,
                    )
                })
                .collect();
        }
        let samples = self.validation[member].len() as u32;
        submissions
            .iter()
            .map(|&(submitter, _)| PogqMeasurement {
                samples,
                ..if self.is_byzantine(submitter) {
                    CLAIMED_IMPROVEMENT
                } else {
                    CLAIMED_HARM
                }
            })
            .collect()
    }
}
