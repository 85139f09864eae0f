//! ByzFL's benchmark, read in its own format: the `config.json` that
//! `byzfl.benchmark.run_benchmark` reads (github.com/LPD-EPFL/byzfl, `byzfl/benchmark`),
//! expanded into the grid of runs Mycelix FL makes beside it.
//!
//! ByzFL sweeps every key given as a list. The keys that name a run (its result folder)
//! are the ones swept here: `nb_honest_clients`, `f`, `tolerated_f`, `data_distribution`
//! (name and parameter), `attack`, and the hyperparameters `learning_rate`, `momentum`
//! and `weight_decay`. Seeds come from `training_seed` and `nb_training_seeds` (and the
//! data-distribution pair). ByzFL's own aggregators and pre-aggregators are listed, not
//! swept: Mycelix FL always runs its full defence (committee, reputation, its aggregator),
//! and ByzFL's best aggregator per cell is what it is compared with.
//!
//! What Mycelix FL cannot do as ByzFL does is reported, not guessed: a training algorithm
//! other than `DSGD`, a data set other than Fashion-MNIST or MNIST-shaped images, or an
//! attack with no decentralised counterpart is a [`ConfigError::Unsupported`].

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::attacks::Attack;
use crate::model::Model;
use crate::partition::Scheme;

/// Why a ByzFL config cannot be run here.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not JSON, or not ByzFL's schema.
    #[error("not a ByzFL benchmark config: {0}")]
    Json(#[from] serde_json::Error),
    /// A setting Mycelix FL does not reproduce.
    #[error("ByzFL config: {0}")]
    Unsupported(String),
}

/// A value given alone or as a list (a list is swept).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// One value.
    One(T),
    /// Several values, one run each.
    Many(Vec<T>),
}

impl<T: Clone> OneOrMany<T> {
    /// The values, in file order.
    pub fn values(&self) -> Vec<T> {
        match self {
            OneOrMany::One(v) => vec![v.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// A named component with its parameters (`{"name": ..., "parameters": {...}}`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Named {
    /// ByzFL's class name, e.g. `SignFlipping`, `TrMean`.
    pub name: String,
    /// Constructor arguments.
    #[serde(default)]
    pub parameters: Map<String, Value>,
}

impl Named {
    fn float(&self, key: &str, default: f64) -> Result<f64, ConfigError> {
        match self.parameters.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v.as_f64().ok_or_else(|| {
                ConfigError::Unsupported(format!("{}: {key} must be a number, got {v}", self.name))
            }),
        }
    }
}

/// One data distribution entry; a list of parameters is swept.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DistributionEntry {
    /// `iid`, `gamma_similarity_niid`, `dirichlet_niid` or `extreme_niid`.
    pub name: String,
    /// gamma or alpha; `null` for `iid` and `extreme_niid`.
    #[serde(default)]
    pub distribution_parameter: Option<OneOrMany<f64>>,
}

/// `benchmark_config`.
#[derive(Debug, Clone, Deserialize)]
pub struct BenchmarkConfig {
    /// `{"name": "DSGD"}` (the default) or `FedAvg`.
    #[serde(default)]
    pub training_algorithm: Option<Named>,
    /// Server steps.
    pub nb_steps: usize,
    /// First training seed.
    #[serde(default)]
    pub training_seed: u64,
    /// Training seeds: `training_seed`, `training_seed + 1`, ...
    #[serde(default = "one")]
    pub nb_training_seeds: u64,
    /// Honest clients (ByzFL adds `f` Byzantine ones unless
    /// `set_honest_clients_as_clients`).
    #[serde(default = "ten")]
    pub nb_honest_clients: OneOrMany<usize>,
    /// `nb_honest_clients` counts every client, Byzantine ones included.
    #[serde(default)]
    pub set_honest_clients_as_clients: bool,
    /// Byzantine clients.
    pub f: OneOrMany<usize>,
    /// The `f` the aggregators are told (`f` when absent); runs with `tolerated_f < f`
    /// are dropped, as ByzFL drops them.
    #[serde(default)]
    pub tolerated_f: Option<OneOrMany<usize>>,
    /// Share of the training set used for training; the rest is validation.
    #[serde(default = "train_share")]
    pub size_train_set: f64,
    /// First data-distribution seed.
    #[serde(default)]
    pub data_distribution_seed: u64,
    /// Data-distribution seeds.
    #[serde(default = "one")]
    pub nb_data_distribution_seeds: u64,
    /// Data distributions (one entry or a list).
    #[serde(default = "iid")]
    pub data_distribution: OneOrMany<DistributionEntry>,
}

/// `model`.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelConfig {
    /// `logreg_mnist`, `fc_mnist` or `cnn_mnist` (ByzFL's other models are not ported).
    pub name: OneOrMany<String>,
    /// `fashionmnist` or `mnist`.
    pub dataset_name: OneOrMany<String>,
    /// Classes.
    #[serde(default = "ten")]
    pub nb_labels: OneOrMany<usize>,
    /// The server's learning rate (swept when a list).
    #[serde(default = "lr")]
    pub learning_rate: OneOrMany<f64>,
    /// `MultiStepLR`'s factor at each milestone.
    #[serde(default = "unit")]
    pub learning_rate_decay: f64,
    /// Steps at which the learning rate is multiplied by `learning_rate_decay`.
    #[serde(default)]
    pub milestones: Vec<Value>,
}

