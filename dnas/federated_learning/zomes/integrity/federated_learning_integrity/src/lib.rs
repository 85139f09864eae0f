//! Integrity zome of Mycelix FL: the entry and link types of the round protocol and the
//! validation of every rule docs/PROTOCOL.md states.
//!
//! The modules form layers, each importing only those below it:
//! - `wire`, `signing`, `schedule`: entry bytes, signed messages, a round's time windows;
//! - `entries`: every entry and link type (the data model), nothing that validates;
//! - `lookup`: a record or action decoded as the type a rule expects, and earlier entries
//!   of the author's chain; `committee`: a round's context and the committee drawn for it;
//! - the rules, one module per entry type (`task`, `device`, `submission`, `proof`,
//!   `ballot`, `aggregate`, `evaluation`, `membership`) with its `validate_create_*`
//!   function, and `links` for every link type;
//! - this file, which only dispatches.
//!
//! The rules themselves are pure functions over the entry and the records it references,
//! so they run natively in tests as well as in validation (each module's `check_*`
//! functions, which `fuzz/` also runs on arbitrary bytes). Entry bytes pass
//! [`wire::check_msgpack`] before they are decoded. Protocol entries are append-only: every
//! update and delete is invalid.

pub mod aggregate;
pub mod ballot;
pub mod committee;
pub mod device;
pub mod entries;
pub mod evaluation;
pub mod links;
pub mod lookup;
pub mod membership;
pub mod proof;
pub mod rejection;
pub mod schedule;
pub mod signing;
pub mod submission;
pub mod task;
pub mod wire;

pub use ballot::judge_votes;
pub use entries::{
    Admission, CommitteeBallot, CommitteeVote, DeviceRegistration, EntryTypes, Invite, InviteProof,
    LinkTypes, Membership, ModelEvaluation, OutcomeRecord, PogqProof, ReputationEntry,
    RoundAggregate, Signer, Task, UnitEntryTypes, UpdateSubmission,
};
pub use schedule::RoundSchedule;

use hdi::prelude::*;
use rejection::Code;

/// Dispatches every op to the rule of its entry or link type.
#[hdk_extern]
pub fn validate(op: Op) -> ExternResult<ValidateCallbackResult> {
    if let Some(Entry::App(bytes)) = op_entry(&op) {
        if let Err(e) = wire::check_msgpack(bytes.bytes()) {
            return Ok(invalid(
                Code::Malformed.reject(format!("entry is not well-formed: {e}")),
            ));
        }
    }
    match op.flattened::<EntryTypes, LinkTypes>()? {
        FlatOp::StoreEntry(OpEntry::CreateEntry { app_entry, action }) => {
            validate_create(app_entry, &action)
        }
        FlatOp::StoreRecord(OpRecord::CreateEntry { app_entry, action }) => {
            validate_create(app_entry, &action)
        }
        FlatOp::StoreEntry(OpEntry::UpdateEntry { .. })
        | FlatOp::StoreRecord(OpRecord::UpdateEntry { .. })
        | FlatOp::RegisterUpdate(_) => Ok(invalid(
            Code::AppendOnly.reject("protocol entries are append-only: updates are not allowed"),
        )),
        FlatOp::StoreRecord(OpRecord::DeleteEntry { .. }) | FlatOp::RegisterDelete(_) => {
            Ok(invalid(Code::AppendOnly.reject(
                "protocol entries are append-only: deletes are not allowed",
            )))
        }
        FlatOp::RegisterCreateLink {
            base_address,
            target_address,
            tag,
            link_type,
            action,
        } => links::validate_create_link(link_type, &base_address, &target_address, &tag, &action),
        FlatOp::StoreRecord(OpRecord::CreateLink {
            base_address,
            target_address,
            tag,
            link_type,
            action,
        }) => links::validate_create_link(link_type, &base_address, &target_address, &tag, &action),
        FlatOp::RegisterDeleteLink { .. } | FlatOp::StoreRecord(OpRecord::DeleteLink { .. }) => {
            Ok(invalid(Code::AppendOnly.reject(
                "protocol links are append-only: link deletes are not allowed",
            )))
        }
        FlatOp::RegisterAgentActivity(OpActivity::AgentValidationPkg {
            membrane_proof,
            action,
        })
        | FlatOp::StoreRecord(OpRecord::AgentValidationPkg {
            membrane_proof,
            action,
        }) => Ok(
            // What genesis_self_check ran, again: a conductor that skipped it is caught here.
            match membership::check_membrane_proof(membrane_proof.as_deref(), &action.author) {
                Ok(_) => ValidateCallbackResult::Valid,
                Err(reason) => ValidateCallbackResult::Invalid(Code::Admission.reject(reason)),
            },
        ),
        _ => Ok(ValidateCallbackResult::Valid),
    }
}

/// Checks the agent's own membrane proof at install, before it joins the network: absent,
/// or an invite bound to this agent and signed by its inviter
/// ([`membership::check_membrane_proof`], which validation of the agent's validation
/// package runs again; the invite's record is checked when the agent joins a task).
#[hdk_extern]
pub fn genesis_self_check(data: GenesisSelfCheckData) -> ExternResult<ValidateCallbackResult> {
    Ok(
        match membership::check_membrane_proof(data.membrane_proof.as_deref(), &data.agent_key) {
            Ok(_) => ValidateCallbackResult::Valid,
            Err(reason) => ValidateCallbackResult::Invalid(Code::Admission.reject(reason)),
        },
    )
}

/// The entry an op carries and `flattened` would decode, if any.
fn op_entry(op: &Op) -> Option<&Entry> {
    match op {
        Op::StoreRecord(StoreRecord { record }) => record.entry().as_option(),
        Op::StoreEntry(StoreEntry { entry, .. }) => Some(entry),
        Op::RegisterUpdate(RegisterUpdate { new_entry, .. }) => new_entry.as_ref(),
        _ => None,
    }
}

fn validate_create(entry: EntryTypes, action: &Create) -> ExternResult<ValidateCallbackResult> {
    let result = match entry {
        EntryTypes::Task(t) => task::validate_create_task(&t).map_err(|e| Code::Task.reject(e)),
        EntryTypes::DeviceRegistration(d) => device::validate_create_device(&d, action),
        EntryTypes::UpdateSubmission(g) => submission::validate_create_submission(&g, action)?,
        EntryTypes::CommitteeBallot(b) => ballot::validate_create_ballot(&b, action)?,
        EntryTypes::RoundAggregate(a) => aggregate::validate_create_aggregate(&a, action)?,
        EntryTypes::ModelEvaluation(e) => evaluation::validate_create_evaluation(&e, action)?,
        EntryTypes::Invite(i) => membership::validate_create_invite(&i, action)?,
        EntryTypes::Membership(m) => membership::validate_create_membership(&m, action)?,
    };
    Ok(match result {
        Ok(()) => ValidateCallbackResult::Valid,
        Err(reason) => ValidateCallbackResult::Invalid(reason),
    })
}

/// `Invalid` with a message.
pub(crate) fn invalid(reason: impl Into<String>) -> ValidateCallbackResult {
    ValidateCallbackResult::Invalid(reason.into())
}
