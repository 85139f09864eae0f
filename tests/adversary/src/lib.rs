//! A cheating peer's coordinator zome. The DNA hash depends only on the integrity zome, so
//! a DNA with this coordinator added joins the same network as the production hApp: it is
//! how the sweettests show that validation, not the honest coordinator, rejects bad
//! entries. It commits exactly what the caller builds, and can update, delete and link
//! anything. It is packed only into the test bundle (`tests/workdir/dna.yaml`).

use federated_learning_integrity::aggregate::{
    compute_aggregate, earlier_model, SubmissionEvidence,
};
use federated_learning_integrity::committee::round_context;
use federated_learning_integrity::lookup::typed_record;
use federated_learning_integrity::{
    CommitteeBallot, DeviceRegistration, EntryTypes, Invite, LinkTypes, Membership,
    ModelEvaluation, RoundAggregate, UnitEntryTypes, UpdateSubmission,
};
use hdk::prelude::*;

/// Commits a submission as given (no signing, no checks).
#[hdk_extern]
pub fn raw_submission(s: UpdateSubmission) -> ExternResult<ActionHash> {
    create_entry(EntryTypes::UpdateSubmission(s))
}

/// Commits a ballot as given.
#[hdk_extern]
pub fn raw_ballot(b: CommitteeBallot) -> ExternResult<ActionHash> {
    create_entry(EntryTypes::CommitteeBallot(b))
}