/// `honest_clients`.
#[derive(Debug, Clone, Deserialize)]
pub struct HonestClients {
    /// Client momentum beta: `m <- beta m + (1 - beta) g`.
    #[serde(default = "momentum")]
    pub momentum: OneOrMany<f64>,
    /// Weight decay, applied with the server's step.
    #[serde(default = "weight_decay")]
    pub weight_decay: OneOrMany<f64>,
    /// Minibatch per client and step.
    #[serde(default = "batch")]
    pub batch_size: usize,
}

/// `evaluation_and_results`.
#[derive(Debug, Clone, Deserialize)]
pub struct Evaluation {
    /// The global model is evaluated every `evaluation_delta` steps, and after the last.
    #[serde(default = "delta")]
    pub evaluation_delta: usize,
    /// Where ByzFL writes its results.
    #[serde(default = "results")]
    pub results_directory: String,
}

/// A ByzFL benchmark config.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// Run shape: steps, seeds, clients, distributions.
    pub benchmark_config: BenchmarkConfig,
    /// Model, data set and learning rate.
    pub model: ModelConfig,
    /// ByzFL's aggregators (one or a list).
    pub aggregator: OneOrMany<Named>,
    /// ByzFL's pre-aggregator chain (a list), or several chains (a list of lists).
    #[serde(default)]
    pub pre_aggregators: Value,
    /// Honest clients' optimiser.
    pub honest_clients: HonestClients,
    /// Attacks (one or a list).
    pub attack: OneOrMany<Named>,
    /// Evaluation cadence and output.
    pub evaluation_and_results: Evaluation,
}

fn one() -> u64 {
    1
}
fn ten<T: From<u8>>() -> OneOrMany<T> {
    OneOrMany::One(T::from(10))
}
fn train_share() -> f64 {
    0.8
}
fn iid() -> OneOrMany<DistributionEntry> {
    OneOrMany::One(DistributionEntry {
        name: "iid".into(),
        distribution_parameter: None,
    })
}
fn lr() -> OneOrMany<f64> {
    OneOrMany::One(0.1)
}
fn unit() -> f64 {
    1.0
}
fn momentum() -> OneOrMany<f64> {
    OneOrMany::One(0.9)
}
fn weight_decay() -> OneOrMany<f64> {
    OneOrMany::One(1e-4)
}
fn batch() -> usize {
    32
}
fn delta() -> usize {
    50
}
fn results() -> String {
    "./results".into()
}

/// A data distribution of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Distribution {
    /// ByzFL's name.
    pub name: String,
    /// gamma or alpha (`None` for `iid` and `extreme_niid`).
    pub parameter: Option<f64>,
}

impl Distribution {
    /// The same spread in Mycelix FL's partitions.
    pub fn scheme(&self) -> Result<Scheme, ConfigError> {
        let needs = |what: &str| {
            self.parameter.ok_or_else(|| {
                ConfigError::Unsupported(format!(
                    "{} needs a distribution_parameter ({what})",
                    self.name
                ))
            })
        };
        Ok(match self.name.as_str() {
            "iid" => Scheme::Iid,
            "extreme_niid" => Scheme::Extreme,
            "gamma_similarity_niid" => Scheme::GammaSimilarity {
                similarity: needs("gamma in [0, 1]")?,
            },
            "dirichlet_niid" => Scheme::Dirichlet {
                alpha: needs("alpha > 0")?,
            },
            other => {
                return Err(ConfigError::Unsupported(format!(
                    "unknown data distribution {other:?} (iid, gamma_similarity_niid, dirichlet_niid, extreme_niid)"
                )))
            }
        })
    }

