//! The training task: model shape, aggregator, committee, thresholds, initial model.

use fl_core::aggregate::Rule;
use fl_core::{Encoding, Tensor};
use hdi::prelude::*;

use crate::entries::{max_aggregate_bytes, Admission, Task};

/// Largest model the hApp accepts. In `f32` an update of this size is 4,000,005 bytes and
/// does not fit the 4,000,000-byte entry limit; tasks above [`MAX_F32_PARAMS`] must use
/// the `int8` encoding (about 1,015,630 bytes for 1M parameters).
pub const MAX_MODEL_PARAMS: u32 = 1_000_000;
/// Largest model that fits an entry in `f32` (with room for the other fields).
pub const MAX_F32_PARAMS: u32 = 990_000;
/// Most committee seats a task may ask for: every rank has an aggregation slot before the
/// fallback's, so the seats bound how long a round may wait for an aggregate.
pub const MAX_COMMITTEE_SIZE: u32 = 100;
/// Longest task name, in bytes.
pub const MAX_NAME_LEN: usize = 200;
/// Longest task description, in bytes: free text must not crowd the entry or every
/// reader's memory.
pub const MAX_TEXT_LEN: usize = 16_384;

/// Most Weiszfeld iterations a task may ask for: validation of every aggregate repeats
/// them, so an unbounded count would let a task's author stall every validator.
pub const MAX_WEISZFELD_ITERATIONS: u32 = 1000;

/// Every rule a task must satisfy; the error names the first one broken.
pub fn validate_create_task(task: &Task) -> Result<(), String> {
    if task.name.trim().is_empty() || task.name.len() > MAX_NAME_LEN {
        return Err(format!(
            "task name must be 1..={MAX_NAME_LEN} bytes and not blank"
        ));
    }
    if task.description.len() > MAX_TEXT_LEN {
        return Err(format!(
            "task description is {} bytes, more than the {MAX_TEXT_LEN} allowed",
            task.description.len()
        ));
    }
    task.schedule.check().map_err(|e| format!("task {e}"))?;
    if task.committee_size > MAX_COMMITTEE_SIZE {
        return Err(format!(
            "task committee_size {} is above the {MAX_COMMITTEE_SIZE} allowed",
            task.committee_size
        ));
    }
    if task.model_len == 0 || task.model_len > MAX_MODEL_PARAMS {
        return Err(format!(
            "task model_len {} is outside 1..={MAX_MODEL_PARAMS}",
            task.model_len
        ));
    }
    match task.encoding {
        Encoding::F32 if task.model_len > MAX_F32_PARAMS => {
            return Err(format!(
                "a model of {} parameters does not fit an entry in f32; use int8 (max f32 size is {MAX_F32_PARAMS})",
                task.model_len
            ))
        }
        Encoding::Int8 { block } if block == 0 || block > fl_core::tensor::MAX_INT8_BLOCK => {
            return Err(format!("int8 block length {block} is outside 1..=65536"))
        }
        _ => {}
    }
    task.spec.check().map_err(|e| e.to_string())?;
    if task.spec.model.param_count() != task.model_len as u64 {
        return Err(format!(
            "task model_len {} does not match its model spec ({}: {} parameters)",
            task.model_len,
            task.spec.model.describe(),
            task.spec.model.param_count()
        ));
    }
    decode_model(task, &task.initial_model).map_err(|e| format!("initial model: {e}"))?;
    task.round.pogq.check().map_err(|e| e.to_string())?;
    task.round.reputation.check().map_err(|e| e.to_string())?;
    task.round.check().map_err(|e| format!("task {e}"))?;
    let most = fl_core::round::max_min_trusted_voters(task.committee_size as usize);
    if task.round.min_trusted_voters > most {
        return Err(format!(
            "task min_trusted_voters {} is above a majority of its committee_size {} ({most}): members away or voting apart could silence every round",
            task.round.min_trusted_voters, task.committee_size
        ));
    }
    check_capacity(task)?;
    if task.quorum == 0 {
        return Err("quorum must be at least 1".into());
    }
    let (n, f) = (task.quorum as usize, task.round.aggregator.f as usize);
    let rule = task.round.aggregator.rule;
    if n < rule.min_inputs(f) {
        return Err(format!(
            "{} with f = {f} needs quorum >= {}, but quorum is {n}",
            rule.name(),
            rule.min_inputs_formula()
        ));
    }
    if let Rule::MultiKrum { m: Some(m) } = task.round.aggregator.rule {
        if m == 0 || m as usize > n - f {
            return Err(format!("multi_krum m = {m} must be in 1..=quorum - f"));
        }
    }
    if let Admission::Closed {
        min_inviter_reputation,
        ..
    } = task.admission
    {
        if min_inviter_reputation > fl_core::Reputation::ONE {
            return Err(format!(
                "min_inviter_reputation {} is above 1",
                min_inviter_reputation.as_f64()
            ));
        }
    }
    if let Rule::GeometricMedian(p) = task.round.aggregator.rule {
        if !(p.nu.is_finite() && p.nu > 0.0 && p.tolerance.is_finite() && p.tolerance >= 0.0) {
            return Err("geometric_median needs nu > 0 and tolerance >= 0".into());
        }
        // Every validator of every aggregate runs this many iterations at most.
        if p.max_iterations == 0 || p.max_iterations > MAX_WEISZFELD_ITERATIONS {
            return Err(format!(
                "geometric_median max_iterations {} is outside 1..={MAX_WEISZFELD_ITERATIONS}",
                p.max_iterations
            ));
        }
    }
    Ok(())
}

