//! A committee member's ballot: its own re-score of the round's submissions, in one entry.
//!
//! One ballot per member per round, not one entry per member and submission: a round costs
//! the DHT `n` ballots instead of `n x committee` votes, each member makes one commit, and
//! the "one per member" rule walks the member's chain once.

use fl_core::{ballot_verdicts, BallotVerdicts, PogqError, PogqMeasurement};
use hdi::prelude::*;

use crate::committee::round_context;
use crate::entries::{CommitteeBallot, Task, UnitEntryTypes, UpdateSubmission};
use crate::lookup::{earlier_entry, typed_action};
use crate::rejection::Code;
use crate::schedule::check_dated_coded;

/// The rules a ballot obeys on its own, given its task: at least one vote, votes ordered
/// by submission hash with none twice, and every verdict following from its measurement
/// and the ballot's threshold ([`fl_core::ballot_verdicts`]: the task's `min_score`, or
/// lower when the ballot's other scores are lower).
pub fn check_ballot(b: &CommitteeBallot, task: &Task) -> Result<(), String> {
    if b.votes.is_empty() {
        return Err("committee ballot has no votes".into());
    }
    if let Some(w) = b
        .votes
        .windows(2)
        .find(|w| w[0].submission >= w[1].submission)
    {
        return Err(format!(
            "committee ballot must list each submission once, ordered by hash: {} then {}",
            w[0].submission, w[1].submission
        ));
    }
    let measurements: Vec<PogqMeasurement> = b.votes.iter().map(|v| v.measurement()).collect();
    let judged = judge_votes(&measurements, |i| &b.votes[i].submission, task)
        .map_err(|e| format!("committee ballot: {e}"))?;
    for (v, verdict) in b.votes.iter().zip(&judged.verdicts) {
        if verdict.passed() != v.accept {
            return Err(format!(
                "committee ballot: the vote on {} says accept = {} but its measurement scores {:.6} against the ballot's threshold of {:.6}",
                v.submission,
                v.accept,
                verdict.score(),
                judged.threshold
            ));
        }
    }
    Ok(())
}

/// [`fl_core::ballot_verdicts`] for a ballot's measurements under `task`'s PoGQ
/// parameters; an error names the submission whose measurement is malformed
/// (`submission(i)` is the submission of measurement `i`). Authors (`cast_ballot`) and
/// validators ([`check_ballot`]) judge with this one function.
pub fn judge_votes<'a>(
    measurements: &[PogqMeasurement],
    submission: impl Fn(usize) -> &'a ActionHash,
    task: &Task,
) -> Result<BallotVerdicts, String> {
    ballot_verdicts(measurements, &task.round.pogq).map_err(|e| match e {
        PogqError::Vote { index, source } => {
            format!("vote on {}: {source}", submission(index))
        }
        e => e.to_string(),
    })
}

