//! The outcome of a round, recomputed by every validator.

use fl_core::{carry_over, decide_round, Reputation, SubmissionInput, Verdict};
use hdi::prelude::*;

use crate::committee::{round_context, RoundContext};
use crate::entries::{
    CommitteeBallot, CommitteeVote, OutcomeRecord, ReputationEntry, RoundAggregate, UnitEntryTypes,
    UpdateSubmission, MAX_LISTED_PER_AGENT,
};
use crate::lookup::{earlier_entry, typed_record, Check};
use crate::rejection::Code;
use crate::schedule::ms_label;
use crate::task::decode_model;

/// One submission with the entries that bear on it.
#[derive(Debug, Clone)]
pub struct SubmissionEvidence {
    /// The submission's action hash.
    pub hash: ActionHash,
    /// Its author.
    pub author: AgentPubKey,
    /// The submission, its PoGQ proof inside.
    pub submission: UpdateSubmission,
    /// Committee votes on it: (the member's ballot, member, its vote on this submission).
    pub votes: Vec<(ActionHash, AgentPubKey, CommitteeVote)>,
}

/// The global model one round before the base of `ctx`'s round, encoded, when the task
/// gives reputation only to aligned updates (`fl_core::RoundParams::aligned_credit`): the
/// initial model for round 1, the model of the base's own base from round 2 on. `None`
/// in round 0, for tasks without the rule, and for `int8` tasks: a round moves such a
/// model by less than its quantisation error, so the step between two decoded models
/// would be mostly that error, and honest work would look unrelated to it.
pub fn earlier_model(ctx: &RoundContext) -> Check<Option<Vec<u8>>> {
    let Some(previous) = ctx.previous.as_ref() else {
        return Ok(Ok(None));
    };
    if !ctx.task.round.aligned_credit || ctx.task.encoding != fl_core::Encoding::F32 {
        return Ok(Ok(None));
    }
    if previous.round == 0 {
        return Ok(Ok(Some(ctx.task.initial_model.clone())));
    }
    Ok(
        typed_record::<RoundAggregate>(&previous.base, "RoundAggregate")?
            .map(|(_, earlier)| Some(earlier.model)),
    )
}

