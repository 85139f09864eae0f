//! Byzantine attacks, each deriving its update from the attacker's own data and model.
//!
//! Every attacker first trains honestly on its own data (its *benign* update). Attacks
//! that assume knowledge of the honest updates (ALIE, IPM, min-max, min-sum, mimic) use
//! the benign updates of all colluding attackers as their estimate of the honest ones:
//! the colluders share what they computed, nobody reads an honest peer's update.
//! Label flipping and backdoors change the data the attacker trains on
//! ([`Attack::poison`]) before the update is crafted.

use std::fmt;
use std::str::FromStr;

use fl_core::aggregate::distance::{dot, sq_dist};
use rand::Rng;
use rand_distr::{Distribution, Normal};

use crate::data::Dataset;

/// An attack and its strength.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Attack {
    /// Benign update plus Gaussian noise with `scale` times the update's own standard
    /// deviation per coordinate.
    Noise {
        /// Noise multiple.
        scale: f32,
    },
    /// `-scale` times the benign update (sign flipping).
    SignFlip {
        /// Multiple.
        scale: f32,
    },
    /// All zeros (a free rider).
    Zero,
    /// A Gaussian vector unrelated to the data, with the benign update's norm times `scale`.
    Random {
        /// Norm multiple.
        scale: f32,
    },
    /// [`Attack::Random`] plus a component along the previous round's global step (public
    /// before the round opens) of twice the alignment bound times the vector's norm: noise
    /// that fl_core's alignment rule (`RoundParams::aligned_credit`) credits, the
    /// adaptive form of ByzFL's Gaussian attack. Without a known step, plain `Random`.
    AlignedRandom {
        /// Norm multiple.
        scale: f32,
    },
    /// Train on data with a trigger (the last `trigger` features set to their maximum) and
    /// labels switched to `target`, then scale the update by `boost` (model replacement,
    /// Bagdasaryan et al. 2020).
    Backdoor {
        /// Target class.
        target: usize,
        /// Trigger width in features.
        trigger: usize,
        /// Update multiple.
        boost: f32,
    },
    /// Sign flip scaled to the colluders' mean benign norm, so the update's norm is
    /// indistinguishable from honest ones (an attack aware of norm-based defences).
    Adaptive,
    /// Train on labels flipped to `classes - 1 - y`.
    LabelFlip,
    /// A Little Is Enough (Baruch et al. 2019): per coordinate `mu - z sigma`, with `z` from
    /// the number of peers needed for a majority.
    Alie,
    /// Inner-product manipulation (Xie et al. 2020): `-epsilon * mu`.
    Ipm {
        /// Multiple of the negated mean.
        epsilon: f32,
    },
    /// Min-max (Shejwalkar & Houmansadr 2021): `mu - gamma sigma_dir`, the largest `gamma`
    /// whose distance to every benign update stays within the largest benign pairwise
    /// distance.
    MinMax,
    /// Min-sum (same paper): the largest `gamma` whose sum of squared distances to the
    /// benign updates stays within the largest such sum of a benign update.
    MinSum,
    /// Mimic (Karimireddy et al. 2022): every attacker sends the same colluder's benign
    /// update, over-representing one peer's data.
    Mimic,
    /// NaN and infinite values (rejected by validation before any aggregator sees them).
    NonFinite,
}

/// Every attack name, for the command line.
pub const ALL: [&str; 14] = [
    "noise",
    "sign_flip",
    "zero",
    "random",
    "aligned_random",
    "backdoor",
    "adaptive",
    "label_flip",
    "alie",
    "ipm",
    "min_max",
    "min_sum",
    "mimic",
    "non_finite",
];

impl FromStr for Attack {
    type Err = String;

    /// A name from [`ALL`] with the default strength.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "noise" => Attack::Noise { scale: 10.0 },
            "sign_flip" => Attack::SignFlip { scale: 4.0 },
            "zero" => Attack::Zero,
            "random" => Attack::Random { scale: 10.0 },
            "aligned_random" => Attack::AlignedRandom { scale: 10.0 },
            "backdoor" => Attack::Backdoor {
                target: 0,
                trigger: 4,
                boost: 5.0,
            },
            "adaptive" => Attack::Adaptive,
            "label_flip" => Attack::LabelFlip,
            "alie" => Attack::Alie,
            "ipm" => Attack::Ipm { epsilon: 0.5 },
            "min_max" => Attack::MinMax,
            "min_sum" => Attack::MinSum,
            "mimic" => Attack::Mimic,
            "non_finite" => Attack::NonFinite,
            other => {
                return Err(format!(
                    "unknown attack {other:?}; known attacks are {}",
                    ALL.join(", ")
                ))
            }
        })
    }
}

