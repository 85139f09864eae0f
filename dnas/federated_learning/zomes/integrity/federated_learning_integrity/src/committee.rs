//! A round as validation sees it: its task, its base, when it opened, and the committee
//! drawn for it from the previous aggregate's reputation table.

use fl_core::{draw_committee, Reputation};
use hdi::prelude::*;

use crate::entries::{RoundAggregate, Task};
use crate::lookup::{typed_record, Check};
use crate::schedule::RoundSchedule;

/// Everything a round's entries are checked against: the task, the round's base, the
/// previous aggregate (none for round 0) and the round's ranked committee.
#[derive(Clone, Debug)]
pub struct RoundContext {
    /// The task's hash.
    pub task_hash: ActionHash,
    /// The round.
    pub round: u32,
    /// The round's base: the task for round 0, else the previous round's aggregate.
    pub base: ActionHash,
    /// The task.
    pub task: Task,
    /// Who created the task.
    pub task_author: AgentPubKey,
    /// When the round opened: the task's timestamp for round 0, else the earlier of the
    /// base aggregate's timestamp and its round's deadline ([`crate::schedule`]).
    pub opened_at: Timestamp,
    /// The previous round's aggregate, `None` in round 0.
    pub previous: Option<RoundAggregate>,
    /// The round's committee, best rank first (empty in round 0).
    pub committee: Vec<AgentPubKey>,
    /// The entry hash of the base aggregate (`None` in round 0): the anchor of the agents
    /// that aggregate listed first ([`committee_from`]).
    pub base_entry: Option<EntryHash>,
}

impl RoundContext {
    /// The aggregation slot `agent` holds by rank: its committee rank, or 0 for the task's
    /// author when the committee is empty; `None` for everyone else (the fallback).
    pub fn aggregation_rank(&self, agent: &AgentPubKey) -> Option<usize> {
        if self.committee.is_empty() {
            (agent == &self.task_author).then_some(0)
        } else {
            self.committee.iter().position(|m| m == agent)
        }
    }

    /// The round's deadline under the task's schedule.
    pub fn deadline(&self) -> Timestamp {
        self.task
            .schedule
            .deadline(self.opened_at, self.committee.len())
    }
}

/// Loads the context of `round` of `task`, whose base must be `base`: the task itself for
/// round 0, the aggregate of round `round - 1` of the same task otherwise.
pub fn round_context(task_hash: &ActionHash, round: u32, base: &ActionHash) -> Check<RoundContext> {
    let (task_record, task) = match typed_record::<Task>(task_hash, "Task")? {
        Ok(t) => t,
        Err(e) => return Ok(Err(e)),
    };
    if round == 0 {
        if base != task_hash {
            return Ok(Err(format!(
                "round 0 must name the task as its base model, not {base}"
            )));
        }
        return Ok(Ok(RoundContext {
            task_hash: task_hash.clone(),
            round,
            base: base.clone(),
            task,
            task_author: task_record.action().author().clone(),
            opened_at: task_record.action().timestamp(),
            previous: None,
            committee: Vec::new(),
            base_entry: None,
        }));
    }
    let (base_record, previous) = match typed_record::<RoundAggregate>(base, "RoundAggregate")? {
        Ok(b) => b,
        Err(e) => {
            return Ok(Err(format!(
                "round {round} is not open: its base must be the aggregate of round {}: {e}",
                round - 1
            )))
        }
    };
    if &previous.task != task_hash || previous.round + 1 != round {
        return Ok(Err(format!(
            "wrong base model: {base} is the aggregate of round {} of task {}, but round {round} of task {task_hash} needs the aggregate of round {}",
            previous.round,
            previous.task,
            round - 1
        )));
    }
    let Some(base_entry) = base_record.action().entry_hash().cloned() else {
        return Ok(Err(format!(
            "round {round} is not open: its base {base} has no entry"
        )));
    };
    let committee = committee_from(
        &task,
        &previous,
        &base_entry,
        committee_seed(task_hash, round),
    );
    let opened_at =
        RoundSchedule::next_opening(previous.deadline, base_record.action().timestamp());
    Ok(Ok(RoundContext {
        task_hash: task_hash.clone(),
        round,
        base: base.clone(),
        task,
        task_author: task_record.action().author().clone(),
        opened_at,
        previous: Some(previous),
        committee,
        base_entry: Some(base_entry),
    }))
}

/// The seed of round `round`'s committee draw: SHA-256 of a domain string, the task's hash
/// and the round. Fixed when the task is created, so no aggregator can vary the seed (it
/// was once the previous aggregate's entry hash, which changed with every choice of
/// evidence). The draw still reads the previous aggregate's reputation table, which an
/// aggregator with a choice of evidence can still vary (docs/PROTOCOL.md, section 6).
pub fn committee_seed(task: &ActionHash, round: u32) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"mycelix-fl committee seed v1");
    h.update(task.get_raw_39());
    h.update(round.to_be_bytes());
    h.finalize().into()
}

