//! What a task trains, in a form any peer's node can act on: the model, the data each peer
//! brings and how every peer prepares it, and the local training settings.
//!
//! A task carries one [`TaskSpec`]. The integrity zome checks it with [`TaskSpec::check`]
//! and checks that the model's parameter count is the task's `model_len`; a peer reads it
//! to build the model, to check its own table against [`DataSchema`] and to train. The
//! preprocessing is part of the task, fixed when the task is written, so that every peer
//! transforms its data the same way without pooling statistics.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Most feature columns a schema may name.
pub const MAX_FEATURES: u32 = 1_000_000;
/// Most classes a schema may list.
pub const MAX_CLASSES: u32 = 10_000;
/// Most hidden units of an MLP.
pub const MAX_HIDDEN: u32 = 100_000;
/// Longest column or class name, in bytes.
pub const MAX_NAME_LEN: usize = 128;
/// Most passes over its data a peer may be asked to make in one round.
pub const MAX_EPOCHS: u32 = 100;
/// Largest minibatch.
pub const MAX_BATCH: u32 = 1 << 20;
/// Largest local learning rate.
pub const MAX_LEARNING_RATE: f32 = 100.0;

/// Everything a peer needs to train for a task.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct TaskSpec {
    /// The model, which fixes the parameter count.
    pub model: ModelSpec,
    /// The table each peer brings and how it is prepared.
    pub data: DataSchema,
    /// How each peer trains locally in a round.
    pub training: TrainingSettings,
}

/// A model architecture. Parameters are one flat vector, in the order given by each kind.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ModelSpec {
    /// Multinomial logistic regression: `W` (`inputs x classes`, row-major), then `b`.
    Logreg {
        /// Input features.
        inputs: u32,
        /// Classes.
        classes: u32,
    },
    /// One hidden ReLU layer: `W1` (`inputs x hidden`), `b1`, `W2` (`hidden x classes`),
    /// `b2`.
    Mlp {
        /// Input features.
        inputs: u32,
        /// Hidden units.
        hidden: u32,
        /// Classes.
        classes: u32,
    },
    /// ByzFL's `cnn_mnist` for 28x28 single-channel images, row-major pixels: a 5x5
    /// convolution to 20 channels, ReLU, 2x2 max-pooling, a 5x5 convolution to 50
    /// channels, ReLU, 2x2 max-pooling, a dense layer 800 -> 500 with ReLU, and a dense
    /// layer 500 -> `classes`. Parameters in PyTorch's order and shapes: conv1 weight
    /// `(20, 1, 5, 5)` and bias `(20)`, conv2 weight `(50, 20, 5, 5)` and bias `(50)`, fc1
    /// weight `(500, 800)` and bias `(500)`, fc2 weight `(classes, 500)` and bias
    /// `(classes)`; 431,080 parameters for 10 classes.
    CnnMnist {
        /// Classes.
        classes: u32,
    },
}

/// Side of the square images a [`ModelSpec::CnnMnist`] takes.
pub const CNN_MNIST_SIDE: u32 = 28;

impl ModelSpec {
    /// Input features.
    pub fn inputs(&self) -> u32 {
        match *self {
            ModelSpec::Logreg { inputs, .. } | ModelSpec::Mlp { inputs, .. } => inputs,
            ModelSpec::CnnMnist { .. } => CNN_MNIST_SIDE * CNN_MNIST_SIDE,
        }
    }

    /// Output classes.
    pub fn classes(&self) -> u32 {
        match *self {
            ModelSpec::Logreg { classes, .. }
            | ModelSpec::Mlp { classes, .. }
            | ModelSpec::CnnMnist { classes } => classes,
        }
    }

    /// Number of parameters (in `u64`: no spec can overflow it).
    pub fn param_count(&self) -> u64 {
        match *self {
            ModelSpec::Logreg { inputs, classes } => (inputs as u64 + 1) * classes as u64,
            ModelSpec::Mlp {
                inputs,
                hidden,
                classes,
            } => {
                let (i, h, c) = (inputs as u64, hidden as u64, classes as u64);
                i * h + h + h * c + c
            }
            ModelSpec::CnnMnist { classes } => {
                let conv = (20 * 25 + 20) + (50 * 20 * 25 + 50);
                conv + (800 * 500 + 500) + 501 * classes as u64
            }
        }
    }

