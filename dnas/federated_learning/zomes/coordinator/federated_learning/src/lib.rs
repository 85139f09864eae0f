//! Coordinator zome of Mycelix FL: the API that clients and the UI call.
//!
//! | function | does |
//! |---|---|
//! | `create_task(Task) -> ActionHash` | publishes a task, indexed under `tasks` |
//! | `list_tasks(()) -> Vec<TaskInfo>` | all tasks |
//! | `register_device(DeviceRegistration) -> ActionHash` | binds an edge device key to the caller |
//! | `submit_update(SubmitUpdate) -> Submitted` | signs (agent key) and publishes an update with its PoGQ proof |
//! | `submit_signed(SignedSubmission) -> Submitted` | publishes an update and proof a device signed |
//! | `get_submission(ActionHash) -> UpdateSubmission` | a submission with its update bytes |
//! | `get_round(RoundRef) -> RoundState` | submissions (with proofs), votes, committee, quorum, aggregate |
//! | `cast_ballot(CastBallot) -> ActionHash` | a committee member's re-scores of a round's submissions |
//! | `aggregate_round(RoundRef) -> ActionHash` | computes and publishes the round's aggregate |
//! | `preview_aggregate(RoundRef) -> RoundAggregate` | the aggregate the round would get now |
//! | `get_global_model(ModelRef) -> GlobalModel` | the model after a round (or the initial one) |
//! | `get_reputation(AgentReputationRef) -> Reputation` / `get_reputation_table(ActionHash)` | reputation after the latest round |
//! | `list_rounds(ActionHash) -> Vec<RoundSummary>` | every closed round of a task |
//! | `get_committee(RoundRef) -> Vec<AgentPubKey>` | a round's ranked committee |
//! | `round_progress(ActionHash) -> RoundProgress` | submissions, ballots and aggregates linked to a round's base (cheap to poll) |
//! | `publish_evaluation(ModelEvaluation) -> ActionHash` | the caller's loss and accuracy of a round's model |
//! | `get_evaluations(ActionHash) -> Vec<EvaluationInfo>` | evaluations of an aggregate's model, one per author |
//! | `list_agents(()) -> Vec<AgentPubKey>` | the directory of agents new tasks are announced to |
//! | `invite_agent(InviteAgent) -> InviteProof` | invites an agent into a closed task (its membrane proof) |
//! | `list_invites(()) -> Vec<InviteProof>` / `membrane_invite(()) -> Option<InviteProof>` | invites for the caller; the one it was installed with |
//! | `join_task(JoinTask) -> ActionHash` | the caller's membership of a task (a closed task needs an invite) |
//! | `get_my_membership(ActionHash)` / `list_members(ActionHash) -> Vec<MemberInfo>` | the caller's membership; a task's members |
//!
//! Every new submission, ballot, aggregate and evaluation is announced with `emit_signal` to the local
//! UI and with remote signals to the task's known participants (see [`Event`]), from
//! `post_commit`: only once it is committed, and off the zome call's path.

mod aggregate;
mod ballot;
mod device;
mod evaluation;
mod membership;
mod round;
mod submission;
mod task;

pub use aggregate::*;
pub use ballot::*;
pub use device::*;
pub use evaluation::*;
pub use membership::*;
pub use round::*;
pub use submission::*;
pub use task::*;

use federated_learning_integrity::{EntryTypes, LinkTypes, RoundAggregate};
use hdk::prelude::*;

/// What happened, as the UI and peers hear it.
#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A task was published (sent to every agent in the directory).
    TaskCreated {
        /// The task.
        task: ActionHash,
        /// Its author.
        author: AgentPubKey,
    },
    /// An update submission and its proof were published.
    SubmissionCreated {
        /// Task.
        task: ActionHash,
        /// Round.
        round: u32,
        /// Submission.
        submission: ActionHash,
        /// Its author.
        author: AgentPubKey,
    },
    /// A committee member's ballot was published.
    BallotCast {
        /// Task.
        task: ActionHash,
        /// Round.
        round: u32,
        /// The ballot.
        ballot: ActionHash,
        /// Member.
        member: AgentPubKey,
    },
    /// A round's aggregate was published.
    RoundAggregated {
        /// Task.
        task: ActionHash,
        /// Round closed.
        round: u32,
        /// The aggregate.
        aggregate: ActionHash,
    },
    /// A participant published an evaluation of a round's model.
    ModelEvaluated {
        /// Task.
        task: ActionHash,
        /// Round whose model was evaluated.
        round: u32,
        /// The evaluation.
        evaluation: ActionHash,
        /// Who measured.
        author: AgentPubKey,
    },
}

impl Event {
    /// The task the event is about (the new task itself for `TaskCreated`).
    pub fn task(&self) -> &ActionHash {
        match self {
            Event::TaskCreated { task, .. }
            | Event::SubmissionCreated { task, .. }
            | Event::BallotCast { task, .. }
            | Event::RoundAggregated { task, .. }
            | Event::ModelEvaluated { task, .. } => task,
        }
    }
}

/// The directory of agents new tasks are announced to.
pub(crate) fn agents_path() -> ExternResult<EntryHash> {
    Path::from("agents").path_entry_hash()
}

