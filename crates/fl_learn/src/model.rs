//! Models whose parameters are one flat `f32` vector, the layout of an fl_core tensor.
//!
//! - Multinomial logistic regression: `W` (`inputs x classes`, row-major) then `b`.
//! - MLP with one ReLU hidden layer: `W1` (`inputs x hidden`), `b1`, `W2`
//!   (`hidden x classes`), `b2`.
//!
//! Loss is the mean softmax cross-entropy; gradients are exact (back-propagation).

use ndarray::{Array2, ArrayView1, ArrayView2, Axis};
use rand::Rng;
use rand_distr::{Distribution, Normal};

/// A model architecture for a given input width and class count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// Multinomial logistic regression.
    LogReg {
        /// Features.
        inputs: usize,
        /// Classes.
        classes: usize,
    },
    /// One hidden ReLU layer.
    Mlp {
        /// Features.
        inputs: usize,
        /// Hidden units.
        hidden: usize,
        /// Classes.
        classes: usize,
    },
}

impl Model {
    /// Number of parameters.
    pub fn param_count(&self) -> usize {
        match *self {
            Model::LogReg { inputs, classes } => inputs * classes + classes,
            Model::Mlp {
                inputs,
                hidden,
                classes,
            } => inputs * hidden + hidden + hidden * classes + classes,
        }
    }

    /// Initial parameters: zeros for logistic regression, He-normal weights and zero biases
    /// for the MLP.
    pub fn init<R: Rng>(&self, rng: &mut R) -> Vec<f32> {
        match *self {
            Model::LogReg { .. } => vec![0.0; self.param_count()],
            Model::Mlp {
                inputs,
                hidden,
                classes,
            } => {
                let mut p = Vec::with_capacity(self.param_count());
                let n1 = Normal::new(0.0f32, (2.0 / inputs as f32).sqrt()).expect("finite std");
                p.extend((0..inputs * hidden).map(|_| n1.sample(rng)));
                p.extend(std::iter::repeat_n(0.0, hidden));
                let n2 = Normal::new(0.0f32, (2.0 / hidden as f32).sqrt()).expect("finite std");
                p.extend((0..hidden * classes).map(|_| n2.sample(rng)));
                p.extend(std::iter::repeat_n(0.0, classes));
                p
            }
        }
    }

    /// Logits, `examples x classes`.
    pub fn logits(&self, params: &[f32], x: ArrayView2<f32>) -> Array2<f32> {
        self.forward(params, x).1
    }

    /// The hidden activations (MLP only) and the logits.
    fn forward(&self, params: &[f32], x: ArrayView2<f32>) -> (Option<Array2<f32>>, Array2<f32>) {
        match *self {
            Model::LogReg { inputs, classes } => {
                let (w, b) = split(params, inputs, classes);
                (None, x.dot(&w) + b)
            }
            Model::Mlp {
                inputs,
                hidden,
                classes,
            } => {
                let (w1, b1) = split(params, inputs, hidden);
                let (w2, b2) = split(&params[inputs * hidden + hidden..], hidden, classes);
                let h = (x.dot(&w1) + b1).mapv(|v| v.max(0.0));
                let logits = h.dot(&w2) + b2;
                (Some(h), logits)
            }
        }
    }

    /// Mean cross-entropy loss.
    pub fn loss(&self, params: &[f32], x: ArrayView2<f32>, y: &[usize]) -> f64 {
        let (loss, _) = softmax_ce(self.logits(params, x), y);
        loss
    }

    /// Share of examples whose highest logit is the label.
    pub fn accuracy(&self, params: &[f32], x: ArrayView2<f32>, y: &[usize]) -> f64 {
        let logits = self.logits(params, x);
        let right = logits
            .outer_iter()
            .zip(y)
            .filter(|(row, &label)| argmax(row.view()) == label)
            .count();
        right as f64 / y.len().max(1) as f64
    }

    /// Mean cross-entropy loss and its gradient with respect to every parameter.
    pub fn loss_and_gradient(
        &self,
        params: &[f32],
        x: ArrayView2<f32>,
        y: &[usize],
    ) -> (f64, Vec<f32>) {
        let (h, logits) = self.forward(params, x);
        let (loss, dlogits) = softmax_ce(logits, y);
        let mut g;
        match (*self, h) {
            (
                Model::Mlp {
                    inputs,
                    hidden,
                    classes,
                },
                Some(h),
            ) => {
                let (w2, _) = split(&params[inputs * hidden + hidden..], hidden, classes);
                let mut dh = dlogits.dot(&w2.t());
                dh.zip_mut_with(&h, |d, &a| {
                    if a <= 0.0 {
                        *d = 0.0
                    }
                });
                g = x.t().dot(&dh).into_raw_vec_and_offset().0;
                g.extend(dh.sum_axis(Axis(0)));
                g.extend(h.t().dot(&dlogits).into_raw_vec_and_offset().0);
            }
            _ => g = x.t().dot(&dlogits).into_raw_vec_and_offset().0,
        }
        g.extend(dlogits.sum_axis(Axis(0)));
        (loss, g)
    }

