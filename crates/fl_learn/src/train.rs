//! Local training: minibatch SGD (with momentum and weight decay when a task asks for
//! them) from the global model on a peer's own data.

use ndarray::Axis;
use rand::seq::SliceRandom;
use rand::Rng;

use crate::data::Dataset;
use crate::model::Model;

/// Local optimiser settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sgd {
    /// Passes over the local data per round.
    pub epochs: usize,
    /// Examples per step.
    pub batch_size: usize,
    /// Step size.
    pub lr: f32,
    /// Momentum (0: plain SGD); the buffer starts at zero every round.
    pub momentum: f32,
    /// L2 weight decay added to every gradient.
    pub weight_decay: f32,
}

impl Default for Sgd {
    /// One epoch of batches of 32 at learning rate 0.1, no momentum, no weight decay.
    fn default() -> Self {
        Sgd::from(fl_core::TrainingSettings::default())
    }
}

impl From<fl_core::TrainingSettings> for Sgd {
    fn from(t: fl_core::TrainingSettings) -> Self {
        Sgd {
            epochs: t.epochs as usize,
            batch_size: t.batch_size as usize,
            lr: t.learning_rate,
            momentum: t.momentum,
            weight_decay: t.weight_decay,
        }
    }
}

impl From<Sgd> for fl_core::TrainingSettings {
    fn from(s: Sgd) -> Self {
        fl_core::TrainingSettings {
            learning_rate: s.lr,
            epochs: u32::try_from(s.epochs).unwrap_or(u32::MAX),
            batch_size: u32::try_from(s.batch_size).unwrap_or(u32::MAX),
            momentum: s.momentum,
            weight_decay: s.weight_decay,
        }
    }
}

/// Trains from `global` on `data`; returns the local model.
pub fn local_train<R: Rng>(
    model: &Model,
    global: &[f32],
    data: &Dataset,
    sgd: &Sgd,
    rng: &mut R,
) -> Vec<f32> {
    let mut params = global.to_vec();
    let mut order: Vec<usize> = (0..data.len()).collect();
    // Plain SGD needs no velocity; with momentum it starts at zero every round.
    let plain = sgd.momentum == 0.0 && sgd.weight_decay == 0.0;
    let mut velocity = if plain {
        Vec::new()
    } else {
        vec![0.0f32; params.len()]
    };
    for _ in 0..sgd.epochs {
        order.shuffle(rng);
        for batch in order.chunks(sgd.batch_size.max(1)) {
            let x = data.x.select(Axis(0), batch);
            let y: Vec<usize> = batch.iter().map(|&i| data.y[i]).collect();
            let (_, g) = model.loss_and_gradient(&params, x.view(), &y);
            if plain {
                for (p, g) in params.iter_mut().zip(&g) {
                    *p -= sgd.lr * g;
                }
            } else {
                for ((p, g), v) in params.iter_mut().zip(&g).zip(&mut velocity) {
                    *v = sgd.momentum * *v + g + sgd.weight_decay * *p;
                    *p -= sgd.lr * *v;
                }
            }
        }
    }
    params
}

/// Tunes glibc's allocator for training the CNN: buffers of up to 32 MB come from the heap
/// instead of fresh `mmap`s, and up to 128 MB of freed heap stays mapped. Every step of the
/// CNN allocates and frees tens of megabytes of activations and gradients; with glibc's
/// defaults that memory went back to the system when freed (unmapped, or trimmed from the
/// heap's top) and the next step faulted it in again page by page, which took about a
/// third of the training time (`bench/train.sh`). The price is memory: the
/// process keeps what it freed, up to those bounds per heap, so programs call it only when
/// they train the CNN. Idempotent; elsewhere than glibc on Linux it does nothing.
pub fn tune_allocator() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: an FFI call with no preconditions; it only sets allocator parameters.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 20);
        }
    });
}

/// The update a peer publishes: `local - global`.
pub fn delta(local: &[f32], global: &[f32]) -> Vec<f32> {
    local.iter().zip(global).map(|(l, g)| l - g).collect()
}

