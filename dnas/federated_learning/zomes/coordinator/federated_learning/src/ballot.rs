//! Committee ballots: a member's votes on a round's submissions, in one commit.

use federated_learning_integrity::rejection::Code;
use federated_learning_integrity::{
    judge_votes, CommitteeBallot, CommitteeVote, EntryTypes, LinkTypes,
};
use fl_core::PogqMeasurement;
use hdk::prelude::*;

use crate::fail;
use crate::round::{round_base, RoundRef};
use crate::task::get_task_info;

/// A committee member's measurement of one submission on its own held-out data.
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

/// A committee member's measurements of a round's submissions; each verdict follows from
/// the task's threshold and the ballot's other scores (`fl_core::ballot_verdicts`).
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct CastBallot {
    /// The round.
    pub round: RoundRef,
    /// One measurement per submission, in any order.
    pub votes: Vec<CastVote>,
}

/// Publishes the caller's ballot for a round: its votes ordered by submission hash, linked
/// from the round's base.
#[hdk_extern]
pub fn cast_ballot(input: CastBallot) -> ExternResult<ActionHash> {
    let task = get_task_info(&input.round.task)?.task;
    let base = round_base(&input.round.task, input.round.round)?.ok_or_else(|| {
        fail(Code::NotYet.reject(format!("round {} is not open", input.round.round)))
    })?;
    let measurements: Vec<PogqMeasurement> = input
        .votes
        .iter()
        .map(|v| PogqMeasurement {
            loss_before: v.loss_before,
            loss_after: v.loss_after,
            samples: v.samples,
        })
        .collect();
    let judged = judge_votes(&measurements, |i| &input.votes[i].submission, &task)
        .map_err(|e| fail(Code::Ballot.reject(e)))?;
    let mut votes: Vec<CommitteeVote> = input
        .votes
        .into_iter()
        .zip(judged.verdicts)
        .map(|(v, verdict)| CommitteeVote {
            submission: v.submission,
            loss_before: v.loss_before,
            loss_after: v.loss_after,
            samples: v.samples,
            accept: verdict.passed(),
        })
        .collect();
    votes.sort_by(|a, b| a.submission.cmp(&b.submission));
    let ballot = CommitteeBallot {
        task: input.round.task,
        round: input.round.round,
        base: base.clone(),
        votes,
    };
    let hash = create_entry(EntryTypes::CommitteeBallot(ballot))?;
    create_link(base, hash.clone(), LinkTypes::RoundToBallots, ())?;
    Ok(hash)
}