    /// The label ByzFL's result folders and heatmap rows use: `iid_None`,
    /// `gamma_similarity_niid_0.66`.
    pub fn label(&self) -> String {
        match self.parameter {
            Some(p) => format!("{}_{}", self.name, python_float(p)),
            None => format!("{}_None", self.name),
        }
    }
}

/// Python's `str()` of a float, as ByzFL writes numbers into folder names: `1.0`, `0.66`,
/// `0.0001`, `1e-05`.
pub fn python_float(x: f64) -> String {
    if x == x.trunc() && x.abs() < 1e16 {
        return format!("{x:.1}");
    }
    let a = x.abs();
    if !(1e-4..1e16).contains(&a) {
        // Python switches to exponent notation below 1e-4, with at least two exponent
        // digits.
        let s = format!("{x:e}");
        let (m, e) = s.split_once('e').expect("exponent notation");
        let e: i32 = e.parse().expect("exponent");
        return format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
    }
    format!("{x}")
}

/// One run of the grid (before seeds).
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Honest clients.
    pub honest: usize,
    /// Byzantine clients.
    pub f: usize,
    /// The `f` the defence is told.
    pub tolerated_f: usize,
    /// How the training data is spread over the honest clients.
    pub distribution: Distribution,
    /// ByzFL's attack.
    pub attack: Named,
    /// Server learning rate.
    pub learning_rate: f64,
    /// Client momentum.
    pub momentum: f64,
    /// Weight decay.
    pub weight_decay: f64,
}

impl Config {
    /// Reads a config from its JSON text.
    pub fn parse(json: &str) -> Result<Config, ConfigError> {
        let config: Config = serde_json::from_str(json)?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let b = &self.benchmark_config;
        if let Some(t) = &b.training_algorithm {
            if t.name != "DSGD" {
                return Err(ConfigError::Unsupported(format!(
                    "training algorithm {:?}: only DSGD is reproduced",
                    t.name
                )));
            }
        }
        if b.nb_steps == 0 || self.evaluation_and_results.evaluation_delta == 0 {
            return Err(ConfigError::Unsupported(
                "nb_steps and evaluation_delta must be positive".into(),
            ));
        }
        if !self.model.milestones.is_empty() && self.model.learning_rate_decay != 1.0 {
            return Err(ConfigError::Unsupported(
                "learning-rate milestones are not reproduced: give \"milestones\": []".into(),
            ));
        }
        if self.honest_clients.batch_size == 0 {
            return Err(ConfigError::Unsupported(
                "batch_size must be positive".into(),
            ));
        }
        self.model()?;
        self.dataset()?;
        for d in self.distributions() {
            d.scheme()?;
        }
        for a in self.attack.values() {
            attack(&a)?;
        }
        Ok(())
    }

    /// The model (one name; ByzFL's MNIST-shaped models only).
    pub fn model(&self) -> Result<Model, ConfigError> {
        let names = self.model.name.values();
        let [name] = names.as_slice() else {
            return Err(ConfigError::Unsupported(format!(
                "one model per grid, got {names:?}"
            )));
        };
        let classes = self.model.nb_labels.values();
        if classes != [10] {
            return Err(ConfigError::Unsupported(format!(
                "nb_labels {classes:?}: the MNIST-shaped models have 10 classes"
            )));
        }
        Model::byzfl(name).ok_or_else(|| {
            ConfigError::Unsupported(format!(
                "model {name:?}: logreg_mnist, fc_mnist and cnn_mnist are ported"
            ))
        })
    }

    /// The data set's ByzFL name (one per grid).
    pub fn dataset(&self) -> Result<String, ConfigError> {
        let names = self.model.dataset_name.values();
        match names.as_slice() {
            [n] if n == "fashionmnist" || n == "mnist" => Ok(n.clone()),
            _ => Err(ConfigError::Unsupported(format!(
                "dataset_name {names:?}: one of fashionmnist, mnist"
            ))),
        }
    }

