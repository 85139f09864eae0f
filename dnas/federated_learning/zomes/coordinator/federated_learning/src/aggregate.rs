//! Closing rounds, and what they leave behind: global models, reputation, round summaries.

use federated_learning_integrity::aggregate::{
    check_aggregator, check_ballot_majority, check_quorum, compute_aggregate, distinct_submitters,
    earlier_model,
};
use federated_learning_integrity::committee::round_context;
use federated_learning_integrity::rejection::Code;
use federated_learning_integrity::{EntryTypes, LinkTypes, ReputationEntry, RoundAggregate};
use fl_core::{Exclusion, Reputation, Verdict};
use hdk::prelude::*;

use crate::fail;
use crate::round::{canonical_aggregate, ranked_canonical, round_base, round_evidence, RoundRef};
use crate::task::get_task_info;

/// Aggregates a round from the submissions (with their proofs) and votes linked to it and
/// publishes the result. The caller's aggregation slot must have begun (its committee rank's,
/// the task author's when the committee is empty, else the fallback's: see
/// `federated_learning_integrity::schedule`) and the quorum must be met, or the fallback
/// slot have begun, in which case the round closes as a carry-over (model unchanged).
#[hdk_extern]
pub fn aggregate_round(r: RoundRef) -> ExternResult<ActionHash> {
    let (aggregate, base) = prepare(&r, true)?;
    let hash = create_entry(EntryTypes::RoundAggregate(aggregate))?;
    create_link(
        r.task.clone(),
        hash.clone(),
        LinkTypes::TaskToAggregates,
        LinkTag::new(r.round.to_be_bytes().to_vec()),
    )?;
    create_link(base.clone(), hash.clone(), LinkTypes::RoundToAggregate, ())?;
    Ok(hash)
}

/// The aggregate the round would get now, without publishing it (anyone may ask).
#[hdk_extern]
pub fn preview_aggregate(r: RoundRef) -> ExternResult<RoundAggregate> {
    Ok(prepare(&r, false)?.0)
}

fn prepare(r: &RoundRef, publishing: bool) -> ExternResult<(RoundAggregate, ActionHash)> {
    let base = round_base(&r.task, r.round)?
        .ok_or_else(|| fail(Code::NotYet.reject(format!("round {} is not open", r.round))))?;
    let ctx = round_context(&r.task, r.round, &base)?.map_err(|e| fail(Code::Base.reject(e)))?;
    let me = agent_info()?.agent_initial_pubkey;
    let mine = ctx.aggregation_rank(&me).unwrap_or(usize::MAX);
    // A better-ranked member may still close a round that a worse-ranked author (a
    // fallback aggregator, say) closed first, an aggregate that meets the quorum may
    // replace a carry-over, and an endorsed one may replace one that is not: readers then
    // follow the new one (`canonical_aggregate`).
    let existing = ranked_canonical(&r.task, r.round)?;
    let refuse = |hash: &ActionHash, a: &RoundAggregate| {
        let how = if a.is_carry_over() {
            "carried over"
        } else {
            "aggregated"
        };
        Err(fail(Code::Duplicate.reject(format!(
            "round {} is already {how} ({hash})",
            r.round
        ))))
    };
    if let Some((rank, hash, a)) = &existing {
        if !publishing || (!a.is_carry_over() && a.endorsed && *rank <= mine) {
            return refuse(hash, a);
        }
    }
    // Every refusal below passes with time: the caller's slot (or the fallback's) comes,
    // a round without quorum may close as a carry-over, ballots and submissions arrive.
    if publishing {
        check_aggregator(&ctx, &me, sys_time()?).map_err(|e| fail(Code::NotYet.reject(e)))?;
    }
    let evidence = round_evidence(&ctx)?;
    // Below the quorum the round waits, until the schedule lets it close as a carry-over;
    // and not while the links show a quorum of submitters whose entries have not reached
    // this conductor yet.
    check_quorum(&ctx, &evidence, sys_time()?).map_err(|e| fail(Code::NotYet.reject(e)))?;
    let voters: Vec<&AgentPubKey> = evidence
        .iter()
        .flat_map(|e| e.votes.iter().map(|(_, m, _)| m))
        .collect();
    check_ballot_majority(&ctx, &voters, sys_time()?).map_err(|e| fail(Code::NotYet.reject(e)))?;
    if distinct_submitters(&evidence) < ctx.task.quorum as usize {
        let linked = linked_submitters(&base)?;
        if linked >= ctx.task.quorum as usize {
            return Err(fail(Code::NotYet.reject(format!(
                "round {} has {linked} submitters linked but only {} readable here",
                r.round,
                distinct_submitters(&evidence)
            ))));
        }
    }
    let earlier = earlier_model(&ctx)?.map_err(fail)?;
    let aggregate = compute_aggregate(&ctx, earlier.as_deref(), evidence).map_err(fail)?;
    // A carry-over never replaces an aggregate that closed the round (nor another one),
    // and an aggregate that is not endorsed replaces only a carry-over or a worse-ranked one.
    if let Some((rank, hash, a)) = &existing {
        if aggregate.is_carry_over() || (!aggregate.endorsed && !a.is_carry_over() && *rank <= mine)
        {
            return refuse(hash, a);
        }
    }
    Ok((aggregate, base))
}

