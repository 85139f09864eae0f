//! A committee member's independent re-score of one submission.

use fl_core::PogqMeasurement;
use hdi::prelude::*;

use crate::chain::{earlier_entry, round_context, typed_record};
use crate::gradient::GradientSubmission;
use crate::UnitEntryTypes;

/// The member's PoGQ measurement of a submission on its own held-out data, and its verdict,
/// which must follow from the measurement and the task's threshold.
#[hdk_entry_helper]
#[derive(Clone, PartialEq)]
pub struct CommitteeVote {
    /// The submission voted on.
    pub submission: ActionHash,
    /// The round the member votes in (must be the submission's).
    pub round: u32,
    /// Loss of the base model on the member's data.
    pub loss_before: f64,
    /// Loss after applying the update with the probe learning rate.
    pub loss_after: f64,
    /// Examples measured on.
    pub samples: u32,
    /// Accept or reject.
    pub accept: bool,
}

impl CommitteeVote {
    /// The measurement as fl_core scores it.
    pub fn measurement(&self) -> PogqMeasurement {
        PogqMeasurement {
            loss_before: self.loss_before,
            loss_after: self.loss_after,
            samples: self.samples,
        }
    }
}

/// A vote must be on a submission of the round it names, by a member of that round's
/// committee, with a verdict that follows from its measurement, and be the member's only
/// vote on that submission.
pub fn validate_create_vote(
    v: &CommitteeVote,
    action: &Create,
) -> ExternResult<Result<(), String>> {
    let (record, submission) =
        match typed_record::<GradientSubmission>(&v.submission, "GradientSubmission")? {
            Ok(s) => s,
            Err(e) => return Ok(Err(format!("committee vote: {e}"))),
        };
    if submission.round != v.round {
        return Ok(Err(format!(
            "committee vote for round {} is on a submission of round {}",
            v.round, submission.round
        )));
    }
    let ctx = match round_context(&submission.task, submission.round, &submission.base)? {
        Ok(c) => c,
        Err(e) => return Ok(Err(format!("committee vote: {e}"))),
    };
    if !ctx.committee.contains(&action.author) {
        return Ok(Err(format!(
            "committee vote by {} who is not on the committee of round {}",
            action.author, v.round
        )));
    }
    let verdict = match v.measurement().verdict(&ctx.task.round.pogq) {
        Ok(verdict) => verdict,
        Err(e) => return Ok(Err(format!("committee vote: {e}"))),
    };
    if verdict.passed() != v.accept {
        return Ok(Err(format!(
            "committee vote says accept = {} but its measurement scores {:.6} against a threshold of {}",
            v.accept,
            verdict.score(),
            ctx.task.round.pogq.min_score
        )));
    }
    let since = record.action().timestamp();
    if action.timestamp < since {
        return Ok(Err("committee vote is dated before the submission".into()));
    }
    let earlier = earlier_entry::<CommitteeVote>(
        &action.author,
        &action.prev_action,
        since,
        UnitEntryTypes::CommitteeVote,
        |other| other.submission == v.submission,
    )?;
    if let Some(first) = earlier {
        return Ok(Err(format!(
            "committee vote: the member already voted on this submission ({first})"
        )));
    }
    Ok(Ok(()))
}
