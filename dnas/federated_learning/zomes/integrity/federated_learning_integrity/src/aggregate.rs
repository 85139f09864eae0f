//! The outcome of a round, recomputed by every validator.

use fl_core::{decide_round, Reputation, SubmissionInput, Verdict};
use hdi::prelude::*;

use crate::ballot::{CommitteeBallot, CommitteeVote};
use crate::chain::{earlier_entry, round_context, typed_record, RoundContext};
use crate::gradient::GradientSubmission;
use crate::task::{decode_model, Task};
use crate::UnitEntryTypes;

/// What a round decided about one submission, with the entries that decided it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct OutcomeRecord {
    /// The submission (its PoGQ proof inside).
    pub submission: ActionHash,
    /// The committee ballots cited for their vote on it: every cited ballot's vote on every
    /// listed submission is cited (validation checks), and the round decision then counts
    /// those of trusted members.
    pub votes: Vec<ActionHash>,
    /// Included, or excluded with the reason.
    pub verdict: Verdict,
}

/// One agent's reputation after the round.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ReputationEntry {
    /// The agent.
    pub agent: AgentPubKey,
    /// Its reputation.
    pub reputation: Reputation,
}

/// The outcome of round `round`: verdicts, the next global model and the reputation table.
/// The next round's committee is drawn from this table, seeded by this entry's hash.
#[hdk_entry_helper]
#[derive(Clone, PartialEq)]
pub struct RoundAggregate {
    /// The task.
    pub task: ActionHash,
    /// The round closed.
    pub round: u32,
    /// The round's base (task for round 0, else the previous aggregate).
    pub base: ActionHash,
    /// One per submission, ordered by submission hash.
    pub outcomes: Vec<OutcomeRecord>,
    /// The next global model, in the task's encoding.
    #[serde(with = "serde_bytes")]
    pub model: Vec<u8>,
    /// Every agent's reputation after the round, ordered by agent key.
    pub reputation: Vec<ReputationEntry>,
}

/// One submission with the entries that bear on it.
#[derive(Debug, Clone)]
pub struct SubmissionEvidence {
    /// The submission's action hash.
    pub hash: ActionHash,
    /// Its author.
    pub author: AgentPubKey,
    /// The submission, its PoGQ proof inside.
    pub submission: GradientSubmission,
    /// Committee votes on it: (the member's ballot, member, its vote on this submission).
    pub votes: Vec<(ActionHash, AgentPubKey, CommitteeVote)>,
}