    /// Human description, e.g. `logreg 64x10` (as [`fl_core::ModelSpec::describe`]).
    pub fn describe(&self) -> String {
        self.spec().describe()
    }

    /// The task spec's form of this model.
    pub fn spec(&self) -> fl_core::ModelSpec {
        let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        match *self {
            Model::LogReg { inputs, classes } => fl_core::ModelSpec::Logreg {
                inputs: n(inputs),
                classes: n(classes),
            },
            Model::Mlp {
                inputs,
                hidden,
                classes,
            } => fl_core::ModelSpec::Mlp {
                inputs: n(inputs),
                hidden: n(hidden),
                classes: n(classes),
            },
        }
    }
}

impl From<fl_core::ModelSpec> for Model {
    fn from(spec: fl_core::ModelSpec) -> Self {
        match spec {
            fl_core::ModelSpec::Logreg { inputs, classes } => Model::LogReg {
                inputs: inputs as usize,
                classes: classes as usize,
            },
            fl_core::ModelSpec::Mlp {
                inputs,
                hidden,
                classes,
            } => Model::Mlp {
                inputs: inputs as usize,
                hidden: hidden as usize,
                classes: classes as usize,
            },
        }
    }
}

fn split(params: &[f32], rows: usize, cols: usize) -> (ArrayView2<'_, f32>, ArrayView1<'_, f32>) {
    let w = ArrayView2::from_shape((rows, cols), &params[..rows * cols]).expect("parameter layout");
    let b = ArrayView1::from(&params[rows * cols..rows * cols + cols]);
    (w, b)
}

fn argmax(row: ArrayView1<f32>) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best
}

/// Mean softmax cross-entropy and `d loss / d logits`, stable via log-sum-exp.
fn softmax_ce(mut logits: Array2<f32>, y: &[usize]) -> (f64, Array2<f32>) {
    let n = y.len().max(1) as f32;
    let mut loss = 0.0f64;
    for (mut row, &label) in logits.outer_iter_mut().zip(y) {
        let max = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        row.mapv_inplace(|v| (v - max).exp());
        let sum: f32 = row.sum();
        loss -= f64::from((row[label] / sum).max(f32::MIN_POSITIVE).ln());
        row.mapv_inplace(|v| v / sum / n);
        row[label] -= 1.0 / n;
    }
    (loss / f64::from(n), logits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn toy() -> (Array2<f32>, Vec<usize>) {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let x = Array2::from_shape_fn((12, 4), |_| rng.random_range(-1.0f32..1.0));
        let y = (0..12).map(|i| i % 3).collect();
        (x, y)
    }

    fn check_gradient(model: Model) {
        let (x, y) = toy();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mut p = model.init(&mut rng);
        p.iter_mut()
            .for_each(|v| *v += rng.random_range(-0.1f32..0.1));
        let (_, g) = model.loss_and_gradient(&p, x.view(), &y);
        assert_eq!(g.len(), model.param_count());
        let eps = 1e-2f32;
        for i in (0..p.len()).step_by(3) {
            let mut plus = p.clone();
            plus[i] += eps;
            let mut minus = p.clone();
            minus[i] -= eps;
            let numeric = (model.loss(&plus, x.view(), &y) - model.loss(&minus, x.view(), &y))
                / (2.0 * f64::from(eps));
            assert!(
                (numeric - f64::from(g[i])).abs() < 2e-3,
                "{} param {i}: numeric {numeric}, analytic {}",
                model.describe(),
                g[i]
            );
        }
    }

    #[test]
    fn logistic_regression_gradient_matches_finite_differences() {
        check_gradient(Model::LogReg {
            inputs: 4,
            classes: 3,
        });
    }

    #[test]
    fn mlp_gradient_matches_finite_differences() {
        check_gradient(Model::Mlp {
            inputs: 4,
            hidden: 5,
            classes: 3,
        });
    }

    #[test]
    fn uniform_logits_cost_log_classes() {
        let m = Model::LogReg {
            inputs: 4,
            classes: 3,
        };
        let (x, y) = toy();
        let loss = m.loss(&vec![0.0; m.param_count()], x.view(), &y);
        assert!((loss - 3f64.ln()).abs() < 1e-6);
        assert_eq!(m.param_count(), 15);
        assert_eq!(
            Model::Mlp {
                inputs: 64,
                hidden: 32,
                classes: 10
            }
            .param_count(),
            64 * 32 + 32 + 32 * 10 + 10
        );
    }
}
