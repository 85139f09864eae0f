//! Reading a round's state from the DHT.

use federated_learning_integrity::aggregate::SubmissionEvidence;
use federated_learning_integrity::committee::{round_context, RoundContext};
use federated_learning_integrity::entries::MAX_LISTED_PER_AGENT;
use federated_learning_integrity::{
    CommitteeBallot, CommitteeVote, LinkTypes, PogqProof, RoundAggregate, Task, UpdateSubmission,
};
use hdk::prelude::*;

use crate::fail;
use crate::task::get_task_info;

/// Names a round of a task.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct RoundRef {
    /// Task.
    pub task: ActionHash,
    /// Round.
    pub round: u32,
}

/// One submission as a round reports it (without the update's bytes).
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct SubmissionInfo {
    /// Submission action.
    pub hash: ActionHash,
    /// Author.
    pub author: AgentPubKey,
    /// Self-reported training examples.
    pub samples: u32,
    /// Size of the encoded update in bytes.
    pub update_bytes: u32,
    /// Its PoGQ proof.
    pub proof: PogqProof,
    /// Committee votes: (the member's ballot, member, its vote on this submission).
    pub votes: Vec<(ActionHash, AgentPubKey, CommitteeVote)>,
}

/// Everything known about a round.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct RoundState {
    /// Task.
    pub task: ActionHash,
    /// Round.
    pub round: u32,
    /// The round's base (task or previous aggregate); `None` while the round is not open.
    pub base: Option<ActionHash>,
    /// When the round opened, the time every window of the task's schedule is measured
    /// from (`None` while the round is not open).
    pub opened_at: Option<Timestamp>,
    /// Submissions so far, ordered by hash.
    pub submissions: Vec<SubmissionInfo>,
    /// The ranked committee (empty in round 0).
    pub committee: Vec<AgentPubKey>,
    /// Submissions needed to aggregate.
    pub quorum: u32,
    /// Whether the quorum is met.
    pub quorum_met: bool,
    /// The aggregate that closed the round, if any.
    pub aggregate: Option<(ActionHash, RoundAggregate)>,
}

/// The canonical aggregate of `round`: of all valid aggregates for it, the one by the
/// best-ranked author (committee rank; the task author in round 0 or with an empty
/// committee; any other agent after them), then the one citing more submissions, then the
/// lower hash; an aggregate that meets the quorum before any carry-over. Each aggregate is
/// ranked by the committee of its own base. When the round's aggregates stand on different
/// bases, those on the canonical base of the round before come first, so a side branch
/// cannot win by drawing a committee of its own (this looks back only as far as the
/// rounds keep having aggregates on several bases).
pub(crate) fn canonical_aggregate(
    task: &ActionHash,
    round: u32,
) -> ExternResult<Option<(ActionHash, RoundAggregate)>> {
    Ok(ranked_canonical(task, round)?.map(|(_, h, a)| (h, a)))
}

/// [`canonical_aggregate`] with its author's aggregation rank (`usize::MAX`: the fallback).
pub(crate) fn ranked_canonical(
    task: &ActionHash,
    round: u32,
) -> ExternResult<Option<(usize, ActionHash, RoundAggregate)>> {
    let links = get_links(
        LinkQuery::try_new(task.clone(), LinkTypes::TaskToAggregates)?
            .tag_prefix(LinkTag::new(round.to_be_bytes().to_vec())),
        GetStrategy::Network,
    )?;
    let mut found: Vec<(usize, ActionHash, RoundAggregate)> = Vec::new();
    let mut contexts: Vec<(ActionHash, RoundContext)> = Vec::new();
    for link in links {
        let Some(hash) = link.target.into_action_hash() else {
            continue;
        };
        let Some(record) = get(hash.clone(), GetOptions::default())? else {
            continue;
        };
        let Ok(agg) = RoundAggregate::try_from(record.clone()) else {
            continue;
        };
        if agg.round != round || &agg.task != task {
            continue;
        }
        let at = match contexts.iter().position(|(b, _)| b == &agg.base) {
            Some(i) => i,
            None => {
                let ctx = round_context(task, round, &agg.base)?.map_err(fail)?;
                contexts.push((agg.base.clone(), ctx));
                contexts.len() - 1
            }
        };
        let rank = contexts[at]
            .1
            .aggregation_rank(record.action().author())
            .unwrap_or(usize::MAX);
        found.push((rank, hash, agg));
    }
    let forked = found.windows(2).any(|w| w[0].2.base != w[1].2.base);
    let canonical_base = match (forked, round.checked_sub(1)) {
        (true, Some(before)) => canonical_aggregate(task, before)?.map(|(h, _)| h),
        _ => None,
    };
    let off_branch = |a: &RoundAggregate| canonical_base.as_ref().is_some_and(|b| &a.base != b);
    // An aggregate that meets the quorum beats any carry-over, and one the committee's
    // majority endorsed beats any that is not, whatever its author's rank (a ranked member
    // could otherwise publish from the fallback slot on its allies' ballots and replace
    // real work); equal ranks (fallback aggregators) prefer the aggregate citing more
    // submissions.
    found.sort_by(|a, b| {
        off_branch(&a.2)
            .cmp(&off_branch(&b.2))
            .then(a.2.is_carry_over().cmp(&b.2.is_carry_over()))
            .then(b.2.endorsed.cmp(&a.2.endorsed))
            .then(a.0.cmp(&b.0))
            .then(b.2.outcomes.len().cmp(&a.2.outcomes.len()))
            .then(a.1.cmp(&b.1))
    });
    Ok(found.into_iter().next())
}