/// A task's participant bound must keep its largest aggregate within the entry size limit
/// ([`max_aggregate_bytes`]). Pure.
pub fn check_capacity(task: &Task) -> Result<(), String> {
    let bytes = max_aggregate_bytes(task);
    if bytes <= ENTRY_SIZE_LIMIT {
        return Ok(());
    }
    let n = u64::from(task.round.max_participants).max(1);
    let per = (bytes
        - max_aggregate_bytes(&Task {
            round: fl_core::RoundParams {
                max_participants: 0,
                ..task.round
            },
            ..task.clone()
        })) as u64
        / n;
    let fixed = bytes as u64 - per * n;
    let fits = (ENTRY_SIZE_LIMIT as u64).saturating_sub(fixed) / per.max(1);
    Err(format!(
        "task max_participants {} does not fit: an aggregate of that many participants, a committee of {} and this model can take {bytes} bytes, above the {ENTRY_SIZE_LIMIT}-byte entry limit; at most {fits} participants fit",
        task.round.max_participants, task.committee_size
    ))
}

/// Decodes a model or update of this task: the task's encoding, exactly `model_len` values.
pub fn decode_model(task: &Task, bytes: &[u8]) -> Result<Tensor, String> {
    let encoding = fl_core::tensor::peek_encoding(bytes).map_err(|e| e.to_string())?;
    if encoding != task.encoding {
        return Err(format!(
            "tensor is encoded as {encoding:?} but the task requires {:?}",
            task.encoding
        ));
    }
    Tensor::decode(bytes, task.model_len as usize).map_err(|e| e.to_string())
}

