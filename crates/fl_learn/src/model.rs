//! Models whose parameters are one flat `f32` vector, the layout of an fl_core tensor.
//!
//! - Multinomial logistic regression: `W` (`inputs x classes`, row-major) then `b`.
//! - MLP with one ReLU hidden layer: `W1` (`inputs x hidden`), `b1`, `W2`
//!   (`hidden x classes`), `b2`.
//! - ByzFL's `cnn_mnist` for 28x28 images, on candle ([`crate::cnn`]), in PyTorch's
//!   parameter order.
//!
//! Loss is the mean softmax cross-entropy; gradients are exact (back-propagation).
//!
//! ByzFL's model names map onto these: `logreg_mnist` is logistic regression 784x10,
//! `fc_mnist` the MLP 784-100-10 and `cnn_mnist` the CNN ([`Model::byzfl`]).

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
    /// ByzFL's `cnn_mnist`: two convolutions and two dense layers over 28x28 images.
    Cnn {
        /// Classes.
        classes: usize,
    },
}

/// Unwraps a candle result. The CNN's shapes are fixed by its spec and the input width is
/// checked before candle sees it, so an error here is a defect, not bad input.
fn candle<T>(r: candle_core::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("cnn_mnist on candle: {e}"))
}

impl Model {
    /// ByzFL's name for a model (`logreg_mnist`, `fc_mnist`, `cnn_mnist`), for 28x28
    /// images and 10 classes.
    pub fn byzfl(name: &str) -> Option<Model> {
        let (inputs, classes) = (crate::cnn::SIDE * crate::cnn::SIDE, 10);
        match name {
            "logreg_mnist" => Some(Model::LogReg { inputs, classes }),
            "fc_mnist" => Some(Model::Mlp {
                inputs,
                hidden: 100,
                classes,
            }),
            "cnn_mnist" => Some(Model::Cnn { classes }),
            _ => None,
        }
    }

    /// Input features the model takes.
    pub fn inputs(&self) -> usize {
        match *self {
            Model::LogReg { inputs, .. } | Model::Mlp { inputs, .. } => inputs,
            Model::Cnn { .. } => crate::cnn::SIDE * crate::cnn::SIDE,
        }
    }

    /// Number of parameters.
    pub fn param_count(&self) -> usize {
        match *self {
            Model::Cnn { classes } => crate::cnn::param_count(classes),
            Model::LogReg { inputs, classes } => inputs * classes + classes,
            Model::Mlp {
                inputs,
                hidden,
                classes,
            } => inputs * hidden + hidden + hidden * classes + classes,
        }
    }