/// The base of `round`: the task for round 0, else the canonical aggregate of the round
/// before; `None` while that round is not closed.
pub(crate) fn round_base(task: &ActionHash, round: u32) -> ExternResult<Option<ActionHash>> {
    if round == 0 {
        return Ok(Some(task.clone()));
    }
    Ok(canonical_aggregate(task, round - 1)?.map(|(h, _)| h))
}

/// The task author, every agent with reputation, and this round's submitters.
pub(crate) fn participants(task: &ActionHash, base: &ActionHash) -> ExternResult<Vec<AgentPubKey>> {
    let mut out = vec![get_task_info(task)?.author];
    if base != task {
        if let Some(record) = get(base.clone(), GetOptions::default())? {
            if let Ok(agg) = RoundAggregate::try_from(record) {
                out.extend(agg.reputation.into_iter().map(|e| e.agent));
            }
        }
    }
    let links = get_links(
        LinkQuery::try_new(base.clone(), LinkTypes::RoundToSubmissions)?,
        GetStrategy::Network,
    )?;
    out.extend(links.into_iter().map(|l| l.author));
    Ok(out)
}

/// The submissions of the round based on `base`, with their committee votes
/// (ballots by non-members and a member's second ballot left out), ordered by hash.
pub(crate) fn round_evidence(ctx: &RoundContext) -> ExternResult<Vec<SubmissionEvidence>> {
    let (task, round, base) = (&ctx.task_hash, ctx.round, &ctx.base);
    let mut ballots = round_ballots(task, round, base, &ctx.committee)?;
    // The linked submissions and every submission a ballot votes on (its link may not have
    // arrived yet): validation requires an aggregate to include all of those.
    let mut hashes: Vec<ActionHash> = get_links(
        LinkQuery::try_new(base.clone(), LinkTypes::RoundToSubmissions)?,
        GetStrategy::Network,
    )?
    .into_iter()
    .filter_map(|l| l.target.into_action_hash())
    .chain(
        ballots
            .iter()
            .flat_map(|(_, _, b)| b.votes.iter().map(|v| v.submission.clone())),
    )
    .collect();
    hashes.sort();
    hashes.dedup();
    let mut found: Vec<(ActionHash, AgentPubKey, UpdateSubmission)> = Vec::new();
    for hash in hashes {
        let Some(record) = get(hash.clone(), GetOptions::default())? else {
            continue;
        };
        let Ok(submission) = UpdateSubmission::try_from(record.clone()) else {
            continue;
        };
        if &submission.task != task || submission.round != round || &submission.base != base {
            continue;
        }
        found.push((hash, record.action().author().clone(), submission));
    }
    // An agent's third and later submissions (forks of its chain; two show the fork) and
    // newcomers beyond the table's free rows, the first by hash kept, are left out, as
    // validation allows, so the aggregate stays within the task's participant bound.
    let table = ctx.previous.as_ref().map_or(&[][..], |p| &p.reputation[..]);
    let newcomer = |k: &AgentPubKey| table.binary_search_by(|e| e.agent.cmp(k)).is_err();
    let mut room = (ctx.task.round.max_participants as usize).saturating_sub(table.len());
    let mut admitted: Vec<AgentPubKey> = Vec::new();
    let mut turned_away: Vec<ActionHash> = Vec::new();
    let mut listed: std::collections::BTreeMap<AgentPubKey, usize> = Default::default();
    found.retain(|(hash, author, _)| {
        let n = listed.entry(author.clone()).or_default();
        if *n >= MAX_LISTED_PER_AGENT {
            turned_away.push(hash.clone());
            return false;
        }
        *n += 1;
        if !newcomer(author) || admitted.contains(author) {
            return true;
        }
        if room == 0 {
            turned_away.push(hash.clone());
            return false;
        }
        room -= 1;
        admitted.push(author.clone());
        true
    });
    // A ballot voting on a submission this conductor cannot read yet is left out; one
    // voting on a newcomer turned away above stays (validation allows that).
    ballots.retain(|(_, _, b)| {
        b.votes.iter().all(|v| {
            found
                .binary_search_by(|(h, _, _)| h.cmp(&v.submission))
                .is_ok()
                || turned_away.contains(&v.submission)
        })
    });
    Ok(found
        .into_iter()
        .map(|(hash, author, submission)| {
            let votes: Vec<(ActionHash, AgentPubKey, CommitteeVote)> = ballots
                .iter()
                .filter_map(|(h, member, b)| {
                    b.vote_on(&hash)
                        .map(|v| (h.clone(), member.clone(), v.clone()))
                })
                .collect();
            SubmissionEvidence {
                hash,
                author,
                submission,
                votes,
            }
        })
        .collect())
}