/// Computes the aggregate of the round of `ctx` from its evidence: `fl_core::decide_round`
/// (trust measured against the whole committee's reputation), or `fl_core::carry_over`
/// when fewer than the quorum of distinct agents submitted; the deadline comes from the
/// schedule. `earlier` is [`earlier_model`]. The coordinator commits exactly this and
/// validation recomputes it, so the two can never disagree on honest input.
pub fn compute_aggregate(
    ctx: &RoundContext,
    earlier: Option<&[u8]>,
    mut evidence: Vec<SubmissionEvidence>,
) -> Result<RoundAggregate, String> {
    let (task, previous, committee) = (&ctx.task, ctx.previous.as_ref(), &ctx.committee);
    evidence.sort_by(|a, b| a.hash.cmp(&b.hash));
    let base_bytes = previous.map_or(&task.initial_model, |p| &p.model);
    let base_model = decode_model(task, base_bytes).map_err(|e| format!("base model: {e}"))?;
    let earlier_model = earlier
        .map(|bytes| decode_model(task, bytes))
        .transpose()
        .map_err(|e| format!("earlier model: {e}"))?;
    let updates = evidence
        .iter()
        .map(|e| decode_model(task, &e.submission.update).map(|t| t.into_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("update: {e}"))?;
    let rows: &[ReputationEntry] = previous.map_or(&[], |p| &p.reputation);
    let table: Vec<(AgentPubKey, Reputation)> = rows
        .iter()
        .map(|e| (e.agent.clone(), e.reputation))
        .collect();
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
    let carried = distinct_submitters(&evidence) < task.quorum as usize;
    let mut result = if carried {
        carry_over(&task.round, base_model.as_slice(), &table, &inputs)
    } else {
        decide_round(
            &task.round,
            base_model.as_slice(),
            earlier_model.as_ref().map(|m| m.as_slice()),
            &table,
            committee,
            &inputs,
        )
    }
    .map_err(|e| e.to_string())?;
    let voters: Vec<&AgentPubKey> = evidence
        .iter()
        .flat_map(|e| e.votes.iter().map(|(_, m, _)| m))
        .collect();
    let endorsed = endorsement(ctx, &voters).is_ok();
    // Absence counts only where the committee's majority took part: an aggregator that
    // silences the committee (from the fallback slot) cannot make anyone absent.
    let missed = if carried || !endorsed {
        rows.iter().map(|e| e.missed).collect()
    } else {
        let previous_missed: Vec<(AgentPubKey, u32)> =
            rows.iter().map(|e| (e.agent.clone(), e.missed)).collect();
        let mut present: Vec<AgentPubKey> = evidence
            .iter()
            .zip(&result.outcomes)
            .filter(|(_, o)| o.verdict != Verdict::Excluded(fl_core::Exclusion::TableFull))
            .map(|(e, _)| e.author.clone())
            .chain(
                evidence
                    .iter()
                    .flat_map(|e| e.votes.iter().map(|(_, m, _)| m.clone())),
            )
            .collect();
        present.sort();
        present.dedup();
        fl_core::age_for_absence(
            &task.round.reputation,
            &mut result.reputation,
            &previous_missed,
            &present,
        )
    };
    let model = fl_core::Tensor::new(result.model)
        .and_then(|t| t.encode(task.encoding))
        .map_err(|e| format!("new model: {e}"))?;
    Ok(RoundAggregate {
        task: ctx.task_hash.clone(),
        round: ctx.round,
        base: ctx.base.clone(),
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
            .zip(missed)
            .map(|((agent, reputation), missed)| {
                // Rows the base listed first take its entry hash; new rows wait for the
                // next aggregate to be anchored.
                let anchor = match rows.binary_search_by(|e| e.agent.cmp(&agent)) {
                    Ok(i) if !rows[i].anchor.is_empty() => rows[i].anchor.clone(),
                    Ok(_) => ctx
                        .base_entry
                        .as_ref()
                        .map_or_else(Vec::new, |h| h.get_raw_32().to_vec()),
                    Err(_) => Vec::new(),
                };
                ReputationEntry {
                    agent,
                    reputation,
                    missed,
                    anchor,
                }
            })
            .collect(),
        deadline: ctx.deadline(),
        endorsed,
    })
}

/// Who may publish the aggregate, and from when ([`crate::schedule`]): committee rank `k`
/// from its slot, `k` slots after the round opened (the task's author holds rank 0 when
/// the committee is empty: in round 0, or when nobody holds the committee threshold); any
/// other agent once both windows have closed and every rank has had its slot, so that a
/// round closes even when its whole committee, or the task's author, is gone. Pure.
pub fn check_aggregator(
    ctx: &RoundContext,
    author: &AgentPubKey,
    at: Timestamp,
) -> Result<(), String> {
    let schedule = &ctx.task.schedule;
    let (allowed, who) = match ctx.aggregation_rank(author) {
        Some(rank) if ctx.committee.is_empty() => (
            schedule.rank_opens(ctx.opened_at, rank),
            "the task's author".to_string(),
        ),
        Some(rank) => (
            schedule.rank_opens(ctx.opened_at, rank),
            format!("committee rank {rank}"),
        ),
        None => (
            schedule.fallback_opens(ctx.opened_at, ctx.committee.len()),
            if ctx.committee.is_empty() {
                format!("{author}, not the task's author,")
            } else {
                format!("{author}, who is not on the committee,")
            },
        ),
    };
    if at < allowed {
        return Err(format!(
            "{who} may aggregate only from {} (round {}, which opened at {})",
            ms_label(allowed),
            ctx.round,
            ms_label(ctx.opened_at)
        ));
    }
    Ok(())
}

/// An aggregate must be published by an entitled author in its slot, cite submissions of
/// the round from a quorum of distinct agents (or close the round as a carry-over from the
/// fallback slot on) with every vote of every ballot it cites, and equal the recomputation
/// of verdicts, model, reputation and deadline from those entries.
pub fn validate_create_aggregate(
    a: &RoundAggregate,
    action: &Create,
) -> ExternResult<Result<(), String>> {
    let ctx = match round_context(&a.task, a.round, &a.base)? {
        Ok(c) => c,
        Err(e) => return Ok(Err(Code::Base.reject(format!("round aggregate: {e}")))),
    };
    if let Err(e) = check_aggregator(&ctx, &action.author, action.timestamp) {
        return Ok(Err(Code::Aggregator.reject(format!("round aggregate: {e}"))));
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
        return Ok(Err(Code::Duplicate.reject(format!(
            "round aggregate: the author already published an aggregate of round {} ({first})",
            a.round
        ))));
    }
    if let Err(e) = check_outcomes(a) {
        return Ok(Err(Code::Malformed.reject(e)));
    }
    let ballots = match cited_ballots(&ctx, a)? {
        Ok(b) => b,
        Err(e) => {
            return Ok(Err(
                Code::Recomputation.reject(format!("round aggregate: {e}"))
            ))
        }
    };
    let mut evidence = Vec::with_capacity(a.outcomes.len());
    for o in &a.outcomes {
        match gather(a, o, &ballots)? {
            Ok(e) => evidence.push(e),
            Err(e) => {
                return Ok(Err(
                    Code::Recomputation.reject(format!("round aggregate: {e}"))
                ))
            }
        }
    }
    let unlisted = match check_ballots_counted(a, &ballots) {
        Ok(u) => u,
        Err(e) => {
            return Ok(Err(
                Code::Recomputation.reject(format!("round aggregate: {e}"))
            ))
        }
    };
    let mut unlisted_authors = Vec::with_capacity(unlisted.len());
    for h in unlisted {
        let author = match typed_record::<UpdateSubmission>(&h, "UpdateSubmission")? {
            Ok((record, _)) => record.action().author().clone(),
            Err(e) => {
                return Ok(Err(
                    Code::Recomputation.reject(format!("round aggregate: {e}"))
                ))
            }
        };
        unlisted_authors.push((h, author));
    }
    if let Err(e) = check_participants(&ctx, &evidence, &unlisted_authors) {
        return Ok(Err(Code::Recomputation.reject(e)));
    }
    let voters: Vec<&AgentPubKey> = ballots.iter().map(|(_, m, _)| m).collect();
    if let Err(e) = check_ballot_majority(&ctx, &voters, action.timestamp) {
        return Ok(Err(Code::Quorum.reject(e)));
    }
    if let Err(e) = check_quorum(&ctx, &evidence, action.timestamp) {
        return Ok(Err(Code::Quorum.reject(e)));
    }
    let earlier = match earlier_model(&ctx)? {
        Ok(e) => e,
        Err(e) => return Ok(Err(Code::Base.reject(format!("round aggregate: {e}")))),
    };
    let expected = match compute_aggregate(&ctx, earlier.as_deref(), evidence) {
        Ok(x) => x,
        Err(e) => {
            return Ok(Err(
                Code::Recomputation.reject(format!("round aggregate: cannot recompute: {e}"))
            ))
        }
    };
    Ok(check_recomputation(a, &expected).map_err(|e| Code::Recomputation.reject(e)))
}

/// What an aggregate may list and leave out, so that it stays within
/// [`max_aggregate_bytes`](crate::entries::max_aggregate_bytes): submissions by at most the task's participant bound of
/// agents, at most [`MAX_LISTED_PER_AGENT`] per agent. `evidence` is ordered by submission
/// hash; `unlisted` are the submissions a cited ballot votes on that the aggregate leaves
/// out, with their authors. Every such submission must be listed, except a third (or
/// later) submission of an agent listed twice, and a newcomer's (an agent not in the base
/// table) once the listed newcomers fill the table's free rows: newcomers take the free
/// rows in the order of their first submission's hash, so the one left out must come
/// after every listed one, and the aggregator has no choice of whom to admit. Pure.
pub fn check_participants(
    ctx: &RoundContext,
    evidence: &[SubmissionEvidence],
    unlisted: &[(ActionHash, AgentPubKey)],
) -> Result<(), String> {
    let bound = ctx.task.round.max_participants as usize;
    let table: &[ReputationEntry] = ctx.previous.as_ref().map_or(&[], |p| &p.reputation);
    let newcomer = |k: &AgentPubKey| table.binary_search_by(|e| e.agent.cmp(k)).is_err();
    // Each author: submissions listed, and its first (evidence is ordered by hash).
    let mut authors: std::collections::BTreeMap<&AgentPubKey, (usize, &ActionHash)> =
        std::collections::BTreeMap::new();
    for e in evidence {
        authors.entry(&e.author).or_insert((0, &e.hash)).0 += 1;
    }
    if let Some((k, (n, _))) = authors.iter().find(|(_, (n, _))| *n > MAX_LISTED_PER_AGENT) {
        return Err(format!(
            "round aggregate: lists {n} submissions by {k}; at most {MAX_LISTED_PER_AGENT} (two show a fork)"
        ));
    }
    if authors.len() > bound {
        return Err(format!(
            "round aggregate: lists submissions by {} agents, more than the task's participant bound of {bound}",
            authors.len()
        ));
    }
    let room = bound.saturating_sub(table.len());
    let newcomers: Vec<&ActionHash> = authors
        .iter()
        .filter(|(k, _)| newcomer(k))
        .map(|(_, (_, first))| *first)
        .collect();
    for (h, author) in unlisted {
        let listed = authors.get(author).map_or(0, |(n, _)| *n);
        let third_fork = listed >= MAX_LISTED_PER_AGENT;
        let turned_away = newcomer(author)
            && listed == 0
            && newcomers.len() >= room
            && newcomers.iter().all(|first| *first < h);
        if !(third_fork || turned_away) {
            return Err(format!(
                "round aggregate: a cited ballot votes on submission {h}, which the aggregate leaves out: every submission a cited ballot votes on must be included (except a third by one agent, and newcomers after the first {room} by hash)"
            ));
        }
    }
    Ok(())
}

/// The aggregate's outcomes must be ordered by submission hash, each once. Pure.
pub fn check_outcomes(a: &RoundAggregate) -> Result<(), String> {
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

/// Whether `voters` (the members whose ballots an aggregate cites) hold more than half of
/// the committee's reputation in the base aggregate's table: `Ok` when they do, or when the
/// round has no committee; else `Err((voted, total))`. Pure.
pub fn endorsement(ctx: &RoundContext, voters: &[&AgentPubKey]) -> Result<(), (u64, u64)> {
    if ctx.committee.is_empty() {
        return Ok(());
    }
    let table = ctx.previous.as_ref().map_or(&[][..], |p| &p.reputation[..]);
    let weight = |k: &AgentPubKey| {
        table
            .binary_search_by(|e| e.agent.cmp(k))
            .map_or(0, |i| u64::from(table[i].reputation.0))
    };
    let total: u64 = ctx.committee.iter().map(weight).sum();
    let voted: u64 = ctx
        .committee
        .iter()
        .filter(|m| voters.contains(m))
        .map(weight)
        .sum();
    if 2 * voted > total {
        Ok(())
    } else {
        Err((voted, total))
    }
}

/// Until the fallback slot opens, the cited ballots must come from committee members
/// holding more than half of the committee's reputation ([`endorsement`]): no ranked
/// aggregator, whatever date it gives its aggregate, can close a round on its allies'
/// ballots alone, or on none, and so silence the rest of the committee. From the fallback
/// slot on (the committee's majority has not voted, or none of its members aggregated)
/// any agent may close the round on whatever ballots exist; such an aggregate is not
/// endorsed, counts no absences, and readers prefer any endorsed one. A round without a
/// committee needs none. Pure.
pub fn check_ballot_majority(
    ctx: &RoundContext,
    voters: &[&AgentPubKey],
    at: Timestamp,
) -> Result<(), String> {
    let fallback = ctx
        .task
        .schedule
        .fallback_opens(ctx.opened_at, ctx.committee.len());
    match endorsement(ctx, voters) {
        Ok(()) => Ok(()),
        Err(_) if at >= fallback => Ok(()),
        Err((voted, total)) => Err(format!(
            "round aggregate: the cited ballots come from members holding {} of the committee's reputation of {}; until the fallback slot opens at {} an aggregate must cite ballots from members holding more than half",
            Reputation(voted.min(u64::from(u32::MAX)) as u32),
            Reputation(total.min(u64::from(u32::MAX)) as u32),
            ms_label(fallback)
        )),
    }
}

/// How many distinct agents submitted the evidence: a key that submitted on several forks
/// of its chain counts once (its submissions are all excluded as equivocation), so forks
/// cannot fill a quorum.
pub fn distinct_submitters(evidence: &[SubmissionEvidence]) -> usize {
    let mut authors: Vec<&AgentPubKey> = evidence.iter().map(|e| &e.author).collect();
    authors.sort();
    authors.dedup();
    authors.len()
}

/// The cited submissions must come from at least the task's quorum of distinct agents
/// ([`distinct_submitters`]), unless the aggregate, dated `at`, closes the round as a
/// carry-over from the fallback slot on ([`crate::schedule`]): a round without quorum
/// closes after its schedule with the model unchanged. Pure.
pub fn check_quorum(
    ctx: &RoundContext,
    evidence: &[SubmissionEvidence],
    at: Timestamp,
) -> Result<(), String> {
    let n = distinct_submitters(evidence);
    let quorum = ctx.task.quorum as usize;
    let carry_over_from = ctx
        .task
        .schedule
        .fallback_opens(ctx.opened_at, ctx.committee.len());
    if n < quorum && at < carry_over_from {
        return Err(format!(
            "round aggregate: {n} distinct submitters, below the quorum of {quorum}; round {} may close without quorum (a carry-over) only from {}",
            ctx.round,
            ms_label(carry_over_from)
        ));
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

/// Every vote of a cited ballot on a listed submission must be cited in its outcome: an
/// aggregator may leave a ballot out, but not pick among its votes. Returns the
/// submissions cited ballots vote on that the aggregate does not list, which
/// [`check_participants`] allows only for newcomers beyond the table's free rows: an
/// aggregator may not leave out a submission the committee judged while keeping the
/// ballot that judged it.
fn check_ballots_counted(
    a: &RoundAggregate,
    ballots: &CitedBallots,
) -> Result<Vec<ActionHash>, String> {
    let mut unlisted = Vec::new();
    for (h, _, ballot) in ballots {
        for v in &ballot.votes {
            let Ok(i) = a
                .outcomes
                .binary_search_by(|o| o.submission.cmp(&v.submission))
            else {
                if !unlisted.contains(&v.submission) {
                    unlisted.push(v.submission.clone());
                }
                continue;
            };
            if !a.outcomes[i].votes.contains(h) {
                return Err(format!(
                    "ballot {h} votes on submission {} but that vote is not counted",
                    v.submission
                ));
            }
        }
    }
    Ok(unlisted)
}

fn gather(
    a: &RoundAggregate,
    o: &OutcomeRecord,
    ballots: &CitedBallots,
) -> ExternResult<Result<SubmissionEvidence, String>> {
    let (record, submission) =
        match typed_record::<UpdateSubmission>(&o.submission, "UpdateSubmission")? {
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
    if got.deadline != want.deadline {
        return Err(format!(
            "the deadline is {} ms, the schedule gives {} ms",
            got.deadline.as_millis(),
            want.deadline.as_millis()
        ));
    }
    if got.model != want.model {
        return Err("the model differs from the aggregation of the included updates".into());
    }
    if got.endorsed != want.endorsed {
        return Err(format!(
            "endorsed is {}, but the cited ballots give {}",
            got.endorsed, want.endorsed
        ));
    }
    if got.reputation != want.reputation {
        let diff = got
            .reputation
            .iter()
            .zip(&want.reputation)
            .find(|(g, w)| g != w)
            .map(|(g, w)| {
                format!(
                    "{} has {} after {} rounds missed (anchor {}), but the rule gives {} after {} (anchor {})",
                    g.agent,
                    g.reputation,
                    g.missed,
                    hex(&g.anchor),
                    w.reputation,
                    w.missed,
                    hex(&w.anchor)
                )
            })
            .unwrap_or_else(|| "the table lists different agents".into());
        return Err(format!("reputation: {diff}"));
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "none".into();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entries::max_aggregate_bytes;
    use crate::entries::*;
    use crate::task::check_capacity;
    use fl_core::aggregate::Rule;
    use fl_core::{Encoding, RoundParams, Tensor};

    fn evidence(author: u8, hash: u8) -> SubmissionEvidence {
        let h = |b: u8| ActionHash::from_raw_36(vec![b; 36]);
        SubmissionEvidence {
            hash: h(hash),
            author: AgentPubKey::from_raw_36(vec![author; 36]),
            submission: crate::submission::tests::submission(vec![0.1; 2]),
            votes: Vec::new(),
        }
    }

    #[test]
    fn before_the_fallback_slot_cited_ballots_need_a_majority_of_reputation() {
        let hash = ActionHash::from_raw_36(vec![0; 36]);
        let key = |i: u8| AgentPubKey::from_raw_36(vec![i; 36]);
        let members = vec![key(3), key(1), key(2)];
        let table = vec![(1, 900_000), (2, 350_000), (3, 450_000)]
            .into_iter()
            .map(|(i, r)| ReputationEntry {
                agent: key(i),
                reputation: Reputation(r),
                missed: 0,
                anchor: Vec::new(),
            })
            .collect();
        let ctx = RoundContext {
            task_hash: hash.clone(),
            round: 1,
            base: hash.clone(),
            task: Task {
                name: "t".into(),
                description: String::new(),
                model_len: 2,
                spec: crate::task::fixture_spec(2),
                encoding: Encoding::F32,
                round: RoundParams::new(Rule::Median, 0),
                committee_size: 3,
                quorum: 1,
                schedule: Default::default(),
                initial_model: Tensor::new(vec![0.0; 2]).unwrap().canonical_bytes(),
                admission: Default::default(),
            },
            task_author: key(9),
            opened_at: Timestamp::from_micros(0),
            previous: Some(RoundAggregate {
                task: hash.clone(),
                round: 0,
                base: hash.clone(),
                outcomes: Vec::new(),
                model: Vec::new(),
                reputation: table,
                deadline: Timestamp::from_micros(0),
                endorsed: false,
            }),
            committee: members,
            base_entry: None,
        };
        let soon = Timestamp::from_micros(1_000);
        let (k1, k2, k3) = (key(1), key(2), key(3));
        // 0.9 of 1.7 is a majority, and so is 0.9 + 0.45; 0.35 + 0.45 = 0.8 is not, nor
        // is one member counted twice, nor nothing.
        assert_eq!(check_ballot_majority(&ctx, &[&k1], soon), Ok(()));
        assert_eq!(check_ballot_majority(&ctx, &[&k1, &k3], soon), Ok(()));
        let e = check_ballot_majority(&ctx, &[&k2, &k3], soon).unwrap_err();
        assert!(
            e.starts_with("round aggregate: the cited ballots come from members holding 0.8000 of the committee's reputation of 1.7000"),
            "{e}"
        );
        assert!(check_ballot_majority(&ctx, &[&k3, &k3], soon).is_err());
        assert!(check_ballot_majority(&ctx, &[], soon).is_err());
        // Not after the ballot window: a ranked aggregator cannot date its way out of the
        // rule. From the fallback slot on, whatever ballots exist will do.
        let schedule = &ctx.task.schedule;
        let after_ballots =
            Timestamp::from_micros(schedule.ballots_close(ctx.opened_at).as_micros() + 1);
        assert!(check_ballot_majority(&ctx, &[], after_ballots).is_err());
        let fallback = schedule.fallback_opens(ctx.opened_at, ctx.committee.len());
        assert_eq!(check_ballot_majority(&ctx, &[], fallback), Ok(()));
    }

    #[test]
    fn forks_of_one_key_do_not_fill_a_quorum() {
        let hash = ActionHash::from_raw_36(vec![0; 36]);
        let task = Task {
            name: "t".into(),
            description: String::new(),
            model_len: 2,
            spec: crate::task::fixture_spec(2),
            encoding: Encoding::F32,
            round: RoundParams::new(Rule::Krum, 1),
            committee_size: 3,
            quorum: 5,
            schedule: Default::default(),
            initial_model: Tensor::new(vec![0.0; 2]).unwrap().canonical_bytes(),
            admission: Default::default(),
        };
        let ctx = RoundContext {
            task_hash: hash.clone(),
            round: 0,
            base: hash.clone(),
            task,
            task_author: AgentPubKey::from_raw_36(vec![1; 36]),
            opened_at: Timestamp::from_micros(0),
            previous: None,
            committee: Vec::new(),
            base_entry: None,
        };
        // One attacker key on four forks plus one other agent: five submissions, two agents.
        let forked: Vec<_> = (1..=4)
            .map(|h| evidence(9, h))
            .chain([evidence(2, 5)])
            .collect();
        assert_eq!(distinct_submitters(&forked), 2);
        let soon = Timestamp::from_micros(1_000_000);
        assert!(check_quorum(&ctx, &forked, soon)
            .unwrap_err()
            .starts_with("round aggregate: 2 distinct submitters, below the quorum of 5"));
        let honest: Vec<_> = (1..=5).map(|i| evidence(i, i)).collect();
        assert_eq!(check_quorum(&ctx, &honest, soon), Ok(()));
        // After the schedule the round may close without quorum, as a carry-over that
        // aggregates nothing and keeps the model.
        let late = ctx.task.schedule.fallback_opens(ctx.opened_at, 0);
        assert_eq!(check_quorum(&ctx, &forked, late), Ok(()));
        let carried = compute_aggregate(&ctx, None, forked).unwrap();
        assert_eq!(carried.model, ctx.task.initial_model);
        assert!(carried
            .outcomes
            .iter()
            .all(|o| o.verdict == Verdict::Excluded(fl_core::Exclusion::NoQuorum)));
    }

    fn small_task(max_participants: u32, committee_size: u32, model_len: u32) -> Task {
        let mut round = RoundParams::new(Rule::Median, 0);
        round.max_participants = max_participants;
        Task {
            name: "t".into(),
            description: String::new(),
            model_len,
            spec: crate::task::fixture_spec(model_len),
            encoding: Encoding::F32,
            round,
            committee_size,
            quorum: 1,
            schedule: Default::default(),
            initial_model: Tensor::new(vec![0.0; model_len as usize])
                .unwrap()
                .canonical_bytes(),
            admission: Default::default(),
        }
    }

    #[test]
    fn the_largest_aggregate_a_task_allows_is_bounded_as_serialized() {
        // A real aggregate at the bound, every outcome citing every seat with the longest
        // verdict, never exceeds the estimate, and the estimate is tight.
        let task = small_task(300, 20, 1000);
        let hash =
            |i: u32| ActionHash::from_raw_36([i.to_be_bytes().to_vec(), vec![7; 32]].concat());
        let full = RoundAggregate {
            task: hash(0),
            round: 12,
            base: hash(1),
            outcomes: (0..600)
                .map(|i| OutcomeRecord {
                    submission: hash(i),
                    votes: (0..20).map(|j| hash(1000 + j)).collect(),
                    verdict: Verdict::Excluded(fl_core::Exclusion::BelowReputationFloor),
                })
                .collect(),
            model: task.initial_model.clone(),
            reputation: (0..300u32)
                .map(|i| ReputationEntry {
                    agent: AgentPubKey::from_raw_36(
                        [i.to_be_bytes().to_vec(), vec![3; 32]].concat(),
                    ),
                    reputation: Reputation(999_999),
                    missed: u32::MAX - i,
                    anchor: vec![9; 32],
                })
                .collect(),
            deadline: Timestamp::from_micros(1_765_000_000_000_000),
            endorsed: false,
        };
        let real = holochain_serialized_bytes::encode(&full).unwrap().len();
        let bound = max_aggregate_bytes(&task);
        assert!(real <= bound, "{real} > {bound}");
        assert!(bound - real < 600 * 8, "{real} vs {bound}");
        assert_eq!(check_capacity(&task), Ok(()));
    }

    #[test]
    fn a_participant_bound_that_cannot_fit_an_entry_is_refused_with_what_fits() {
        // The largest f32 model leaves about 40 KB for outcomes and rows.
        let mut task = small_task(1000, 100, crate::task::MAX_F32_PARAMS);
        let e = check_capacity(&task).unwrap_err();
        assert!(
            e.starts_with("task max_participants 1000 does not fit: an aggregate of that many participants, a committee of 100 and this model can take"),
            "{e}"
        );
        let fits: u32 = e
            .rsplit("at most ")
            .next()
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..20).contains(&fits), "{e}");
        task.round.max_participants = fits;
        assert_eq!(check_capacity(&task), Ok(()));
        task.round.max_participants = fits + 1;
        assert!(check_capacity(&task).is_err());
        // The default bound fits every model of a few hundred thousand parameters with the
        // default-sized committees the tools create.
        assert_eq!(check_capacity(&small_task(1000, 10, 100_000)), Ok(()));
    }

    #[test]
    fn a_full_table_turns_newcomers_away_and_only_they_may_be_left_out() {
        let key = |i: u8| AgentPubKey::from_raw_36(vec![i; 36]);
        let hash = ActionHash::from_raw_36(vec![0; 36]);
        let table: Vec<ReputationEntry> = [1u8, 2]
            .iter()
            .map(|&i| ReputationEntry {
                agent: key(i),
                reputation: Reputation(500_000),
                missed: 0,
                anchor: Vec::new(),
            })
            .collect();
        let ctx = |bound: u32| RoundContext {
            task_hash: hash.clone(),
            round: 1,
            base: hash.clone(),
            task: small_task(bound, 3, 2),
            task_author: key(9),
            opened_at: Timestamp::from_micros(0),
            previous: Some(RoundAggregate {
                task: hash.clone(),
                round: 0,
                base: hash.clone(),
                outcomes: Vec::new(),
                model: Vec::new(),
                reputation: table.clone(),
                deadline: Timestamp::from_micros(0),
                endorsed: false,
            }),
            committee: Vec::new(),
            base_entry: None,
        };
        // Submissions: members may always submit, newcomers only while there is room.
        assert_eq!(crate::submission::check_room(&ctx(2), &key(1)), Ok(()));
        assert_eq!(crate::submission::check_room(&ctx(3), &key(5)), Ok(()));
        let e = crate::submission::check_room(&ctx(2), &key(5)).unwrap_err();
        assert!(e.starts_with("update submission: the task is full: the reputation table after round 0 holds 2 agents"), "{e}");
        // Aggregates: one free row. Listing newcomer 5 fills it, so newcomer 6 may be left
        // out; member 2 may not, and neither may a newcomer while the row is free.
        let listed = vec![evidence(1, 10), evidence(5, 11)];
        let unlisted = |who: u8| vec![(ActionHash::from_raw_36(vec![20; 36]), key(who))];
        assert_eq!(check_participants(&ctx(3), &listed, &unlisted(6)), Ok(()));
        assert!(check_participants(&ctx(3), &listed, &unlisted(2)).is_err());
        let e = check_participants(&ctx(3), &listed[..1], &unlisted(6)).unwrap_err();
        assert!(e.contains("newcomers after the first 1 by hash"), "{e}");
        let e = check_participants(&ctx(1), &listed, &[]).unwrap_err();
        assert!(
            e.contains(
                "lists submissions by 2 agents, more than the task's participant bound of 1"
            ),
            "{e}"
        );
        // The aggregator has no choice of whom to admit: a newcomer whose submission sorts
        // before the listed newcomer's cannot be the one left out, and a listed newcomer's
        // other submission (a fork) cannot be left out either.
        let early = vec![(ActionHash::from_raw_36(vec![5; 36]), key(6))];
        assert!(check_participants(&ctx(3), &listed, &early).is_err());
        assert!(check_participants(&ctx(3), &listed, &unlisted(5)).is_err());
        // Forks: an agent listed twice shows the fork; its third submission adds nothing
        // and may be left out, and listing three is refused. Agents, not submissions,
        // count towards the bound.
        let forked = vec![evidence(1, 10), evidence(5, 11), evidence(5, 12)];
        assert_eq!(check_participants(&ctx(3), &forked, &unlisted(5)), Ok(()));
        let three = vec![evidence(5, 11), evidence(5, 12), evidence(5, 13)];
        let e = check_participants(&ctx(3), &three, &[]).unwrap_err();
        assert!(e.contains("lists 3 submissions by"), "{e}");
    }

    #[test]
    fn rows_are_anchored_by_the_aggregate_that_first_lists_them_and_age_when_absent() {
        let key = |i: u8| AgentPubKey::from_raw_36(vec![i; 36]);
        let hash = ActionHash::from_raw_36(vec![0; 36]);
        let row = |i: u8, anchor: Vec<u8>, missed: u32| ReputationEntry {
            agent: key(i),
            reputation: Reputation(900_000),
            missed,
            anchor,
        };
        // Agent 1 was listed first by the base aggregate (no anchor yet), agent 2 earlier
        // (anchored), agent 3 has been away for the whole grace period.
        let base_entry = EntryHash::from_raw_36(vec![4; 36]);
        let ctx = RoundContext {
            task_hash: hash.clone(),
            round: 2,
            base: hash.clone(),
            task: small_task(10, 3, 2),
            task_author: key(9),
            opened_at: Timestamp::from_micros(0),
            previous: Some(RoundAggregate {
                task: hash.clone(),
                round: 1,
                base: hash.clone(),
                outcomes: Vec::new(),
                model: Tensor::new(vec![0.0; 2]).unwrap().canonical_bytes(),
                reputation: vec![
                    row(1, Vec::new(), 0),
                    row(2, vec![7; 32], 0),
                    row(3, vec![7; 32], fl_core::reputation::ABSENCE_GRACE),
                ],
                deadline: Timestamp::from_micros(0),
                endorsed: false,
            }),
            committee: Vec::new(),
            base_entry: Some(base_entry.clone()),
        };
        let a = compute_aggregate(&ctx, None, vec![evidence(1, 10), evidence(5, 11)]).unwrap();
        let rows: Vec<(u8, Vec<u8>, u32, u32)> = a
            .reputation
            .iter()
            .map(|e| {
                (
                    e.agent.get_raw_39()[3],
                    e.anchor.clone(),
                    e.missed,
                    e.reputation.0,
                )
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                (1, base_entry.get_raw_32().to_vec(), 0, 900_000),
                (2, vec![7; 32], 1, 900_000),
                (
                    3,
                    vec![7; 32],
                    fl_core::reputation::ABSENCE_GRACE + 1,
                    810_000
                ),
                (5, Vec::new(), 0, 500_000),
            ]
        );
        // A carry-over moves nobody's count and anchors what the base listed first.
        let mut quiet = ctx.clone();
        quiet.task.quorum = 3;
        let c = compute_aggregate(&quiet, None, vec![evidence(1, 10)]).unwrap();
        let missed: Vec<u32> = c.reputation.iter().map(|e| e.missed).collect();
        assert_eq!(missed, vec![0, 0, fl_core::reputation::ABSENCE_GRACE]);
        assert_eq!(c.reputation[0].anchor, base_entry.get_raw_32().to_vec());
    }
}