    /// A short name, e.g. `logreg 64x10` or `mlp 64-32-10`.
    pub fn describe(&self) -> String {
        match *self {
            ModelSpec::Logreg { inputs, classes } => format!("logreg {inputs}x{classes}"),
            ModelSpec::Mlp {
                inputs,
                hidden,
                classes,
            } => format!("mlp {inputs}-{hidden}-{classes}"),
            ModelSpec::CnnMnist { classes } => format!("cnn_mnist 28x28-{classes}"),
        }
    }

    fn check(&self) -> Result<(), SpecError> {
        if !(1..=MAX_FEATURES).contains(&self.inputs()) {
            return Err(SpecError::new(format!(
                "model inputs {} is outside 1..={MAX_FEATURES}",
                self.inputs()
            )));
        }
        if !(2..=MAX_CLASSES).contains(&self.classes()) {
            return Err(SpecError::new(format!(
                "model classes {} is outside 2..={MAX_CLASSES}",
                self.classes()
            )));
        }
        if let ModelSpec::Mlp { hidden, .. } = *self {
            if !(1..=MAX_HIDDEN).contains(&hidden) {
                return Err(SpecError::new(format!(
                    "mlp hidden {hidden} is outside 1..={MAX_HIDDEN}"
                )));
            }
        }
        Ok(())
    }
}

/// The table each peer brings: one row per example, feature columns and a label column.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataSchema {
    /// Feature column names, in the model's input order. Empty: the table's columns other
    /// than the label are the features, in the table's order, and there must be exactly
    /// the model's `inputs` of them (for images, whose pixels need no names).
    #[serde(default)]
    pub features: Vec<String>,
    /// The label column's name.
    pub label: String,
    /// The label values, in class order: a row labelled `classes[i]` is class `i`. As many
    /// as the model has classes.
    pub classes: Vec<String>,
    /// What every peer does to each feature before training and evaluating.
    #[serde(default)]
    pub preprocess: Preprocess,
}

/// The transformation of feature values every peer applies, fixed by the task.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Preprocess {
    /// Values are used as they are.
    #[default]
    None,
    /// Every value is multiplied by `factor` (for example `1/255` for 8-bit pixels).
    Scale {
        /// The factor.
        factor: f32,
    },
    /// Feature `i` becomes `(x - offset[i]) * scale[i]`: standardisation with the mean as
    /// offset and the inverse standard deviation as scale, or a min-max rescaling.
    Affine {
        /// One offset per feature.
        offset: Vec<f32>,
        /// One scale per feature.
        scale: Vec<f32>,
    },
}

impl Preprocess {
    /// Applies the transformation to one row of features (as many as the schema's inputs).
    pub fn apply(&self, row: &mut [f32]) {
        match self {
            Preprocess::None => {}
            Preprocess::Scale { factor } => row.iter_mut().for_each(|v| *v *= factor),
            Preprocess::Affine { offset, scale } => {
                for ((v, o), s) in row.iter_mut().zip(offset).zip(scale) {
                    *v = (*v - o) * s;
                }
            }
        }
    }
}

/// Local training in a round: minibatch SGD with momentum and weight decay from the global
/// model, the momentum buffer starting at zero every round.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainingSettings {
    /// Step size, in `(0, MAX_LEARNING_RATE]`.
    pub learning_rate: f32,
    /// Passes over the local data per round, in `1..=MAX_EPOCHS`.
    pub epochs: u32,
    /// Examples per step, in `1..=MAX_BATCH`.
    pub batch_size: u32,
    /// Momentum, in `[0, 1)`.
    #[serde(default)]
    pub momentum: f32,
    /// L2 weight decay added to the gradient, at least 0.
    #[serde(default)]
    pub weight_decay: f32,
}

impl Default for TrainingSettings {
    /// One epoch of batches of 32 at learning rate 0.1, no momentum, no weight decay.
    fn default() -> Self {
        TrainingSettings {
            learning_rate: 0.1,
            epochs: 1,
            batch_size: 32,
            momentum: 0.0,
            weight_decay: 0.0,
        }
    }
}