/// The committee's ballots in the round based on `base`: (ballot, member, ballot), the
/// first by hash of each member, members' order.
fn round_ballots(
    task: &ActionHash,
    round: u32,
    base: &ActionHash,
    committee: &[AgentPubKey],
) -> ExternResult<Vec<(ActionHash, AgentPubKey, CommitteeBallot)>> {
    let mut targets: Vec<ActionHash> = get_links(
        LinkQuery::try_new(base.clone(), LinkTypes::RoundToBallots)?,
        GetStrategy::Network,
    )?
    .into_iter()
    .filter_map(|l| l.target.into_action_hash())
    .collect();
    targets.sort();
    targets.dedup();
    let mut out: Vec<(ActionHash, AgentPubKey, CommitteeBallot)> = Vec::new();
    for h in targets {
        let Some(r) = get(h.clone(), GetOptions::default())? else {
            continue;
        };
        let member = r.action().author().clone();
        if !committee.contains(&member) || out.iter().any(|(_, m, _)| m == &member) {
            continue;
        }
        if let Ok(b) = CommitteeBallot::try_from(r) {
            if &b.task == task && b.round == round && &b.base == base {
                out.push((h, member, b));
            }
        }
    }
    Ok(out)
}

/// A round's state: submissions with proofs and votes, committee, quorum and aggregate.
#[hdk_extern]
pub fn get_round(r: RoundRef) -> ExternResult<RoundState> {
    let task: Task = get_task_info(&r.task)?.task;
    let Some(base) = round_base(&r.task, r.round)? else {
        return Ok(RoundState {
            task: r.task,
            round: r.round,
            base: None,
            opened_at: None,
            submissions: Vec::new(),
            committee: Vec::new(),
            quorum: task.quorum,
            quorum_met: false,
            aggregate: None,
        });
    };
    let ctx = round_context(&r.task, r.round, &base)?.map_err(fail)?;
    let evidence = round_evidence(&ctx)?;
    let submissions: Vec<SubmissionInfo> = evidence
        .into_iter()
        .map(|e| SubmissionInfo {
            hash: e.hash,
            author: e.author,
            samples: e.submission.samples,
            update_bytes: e.submission.update.len() as u32,
            proof: e.submission.proof,
            votes: e.votes,
        })
        .collect();
    Ok(RoundState {
        quorum_met: submissions.len() >= task.quorum as usize,
        aggregate: canonical_aggregate(&r.task, r.round)?,
        task: r.task,
        round: r.round,
        base: Some(base),
        opened_at: Some(ctx.opened_at),
        submissions,
        committee: ctx.committee,
        quorum: task.quorum,
    })
}

/// A round's ranked committee (empty for round 0 and for rounds not open yet).
#[hdk_extern]
pub fn get_committee(r: RoundRef) -> ExternResult<Vec<AgentPubKey>> {
    let Some(base) = round_base(&r.task, r.round)? else {
        return Ok(Vec::new());
    };
    Ok(round_context(&r.task, r.round, &base)?
        .map_err(fail)?
        .committee)
}

/// How far the round based on `base` has come, counted from the base's links alone:
/// distinct submissions, ballots and aggregates linked to it (validated links, whose
/// targets [`get_round`] still checks).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundProgress {
    /// Submissions linked to the base.
    pub submissions: u32,
    /// Ballots linked to the base.
    pub ballots: u32,
    /// Aggregates closing the round.
    pub aggregates: u32,
}

/// The round's [`RoundProgress`]: three link reads (local on a conductor that holds the
/// base, as every full-arc one does) and no records, cheap enough to poll: a client
/// waiting for a round polls this and reads [`get_round`] once the counts are there.
#[hdk_extern]
pub fn round_progress(base: ActionHash) -> ExternResult<RoundProgress> {
    let count = |link_type: LinkTypes| -> ExternResult<u32> {
        let mut targets: Vec<AnyLinkableHash> = get_links(
            LinkQuery::try_new(base.clone(), link_type)?,
            GetStrategy::Network,
        )?
        .into_iter()
        .map(|l| l.target)
        .collect();
        targets.sort();
        targets.dedup();
        Ok(targets.len() as u32)
    };
    Ok(RoundProgress {
        submissions: count(LinkTypes::RoundToSubmissions)?,
        ballots: count(LinkTypes::RoundToBallots)?,
        aggregates: count(LinkTypes::RoundToAggregate)?,
    })
}