    /// Every data distribution, parameter lists expanded, in file order.
    pub fn distributions(&self) -> Vec<Distribution> {
        self.benchmark_config
            .data_distribution
            .values()
            .into_iter()
            .flat_map(|d| {
                let params = d
                    .distribution_parameter
                    .map(|p| p.values().into_iter().map(Some).collect())
                    .unwrap_or_else(|| vec![None]);
                params.into_iter().map(move |parameter| Distribution {
                    name: d.name.clone(),
                    // ByzFL ignores the parameter of these two (its folder names say None).
                    parameter: if d.name == "iid" || d.name == "extreme_niid" {
                        None
                    } else {
                        parameter
                    },
                })
            })
            .collect()
    }

    /// The grid: every combination of clients, `f`, `tolerated_f`, distribution, attack
    /// and hyperparameters, without the combinations ByzFL drops (`tolerated_f < f`).
    pub fn cells(&self) -> Vec<Cell> {
        let b = &self.benchmark_config;
        let mut cells = Vec::new();
        for clients in b.nb_honest_clients.values() {
            for f in b.f.values() {
                let honest = if b.set_honest_clients_as_clients {
                    clients.saturating_sub(f)
                } else {
                    clients
                };
                let tolerated = b.tolerated_f.as_ref().map_or(vec![f], |t| t.values());
                for tolerated_f in tolerated.into_iter().filter(|&t| t >= f) {
                    for distribution in self.distributions() {
                        for attack in self.attack.values() {
                            for learning_rate in self.model.learning_rate.values() {
                                for momentum in self.honest_clients.momentum.values() {
                                    for weight_decay in self.honest_clients.weight_decay.values() {
                                        cells.push(Cell {
                                            honest,
                                            f,
                                            tolerated_f,
                                            distribution: distribution.clone(),
                                            attack: attack.clone(),
                                            learning_rate,
                                            momentum,
                                            weight_decay,
                                        });
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        cells
    }

    /// Every (training seed, data-distribution seed) pair a cell is run with.
    pub fn seeds(&self) -> Vec<(u64, u64)> {
        let b = &self.benchmark_config;
        (0..b.nb_training_seeds)
            .flat_map(|i| {
                (0..b.nb_data_distribution_seeds)
                    .map(move |j| (b.training_seed + i, b.data_distribution_seed + j))
            })
            .collect()
    }

    /// The steps after which the global model is evaluated, as ByzFL does: before steps
    /// `0, delta, 2 delta, ...` and once after the last step (`nb_steps`).
    pub fn checkpoints(&self) -> Vec<usize> {
        let steps = self.benchmark_config.nb_steps;
        let delta = self.evaluation_and_results.evaluation_delta;
        (0..steps).step_by(delta).chain([steps]).collect()
    }

    /// ByzFL's pre-aggregator chains, each as `Clipping_NNM` (its folder-name form).
    pub fn pre_aggregator_chains(&self) -> Vec<String> {
        let names = |chain: &[Value]| -> String {
            chain
                .iter()
                .filter_map(|p| p.get("name").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("_")
        };
        match &self.pre_aggregators {
            Value::Array(items) if items.first().is_some_and(Value::is_array) => items
                .iter()
                .filter_map(Value::as_array)
                .map(|c| names(c))
                .collect(),
            Value::Array(items) => vec![names(items)],
            _ => vec![String::new()],
        }
    }
}

/// The Mycelix FL attack closest to ByzFL's `named` attack.
///
/// ByzFL's attackers read every honest client's vector; a Mycelix FL attacker knows only
/// its own data and what its colluders share, so the statistics below are the colluders'
/// (each trained on its own shard):
/// - `SignFlipping` (`-mean(honest)`): the attacker's own vector negated;
/// - `InnerProductManipulation` (`-tau mean`, tau 2) and its `Optimal_` form: `-tau` times
///   the colluders' mean; the optimal form's line search over tau needs the honest
///   vectors and the server's aggregator, so it runs at tau = 2;
/// - `ALittleIsEnough` and its `Optimal_` form: ALIE from the colluders' mean and spread;
/// - `Mimic` (a fixed honest client's vector): every attacker sends the first colluder's;
/// - `Inf`: non-finite values (validation rejects them);
/// - `Gaussian` (`N(mu, sigma^2)` per coordinate): a random vector as large as the norm
///   bound lets it be;
/// - `LabelFlipping`: training on labels `9 - y`;
///
/// and one that ByzFL does not have, so a config naming it runs on Mycelix FL only:
/// - `AlignedGaussian`: `Gaussian` plus a sliver along the previous round's global step
///   ([`Attack::AlignedRandom`]), the form of the Gaussian attack that knows Mycelix FL's
///   alignment rule.
pub fn attack(named: &Named) -> Result<Attack, ConfigError> {
    Ok(match named.name.as_str() {
        "NoAttack" => Attack::Zero,
        "SignFlipping" => Attack::SignFlip { scale: 1.0 },
        "InnerProductManipulation" | "Optimal_InnerProductManipulation" => Attack::Ipm {
            epsilon: named.float("tau", 2.0)? as f32,
        },
        "ALittleIsEnough" | "Optimal_ALittleIsEnough" => Attack::Alie,
        "Mimic" => Attack::Mimic,
        "Inf" => Attack::NonFinite,
        "Gaussian" => Attack::Random { scale: 1e6 },
        "AlignedGaussian" => Attack::AlignedRandom { scale: 1e6 },
        "LabelFlipping" => Attack::LabelFlip,
        other => {
            return Err(ConfigError::Unsupported(format!(
                "attack {other:?} has no counterpart here (SignFlipping, InnerProductManipulation, \
                 ALittleIsEnough, their Optimal_ forms, Mimic, Inf, Gaussian, LabelFlipping; \
                 AlignedGaussian on Mycelix FL only)"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ByzFL's benchmark config in its own format: the shape `run_benchmark` writes when
    /// `config.json` is missing, on Fashion-MNIST and the CPU, with `attack` as a list and
    /// `null` parameters for `iid` and `extreme_niid` (how the config must be written
    /// for ByzFL's evaluation to find its results).
    const CONFIG: &str = r#"{
        "benchmark_config": {
            "training_algorithm": {"name": "DSGD", "parameters": {}},
            "nb_steps": 800,
            "device": "cpu",
            "training_seed": 0,
            "nb_training_seeds": 3,
            "nb_honest_clients": 10,
            "f": [1, 2, 3, 4],
            "size_train_set": 0.8,
            "data_distribution_seed": 0,
            "nb_data_distribution_seeds": 1,
            "data_distribution": [
                {"name": "iid", "distribution_parameter": null},
                {"name": "gamma_similarity_niid", "distribution_parameter": [0.66, 0.33]},
                {"name": "extreme_niid", "distribution_parameter": null}
            ]
        },
        "model": {
            "name": "cnn_mnist",
            "dataset_name": "fashionmnist",
            "nb_labels": 10,
            "loss": "NLLLoss",
            "learning_rate": 0.1,
            "learning_rate_decay": 1.0,
            "milestones": []
        },
        "aggregator": [
            {"name": "GeometricMedian", "parameters": {"nu": 0.1, "T": 3}},
            {"name": "TrMean", "parameters": {}}
        ],
        "pre_aggregators": [
            {"name": "Clipping", "parameters": {}},
            {"name": "NNM", "parameters": {}}
        ],
        "honest_clients": {"momentum": 0.9, "weight_decay": 0.0001, "batch_size": 25},
        "attack": [
            {"name": "SignFlipping", "parameters": {}},
            {"name": "InnerProductManipulation", "parameters": {"tau": 3.0}},
            {"name": "ALittleIsEnough", "parameters": {}},
            {"name": "Mimic", "parameters": {}},
            {"name": "Inf", "parameters": {}},
            {"name": "Gaussian", "parameters": {"mu": 0.0, "sigma": 1.0}},
            {"name": "LabelFlipping", "parameters": {}}
        ],
        "evaluation_and_results": {
            "evaluation_delta": 50,
            "batch_size_evaluation": 128,
            "evaluate_on_test": true,
            "store_per_client_metrics": true,
            "store_models": false,
            "data_folder": "./data",
            "results_directory": "./results"
        }
    }"#;

    #[test]
    fn byzfl_default_shape_parses_and_expands_as_byzfl_does() {
        let c = Config::parse(CONFIG).unwrap();
        assert_eq!(c.model().unwrap(), Model::byzfl("cnn_mnist").unwrap());
        assert_eq!(c.dataset().unwrap(), "fashionmnist");
        // 4 f x 4 distributions x 7 attacks; one set of hyperparameters.
        let cells = c.cells();
        assert_eq!(cells.len(), 4 * 4 * 7);
        assert!(cells.iter().all(|x| x.honest == 10 && x.tolerated_f == x.f));
        let labels: Vec<String> = c.distributions().iter().map(Distribution::label).collect();
        assert_eq!(
            labels,
            [
                "iid_None",
                "gamma_similarity_niid_0.66",
                "gamma_similarity_niid_0.33",
                "extreme_niid_None"
            ]
        );
        assert_eq!(c.seeds(), [(0, 0), (1, 0), (2, 0)]);
        // 17 evaluations: before steps 0, 50, ..., 750 and after step 800.
        let cp = c.checkpoints();
        assert_eq!((cp.len(), cp[1], cp[16]), (17, 50, 800));
        assert_eq!(c.pre_aggregator_chains(), ["Clipping_NNM"]);
        let ipm = cells
            .iter()
            .find(|x| x.attack.name == "InnerProductManipulation")
            .unwrap();
        assert_eq!(attack(&ipm.attack).unwrap(), Attack::Ipm { epsilon: 3.0 });
        assert_eq!(
            c.distributions()[1].scheme().unwrap(),
            Scheme::GammaSimilarity { similarity: 0.66 }
        );
    }

    #[test]
    fn tolerated_f_below_f_is_dropped_and_clients_can_count_byzantine_ones() {
        let mut v: Value = serde_json::from_str(CONFIG).unwrap();
        v["benchmark_config"]["tolerated_f"] = serde_json::json!([2, 4]);
        v["benchmark_config"]["set_honest_clients_as_clients"] = true.into();
        v["benchmark_config"]["nb_honest_clients"] = 14.into();
        v["attack"] = serde_json::json!([{"name": "SignFlipping"}]);
        v["benchmark_config"]["data_distribution"] = serde_json::json!({"name": "iid"});
        let c = Config::parse(&v.to_string()).unwrap();
        let got: Vec<(usize, usize, usize)> = c
            .cells()
            .iter()
            .map(|x| (x.honest, x.f, x.tolerated_f))
            .collect();
        assert_eq!(
            got,
            [
                (13, 1, 2),
                (13, 1, 4),
                (12, 2, 2),
                (12, 2, 4),
                (11, 3, 4),
                (10, 4, 4)
            ]
        );
    }

    #[test]
    fn what_is_not_reproduced_is_an_error_that_says_so() {
        let with = |path: &[&str], value: Value| {
            let mut v: Value = serde_json::from_str(CONFIG).unwrap();
            let mut at = &mut v;
            for k in &path[..path.len() - 1] {
                at = &mut at[*k];
            }
            at[path[path.len() - 1]] = value;
            Config::parse(&v.to_string()).unwrap_err().to_string()
        };
        let fedavg = with(
            &["benchmark_config", "training_algorithm"],
            serde_json::json!({"name": "FedAvg"}),
        );
        assert!(fedavg.contains("only DSGD"), "{fedavg}");
        let resnet = with(&["model", "name"], "ResNet18".into());
        assert!(resnet.contains("ResNet18"), "{resnet}");
        let cifar = with(&["model", "dataset_name"], "cifar10".into());
        assert!(cifar.contains("cifar10"), "{cifar}");
        let gamma = with(
            &["benchmark_config", "data_distribution"],
            serde_json::json!([{"name": "gamma_similarity_niid"}]),
        );
        assert!(gamma.contains("needs a distribution_parameter"), "{gamma}");
        let decay = with(
            &["model"],
            serde_json::json!({"name": "fc_mnist", "dataset_name": "fashionmnist",
                "learning_rate_decay": 0.5, "milestones": [100]}),
        );
        assert!(decay.contains("milestones"), "{decay}");
        let unknown = with(&["attack"], serde_json::json!([{"name": "Backdoor"}]));
        assert!(unknown.contains("\"Backdoor\""), "{unknown}");
        let missing = Config::parse("{\"benchmark_config\": {}}")
            .unwrap_err()
            .to_string();
        assert!(
            missing.starts_with("not a ByzFL benchmark config"),
            "{missing}"
        );
    }

    #[test]
    fn numbers_are_written_as_python_writes_them() {
        for (x, s) in [
            (1.0, "1.0"),
            (0.66, "0.66"),
            (0.0, "0.0"),
            (1e-4, "0.0001"),
            (1e-5, "1e-05"),
            (0.1, "0.1"),
        ] {
            assert_eq!(python_float(x), s);
        }
    }
}