/// Computes the aggregate of a round from its evidence; `committee` is the round's
/// committee (trust is measured against its whole reputation). The coordinator commits
/// exactly this and validation recomputes it, so the two can never disagree on honest
/// input.
pub fn compute_aggregate(
    task_hash: &ActionHash,
    task: &Task,
    round: u32,
    base: &ActionHash,
    previous: Option<&RoundAggregate>,
    committee: &[AgentPubKey],
    mut evidence: Vec<SubmissionEvidence>,
) -> Result<RoundAggregate, String> {
    evidence.sort_by(|a, b| a.hash.cmp(&b.hash));
    let base_bytes = previous.map_or(&task.initial_model, |p| &p.model);
    let base_model = decode_model(task, base_bytes).map_err(|e| format!("base model: {e}"))?;
    let updates = evidence
        .iter()
        .map(|e| decode_model(task, &e.submission.update).map(|t| t.into_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("update: {e}"))?;
    let table: Vec<(AgentPubKey, Reputation)> = previous
        .map(|p| {
            p.reputation
                .iter()
                .map(|e| (e.agent.clone(), e.reputation))
                .collect()
        })
        .unwrap_or_default();
    let inputs: Vec<SubmissionInput<'_, AgentPubKey>> = evidence
        .iter()
        .zip(&updates)
        .map(|(e, u)| SubmissionInput {
            agent: e.author.clone(),
            update: u,
            proof: Some(e.submission.proof.measurement()),
            votes: e
                .votes
                .iter()
                .map(|(_, member, v)| (member.clone(), v.accept))
                .collect(),
        })
        .collect();
    let result = decide_round(
        &task.round,
        base_model.as_slice(),
        &table,
        committee,
        &inputs,
    )
    .map_err(|e| e.to_string())?;
    let model = fl_core::Tensor::new(result.model)
        .and_then(|t| t.encode(task.encoding))
        .map_err(|e| format!("new model: {e}"))?;
    Ok(RoundAggregate {
        task: task_hash.clone(),
        round,
        base: base.clone(),
        outcomes: evidence
            .iter()
            .zip(&result.outcomes)
            .map(|(e, o)| OutcomeRecord {
                submission: e.hash.clone(),
                votes: e.votes.iter().map(|(h, _, _)| h.clone()).collect(),
                verdict: o.verdict,
            })
            .collect(),
        model,
        reputation: result
            .reputation
            .into_iter()
            .map(|(agent, reputation)| ReputationEntry { agent, reputation })
            .collect(),
    })
}

/// Who may publish the aggregate: in round 0 the task's author; later a member of the
/// round's committee, the first-ranked at once and rank `r` after `r` timeouts; and the
/// task's author again when nobody holds the committee threshold (an empty committee
/// would otherwise leave the round with no one entitled to close it, for ever).
pub fn check_aggregator(
    ctx: &RoundContext,
    author: &AgentPubKey,
    at: Timestamp,
) -> Result<(), String> {
    if ctx.previous.is_none() {
        return if author == &ctx.task_author {
            Ok(())
        } else {
            Err(format!(
                "round 0 is aggregated by the task's author, not {author}"
            ))
        };
    }
    if ctx.committee.is_empty() {
        return if author == &ctx.task_author {
            Ok(())
        } else {
            Err(format!(
                "round {} has no committee (nobody holds the committee threshold), so it is aggregated by the task's author, not {author}",
                ctx.previous.as_ref().map_or(0, |p| p.round + 1)
            ))
        };
    }
    let rank = ctx
        .committee
        .iter()
        .position(|m| m == author)
        .ok_or_else(|| format!("aggregate by {author}, who is not on the round's committee"))?;
    // Task validation caps the timeout at a day, so this cannot overflow; saturate anyway.
    let timeout_us = i64::try_from(ctx.task.aggregation_timeout_ms)
        .unwrap_or(i64::MAX)
        .saturating_mul(1000);
    let wait_us = (rank as i64).saturating_mul(timeout_us);
    let allowed = Timestamp::from_micros(ctx.opened_at.as_micros().saturating_add(wait_us));
    if at < allowed {
        return Err(format!(
            "committee rank {rank} may aggregate only from {} ms (the round opened at {} ms)",
            allowed.as_millis(),
            ctx.opened_at.as_millis()
        ));
    }
    Ok(())
}

/// An aggregate must be published by an entitled member, reference at least a quorum of
/// the round's submissions with their committee votes, and equal the
/// recomputation of verdicts, model and reputation from those entries.
pub fn validate_create_aggregate(
    a: &RoundAggregate,
    action: &Create,
) -> ExternResult<Result<(), String>> {
    let ctx = match round_context(&a.task, a.round, &a.base)? {
        Ok(c) => c,
        Err(e) => return Ok(Err(format!("round aggregate: {e}"))),
    };
    if let Err(e) = check_aggregator(&ctx, &action.author, action.timestamp) {
        return Ok(Err(format!("round aggregate: {e}")));
    }
    // One aggregate per author and round, whatever its base: a second would fork the model.
    let earlier = earlier_entry::<RoundAggregate>(
        &action.author,
        &action.prev_action,
        ctx.opened_at,
        UnitEntryTypes::RoundAggregate,
        |other| other.task == a.task && other.round == a.round,
    )?;
    if let Some(first) = earlier {
        return Ok(Err(format!(
            "round aggregate: the author already published an aggregate of round {} ({first})",
            a.round
        )));
    }
    if let Err(e) = check_outcomes(a, &ctx.task) {
        return Ok(Err(e));
    }
    let ballots = match cited_ballots(&ctx, a)? {
        Ok(b) => b,
        Err(e) => return Ok(Err(format!("round aggregate: {e}"))),
    };
    let mut evidence = Vec::with_capacity(a.outcomes.len());
    for o in &a.outcomes {
        match gather(a, o, &ballots)? {
            Ok(e) => evidence.push(e),
            Err(e) => return Ok(Err(format!("round aggregate: {e}"))),
        }
    }
    if let Err(e) = check_ballots_counted(a, &ballots) {
        return Ok(Err(format!("round aggregate: {e}")));
    }
    let expected = match compute_aggregate(
        &a.task,
        &ctx.task,
        a.round,
        &a.base,
        ctx.previous.as_ref(),
        &ctx.committee,
        evidence,
    ) {
        Ok(x) => x,
        Err(e) => return Ok(Err(format!("round aggregate: cannot recompute: {e}"))),
    };
    Ok(check_recomputation(a, &expected))
}

/// The aggregate must reference at least the task's quorum of submissions, ordered by
/// submission hash, each once. Pure.
pub fn check_outcomes(a: &RoundAggregate, task: &Task) -> Result<(), String> {
    if a.outcomes.len() < task.quorum as usize {
        return Err(format!(
            "round aggregate: {} submissions referenced but the quorum is {}",
            a.outcomes.len(),
            task.quorum
        ));
    }
    if a.outcomes
        .windows(2)
        .any(|w| w[0].submission >= w[1].submission)
    {
        return Err(
            "round aggregate: outcomes must be ordered by submission hash, each once".into(),
        );
    }
    Ok(())
}

/// The aggregate must equal `expected`, the [`compute_aggregate`] of the entries it
/// references, in verdicts, model and reputation table. Pure.
pub fn check_recomputation(a: &RoundAggregate, expected: &RoundAggregate) -> Result<(), String> {
    compare(a, expected)
        .map_err(|e| format!("round aggregate does not match the recomputation: {e}"))
}

/// Every ballot an aggregate cites, fetched and checked once: (ballot, member, ballot),
/// ordered by ballot hash.
type CitedBallots = Vec<(ActionHash, AgentPubKey, CommitteeBallot)>;

/// Fetches the ballots `a` cites; each must be of this round and by a committee member.
fn cited_ballots(
    ctx: &RoundContext,
    a: &RoundAggregate,
) -> ExternResult<Result<CitedBallots, String>> {
    let mut hashes: Vec<&ActionHash> = a.outcomes.iter().flat_map(|o| &o.votes).collect();
    hashes.sort();
    hashes.dedup();
    let mut out = Vec::with_capacity(hashes.len());
    for h in hashes {
        let (r, b) = match typed_record::<CommitteeBallot>(h, "CommitteeBallot")? {
            Ok(x) => x,
            Err(e) => return Ok(Err(e)),
        };
        let member = r.action().author().clone();
        if b.task != a.task || b.round != a.round || b.base != a.base {
            return Ok(Err(format!("ballot {h} is for another round")));
        }
        if !ctx.committee.contains(&member) {
            return Ok(Err(format!(
                "ballot {h} is by {member}, who is not on the committee"
            )));
        }
        out.push((h.clone(), member, b));
    }
    Ok(Ok(out))
}

/// Every submission a cited ballot votes on must be listed, and the vote cited in its
/// outcome: an aggregator may leave a ballot out, but not pick among its votes, and not
/// leave out a submission the committee judged while keeping the ballot that judged it.
fn check_ballots_counted(a: &RoundAggregate, ballots: &CitedBallots) -> Result<(), String> {
    for (h, _, ballot) in ballots {
        for v in &ballot.votes {
            let Ok(i) = a
                .outcomes
                .binary_search_by(|o| o.submission.cmp(&v.submission))
            else {
                return Err(format!(
                    "ballot {h} votes on submission {}, which the aggregate leaves out: every submission a cited ballot votes on must be included",
                    v.submission
                ));
            };
            if !a.outcomes[i].votes.contains(h) {
                return Err(format!(
                    "ballot {h} votes on submission {} but that vote is not counted",
                    v.submission
                ));
            }
        }
    }
    Ok(())
}

fn gather(
    a: &RoundAggregate,
    o: &OutcomeRecord,
    ballots: &CitedBallots,
) -> ExternResult<Result<SubmissionEvidence, String>> {
    let (record, submission) =
        match typed_record::<GradientSubmission>(&o.submission, "GradientSubmission")? {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
    if submission.task != a.task || submission.round != a.round || submission.base != a.base {
        return Ok(Err(format!(
            "submission {} belongs to another round",
            o.submission
        )));
    }
    let author = record.action().author().clone();
    let mut votes = Vec::with_capacity(o.votes.len());
    for h in &o.votes {
        let Ok(i) = ballots.binary_search_by(|(x, _, _)| x.cmp(h)) else {
            return Ok(Err(format!("ballot {h} is not cited")));
        };
        let (_, member, ballot) = &ballots[i];
        let Some(v) = ballot.vote_on(&o.submission) else {
            return Ok(Err(format!(
                "ballot {h} has no vote on submission {}",
                o.submission
            )));
        };
        if votes
            .iter()
            .any(|(_, m, _): &(ActionHash, AgentPubKey, CommitteeVote)| m == member)
        {
            return Ok(Err(format!(
                "two ballots by {member} vote on submission {}",
                o.submission
            )));
        }
        votes.push((h.clone(), member.clone(), v.clone()));
    }
    Ok(Ok(SubmissionEvidence {
        hash: o.submission.clone(),
        author,
        submission,
        votes,
    }))
}

fn compare(got: &RoundAggregate, want: &RoundAggregate) -> Result<(), String> {
    for (g, w) in got.outcomes.iter().zip(&want.outcomes) {
        if g.verdict != w.verdict {
            return Err(format!(
                "submission {} is marked {:?}, the rules give {:?}",
                g.submission, g.verdict, w.verdict
            ));
        }
    }
    if got.model != want.model {
        return Err("the model differs from the aggregation of the included updates".into());
    }
    if got.reputation != want.reputation {
        let diff = got
            .reputation
            .iter()
            .zip(&want.reputation)
            .find(|(g, w)| g != w)
            .map(|(g, w)| {
                format!(
                    "{} has {} but the rule gives {}",
                    g.agent, g.reputation, w.reputation
                )
            })
            .unwrap_or_else(|| "the table lists different agents".into());
        return Err(format!("reputation: {diff}"));
    }
    Ok(())
}
