//! Inviting agents into closed tasks and joining tasks.

use federated_learning_integrity::membership::check_membrane_proof;
use federated_learning_integrity::rejection::Code;
use federated_learning_integrity::signing::invite_message;
use federated_learning_integrity::{
    EntryTypes, Invite, InviteProof, LinkTypes, Membership, UnitEntryTypes,
};
use hdk::prelude::*;

use crate::{fail, linked_entries};

/// Input of [`invite_agent`].
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct InviteAgent {
    /// The closed task.
    pub task: ActionHash,
    /// Who may join with the invite.
    pub invitee: AgentPubKey,
    /// For an inviter other than the task's author: an aggregate of the task that shows
    /// the inviter's reputation (the latest is usually the best choice).
    #[serde(default)]
    pub standing: Option<ActionHash>,
}

/// Writes an invite of `invitee` into a closed task, signed by the caller, and returns it
/// as the invitee's membrane proof (also findable by the invitee with [`list_invites`]).
#[hdk_extern]
pub fn invite_agent(input: InviteAgent) -> ExternResult<InviteProof> {
    let me = agent_info()?.agent_initial_pubkey;
    let signature = sign_raw(
        me.clone(),
        invite_message(input.task.get_raw_39(), input.invitee.get_raw_39()),
    )?;
    let invite = Invite {
        task: input.task,
        invitee: input.invitee.clone(),
        standing: input.standing,
        signature: signature.0.to_vec(),
    };
    let hash = create_entry(EntryTypes::Invite(invite.clone()))?;
    create_link(input.invitee, hash.clone(), LinkTypes::AgentToInvites, ())?;
    Ok(InviteProof {
        invite_hash: hash,
        inviter: me,
        invite,
    })
}

/// The invites written for the caller, oldest first.
#[hdk_extern]
pub fn list_invites() -> ExternResult<Vec<InviteProof>> {
    let me = agent_info()?.agent_initial_pubkey;
    let mut links = get_links(
        LinkQuery::try_new(me, LinkTypes::AgentToInvites)?,
        GetStrategy::Network,
    )?;
    links.sort_by_key(|l| l.timestamp);
    Ok(linked_entries::<Invite>(links)?
        .into_iter()
        .map(|(invite_hash, inviter, invite)| InviteProof {
            invite_hash,
            inviter,
            invite,
        })
        .collect())
}

/// The invite this cell was installed with (its membrane proof), if any.
#[hdk_extern]
pub fn membrane_invite() -> ExternResult<Option<InviteProof>> {
    let me = agent_info()?.agent_initial_pubkey;
    let avp = query(ChainQueryFilter::new().action_type(ActionType::AgentValidationPkg))?;
    let Some(Action::AgentValidationPkg(pkg)) = avp.first().map(|r| r.action().clone()) else {
        return Ok(None);
    };
    check_membrane_proof(pkg.membrane_proof.as_deref(), &me).map_err(fail)
}

/// Input of [`join_task`].
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct JoinTask {
    /// The task.
    pub task: ActionHash,
    /// The `Invite` action, for a closed task. When absent, the invite the cell was
    /// installed with is used if it is for this task.
    #[serde(default)]
    pub invite: Option<ActionHash>,
}

/// Joins a task: commits the caller's membership (with its invite, for a closed task) and
/// lists it under the task. Joining twice returns the first membership.
#[hdk_extern]
pub fn join_task(input: JoinTask) -> ExternResult<ActionHash> {
    if let Some(existing) = own_membership(&input.task)? {
        return Ok(existing);
    }
    let task = crate::task::get_task_info(&input.task)?;
    let me = agent_info()?.agent_initial_pubkey;
    let invite = match (&task.task.admission, input.invite) {
        (federated_learning_integrity::Admission::Open, _) => None,
        (_, _) if task.author == me => None,
        (_, Some(invite)) => Some(invite),
        (_, None) => match membrane_invite(())? {
            Some(p) if p.invite.task == input.task => Some(p.invite_hash),
            _ => {
                return Err(fail(Code::Admission.reject(format!(
                    "task {} is closed: joining needs an invite (none given, and the membrane proof holds none for this task)",
                    input.task
                ))))
            }
        },
    };
    let hash = create_entry(EntryTypes::Membership(Membership {
        task: input.task.clone(),
        invite,
    }))?;
    create_link(input.task, hash.clone(), LinkTypes::TaskToMembers, ())?;
    Ok(hash)
}

/// The caller's membership of `task`, from its own chain.
pub(crate) fn own_membership(task: &ActionHash) -> ExternResult<Option<ActionHash>> {
    let records = query(
        ChainQueryFilter::new()
            .entry_type(UnitEntryTypes::Membership.try_into()?)
            .include_entries(true),
    )?;
    Ok(records.into_iter().find_map(|r| {
        let hash = r.action_address().clone();
        Membership::try_from(r)
            .ok()
            .filter(|m| &m.task == task)
            .map(|_| hash)
    }))
}

/// The caller's membership of `task`, if any.
#[hdk_extern]
pub fn get_my_membership(task: ActionHash) -> ExternResult<Option<ActionHash>> {
    own_membership(&task)
}

/// One member of a task.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct MemberInfo {
    /// The member.
    pub agent: AgentPubKey,
    /// Its membership.
    pub membership: ActionHash,
    /// Its invite (none in an open task).
    pub invite: Option<ActionHash>,
}

/// Every agent that joined `task`, ordered by key (the task's author is a member without
/// joining and is listed only if it joined).
#[hdk_extern]
pub fn list_members(task: ActionHash) -> ExternResult<Vec<MemberInfo>> {
    let links = get_links(
        LinkQuery::try_new(task, LinkTypes::TaskToMembers)?,
        GetStrategy::Network,
    )?;
    let mut out: Vec<MemberInfo> = linked_entries::<Membership>(links)?
        .into_iter()
        .map(|(membership, agent, m)| MemberInfo {
            agent,
            membership,
            invite: m.invite,
        })
        .collect();
    out.sort_by(|a, b| a.agent.cmp(&b.agent));
    out.dedup_by(|b, a| a.agent == b.agent);
    Ok(out)
}