impl fmt::Display for Attack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Attack::Noise { .. } => "noise",
            Attack::SignFlip { .. } => "sign_flip",
            Attack::Zero => "zero",
            Attack::Random { .. } => "random",
            Attack::AlignedRandom { .. } => "aligned_random",
            Attack::Backdoor { .. } => "backdoor",
            Attack::Adaptive => "adaptive",
            Attack::LabelFlip => "label_flip",
            Attack::Alie => "alie",
            Attack::Ipm { .. } => "ipm",
            Attack::MinMax => "min_max",
            Attack::MinSum => "min_sum",
            Attack::Mimic => "mimic",
            Attack::NonFinite => "non_finite",
        };
        f.write_str(name)
    }
}

/// What an attacker knows when it crafts its update.
pub struct Knowledge<'a> {
    /// This attacker's benign update (trained on its own, possibly poisoned, data).
    pub own: &'a [f32],
    /// Benign updates of every colluding attacker (this one included).
    pub colluders: &'a [Vec<f32>],
    /// Peers in the round.
    pub peers: usize,
    /// Attackers in the round.
    pub attackers: usize,
    /// The previous round's global step (the current model minus the one before it),
    /// public on the DHT; `None` in round 0, or where the attacker keeps no model history.
    pub last_step: Option<&'a [f32]>,
}

impl Attack {
    /// The data the attacker trains on: label-flipped or backdoored for those attacks,
    /// unchanged otherwise.
    pub fn poison(&self, data: &Dataset) -> Dataset {
        let mut d = data.clone();
        match *self {
            Attack::LabelFlip => d.y.iter_mut().for_each(|y| *y = d.classes - 1 - *y),
            Attack::Backdoor {
                target, trigger, ..
            } => {
                let cols = d.x.ncols();
                let high = d.x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                for mut row in d.x.outer_iter_mut() {
                    for c in cols.saturating_sub(trigger)..cols {
                        row[c] = high;
                    }
                }
                d.y.iter_mut().for_each(|y| *y = target.min(d.classes - 1));
            }
            _ => {}
        }
        d
    }