/// How many distinct agents linked a submission to the round's base.
fn linked_submitters(base: &ActionHash) -> ExternResult<usize> {
    let mut authors: Vec<AgentPubKey> = get_links(
        LinkQuery::try_new(base.clone(), LinkTypes::RoundToSubmissions)?,
        GetStrategy::Network,
    )?
    .into_iter()
    .map(|l| l.author)
    .collect();
    authors.sort();
    authors.dedup();
    Ok(authors.len())
}

/// One round aggregate by its action hash.
#[hdk_extern]
pub fn get_aggregate(hash: ActionHash) -> ExternResult<RoundAggregate> {
    let record = get(hash.clone(), GetOptions::default())?
        .ok_or_else(|| fail(format!("aggregate {hash} not found")))?;
    RoundAggregate::try_from(record).map_err(|_| fail(format!("{hash} is not a round aggregate")))
}

/// Names a global model: after `round`, or the latest when `None`.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct ModelRef {
    /// Task.
    pub task: ActionHash,
    /// Round whose aggregate produced the model; `None` for the latest.
    pub round: Option<u32>,
}

/// A global model.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct GlobalModel {
    /// The round that produced it; `None` for the task's initial model.
    pub round: Option<u32>,
    /// The aggregate it comes from.
    pub aggregate: Option<ActionHash>,
    /// The encoded model.
    #[serde(with = "serde_bytes")]
    pub model: Vec<u8>,
}

/// The latest closed round of a task, with its aggregate.
pub(crate) fn latest_aggregate(
    task: &ActionHash,
) -> ExternResult<Option<(u32, ActionHash, RoundAggregate)>> {
    let links = get_links(
        LinkQuery::try_new(task.clone(), LinkTypes::TaskToAggregates)?,
        GetStrategy::Network,
    )?;
    let mut rounds: Vec<u32> = links
        .iter()
        .filter_map(|l| l.tag.0.as_slice().try_into().ok().map(u32::from_be_bytes))
        .collect();
    rounds.sort_unstable();
    rounds.dedup();
    for round in rounds.into_iter().rev() {
        if let Some((h, a)) = canonical_aggregate(task, round)? {
            return Ok(Some((round, h, a)));
        }
    }
    Ok(None)
}

/// The global model after a round (the task's initial model before round 0 closes).
#[hdk_extern]
pub fn get_global_model(m: ModelRef) -> ExternResult<GlobalModel> {
    let found = match m.round {
        Some(r) => canonical_aggregate(&m.task, r)?.map(|(h, a)| (r, h, a)),
        None => latest_aggregate(&m.task)?,
    };
    match (found, m.round) {
        (Some((round, hash, agg)), _) => Ok(GlobalModel {
            round: Some(round),
            aggregate: Some(hash),
            model: agg.model,
        }),
        (None, Some(r)) => Err(fail(format!("round {r} has no aggregate yet"))),
        (None, None) => Ok(GlobalModel {
            round: None,
            aggregate: None,
            model: get_task_info(&m.task)?.task.initial_model,
        }),
    }
}

/// An agent of a task.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct AgentReputationRef {
    /// Task.
    pub task: ActionHash,
    /// Agent.
    pub agent: AgentPubKey,
}

/// An agent's reputation after the latest closed round (the initial value if it never
/// took part).
#[hdk_extern]
pub fn get_reputation(r: AgentReputationRef) -> ExternResult<Reputation> {
    let table = get_reputation_table(r.task.clone())?;
    match table.iter().find(|e| e.agent == r.agent) {
        Some(e) => Ok(e.reputation),
        None => Ok(get_task_info(&r.task)?.task.round.reputation.initial),
    }
}

/// Every agent's reputation after the latest closed round.
#[hdk_extern]
pub fn get_reputation_table(task: ActionHash) -> ExternResult<Vec<ReputationEntry>> {
    Ok(latest_aggregate(&task)?
        .map(|(_, _, a)| a.reputation)
        .unwrap_or_default())
}

/// A closed round at a glance.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct RoundSummary {
    /// Round.
    pub round: u32,
    /// Its aggregate.
    pub aggregate: ActionHash,
    /// Included submissions.
    pub included: u32,
    /// Excluded submissions with the reason.
    pub excluded: Vec<(ActionHash, Exclusion)>,
}

/// Every closed round of a task, in order (following the canonical aggregate of each).
#[hdk_extern]
pub fn list_rounds(task: ActionHash) -> ExternResult<Vec<RoundSummary>> {
    let mut out = Vec::new();
    let mut round = 0;
    while let Some((hash, agg)) = canonical_aggregate(&task, round)? {
        out.push(RoundSummary {
            round,
            aggregate: hash,
            included: agg
                .outcomes
                .iter()
                .filter(|o| o.verdict == Verdict::Included)
                .count() as u32,
            excluded: agg
                .outcomes
                .iter()
                .filter_map(|o| match o.verdict {
                    Verdict::Excluded(reason) => Some((o.submission.clone(), reason)),
                    Verdict::Included => None,
                })
                .collect(),
        });
        round += 1;
    }
    Ok(out)
}
