//! The outcome of a round, recomputed by every validator.

use fl_core::{carry_over, decide_round, Reputation, SubmissionInput, Verdict};
use hdi::prelude::*;

use crate::ballot::{CommitteeBallot, CommitteeVote};
use crate::chain::{earlier_entry, round_context, typed_record, RoundContext};
use crate::gradient::GradientSubmission;
use crate::schedule::ms_label;
use crate::task::decode_model;
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
/// The next round's committee is drawn from this table, seeded by the task and the round
/// (`chain::committee_seed`).
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
    /// The round's deadline under the task's schedule: the next round opens at the earlier
    /// of this aggregate's date and this ([`crate::schedule`]).
    pub deadline: Timestamp,
}

impl RoundAggregate {
    /// Whether the aggregate closed its round without a quorum (a carry-over: nothing
    /// aggregated, the model unchanged).
    pub fn is_carry_over(&self) -> bool {
        self.outcomes
            .iter()
            .all(|o| o.verdict == Verdict::Excluded(fl_core::Exclusion::NoQuorum))
    }
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

/// Computes the aggregate of the round of `ctx` from its evidence: `fl_core::decide_round`
/// (trust measured against the whole committee's reputation), or `fl_core::carry_over`
/// when fewer than the quorum of distinct agents submitted; the deadline comes from the
/// schedule. The coordinator commits exactly this and validation recomputes it, so the two
/// can never disagree on honest input.
pub fn compute_aggregate(
    ctx: &RoundContext,
    mut evidence: Vec<SubmissionEvidence>,
) -> Result<RoundAggregate, String> {
    let (task, previous, committee) = (&ctx.task, ctx.previous.as_ref(), &ctx.committee);
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
    let result = if distinct_submitters(&evidence) < task.quorum as usize {
        carry_over(&task.round, base_model.as_slice(), &table, &inputs)
    } else {
        decide_round(
            &task.round,
            base_model.as_slice(),
            &table,
            committee,
            &inputs,
        )
    }
    .map_err(|e| e.to_string())?;
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
            .map(|(agent, reputation)| ReputationEntry { agent, reputation })
            .collect(),
        deadline: ctx.deadline(),
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
    if let Err(e) = check_outcomes(a) {
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
    let voters: Vec<&AgentPubKey> = ballots.iter().map(|(_, m, _)| m).collect();
    if let Err(e) = check_ballot_majority(&ctx, &voters, action.timestamp) {
        return Ok(Err(e));
    }
    if let Err(e) = check_quorum(&ctx, &evidence, action.timestamp) {
        return Ok(Err(e));
    }
    let expected = match compute_aggregate(&ctx, evidence) {
        Ok(x) => x,
        Err(e) => return Ok(Err(format!("round aggregate: cannot recompute: {e}"))),
    };
    Ok(check_recomputation(a, &expected))
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

/// Until the round's ballot window closes, the cited ballots must come from committee
/// members holding more than half of the committee's reputation (in the base aggregate's
/// table): an aggregator cannot close a round early on its allies' ballots alone, or on
/// none, and so silence the rest of the committee. An aggregate dated after the window may
/// cite whatever ballots exist (members may be away). A round without a committee needs
/// none. Pure.
pub fn check_ballot_majority(
    ctx: &RoundContext,
    voters: &[&AgentPubKey],
    at: Timestamp,
) -> Result<(), String> {
    let closes = ctx.task.schedule.ballots_close(ctx.opened_at);
    if ctx.committee.is_empty() || at > closes {
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
    if 2 * voted <= total {
        return Err(format!(
            "round aggregate: the cited ballots come from members holding {} of the committee's reputation of {}; until the ballot window closes at {} an aggregate must cite ballots from members holding more than half",
            Reputation(voted.min(u64::from(u32::MAX)) as u32),
            Reputation(total.min(u64::from(u32::MAX)) as u32),
            ms_label(closes)
        ));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::Task;
    use fl_core::aggregate::Rule;
    use fl_core::{Encoding, RoundParams, Tensor};

    fn evidence(author: u8, hash: u8) -> SubmissionEvidence {
        let h = |b: u8| ActionHash::from_raw_36(vec![b; 36]);
        SubmissionEvidence {
            hash: h(hash),
            author: AgentPubKey::from_raw_36(vec![author; 36]),
            submission: crate::gradient::tests::submission(vec![0.1; 2]),
            votes: Vec::new(),
        }
    }

    #[test]
    fn before_the_ballot_window_closes_cited_ballots_need_a_majority_of_reputation() {
        let hash = ActionHash::from_raw_36(vec![0; 36]);
        let key = |i: u8| AgentPubKey::from_raw_36(vec![i; 36]);
        let members = vec![key(3), key(1), key(2)];
        let table = vec![(1, 900_000), (2, 350_000), (3, 450_000)]
            .into_iter()
            .map(|(i, r)| ReputationEntry {
                agent: key(i),
                reputation: Reputation(r),
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
                layout: String::new(),
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
            }),
            committee: members,
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
        // After the ballot window, whatever ballots exist will do.
        let late =
            Timestamp::from_micros(ctx.task.schedule.ballots_close(ctx.opened_at).as_micros() + 1);
        assert_eq!(check_ballot_majority(&ctx, &[], late), Ok(()));
    }

    #[test]
    fn forks_of_one_key_do_not_fill_a_quorum() {
        let hash = ActionHash::from_raw_36(vec![0; 36]);
        let task = Task {
            name: "t".into(),
            description: String::new(),
            model_len: 2,
            layout: String::new(),
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
        let carried = compute_aggregate(&ctx, forked).unwrap();
        assert_eq!(carried.model, ctx.task.initial_model);
        assert!(carried
            .outcomes
            .iter()
            .all(|o| o.verdict == Verdict::Excluded(fl_core::Exclusion::NoQuorum)));
    }
}