/// A valid spec of `model_len` parameters for test fixtures; fixtures smaller than any
/// model (under 4 parameters) get the smallest one, and are never validated as tasks.
#[cfg(test)]
pub(crate) fn fixture_spec(model_len: u32) -> fl_core::TaskSpec {
    fl_core::TaskSpec::with_params(model_len.max(4)).expect("a spec of this size exists")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entries::*;
    use crate::schedule::RoundSchedule;
    use fl_core::RoundParams;

    fn task(len: u32, rule: Rule, f: u32, quorum: u32) -> Task {
        Task {
            name: "t".into(),
            description: String::new(),
            model_len: len,
            spec: fixture_spec(len),
            encoding: Encoding::F32,
            round: RoundParams::new(rule, f),
            committee_size: 3,
            quorum,
            schedule: RoundSchedule::default(),
            initial_model: Tensor::new(vec![0.0; len as usize])
                .unwrap()
                .canonical_bytes(),
            admission: Admission::Open,
        }
    }

    #[test]
    fn accepts_a_consistent_task() {
        assert_eq!(
            validate_create_task(&task(10, Rule::MultiKrum { m: None }, 2, 7)),
            Ok(())
        );
    }

    #[test]
    fn rejects_unbounded_weiszfeld_iterations() {
        let rule = |max_iterations| {
            Rule::GeometricMedian(fl_core::aggregate::WeiszfeldParams {
                max_iterations,
                ..Default::default()
            })
        };
        assert_eq!(validate_create_task(&task(10, rule(1000), 2, 7)), Ok(()));
        for bad in [0, 1001, u32::MAX] {
            let e = validate_create_task(&task(10, rule(bad), 2, 7)).unwrap_err();
            assert!(e.contains("max_iterations"), "{e}");
        }
    }

    #[test]
    fn rejects_aggregators_that_cannot_run_at_quorum() {
        let e = validate_create_task(&task(10, Rule::Bulyan, 1, 6)).unwrap_err();
        assert_eq!(
            e,
            "bulyan with f = 1 needs quorum >= 4f + 3, but quorum is 6"
        );
        let e = validate_create_task(&task(10, Rule::MultiKrum { m: Some(6) }, 2, 7)).unwrap_err();
        assert!(e.contains("m = 6"), "{e}");
    }

    #[test]
    fn rejects_models_that_do_not_fit_or_do_not_decode() {
        let mut t = task(10, Rule::Mean, 0, 1);
        t.model_len = MAX_F32_PARAMS + 1;
        assert!(validate_create_task(&t).unwrap_err().contains("use int8"));
        let mut t = task(10, Rule::Mean, 0, 1);
        t.initial_model.pop();
        assert!(validate_create_task(&t)
            .unwrap_err()
            .starts_with("initial model:"));
        let mut t = task(10, Rule::Mean, 0, 1);
        t.initial_model = Tensor::new(vec![0.0; 10])
            .unwrap()
            .encode(Encoding::int8())
            .unwrap();
        assert!(validate_create_task(&t)
            .unwrap_err()
            .contains("requires F32"));
        let mut t = task(10, Rule::Mean, 0, 1);
        t.round.server_lr = f32::NAN;
        assert!(validate_create_task(&t)
            .unwrap_err()
            .contains("server learning rate"));
    }

    #[test]
    fn rejects_unbounded_learning_rates_norm_bounds_texts_and_schedules() {
        let mut t = task(10, Rule::Mean, 0, 1);
        t.round.server_lr = 11.0;
        assert_eq!(
            validate_create_task(&t).unwrap_err(),
            "task server learning rate 11 must be finite, > 0 and <= 10"
        );
        let mut t = task(10, Rule::Mean, 0, 1);
        t.round.max_update_norm = f32::INFINITY;
        assert!(validate_create_task(&t)
            .unwrap_err()
            .starts_with("task update norm bound inf"));
        let mut t = task(10, Rule::Mean, 0, 1);
        t.description = "x".repeat(MAX_TEXT_LEN + 1);
        assert!(validate_create_task(&t)
            .unwrap_err()
            .starts_with("task description is 16385 bytes"));
        let mut t = task(10, Rule::Mean, 0, 1);
        t.spec = fixture_spec(12);
        assert_eq!(
            validate_create_task(&t).unwrap_err(),
            "task model_len 10 does not match its model spec (logreg 5x2: 12 parameters)"
        );
        let mut t = task(10, Rule::Mean, 0, 1);
        t.spec.training.epochs = 0;
        assert_eq!(
            validate_create_task(&t).unwrap_err(),
            "task spec: training epochs 0 is outside 1..=100"
        );
        let mut t = task(10, Rule::Mean, 0, 1);
        t.committee_size = MAX_COMMITTEE_SIZE + 1;
        assert!(validate_create_task(&t)
            .unwrap_err()
            .starts_with("task committee_size 101"));
        let mut t = task(10, Rule::Mean, 0, 1);
        t.round.min_trusted_voters = 3;
        assert_eq!(
            validate_create_task(&t).unwrap_err(),
            "task min_trusted_voters 3 is above a majority of its committee_size 3 (2): members away or voting apart could silence every round"
        );
        t.round.min_trusted_voters = 0;
        assert_eq!(
            validate_create_task(&t).unwrap_err(),
            "task min_trusted_voters must be at least 1"
        );
        t.round.min_trusted_voters = 2;
        assert_eq!(validate_create_task(&t), Ok(()));
        let mut t = task(10, Rule::Mean, 0, 1);
        t.schedule.slot_ms = u64::MAX;
        assert!(validate_create_task(&t)
            .unwrap_err()
            .starts_with("task schedule slot_ms"));
    }
}