/// Every agent in the directory (those that called any zome function at least once).
#[hdk_extern]
pub fn list_agents() -> ExternResult<Vec<AgentPubKey>> {
    let mut agents: Vec<AgentPubKey> = get_links(
        LinkQuery::try_new(agents_path()?, LinkTypes::AllAgents)?,
        GetStrategy::Network,
    )?
    .into_iter()
    .filter_map(|l| l.target.into_agent_pub_key())
    .collect();
    agents.sort();
    agents.dedup();
    Ok(agents)
}

/// Grants everyone the right to send this cell remote signals, and lists the agent in the
/// directory new tasks are announced to.
#[hdk_extern]
pub fn init() -> ExternResult<InitCallbackResult> {
    create_link(
        agents_path()?,
        agent_info()?.agent_initial_pubkey,
        LinkTypes::AllAgents,
        (),
    )?;
    let mut functions = HashSet::new();
    functions.insert((zome_info()?.name, "recv_remote_signal".into()));
    create_cap_grant(CapGrantEntry {
        tag: "remote_signals".into(),
        access: CapAccess::Unrestricted,
        functions: GrantedFunctions::Listed(functions),
    })?;
    Ok(InitCallbackResult::Pass)
}

/// A peer's event: passed on to the local UI.
#[hdk_extern]
pub fn recv_remote_signal(event: Event) -> ExternResult<()> {
    emit_signal(event)
}

/// Announces what a zome call committed: each protocol entry as its [`Event`].
#[hdk_extern(infallible)]
pub fn post_commit(committed: Vec<SignedActionHashed>) {
    for action in committed {
        // Nothing to return an error to: a failed announcement only means peers learn of
        // the entry by reading.
        if let Err(e) = announce_action(&action) {
            debug!("announcing {}: {e:?}", action.as_hash());
        }
    }
}

/// The event for a committed create of a protocol entry, and who should hear of it.
fn announce_action(action: &SignedActionHashed) -> ExternResult<()> {
    let Action::Create(create) = action.action() else {
        return Ok(());
    };
    let EntryType::App(def) = &create.entry_type else {
        return Ok(());
    };
    let Some(entry) = must_get_entry(create.entry_hash.clone()).ok() else {
        return Ok(());
    };
    let Some(entry) =
        EntryTypes::deserialize_from_type(def.zome_index, def.entry_index, &entry.content)?
    else {
        return Ok(());
    };
    let hash = action.as_hash().clone();
    let author = create.author.clone();
    if let EntryTypes::Task(_) = entry {
        let event = Event::TaskCreated {
            task: hash,
            author: author.clone(),
        };
        emit_signal(event.clone())?;
        let agents: Vec<AgentPubKey> = get_links(
            LinkQuery::try_new(agents_path()?, LinkTypes::AllAgents)?,
            GetStrategy::Network,
        )?
        .into_iter()
        .filter_map(|l| l.target.into_agent_pub_key())
        .filter(|a| a != &author)
        .collect();
        if !agents.is_empty() {
            send_remote_signal(event, agents)?;
        }
        return Ok(());
    }
    let (event, task, base) = match entry {
        EntryTypes::UpdateSubmission(s) => (
            Event::SubmissionCreated {
                task: s.task.clone(),
                round: s.round,
                submission: hash,
                author,
            },
            s.task,
            s.base,
        ),
        EntryTypes::CommitteeBallot(b) => (
            Event::BallotCast {
                task: b.task.clone(),
                round: b.round,
                ballot: hash,
                member: author,
            },
            b.task,
            b.base,
        ),
        EntryTypes::RoundAggregate(a) => (
            Event::RoundAggregated {
                task: a.task.clone(),
                round: a.round,
                aggregate: hash,
            },
            a.task,
            a.base,
        ),
        EntryTypes::ModelEvaluation(e) => {
            let record = get(e.aggregate.clone(), GetOptions::local())?
                .ok_or_else(|| fail("evaluated aggregate not found"))?;
            let a = RoundAggregate::try_from(record)
                .map_err(|_| fail("evaluation is not of an aggregate"))?;
            (
                Event::ModelEvaluated {
                    task: a.task.clone(),
                    round: e.round,
                    evaluation: hash,
                    author,
                },
                a.task,
                e.aggregate,
            )
        }
        _ => return Ok(()),
    };
    emit_signal(event.clone())?;
    let me = agent_info()?.agent_initial_pubkey;
    let mut peers: Vec<AgentPubKey> = round::participants(&task, &base)?
        .into_iter()
        .filter(|p| p != &me)
        .collect();
    peers.sort();
    peers.dedup();
    if !peers.is_empty() {
        send_remote_signal(event, peers)?;
    }
    Ok(())
}

/// The records `links` point to that decode as `T`, in link order, each with its action
/// hash and author; links to anything else, or to records not found, are skipped.
pub(crate) fn linked_entries<T>(links: Vec<Link>) -> ExternResult<Vec<(ActionHash, AgentPubKey, T)>>
where
    T: TryFrom<Record>,
{
    let mut out = Vec::new();
    for link in links {
        let Some(hash) = link.target.into_action_hash() else {
            continue;
        };
        let Some(record) = get(hash.clone(), GetOptions::default())? else {
            continue;
        };
        let author = record.action().author().clone();
        if let Ok(entry) = T::try_from(record) {
            out.push((hash, author, entry));
        }
    }
    Ok(out)
}

/// An error for the caller, as a zome-call failure with this message.
pub(crate) fn fail(message: impl Into<String>) -> WasmError {
    wasm_error!(WasmErrorInner::Guest(message.into()))
}