impl TrainingSettings {
    /// Every rule the settings must satisfy; the error names the first one broken.
    pub fn check(&self) -> Result<(), SpecError> {
        let lr = self.learning_rate;
        if !(lr.is_finite() && lr > 0.0 && lr <= MAX_LEARNING_RATE) {
            return Err(SpecError::new(format!(
                "training learning_rate {lr} is outside (0, {MAX_LEARNING_RATE}]"
            )));
        }
        if !(1..=MAX_EPOCHS).contains(&self.epochs) {
            return Err(SpecError::new(format!(
                "training epochs {} is outside 1..={MAX_EPOCHS}",
                self.epochs
            )));
        }
        if !(1..=MAX_BATCH).contains(&self.batch_size) {
            return Err(SpecError::new(format!(
                "training batch_size {} is outside 1..={MAX_BATCH}",
                self.batch_size
            )));
        }
        if !(self.momentum.is_finite() && (0.0..1.0).contains(&self.momentum)) {
            return Err(SpecError::new(format!(
                "training momentum {} is outside [0, 1)",
                self.momentum
            )));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(SpecError::new(format!(
                "training weight_decay {} must be finite and at least 0",
                self.weight_decay
            )));
        }
        Ok(())
    }
}

/// A spec that no peer could follow; the message names the field and the bound.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("task spec: {0}")]
pub struct SpecError(pub String);

impl SpecError {
    fn new(message: String) -> Self {
        SpecError(message)
    }
}

fn check_name(what: &str, name: &str) -> Result<(), SpecError> {
    if name.trim().is_empty() || name.len() > MAX_NAME_LEN {
        return Err(SpecError::new(format!(
            "{what} {name:?} must be 1..={MAX_NAME_LEN} bytes and not blank"
        )));
    }
    Ok(())
}

fn check_unique<'a>(what: &str, names: impl Iterator<Item = &'a String>) -> Result<(), SpecError> {
    let mut sorted: Vec<&String> = names.collect();
    sorted.sort_unstable();
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return Err(SpecError::new(format!("{what} {:?} appears twice", w[0])));
    }
    Ok(())
}

