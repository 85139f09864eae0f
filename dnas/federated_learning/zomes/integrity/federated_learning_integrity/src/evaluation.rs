//! A participant's evaluation of a round's global model on its own held-out data: what the
//! dashboard charts as the model's accuracy and loss over rounds.

use hdi::prelude::*;

use crate::entries::{ModelEvaluation, RoundAggregate, Task, UnitEntryTypes};
use crate::lookup::{earlier_entry, typed_record};
use crate::membership::check_member;
use crate::rejection::Code;

/// The measurement alone must be sane: a finite non-negative loss, an accuracy in [0, 1]
/// and at least one example.
pub fn check_measurement(e: &ModelEvaluation) -> Result<(), String> {
    if !e.loss.is_finite() || e.loss < 0.0 {
        return Err(format!(
            "model evaluation: loss must be finite and non-negative, got {}",
            e.loss
        ));
    }
    if !(0.0..=1.0).contains(&e.accuracy) {
        return Err(format!(
            "model evaluation: accuracy must lie in [0, 1], got {}",
            e.accuracy
        ));
    }
    if e.samples == 0 {
        return Err("model evaluation: samples must be at least 1".into());
    }
    Ok(())
}

/// The evaluation must name the round that `aggregate` closed. Pure.
pub fn check_evaluation_round(
    e: &ModelEvaluation,
    aggregate: &RoundAggregate,
) -> Result<(), String> {
    if aggregate.round != e.round {
        return Err(format!(
            "model evaluation names round {} but the aggregate closed round {}",
            e.round, aggregate.round
        ));
    }
    Ok(())
}

/// An evaluation must carry a sane measurement and name a round aggregate and that
/// aggregate's round, be dated after it, be its author's only evaluation of that
/// aggregate, and come from a member when the task is closed.
pub fn validate_create_evaluation(
    e: &ModelEvaluation,
    action: &Create,
) -> ExternResult<Result<(), String>> {
    if let Err(reason) = check_measurement(e) {
        return Ok(Err(Code::Evaluation.reject(reason)));
    }
    let (record, aggregate) = match typed_record::<RoundAggregate>(&e.aggregate, "RoundAggregate")?
    {
        Ok(a) => a,
        Err(reason) => return Ok(Err(Code::Base.reject(format!("model evaluation: {reason}")))),
    };
    if let Err(reason) = check_evaluation_round(e, &aggregate) {
        return Ok(Err(Code::Evaluation.reject(reason)));
    }
    if action.timestamp < record.action().timestamp() {
        return Ok(Err(
            Code::Window.reject("model evaluation is dated before the aggregate")
        ));
    }
    let earlier = earlier_entry::<ModelEvaluation>(
        &action.author,
        &action.prev_action,
        record.action().timestamp(),
        UnitEntryTypes::ModelEvaluation,
        |other| other.aggregate == e.aggregate,
    )?;
    if let Some(first) = earlier {
        return Ok(Err(Code::Duplicate.reject(format!(
            "model evaluation: the author already evaluated this aggregate ({first})"
        ))));
    }
    let (task_record, task) = match typed_record::<Task>(&aggregate.task, "Task")? {
        Ok(t) => t,
        Err(reason) => return Ok(Err(Code::Base.reject(format!("model evaluation: {reason}")))),
    };
    Ok(check_member(
        &aggregate.task,
        &task,
        task_record.action().author(),
        &action.author,
        e.membership.as_ref(),
        "model evaluation",
    )?
    .map_err(|e| Code::Admission.reject(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entries::*;

    fn eval(loss: f64, accuracy: f64, samples: u32) -> ModelEvaluation {
        ModelEvaluation {
            aggregate: ActionHash::from_raw_36(vec![0; 36]),
            round: 0,
            loss,
            accuracy,
            samples,
            membership: None,
        }
    }

    #[test]
    fn measurement_rules() {
        assert_eq!(check_measurement(&eval(0.3, 0.9, 10)), Ok(()));
        assert_eq!(check_measurement(&eval(0.0, 0.0, 1)), Ok(()));
        assert!(check_measurement(&eval(f64::NAN, 0.9, 10))
            .unwrap_err()
            .contains("loss must be finite"));
        assert!(check_measurement(&eval(-1.0, 0.9, 10))
            .unwrap_err()
            .contains("non-negative"));
        assert!(check_measurement(&eval(0.3, 1.5, 10))
            .unwrap_err()
            .contains("accuracy must lie in [0, 1]"));
        assert!(check_measurement(&eval(0.3, f64::NAN, 10))
            .unwrap_err()
            .contains("accuracy"));
        assert!(check_measurement(&eval(0.3, 0.5, 0))
            .unwrap_err()
            .contains("samples"));
    }
}