    /// Initial parameters: zeros for logistic regression, He-normal weights and zero biases
    /// for the MLP, PyTorch's default initialisation for the CNN.
    pub fn init<R: Rng>(&self, rng: &mut R) -> Vec<f32> {
        match *self {
            Model::LogReg { .. } => vec![0.0; self.param_count()],
            Model::Cnn { classes } => crate::cnn::init(classes, rng),
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
            Model::Cnn { classes } => (None, candle(crate::cnn::logits(params, classes, x))),
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
        if let Model::Cnn { classes } = *self {
            return candle(crate::cnn::loss_and_gradient(params, classes, x, y));
        }
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
            Model::Cnn { classes } => fl_core::ModelSpec::CnnMnist {
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
            fl_core::ModelSpec::CnnMnist { classes } => Model::Cnn {
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

    /// `d loss / d p[i]` by a central difference of step `eps`.
    fn central_difference(
        model: Model,
        p: &[f32],
        x: ArrayView2<f32>,
        y: &[usize],
        i: usize,
        eps: f32,
    ) -> f64 {
        let mut moved = p.to_vec();
        moved[i] = p[i] + eps;
        let plus = model.loss(&moved, x, y);
        moved[i] = p[i] - eps;
        (plus - model.loss(&moved, x, y)) / (2.0 * f64::from(eps))
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
            let numeric = central_difference(model, &p, x.view(), &y, i, eps);
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
    fn cnn_gradient_matches_finite_differences() {
        let model = Model::Cnn { classes: 10 };
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        // Random pixels below a blank band (the top ten rows), as image background is: a
        // pooling window there holds four equal values, whose maximum must take the
        // gradient once, not four times.
        let x = Array2::from_shape_fn((3, 784), |(_, px)| {
            if px < 280 {
                0.0
            } else {
                rng.random_range(0.0f32..1.0)
            }
        });
        let y = vec![1, 7, 3];
        let p = model.init(&mut rng);
        let (loss, g) = model.loss_and_gradient(&p, x.view(), &y);
        assert_eq!(g.len(), 431_080);
        assert!((loss - model.loss(&p, x.view(), &y)).abs() < 1e-5);
        // Every tensor of the layout, a spread of its entries. ReLU and max-pooling make the
        // loss piecewise smooth, and a central difference that crosses a kink misses the
        // slope by a little; so each tensor is judged by its relative error over the
        // entries checked. A pooling gradient passed at a quarter of its size (candle's
        // `max_pool2d`) gives errors near 0.75 in the convolutions, and one passed to each
        // of four tied values (candle's `max`) errors of several times the gradient in the
        // first layer's biases.
        let starts = [
            0, 500, 520, 25_520, 25_570, 425_570, 426_070, 431_070, 431_080,
        ];
        let eps = 1e-3f32;
        for (layer, w) in starts.windows(2).enumerate() {
            let (mut diff, mut norm) = (0.0f64, 0.0f64);
            for i in (w[0]..w[1]).step_by(((w[1] - w[0]) / 12).max(1)) {
                let numeric = central_difference(model, &p, x.view(), &y, i, eps);
                diff += (numeric - f64::from(g[i])).powi(2);
                norm += numeric.powi(2);
            }
            let relative = (diff / norm.max(1e-12)).sqrt();
            assert!(
                relative < 0.1,
                "cnn tensor {layer}: gradient off by {relative:.3} of its norm"
            );
        }
    }

    #[test]
    fn cnn_learns_where_a_bar_is() {
        // Class k: a bright horizontal bar on rows 4k..4k+3 of a noisy 28x28 image.
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let n = 300;
        let y: Vec<usize> = (0..n).map(|i| i % 6).collect();
        let x = Array2::from_shape_fn((n, 784), |(i, px)| {
            let row = px / 28;
            let bar = (4 * y[i]..4 * y[i] + 3).contains(&row);
            f32::from(u8::from(bar)) + rng.random_range(-0.3f32..0.3)
        });
        let data = crate::data::Dataset::new("bars", x, y).unwrap();
        let model = Model::Cnn { classes: 6 };
        let start = model.init(&mut rng);
        let sgd = crate::train::Sgd {
            epochs: 2,
            batch_size: 25,
            lr: 0.05,
            momentum: 0.9,
            weight_decay: 1e-4,
        };
        let trained = crate::train::local_train(&model, &start, &data, &sgd, &mut rng);
        let acc = model.accuracy(&trained, data.x.view(), &data.y);
        assert!(acc > 0.95, "accuracy {acc}");
        assert!(model.loss(&trained, data.x.view(), &data.y) < 0.5 * 6f64.ln());
    }

    #[test]
    fn byzfl_names_give_the_papers_models() {
        let count = |n| Model::byzfl(n).unwrap().param_count();
        assert_eq!(count("logreg_mnist"), 7_850);
        assert_eq!(count("fc_mnist"), 79_510);
        assert_eq!(count("cnn_mnist"), 431_080);
        assert_eq!(Model::byzfl("resnet"), None);
        for name in ["logreg_mnist", "fc_mnist", "cnn_mnist"] {
            let m = Model::byzfl(name).unwrap();
            assert_eq!(Model::from(m.spec()), m);
            assert_eq!(m.spec().param_count(), m.param_count() as u64);
        }
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
