//! The task file: a task as its author writes it (TOML), turned into the `Task` entry that
//! `mycelix-fl task create --spec task.toml` publishes.
//!
//! ```toml
//! name = "digits"
//! description = "handwritten digits, 8x8 pixels"
//!
//! [model]                 # fl_core::ModelSpec
//! kind = "logreg"
//! inputs = 64
//! classes = 10
//!
//! [data]                  # fl_core::DataSchema
//! label = "label"
//! classes = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
//! preprocess = { kind = "scale", factor = 0.0625 }
//!
//! [training]              # fl_core::TrainingSettings (defaults shown)
//! learning_rate = 0.1
//! epochs = 1
//! batch_size = 32
//!
//! [round]                 # everything optional; defaults shown
//! aggregator = "median"
//! f = 1
//! committee = 5
//! # min_trusted_voters = 3  (a majority of the seats, at most 3)
//! aligned_credit = true   # reputation only for updates along the last step's line
//! # quorum = 2f + 1 for the median (the smallest the rule allows)
//! max_update_norm = 10.0
//! submit_ms = 600000
//! vote_ms = 600000
//! slot_ms = 30000
//! admission = "open"      # or "closed"
//! ```

use anyhow::{bail, Context, Result};
use federated_learning_integrity::{Admission, RoundSchedule, Task};
use fl_core::aggregate::{Rule, WeiszfeldParams};
use fl_core::{
    DataSchema, Encoding, ModelSpec, PogqParams, RoundParams, TaskSpec, Tensor, TrainingSettings,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::local::minimum_quorum;
use fl_learn::model::Model;

/// A task as its author writes it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TaskFile {
    /// Short human name.
    pub name: String,
    /// What the task is for.
    #[serde(default)]
    pub description: String,
    /// Seed of the initial model's random weights (for the MLP).
    #[serde(default)]
    pub seed: u64,
    /// The model.
    pub model: ModelSpec,
    /// The table each participant brings.
    pub data: DataSchema,
    /// Local training.
    #[serde(default)]
    pub training: TrainingSettings,
    /// Aggregation, committee and schedule.
    #[serde(default)]
    pub round: RoundSection,
}

/// The `[round]` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RoundSection {
    /// `mean`, `krum`, `multi_krum`, `median`, `trimmed_mean`, `geometric_median` or
    /// `bulyan`.
    pub aggregator: String,
    /// Byzantine updates the rule is set to withstand.
    pub f: u32,
    /// Committee seats from round 1 on.
    pub committee: u32,
    /// Fewest trusted committee members a verdict needs (default: a majority of the
    /// seats, at most 3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_trusted_voters: Option<u32>,
    /// Whether an update earns reputation only when it points along the previous round's
    /// global step (`fl_core::RoundParams::aligned_credit`).
    pub aligned_credit: bool,
    /// Submissions a round needs (default: the smallest the rule allows with `f`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quorum: Option<u32>,
    /// Server learning rate.
    pub server_lr: f32,
    /// Largest Euclidean norm of an update.
    pub max_update_norm: f32,
    /// Most agents the reputation table holds.
    pub max_participants: u32,
    /// Submission window, ms.
    pub submit_ms: u64,
    /// Vote window, ms.
    pub vote_ms: u64,
    /// Aggregation slot per committee rank, ms.
    pub slot_ms: u64,
    /// `open` or `closed` (members by invite; each may invite two once its reputation
    /// reaches 0.6).
    pub admission: String,
}

impl Default for RoundSection {
    fn default() -> Self {
        let schedule = RoundSchedule::default();
        RoundSection {
            aggregator: "median".into(),
            f: 1,
            committee: 5,
            min_trusted_voters: None,
            aligned_credit: true,
            quorum: None,
            server_lr: 1.0,
            max_update_norm: 10.0,
            max_participants: fl_core::round::DEFAULT_MAX_PARTICIPANTS,
            submit_ms: schedule.submit_ms,
            vote_ms: schedule.vote_ms,
            slot_ms: schedule.slot_ms,
            admission: "open".into(),
        }
    }
}

/// The rule named `name` (as task files and `--aggregator` name them).
pub fn rule_named(name: &str) -> Result<Rule> {
    Ok(match name {
        "mean" => Rule::Mean,
        "krum" => Rule::Krum,
        "multi_krum" => Rule::MultiKrum { m: None },
        "median" => Rule::Median,
        "trimmed_mean" => Rule::TrimmedMean,
        "geometric_median" => Rule::GeometricMedian(WeiszfeldParams::default()),
        "bulyan" => Rule::Bulyan,
        other => bail!(
            "unknown aggregator {other:?}; one of mean, krum, multi_krum, median, trimmed_mean, geometric_median, bulyan"
        ),
    })
}