/// The committee drawn from the previous aggregate's reputation table with `seed`
/// ([`committee_seed`]): as many seats as the task asks, fewer when fewer agents are
/// eligible. Each agent's ticket hashes its key and its *anchor*: the entry hash of the
/// aggregate that first listed it ([`ReputationEntry::anchor`](crate::entries::ReputationEntry::anchor); for the agents `previous`
/// itself lists first, `previous_entry`, its own entry hash). The seeds are public from
/// the task's creation, but an anchor is fixed only after the agent's key has entered the
/// table, so a key cannot be ground offline for a good ticket.
pub fn committee_from(
    task: &Task,
    previous: &RoundAggregate,
    previous_entry: &EntryHash,
    seed: [u8; 32],
) -> Vec<AgentPubKey> {
    let threshold = task.round.reputation.committee_threshold;
    let candidates: Vec<(Vec<u8>, Reputation)> = previous
        .reputation
        .iter()
        .map(|e| {
            let anchor = if e.anchor.is_empty() {
                previous_entry.get_raw_32()
            } else {
                &e.anchor[..]
            };
            ([e.agent.get_raw_39(), anchor].concat(), e.reputation)
        })
        .collect();
    let eligible = candidates
        .iter()
        .filter(|(_, r)| *r >= threshold && r.0 > 0)
        .count();
    let size = (task.committee_size as usize).min(eligible);
    draw_committee(seed, &candidates, size, threshold)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|k| {
            previous
                .reputation
                .iter()
                .find(|e| e.agent.get_raw_39() == &k[..39])
        })
        .map(|e| e.agent.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entries::ReputationEntry;
    use crate::entries::*;

    #[test]
    fn committee_seeds_depend_on_the_task_and_round_only() {
        let (a, b) = (
            ActionHash::from_raw_36(vec![1; 36]),
            ActionHash::from_raw_36(vec![2; 36]),
        );
        assert_eq!(committee_seed(&a, 3), committee_seed(&a, 3));
        assert_ne!(committee_seed(&a, 3), committee_seed(&a, 4));
        assert_ne!(committee_seed(&a, 3), committee_seed(&b, 3));
    }

    /// Key grinding: the seeds are public from the task's creation, so an attacker can try
    /// many keys offline for one with a small ticket. Against the anchor it assumed the
    /// ground key takes the first seat from 1,000 agents of twice its reputation; its real
    /// anchor, the entry hash of the aggregate that first lists it, is unknown while it
    /// grinds, and gives it an ordinary ticket.
    #[test]
    fn a_key_ground_for_its_ticket_loses_its_edge_once_anchored() {
        let task_hash = ActionHash::from_raw_36(vec![1; 36]);
        let seed = committee_seed(&task_hash, 5);
        let key =
            |i: u32| AgentPubKey::from_raw_36([i.to_be_bytes().to_vec(), vec![0; 32]].concat());
        let assumed = EntryHash::from_raw_36(vec![2; 36]);
        let half = Reputation(500_000);
        let attacker = (1_000_000..1_065_536u32)
            .map(key)
            .min_by(|a, b| {
                let t = |k: &AgentPubKey| {
                    fl_core::committee::ticket(
                        &seed,
                        &[k.get_raw_39(), assumed.get_raw_32()].concat(),
                        half,
                    )
                };
                t(a).total_cmp(&t(b))
            })
            .unwrap();
        let mut reputation: Vec<ReputationEntry> = (0..1000u32)
            .map(|i| ReputationEntry {
                agent: key(i),
                reputation: Reputation::ONE,
                missed: 0,
                anchor: vec![7; 32],
            })
            .chain([ReputationEntry {
                agent: attacker.clone(),
                reputation: half,
                missed: 0,
                anchor: Vec::new(),
            }])
            .collect();
        reputation.sort_by(|a, b| a.agent.cmp(&b.agent));
        let mut round = fl_core::RoundParams::new(fl_core::aggregate::Rule::Median, 0);
        round.max_participants = 2000;
        let task = Task {
            name: "t".into(),
            description: String::new(),
            model_len: 1,
            spec: crate::task::fixture_spec(1),
            encoding: fl_core::Encoding::F32,
            round,
            committee_size: 1,
            quorum: 1,
            schedule: Default::default(),
            initial_model: Vec::new(),
            admission: Default::default(),
        };
        let previous = RoundAggregate {
            task: task_hash.clone(),
            round: 4,
            base: task_hash.clone(),
            outcomes: Vec::new(),
            model: Vec::new(),
            reputation,
            deadline: Timestamp::from_micros(0),
            endorsed: false,
        };
        assert_eq!(
            committee_from(&task, &previous, &assumed, seed),
            vec![attacker.clone()]
        );
        let actual = EntryHash::from_raw_36(vec![3; 36]);
        assert_ne!(
            committee_from(&task, &previous, &actual, seed),
            vec![attacker]
        );
    }
}
