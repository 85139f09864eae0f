//! Committee votes.

use federated_learning_integrity::{CommitteeVote, EntryTypes, GradientSubmission, LinkTypes};
use fl_core::PogqMeasurement;
use hdk::prelude::*;

use crate::fail;
use crate::task::get_task_info;

/// A committee member's measurement of a submission on its own held-out data; the verdict
/// follows from the task's threshold.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct CastVote {
    /// Submission.
    pub submission: ActionHash,
    /// Loss of the base model on the member's data.
    pub loss_before: f64,
    /// Loss after applying the update with the probe learning rate.
    pub loss_after: f64,
    /// Examples measured on.
    pub samples: u32,
}

/// Publishes the caller's vote on a submission.
#[hdk_extern]
pub fn cast_vote(input: CastVote) -> ExternResult<ActionHash> {
    let record = get(input.submission.clone(), GetOptions::default())?
        .ok_or_else(|| fail(format!("submission {} not found", input.submission)))?;
    let submission =
        GradientSubmission::try_from(record).map_err(|_| fail("not a gradient submission"))?;
    let task = get_task_info(&submission.task)?.task;
    let measurement = PogqMeasurement {
        loss_before: input.loss_before,
        loss_after: input.loss_after,
        samples: input.samples,
    };
    let accept = measurement
        .verdict(&task.round.pogq)
        .map_err(|e| fail(e.to_string()))?
        .passed();
    let vote = CommitteeVote {
        submission: input.submission.clone(),
        round: submission.round,
        loss_before: input.loss_before,
        loss_after: input.loss_after,
        samples: input.samples,
        accept,
    };
    let hash = create_entry(EntryTypes::CommitteeVote(vote))?;
    create_link(
        input.submission.clone(),
        hash.clone(),
        LinkTypes::SubmissionToVotes,
        (),
    )?;
    Ok(hash)
}