/// Input of [`raw_entry_bytes`].
#[derive(Serialize, Deserialize, Debug)]
pub struct RawEntryBytes {
    /// Which entry type the bytes claim to be: `UpdateSubmission`, `Task`, ...
    pub entry_type: String,
    /// The entry's serialized bytes, well-formed or not.
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

/// Commits arbitrary bytes as an entry of the named type.
#[hdk_extern]
pub fn raw_entry_bytes(r: RawEntryBytes) -> ExternResult<ActionHash> {
    let unit = match r.entry_type.as_str() {
        "Task" => UnitEntryTypes::Task,
        "UpdateSubmission" => UnitEntryTypes::UpdateSubmission,
        "CommitteeBallot" => UnitEntryTypes::CommitteeBallot,
        other => {
            return Err(wasm_error!(WasmErrorInner::Guest(format!(
                "unknown entry type {other}"
            ))))
        }
    };
    let location = ScopedEntryDefIndex::try_from(unit)?;
    let entry = Entry::App(AppEntryBytes(SerializedBytes::from(UnsafeBytes::from(
        r.bytes,
    ))));
    create(CreateInput::new(
        location,
        EntryVisibility::Public,
        entry,
        ChainTopOrdering::default(),
    ))
}

/// Commits an aggregate as given.
#[hdk_extern]
pub fn raw_aggregate(a: RoundAggregate) -> ExternResult<ActionHash> {
    create_entry(EntryTypes::RoundAggregate(a))
}

/// Input of [`aggregate_chosen`].
#[derive(Serialize, Deserialize, Debug)]
pub struct ChosenEvidence {
    /// The task.
    pub task: ActionHash,
    /// The round.
    pub round: u32,
    /// The round's base.
    pub base: ActionHash,
    /// The submissions to aggregate, and only these.
    pub submissions: Vec<ActionHash>,
    /// The ballots to cite, and only these.
    pub ballots: Vec<ActionHash>,
    /// Decide as if the task gave reputation to every update the committee passes, aligned
    /// with the previous step or not (`fl_core::RoundParams::aligned_credit` ignored).
    #[serde(default)]
    pub ignore_alignment: bool,
}

/// A Byzantine aggregator choosing its evidence: computes the round's aggregate exactly as
/// validation recomputes it, but from the submissions and ballots the caller picks, and
/// commits it (no schedule, no quorum or completeness checks of its own).
#[hdk_extern]
pub fn aggregate_chosen(c: ChosenEvidence) -> ExternResult<ActionHash> {
    let fail = |e: String| wasm_error!(WasmErrorInner::Guest(e));
    let ctx = round_context(&c.task, c.round, &c.base)?.map_err(fail)?;
    let mut ballots = Vec::new();
    for h in &c.ballots {
        let (record, ballot) =
            typed_record::<CommitteeBallot>(h, "CommitteeBallot")?.map_err(fail)?;
        ballots.push((h.clone(), record.action().author().clone(), ballot));
    }
    let mut evidence = Vec::new();
    for h in &c.submissions {
        let (record, submission) =
            typed_record::<UpdateSubmission>(h, "UpdateSubmission")?.map_err(fail)?;
        let votes = ballots
            .iter()
            .filter_map(|(b, member, ballot)| {
                ballot
                    .vote_on(h)
                    .map(|v| (b.clone(), member.clone(), v.clone()))
            })
            .collect();
        evidence.push(SubmissionEvidence {
            hash: h.clone(),
            author: record.action().author().clone(),
            submission,
            votes,
        });
    }
    let earlier = if c.ignore_alignment {
        None
    } else {
        earlier_model(&ctx)?.map_err(fail)?
    };
    let aggregate = compute_aggregate(&ctx, earlier.as_deref(), evidence).map_err(fail)?;
    create_entry(EntryTypes::RoundAggregate(aggregate))
}

/// Commits a model evaluation as given.
#[hdk_extern]
pub fn raw_evaluation(e: ModelEvaluation) -> ExternResult<ActionHash> {
    create_entry(EntryTypes::ModelEvaluation(e))
}

/// Commits an invite as given (no signing, no checks).
#[hdk_extern]
pub fn raw_invite(i: Invite) -> ExternResult<ActionHash> {
    create_entry(EntryTypes::Invite(i))
}

/// Commits a membership as given.
#[hdk_extern]
pub fn raw_membership(m: Membership) -> ExternResult<ActionHash> {
    create_entry(EntryTypes::Membership(m))
}

/// Commits a device registration as given.
#[hdk_extern]
pub fn raw_device(d: DeviceRegistration) -> ExternResult<ActionHash> {
    create_entry(EntryTypes::DeviceRegistration(d))
}

/// Input of [`raw_update_submission`].
#[derive(Serialize, Deserialize, Debug)]
pub struct ReplaceSubmission {
    /// The submission to replace.
    pub original: ActionHash,
    /// The replacement.
    pub submission: UpdateSubmission,
}

/// Tries to update a submission.
#[hdk_extern]
pub fn raw_update_submission(u: ReplaceSubmission) -> ExternResult<ActionHash> {
    update_entry(u.original, EntryTypes::UpdateSubmission(u.submission))
}

/// Tries to delete any entry.
#[hdk_extern]
pub fn raw_delete(hash: ActionHash) -> ExternResult<ActionHash> {
    delete_entry(hash)
}

/// Input of [`raw_link`].
#[derive(Serialize, Deserialize, Debug)]
pub struct RawLink {
    /// Base.
    pub base: AnyLinkableHash,
    /// Target.
    pub target: AnyLinkableHash,
    /// Link type by name, e.g. `RoundToSubmissions`.
    pub link_type: String,
    /// Tag bytes.
    #[serde(default)]
    pub tag: Vec<u8>,
}

/// Creates any link.
#[hdk_extern]
pub fn raw_link(l: RawLink) -> ExternResult<ActionHash> {
    let link_type = match l.link_type.as_str() {
        "AllTasks" => LinkTypes::AllTasks,
        "TaskToAggregates" => LinkTypes::TaskToAggregates,
        "RoundToSubmissions" => LinkTypes::RoundToSubmissions,
        "RoundToAggregate" => LinkTypes::RoundToAggregate,
        "RoundToBallots" => LinkTypes::RoundToBallots,
        "AgentToDevices" => LinkTypes::AgentToDevices,
        "AggregateToEvaluations" => LinkTypes::AggregateToEvaluations,
        "AllAgents" => LinkTypes::AllAgents,
        "TaskToMembers" => LinkTypes::TaskToMembers,
        "AgentToInvites" => LinkTypes::AgentToInvites,
        other => {
            return Err(wasm_error!(WasmErrorInner::Guest(format!(
                "unknown link type {other}"
            ))))
        }
    };
    create_link(l.base, l.target, link_type, LinkTag::new(l.tag))
}

/// Tries to delete a link.
#[hdk_extern]
pub fn raw_delete_link(create_link_hash: ActionHash) -> ExternResult<ActionHash> {
    delete_link(create_link_hash, GetOptions::default())
}