/// Scales `update` down so its Euclidean norm (as validation computes it,
/// [`fl_core::aggregate::distance::l2_norm`]) is at most `bound`: the client side of a
/// task's norm bound, which validation enforces. A finite update within the bound is left
/// as it is; a non-finite one too (validation rejects it whatever its size).
pub fn clip_to_norm(update: &mut [f32], bound: f32) {
    use fl_core::aggregate::distance::l2_norm;
    let bound = f64::from(bound);
    let mut norm = l2_norm(update);
    // Rounding each scaled value to f32 can leave the norm a hair above the bound; aim
    // just below it and repeat in the (never observed) case that it still is above.
    while norm.is_finite() && norm > bound {
        let scale = (bound / norm * (1.0 - 1e-6)) as f32;
        update.iter_mut().for_each(|v| *v *= scale);
        norm = l2_norm(update);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::builtin;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn training_on_digits_lowers_the_loss_and_learns() {
        let (mut train, mut test) = builtin("digits").unwrap().split(0.2, 1);
        train.standardize(&mut [&mut test]);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for model in [
            Model::LogReg {
                inputs: 64,
                classes: 10,
            },
            Model::Mlp {
                inputs: 64,
                hidden: 32,
                classes: 10,
            },
        ] {
            let start = model.init(&mut rng);
            let before = model.loss(&start, test.x.view(), &test.y);
            let trained = local_train(
                &model,
                &start,
                &train,
                &Sgd {
                    epochs: 3,
                    ..Sgd::default()
                },
                &mut rng,
            );
            let after = model.loss(&trained, test.x.view(), &test.y);
            assert!(
                after < before * 0.5,
                "{}: {before} -> {after}",
                model.describe()
            );
            assert!(
                model.accuracy(&trained, test.x.view(), &test.y) > 0.9,
                "{}",
                model.describe()
            );
            let u = delta(&trained, &start);
            assert_eq!(u.len(), model.param_count());
        }
    }

    #[test]
    fn momentum_and_weight_decay_train_as_the_task_settings_say() {
        let (mut train, mut test) = builtin("digits").unwrap().split(0.2, 1);
        train.standardize(&mut [&mut test]);
        let model = Model::LogReg {
            inputs: 64,
            classes: 10,
        };
        let settings = fl_core::TrainingSettings {
            learning_rate: 0.05,
            epochs: 2,
            batch_size: 25,
            momentum: 0.9,
            weight_decay: 1e-4,
        };
        let sgd = Sgd::from(settings);
        assert_eq!(fl_core::TrainingSettings::from(sgd), settings);
        let start = model.init(&mut ChaCha8Rng::seed_from_u64(1));
        let trained = local_train(
            &model,
            &start,
            &train,
            &sgd,
            &mut ChaCha8Rng::seed_from_u64(2),
        );
        assert!(model.accuracy(&trained, test.x.view(), &test.y) > 0.9);
        // Momentum changes the path: the same seed without it ends elsewhere.
        let plain = Sgd {
            momentum: 0.0,
            weight_decay: 0.0,
            ..sgd
        };
        let other = local_train(
            &model,
            &start,
            &train,
            &plain,
            &mut ChaCha8Rng::seed_from_u64(2),
        );
        assert_ne!(trained, other);
    }

    #[test]
    fn clipping_brings_any_finite_update_within_the_bound() {
        use fl_core::aggregate::distance::l2_norm;
        let mut small = vec![0.3f32, -0.4];
        clip_to_norm(&mut small, 1.0);
        assert_eq!(small, vec![0.3, -0.4]);
        for bound in [1e-3f32, 0.5, 10.0, 1e6] {
            let mut huge = vec![f32::MAX, -f32::MAX, 1.0, 0.0];
            clip_to_norm(&mut huge, bound);
            let n = l2_norm(&huge);
            assert!(
                n <= f64::from(bound) && n > 0.99 * f64::from(bound),
                "{bound}: {n}"
            );
            assert!(huge[0] > 0.0 && huge[1] < 0.0);
        }
        let mut bad = vec![f32::NAN, 1e30];
        clip_to_norm(&mut bad, 1.0);
        assert!(bad[0].is_nan());
    }
}