/// A ballot must be cast in an open round by a member of its committee, obey
/// [`check_ballot`], vote only on submissions of that round, be dated in the round's
/// ballot window, and be the member's only ballot in that round.
pub fn validate_create_ballot(
    b: &CommitteeBallot,
    action: &Create,
) -> ExternResult<Result<(), String>> {
    let ctx = match round_context(&b.task, b.round, &b.base)? {
        Ok(c) => c,
        Err(e) => return Ok(Err(Code::Base.reject(format!("committee ballot: {e}")))),
    };
    if !ctx.committee.contains(&action.author) {
        return Ok(Err(Code::Ballot.reject(format!(
            "committee ballot by {} who is not on the committee of round {}",
            action.author, b.round
        ))));
    }
    if let Err(e) = check_ballot(b, &ctx.task) {
        return Ok(Err(Code::Ballot.reject(e)));
    }
    // Only what each submission says is checked here, so it is read from validation
    // limbo too (as links read their targets): the submissions' own authorities validate
    // them, and an aggregate counts only valid ones.
    for v in &b.votes {
        let submission = match typed_action::<UpdateSubmission>(&v.submission, "UpdateSubmission")?
        {
            Ok((_, s)) => s,
            Err(e) => return Ok(Err(Code::Base.reject(format!("committee ballot: {e}")))),
        };
        if submission.task != b.task || submission.round != b.round || submission.base != b.base {
            return Ok(Err(Code::Ballot.reject(format!(
                "committee ballot for round {} votes on {}, a submission of round {}",
                b.round, v.submission, submission.round
            ))));
        }
    }
    if let Err(e) = check_dated_coded(
        "committee ballot",
        b.round,
        action.timestamp,
        ctx.opened_at,
        ctx.task.schedule.ballots_close(ctx.opened_at),
    ) {
        return Ok(Err(e));
    }
    let earlier = earlier_entry::<CommitteeBallot>(
        &action.author,
        &action.prev_action,
        ctx.opened_at,
        UnitEntryTypes::CommitteeBallot,
        |other| other.task == b.task && other.round == b.round && other.base == b.base,
    )?;
    if let Some(first) = earlier {
        return Ok(Err(Code::Duplicate.reject(format!(
            "committee ballot: the member already cast its ballot for round {} ({first})",
            b.round
        ))));
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entries::*;
    use fl_core::aggregate::Rule;
    use fl_core::{Encoding, RoundParams, Tensor};

    fn task() -> Task {
        Task {
            name: "t".into(),
            description: String::new(),
            model_len: 4,
            spec: crate::task::fixture_spec(4),
            encoding: Encoding::F32,
            round: RoundParams::new(Rule::Median, 1),
            committee_size: 3,
            quorum: 3,
            schedule: Default::default(),
            initial_model: Tensor::new(vec![0.0; 4]).unwrap().canonical_bytes(),
            admission: Default::default(),
        }
    }

    fn hash(i: u8) -> ActionHash {
        ActionHash::from_raw_36(vec![i; 36])
    }

    fn vote(i: u8, loss_after: f64) -> CommitteeVote {
        CommitteeVote {
            submission: hash(i),
            loss_before: 1.0,
            loss_after,
            samples: 10,
            accept: loss_after <= 1.0,
        }
    }

    fn ballot(votes: Vec<CommitteeVote>) -> CommitteeBallot {
        CommitteeBallot {
            task: hash(100),
            round: 1,
            base: hash(101),
            votes,
        }
    }

    #[test]
    fn accepts_ordered_consistent_votes_and_finds_them() {
        let b = ballot(vec![vote(1, 0.9), vote(2, 1.5), vote(3, 1.0)]);
        assert_eq!(check_ballot(&b, &task()), Ok(()));
        assert!(b.vote_on(&hash(2)).is_some_and(|v| !v.accept));
        assert!(b.vote_on(&hash(4)).is_none());
    }

    #[test]
    fn verdicts_follow_the_tasks_loss_scale() {
        // A converged member's data (loss 0.2): one update costs it 0.01 nats, one 0.2.
        let converged = |i: u8, loss_after: f64, accept: bool| CommitteeVote {
            loss_before: 0.2,
            loss_after,
            accept,
            ..vote(i, 1.0)
        };
        // One nat of scale: -1 % and -20 %, so the first passes and the second does not.
        let scaled = task();
        assert_eq!(scaled.round.pogq.loss_scale, 1.0);
        let b = ballot(vec![converged(1, 0.21, true), converged(2, 0.4, false)]);
        assert_eq!(check_ballot(&b, &scaled), Ok(()));
        // A task without the scale judges relative to the loss: -5 % fails, and the same
        // ballot's accept is a lie there.
        let mut relative = task();
        relative.round.pogq.loss_scale = 0.0;
        let err = check_ballot(&b, &relative).unwrap_err();
        assert!(err.contains("says accept = true"), "{err}");
        let honest = ballot(vec![converged(1, 0.21, false), converged(2, 0.4, false)]);
        assert_eq!(check_ballot(&honest, &relative), Ok(()));
    }

    #[test]
    fn rejects_empty_repeated_unordered_and_inconsistent_ballots() {
        let t = task();
        let err = |votes| check_ballot(&ballot(votes), &t).unwrap_err();
        assert!(err(vec![]).contains("has no votes"));
        assert!(err(vec![vote(1, 0.9), vote(1, 0.9)]).contains("each submission once"));
        assert!(err(vec![vote(2, 0.9), vote(1, 0.9)]).contains("ordered by hash"));
        let lie = CommitteeVote {
            accept: true,
            ..vote(1, 1.5)
        };
        assert!(err(vec![lie]).contains("says accept = true but its measurement scores"));
        let broken = CommitteeVote {
            loss_after: f64::NAN,
            ..vote(1, 0.9)
        };
        assert!(err(vec![broken]).contains("vote on"));
    }
}