impl TaskFile {
    /// Parses a task file.
    pub fn parse(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim()))
    }

    /// Reads and parses a task file.
    pub fn read(path: &std::path::Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("{} is not a valid task file", path.display()))
    }

    /// The spec part.
    pub fn spec(&self) -> TaskSpec {
        TaskSpec {
            model: self.model,
            data: self.data.clone(),
            training: self.training,
        }
    }

    /// The `Task` entry: checked here as the integrity zome will check it, so that a bad
    /// file is refused before anything is written.
    pub fn to_task(&self) -> Result<Task> {
        let spec = self.spec();
        spec.check()?;
        let r = &self.round;
        let rule = rule_named(&r.aggregator)?;
        let mut round = RoundParams::new(rule, r.f);
        round.pogq = PogqParams::for_classes(spec.model.classes() as usize);
        round.server_lr = r.server_lr;
        round.max_update_norm = r.max_update_norm;
        round.max_participants = r.max_participants;
        round.min_trusted_voters = r.min_trusted_voters.unwrap_or_else(|| {
            fl_core::round::default_min_trusted_voters_for(r.committee as usize)
        });
        round.aligned_credit = r.aligned_credit;
        let admission = match r.admission.as_str() {
            "open" => Admission::Open,
            "closed" => Admission::CLOSED,
            other => bail!("round admission {other:?} must be \"open\" or \"closed\""),
        };
        let params = spec.model.param_count();
        if params > u64::from(federated_learning_integrity::task::MAX_MODEL_PARAMS) {
            bail!(
                "the model has {params} parameters; the hApp accepts at most {}",
                federated_learning_integrity::task::MAX_MODEL_PARAMS
            );
        }
        let encoding = if params > u64::from(federated_learning_integrity::task::MAX_F32_PARAMS) {
            Encoding::int8()
        } else {
            Encoding::F32
        };
        let initial = Model::from(spec.model).init(&mut ChaCha8Rng::seed_from_u64(self.seed));
        let initial_model = Tensor::new(initial)
            .and_then(|t| t.encode(encoding))
            .map_err(|e| anyhow::anyhow!("encoding the initial model: {e}"))?;
        let task = Task {
            name: self.name.clone(),
            description: self.description.clone(),
            model_len: params as u32,
            spec,
            encoding,
            round,
            committee_size: r.committee,
            quorum: r.quorum.unwrap_or_else(|| minimum_quorum(&rule, r.f)),
            schedule: RoundSchedule {
                submit_ms: r.submit_ms,
                vote_ms: r.vote_ms,
                slot_ms: r.slot_ms,
            },
            initial_model,
            admission,
        };
        federated_learning_integrity::task::validate_create_task(&task)
            .map_err(anyhow::Error::msg)?;
        Ok(task)
    }

    /// A task file for a bundled data set: logistic regression on all its features,
    /// classes named by index, features standardised with the whole set's statistics (the
    /// author's reference data).
    pub fn for_builtin(name: &str) -> Result<Self> {
        let mut data = fl_learn::data::builtin(name)?;
        let preprocess = data.standardize(&mut []);
        let model = ModelSpec::Logreg {
            inputs: data.features() as u32,
            classes: data.classes as u32,
        };
        let mut spec = TaskSpec::unnamed(model, "label");
        spec.data.preprocess = preprocess;
        Ok(TaskFile {
            name: name.into(),
            description: format!("{} on the bundled {name} set", model.describe()),
            model,
            data: spec.data,
            training: TrainingSettings::default(),
            round: RoundSection::default(),
            seed: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGITS: &str = r#"
name = "digits"
[model]
kind = "logreg"
inputs = 64
classes = 10
[data]
label = "label"
classes = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
preprocess = { kind = "scale", factor = 0.0625 }
[round]
aggregator = "median"
f = 1
committee = 3
submit_ms = 20000
"#;

    #[test]
    fn a_task_file_becomes_the_task_the_zome_accepts() {
        let t = TaskFile::parse(DIGITS).unwrap().to_task().unwrap();
        assert_eq!(t.model_len, 650);
        assert_eq!(t.quorum, 3);
        assert_eq!(t.schedule.submit_ms, 20_000);
        assert_eq!(t.schedule.vote_ms, RoundSchedule::default().vote_ms);
        assert_eq!(t.spec.training, TrainingSettings::default());
        assert_eq!(t.admission, Admission::Open);
        // Omitted round rules take mycelix-fl's defaults, not the zome's (old tasks').
        assert!(t.round.aligned_credit);
        assert_eq!(t.round.min_trusted_voters, 2);
        let off = DIGITS.replace("committee = 3", "committee = 3\naligned_credit = false");
        let t = TaskFile::parse(&off).unwrap().to_task().unwrap();
        assert!(!t.round.aligned_credit);
    }

    #[test]
    fn a_bad_task_file_is_refused_with_the_reason() {
        let cases = [
            (
                DIGITS.replace("inputs = 64", "inputs = 64\nhidden = 3"),
                "unknown field `hidden`",
            ),
            (
                DIGITS.replace("\"9\"]", "\"8\"]"),
                "class \"8\" appears twice",
            ),
            (
                DIGITS.replace("f = 1", "f = 1\nquorum = 2"),
                "quorum >= 2f + 1, but quorum is 2",
            ),
            (
                DIGITS.replace("\"median\"", "\"avg\""),
                "unknown aggregator \"avg\"",
            ),
            (
                DIGITS.replace("kind = \"logreg\"", "kind = \"cnn\""),
                "unknown variant `cnn`",
            ),
        ];
        for (text, reason) in cases {
            let e = TaskFile::parse(&text)
                .and_then(|f| f.to_task())
                .unwrap_err()
                .to_string();
            assert!(e.contains(reason), "{e} lacks {reason}");
        }
    }

    #[test]
    fn a_bundled_set_gets_a_task_file_that_round_trips() {
        let f = TaskFile::for_builtin("iris").unwrap();
        let text = toml::to_string(&f).unwrap();
        let back = TaskFile::parse(&text).unwrap();
        assert_eq!(back, f);
        assert_eq!(back.to_task().unwrap().model_len, 15);
    }
}