impl TaskSpec {
    /// Every rule a spec must satisfy; the error names the first one broken.
    pub fn check(&self) -> Result<(), SpecError> {
        self.model.check()?;
        self.training.check()?;
        let d = &self.data;
        let inputs = self.model.inputs() as usize;
        check_name("label column", &d.label)?;
        if !d.features.is_empty() {
            if d.features.len() != inputs {
                return Err(SpecError::new(format!(
                    "data names {} feature columns but the model has {inputs} inputs",
                    d.features.len()
                )));
            }
            for f in &d.features {
                check_name("feature column", f)?;
            }
            check_unique("column", d.features.iter().chain([&d.label]))?;
        }
        if d.classes.len() != self.model.classes() as usize {
            return Err(SpecError::new(format!(
                "data lists {} classes but the model has {}",
                d.classes.len(),
                self.model.classes()
            )));
        }
        for c in &d.classes {
            check_name("class", c)?;
        }
        check_unique("class", d.classes.iter())?;
        match &d.preprocess {
            Preprocess::None => {}
            Preprocess::Scale { factor } => {
                if !(factor.is_finite() && *factor != 0.0) {
                    return Err(SpecError::new(format!(
                        "preprocess scale factor {factor} must be finite and not 0"
                    )));
                }
            }
            Preprocess::Affine { offset, scale } => {
                if offset.len() != inputs || scale.len() != inputs {
                    return Err(SpecError::new(format!(
                        "preprocess affine has {} offsets and {} scales for {inputs} inputs",
                        offset.len(),
                        scale.len()
                    )));
                }
                if let Some(v) = offset.iter().chain(scale).find(|v| !v.is_finite()) {
                    return Err(SpecError::new(format!(
                        "preprocess affine holds the non-finite value {v}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The spec of `model` on a table with unnamed features in order, a column `label`,
    /// classes `"0"`, `"1"`, ... and no preprocessing: the starting point of tests and
    /// of specs built from a bundled data set.
    pub fn unnamed(model: ModelSpec, label: &str) -> Self {
        TaskSpec {
            model,
            data: DataSchema {
                features: Vec::new(),
                label: label.into(),
                classes: (0..model.classes()).map(|c| c.to_string()).collect(),
                preprocess: Preprocess::None,
            },
            training: TrainingSettings::default(),
        }
    }

    /// A valid spec whose model has exactly `params` parameters (at least 4): logistic
    /// regression on two classes for even counts, a one-unit MLP on two classes for odd
    /// ones. For tests and tools that need a task of a given size.
    pub fn with_params(params: u32) -> Result<Self, SpecError> {
        let model = match params {
            p if p >= 4 && p % 2 == 0 => ModelSpec::Logreg {
                inputs: p / 2 - 1,
                classes: 2,
            },
            p if p >= 7 => ModelSpec::Mlp {
                inputs: p - 5,
                hidden: 1,
                classes: 2,
            },
            p => {
                return Err(SpecError::new(format!(
                    "no model has exactly {p} parameters (4, 6 or at least 7)"
                )))
            }
        };
        let spec = TaskSpec::unnamed(model, "label");
        spec.check()?;
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits() -> TaskSpec {
        TaskSpec::unnamed(
            ModelSpec::Logreg {
                inputs: 64,
                classes: 10,
            },
            "label",
        )
    }

    #[test]
    fn parameter_counts_follow_the_documented_layouts() {
        assert_eq!(digits().model.param_count(), 650);
        let mlp = ModelSpec::Mlp {
            inputs: 784,
            hidden: 100,
            classes: 10,
        };
        assert_eq!(mlp.param_count(), 784 * 100 + 100 + 100 * 10 + 10);
        assert_eq!(mlp.describe(), "mlp 784-100-10");
        let cnn = ModelSpec::CnnMnist { classes: 10 };
        assert_eq!(cnn.param_count(), 431_080);
        assert_eq!(cnn.inputs(), 784);
        for p in [4, 6, 7, 8, 9, 650, 10_000, 100_001] {
            assert_eq!(
                TaskSpec::with_params(p).unwrap().model.param_count(),
                p as u64
            );
        }
        assert!(TaskSpec::with_params(5).is_err());
    }

    #[test]
    fn a_valid_spec_passes_and_each_broken_rule_is_named() {
        assert_eq!(digits().check(), Ok(()));
        type Break = fn(&mut TaskSpec);
        let broken: Vec<(Break, &str)> = vec![
            (
                |s| s.data.classes.pop().map(drop).unwrap_or(()),
                "lists 9 classes",
            ),
            (
                |s| s.data.classes[1] = "0".into(),
                "class \"0\" appears twice",
            ),
            (
                |s| s.data.features = vec!["a".into(); 3],
                "names 3 feature columns",
            ),
            (
                |s| s.data.features = (0..64).map(|i| format!("x{i}")).collect(),
                "",
            ),
            (
                |s| {
                    s.data.features = (0..64).map(|i| format!("x{i}")).collect();
                    s.data.label = "x3".into();
                },
                "column \"x3\" appears twice",
            ),
            (|s| s.data.label = " ".into(), "label column"),
            (|s| s.training.learning_rate = f32::NAN, "learning_rate NaN"),
            (|s| s.training.epochs = 0, "epochs 0"),
            (|s| s.training.batch_size = 0, "batch_size 0"),
            (|s| s.training.momentum = 1.0, "momentum 1"),
            (|s| s.training.weight_decay = -1.0, "weight_decay -1"),
            (
                |s| s.data.preprocess = Preprocess::Scale { factor: 0.0 },
                "factor 0",
            ),
            (
                |s| {
                    s.data.preprocess = Preprocess::Affine {
                        offset: vec![0.0; 64],
                        scale: vec![1.0; 63],
                    }
                },
                "63 scales for 64 inputs",
            ),
            (
                |s| {
                    s.data.preprocess = Preprocess::Affine {
                        offset: vec![f32::INFINITY; 64],
                        scale: vec![1.0; 64],
                    }
                },
                "non-finite value inf",
            ),
            (
                |s| {
                    s.model = ModelSpec::Logreg {
                        inputs: 64,
                        classes: 1,
                    }
                },
                "classes 1 is outside",
            ),
            (
                |s| {
                    s.model = ModelSpec::Mlp {
                        inputs: 64,
                        hidden: 0,
                        classes: 10,
                    }
                },
                "hidden 0",
            ),
        ];
        for (i, (breaks, message)) in broken.into_iter().enumerate() {
            let mut s = digits();
            breaks(&mut s);
            match (s.check(), message) {
                (Ok(()), "") => {}
                (Err(e), m) if !m.is_empty() => {
                    assert!(e.to_string().contains(m), "case {i}: {e} lacks {m:?}")
                }
                (other, m) => panic!("case {i}: {other:?}, expected {m:?}"),
            }
        }
    }

    #[test]
    fn preprocessing_applies_per_feature() {
        let mut row = [2.0, 4.0];
        Preprocess::Affine {
            offset: vec![1.0, 2.0],
            scale: vec![0.5, 2.0],
        }
        .apply(&mut row);
        assert_eq!(row, [0.5, 4.0]);
        Preprocess::Scale { factor: 2.0 }.apply(&mut row);
        assert_eq!(row, [1.0, 8.0]);
    }
}