    /// Crafts the update to publish.
    pub fn craft<R: Rng>(&self, k: &Knowledge<'_>, rng: &mut R) -> Vec<f32> {
        let own = k.own;
        match *self {
            Attack::Noise { scale } => {
                let sd = std_of(own).max(1e-6) * scale;
                let n = Normal::new(0.0, sd).expect("finite std");
                own.iter().map(|v| v + n.sample(rng)).collect()
            }
            Attack::SignFlip { scale } => own.iter().map(|v| -scale * v).collect(),
            Attack::Zero => vec![0.0; own.len()],
            Attack::Random { scale } => {
                let n = Normal::new(0.0f32, 1.0).expect("unit normal");
                let r: Vec<f32> = (0..own.len()).map(|_| n.sample(rng)).collect();
                rescale(&r, norm(own) * scale)
            }
            Attack::AlignedRandom { scale } => {
                let r = Attack::Random { scale }.craft(k, rng);
                match k.last_step {
                    Some(step) if step.len() == r.len() && norm(step) > 0.0 => {
                        let bound = fl_core::round::alignment_bound(step.len()) as f32;
                        let along = 2.0 * bound * norm(&r) / norm(step);
                        r.iter().zip(step).map(|(v, s)| v + along * s).collect()
                    }
                    _ => r,
                }
            }
            Attack::Backdoor { boost, .. } => own.iter().map(|v| boost * v).collect(),
            Attack::Adaptive => {
                let target = k.colluders.iter().map(|u| norm(u)).sum::<f32>()
                    / k.colluders.len().max(1) as f32;
                rescale(&own.iter().map(|v| -v).collect::<Vec<_>>(), target)
            }
            Attack::LabelFlip => own.to_vec(),
            Attack::Alie => {
                let (mu, sigma) = mean_std(k.colluders);
                let z = alie_z(k.peers, k.attackers);
                mu.iter().zip(&sigma).map(|(m, s)| m - z * s).collect()
            }
            Attack::Ipm { epsilon } => mean_std(k.colluders)
                .0
                .iter()
                .map(|m| -epsilon * m)
                .collect(),
            Attack::MinMax | Attack::MinSum => {
                let (mu, sigma) = mean_std(k.colluders);
                let direction = sigma;
                let within = |candidate: &[f32]| -> bool {
                    if *self == Attack::MinMax {
                        let bound = max_pairwise(k.colluders);
                        k.colluders.iter().all(|u| sq_dist(candidate, u) <= bound)
                    } else {
                        let sum =
                            |x: &[f32]| k.colluders.iter().map(|u| sq_dist(x, u)).sum::<f64>();
                        let bound = k.colluders.iter().map(|u| sum(u)).fold(0.0, f64::max);
                        sum(candidate) <= bound
                    }
                };
                let at = |gamma: f32| -> Vec<f32> {
                    mu.iter()
                        .zip(&direction)
                        .map(|(m, d)| m - gamma * d)
                        .collect()
                };
                // Binary search for the largest gamma that stays within the bound.
                let (mut lo, mut hi) = (0.0f32, 50.0f32);
                for _ in 0..40 {
                    let mid = (lo + hi) / 2.0;
                    if within(&at(mid)) {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                at(lo)
            }
            Attack::Mimic => k.colluders.first().cloned().unwrap_or_else(|| own.to_vec()),
            Attack::NonFinite => own
                .iter()
                .enumerate()
                .map(|(i, v)| match i % 3 {
                    0 => f32::NAN,
                    1 => f32::INFINITY,
                    _ => *v,
                })
                .collect(),
        }
    }
}

/// ALIE's `z`: with `s = floor(n/2 + 1) - f` honest peers needed on the attackers' side,
/// `z = Phi^-1((n - s) / n)`.
pub fn alie_z(n: usize, f: usize) -> f32 {
    let s = (n / 2 + 1).saturating_sub(f) as f64;
    let p = ((n as f64 - s) / n as f64).clamp(1e-6, 1.0 - 1e-6);
    inverse_normal_cdf(p) as f32
}

/// Acklam's rational approximation of the standard normal quantile (relative error < 1.2e-9).
fn inverse_normal_cdf(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.38357751867269e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

fn norm(v: &[f32]) -> f32 {
    dot(v, v).sqrt() as f32
}

fn rescale(v: &[f32], target: f32) -> Vec<f32> {
    let n = norm(v);
    if n == 0.0 {
        return v.to_vec();
    }
    v.iter().map(|x| x * target / n).collect()
}

fn std_of(v: &[f32]) -> f32 {
    let m = v.iter().sum::<f32>() / v.len().max(1) as f32;
    (v.iter().map(|x| (x - m) * (x - m)).sum::<f32>() / v.len().max(1) as f32).sqrt()
}

/// Per-coordinate mean and (population) standard deviation.
fn mean_std(updates: &[Vec<f32>]) -> (Vec<f32>, Vec<f32>) {
    let d = updates.first().map_or(0, Vec::len);
    let n = updates.len().max(1) as f32;
    let mut mu = vec![0.0f32; d];
    for u in updates {
        mu.iter_mut().zip(u).for_each(|(m, v)| *m += v / n);
    }
    let mut var = vec![0.0f32; d];
    for u in updates {
        var.iter_mut()
            .zip(u)
            .zip(&mu)
            .for_each(|((s, v), m)| *s += (v - m) * (v - m) / n);
    }
    (mu, var.into_iter().map(f32::sqrt).collect())
}

fn max_pairwise(updates: &[Vec<f32>]) -> f64 {
    let mut m = 0.0f64;
    for (i, a) in updates.iter().enumerate() {
        for b in &updates[i + 1..] {
            m = m.max(sq_dist(a, b));
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn k<'a>(own: &'a [f32], colluders: &'a [Vec<f32>]) -> Knowledge<'a> {
        Knowledge {
            own,
            colluders,
            peers: 10,
            attackers: 3,
            last_step: None,
        }
    }

    #[test]
    fn simple_attacks_by_hand() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let own = [1.0f32, -2.0];
        let c = vec![own.to_vec()];
        assert_eq!(
            Attack::SignFlip { scale: 2.0 }.craft(&k(&own, &c), &mut rng),
            vec![-2.0, 4.0]
        );
        assert_eq!(Attack::Zero.craft(&k(&own, &c), &mut rng), vec![0.0, 0.0]);
        assert_eq!(
            Attack::Backdoor {
                target: 0,
                trigger: 1,
                boost: 3.0
            }
            .craft(&k(&own, &c), &mut rng),
            vec![3.0, -6.0]
        );
        let r = Attack::Random { scale: 2.0 }.craft(&k(&own, &c), &mut rng);
        assert!((norm(&r) - 2.0 * 5f32.sqrt()).abs() < 1e-4);
        let nf = Attack::NonFinite.craft(&k(&own, &c), &mut rng);
        assert!(nf[0].is_nan() && nf[1].is_infinite());
    }

    /// Noise with a sliver along a known step clears the alignment bound; without a step
    /// it is plain noise.
    #[test]
    fn aligned_random_clears_the_alignment_bound() {
        let d = 10_000;
        let own = vec![0.01f32; d];
        let c = vec![own.clone()];
        let step: Vec<f32> = (0..d).map(|i| ((i * 7919) % 13) as f32 - 6.0).collect();
        let attack = Attack::AlignedRandom { scale: 5.0 };
        let cos = |u: &[f32]| dot(u, &step) / (f64::from(norm(u)) * f64::from(norm(&step)));
        let bound = fl_core::round::alignment_bound(d);
        for seed in 0..20 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let knows = Knowledge {
                last_step: Some(&step),
                ..k(&own, &c)
            };
            let u = attack.craft(&knows, &mut rng);
            assert!(
                cos(&u) > bound && cos(&u) < 4.0 * bound,
                "{} {bound}",
                cos(&u)
            );
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let plain = attack.craft(&k(&own, &c), &mut rng);
            assert!(cos(&plain).abs() < 2.0 * bound, "{}", cos(&plain));
        }
    }

    #[test]
    fn collusion_attacks_by_hand() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let c = vec![vec![1.0f32, 0.0], vec![3.0, 2.0]];
        // mu = (2, 1), sigma = (1, 1).
        assert_eq!(
            Attack::Ipm { epsilon: 0.5 }.craft(&k(&c[0], &c), &mut rng),
            vec![-1.0, -0.5]
        );
        let z = alie_z(10, 3);
        // s = 6 - 3 = 3, z = Phi^-1(0.7) = 0.5244.
        assert!((z - 0.5244).abs() < 1e-3, "{z}");
        let alie = Attack::Alie.craft(&k(&c[0], &c), &mut rng);
        assert!((alie[0] - (2.0 - z)).abs() < 1e-5 && (alie[1] - (1.0 - z)).abs() < 1e-5);
        // Adaptive: the flipped own update at the colluders' mean norm (1 + sqrt 13) / 2.
        let a = Attack::Adaptive.craft(&k(&c[0], &c), &mut rng);
        assert!((a[0] + (1.0 + 13f32.sqrt()) / 2.0).abs() < 1e-5 && a[1] == 0.0);
        assert_eq!(Attack::Mimic.craft(&k(&c[1], &c), &mut rng), c[0]);
    }

    #[test]
    fn min_max_and_min_sum_stay_within_their_bounds() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let c = vec![vec![1.0f32, 0.0], vec![3.0, 2.0], vec![2.0, 2.0]];
        let mm = Attack::MinMax.craft(&k(&c[0], &c), &mut rng);
        let bound = max_pairwise(&c);
        assert!(c.iter().all(|u| sq_dist(&mm, u) <= bound * 1.0001));
        assert!(
            c.iter().any(|u| sq_dist(&mm, u) > bound * 0.99),
            "gamma is the largest that fits"
        );
        let ms = Attack::MinSum.craft(&k(&c[0], &c), &mut rng);
        let sum = |x: &[f32]| c.iter().map(|u| sq_dist(x, u)).sum::<f64>();
        let limit = c.iter().map(|u| sum(u)).fold(0.0, f64::max);
        assert!(sum(&ms) <= limit * 1.0001 && sum(&ms) > limit * 0.99);
    }

    #[test]
    fn poisoning_flips_labels_and_plants_triggers() {
        let d = Dataset::new("t", array![[0.0f32, 1.0, 2.0], [3.0, 4.0, 5.0]], vec![0, 1]).unwrap();
        assert_eq!(Attack::LabelFlip.poison(&d).y, vec![1, 0]);
        let b = Attack::Backdoor {
            target: 1,
            trigger: 1,
            boost: 1.0,
        }
        .poison(&d);
        assert_eq!(b.y, vec![1, 1]);
        assert_eq!(b.x.column(2).to_vec(), vec![5.0, 5.0]);
        assert_eq!(Attack::Zero.poison(&d), d);
    }

    #[test]
    fn names_round_trip() {
        for name in ALL {
            assert_eq!(name.parse::<Attack>().unwrap().to_string(), name);
        }
        assert!("boost"
            .parse::<Attack>()
            .unwrap_err()
            .contains("known attacks are noise"));
    }
}
