//! Who may take part in a task: invites, memberships and the membrane proof.
//!
//! A task's [`Admission`] is open (any agent may submit, labelled so everywhere) or closed.
//! In a closed task every submission and evaluation cites its author's [`Membership`];
//! a membership cites an [`Invite`] bound to its author's key; an invite is written by the
//! task's author, or by a member listed in the reputation table of one of the task's
//! aggregates with at least the task's bar, and each member may write only as many invites
//! as the task allows. The committee is drawn from the reputation table, which only
//! submitters enter, so an agent without an invite can neither submit, nor vote, nor
//! aggregate.
//!
//! An invite can reach the invitee as its membrane proof ([`InviteProof`] at install),
//! which [`check_membrane_proof`] verifies offline in `genesis_self_check`, and the
//! authorities of the agent's validation package verify again the same way (a conductor
//! that skipped genesis is caught there); or it can be handed to the coordinator's
//! `join_task` later. Either way only the [`Membership`] entry admits: its validation
//! fetches the invite record. The validation package does not, since a hash that names no
//! record would leave it pending for ever.

use fl_core::Reputation;
use hdi::prelude::*;

use crate::entries::{
    Admission, Invite, InviteProof, Membership, RoundAggregate, Task, UnitEntryTypes,
};
use crate::lookup::{earlier_entries, earlier_entry, typed_record, Check};
use crate::rejection::Code;
use crate::signing::{invite_message, verify_ed25519};
use crate::wire::{check_msgpack, decode_entry};

/// The invite's own rules, given its inviter: a signature by the inviter over the task
/// and the invitee, and an invitee other than the inviter. Pure.
pub fn check_invite_signature(invite: &Invite, inviter: &AgentPubKey) -> Result<(), String> {
    if &invite.invitee == inviter {
        return Err("invite: an agent cannot invite itself".into());
    }
    verify_ed25519(
        inviter.get_raw_32(),
        &invite.signature,
        &invite_message(invite.task.get_raw_39(), invite.invitee.get_raw_39()),
    )
    .map_err(|e| format!("invite: bad signature by {inviter}: {e}"))
}

/// A membrane proof must be absent (the agent joins open tasks only, or gets its invite
/// later) or an [`InviteProof`] bound to `agent` and signed by its inviter. Pure: what
/// `genesis_self_check` can check without the network.
pub fn check_membrane_proof(
    proof: Option<&SerializedBytes>,
    agent: &AgentPubKey,
) -> Result<Option<InviteProof>, String> {
    let Some(bytes) = proof else {
        return Ok(None);
    };
    check_msgpack(bytes.bytes()).map_err(|e| format!("membrane proof is not well-formed: {e}"))?;
    let proof: InviteProof =
        decode_entry(bytes.clone()).map_err(|e| format!("membrane proof is not an invite: {e}"))?;
    if &proof.invite.invitee != agent {
        return Err(format!(
            "membrane proof: the invite is bound to {}, not to {agent}",
            proof.invite.invitee
        ));
    }
    check_invite_signature(&proof.invite, &proof.inviter)
        .map_err(|e| format!("membrane proof: {e}"))?;
    Ok(Some(proof))
}

/// An invite must be for a closed task, signed by its author (the inviter) and not dated
/// before the task; the inviter must be the task's author, or be listed with at least the
/// task's bar in a cited aggregate of the task and not have used up its invites for it.
pub fn validate_create_invite(invite: &Invite, action: &Create) -> Check<()> {
    let (task_record, task) = match typed_record::<Task>(&invite.task, "Task")? {
        Ok(t) => t,
        Err(e) => return Ok(Err(Code::Base.reject(format!("invite: {e}")))),
    };
    let Admission::Closed {
        invites_per_member,
        min_inviter_reputation,
    } = task.admission
    else {
        return Ok(Err(Code::Admission.reject(format!(
            "invite: task {} is open, so nobody needs an invite",
            invite.task
        ))));
    };
    let inviter = &action.author;
    if let Err(e) = check_invite_signature(invite, inviter) {
        return Ok(Err(Code::Signature.reject(e)));
    }
    if let Err(e) =
        check_not_before_task("invite", action.timestamp, task_record.action().timestamp())
    {
        return Ok(Err(Code::Window.reject(e)));
    }
    if inviter == task_record.action().author() {
        return Ok(Ok(()));
    }
    let Some(standing) = &invite.standing else {
        return Ok(Err(Code::Admission.reject(format!(
            "invite: {inviter} is not the task's author, so the invite must cite an aggregate that shows the inviter's reputation"
        ))));
    };
    let (_, aggregate) = match typed_record::<RoundAggregate>(standing, "RoundAggregate")? {
        Ok(a) => a,
        Err(e) => return Ok(Err(Code::Base.reject(format!("invite: standing {e}")))),
    };
    if let Err(e) = check_standing(invite, inviter, &aggregate, min_inviter_reputation) {
        return Ok(Err(Code::Admission.reject(e)));
    }
    let used = earlier_entries::<Invite>(
        inviter,
        &action.prev_action,
        task_record.action().timestamp(),
        UnitEntryTypes::Invite,
        |i| i.task == invite.task,
        invites_per_member as usize,
    )?;
    if used.len() >= invites_per_member as usize {
        return Ok(Err(Code::Duplicate.reject(format!(
            "invite: {inviter} has already written its {invites_per_member} invites for this task"
        ))));
    }
    Ok(Ok(()))
}

/// The cited aggregate must be of the invite's task, list the inviter in its reputation
/// table, and give it at least `min`. Pure.
pub fn check_standing(
    invite: &Invite,
    inviter: &AgentPubKey,
    aggregate: &RoundAggregate,
    min: Reputation,
) -> Result<(), String> {
    if aggregate.task != invite.task {
        return Err("invite: the standing aggregate belongs to another task".into());
    }
    // Only members and the task's author ever enter a closed task's table, so being in it
    // is also what shows the inviter is a member.
    let Some(have) = aggregate
        .reputation
        .iter()
        .find(|e| &e.agent == inviter)
        .map(|e| e.reputation)
    else {
        return Err(format!(
            "invite: the inviter is not in the reputation table after round {}, so it has no standing in the task",
            aggregate.round
        ));
    };
    if have < min {
        return Err(format!(
            "invite: the inviter's reputation {:.3} after round {} is below the task's bar of {:.3} for inviting",
            have.as_f64(),
            aggregate.round,
            min.as_f64()
        ));
    }
    Ok(())
}

/// A membership of a closed task must cite a valid invite of that task bound to its
/// author (the task's author needs none); of an open task it must cite none. Either way it
/// is the author's only membership of the task.
pub fn validate_create_membership(m: &Membership, action: &Create) -> Check<()> {
    let (task_record, task) = match typed_record::<Task>(&m.task, "Task")? {
        Ok(t) => t,
        Err(e) => return Ok(Err(Code::Base.reject(format!("membership: {e}")))),
    };
    let author = &action.author;
    if let Err(e) = check_not_before_task(
        "membership",
        action.timestamp,
        task_record.action().timestamp(),
    ) {
        return Ok(Err(Code::Window.reject(e)));
    }
    match (
        &task.admission,
        &m.invite,
        author == task_record.action().author(),
    ) {
        (Admission::Open, Some(_), _) => {
            return Ok(Err(Code::Admission.reject(format!(
                "membership: task {} is open, so a membership cites no invite",
                m.task
            ))))
        }
        (Admission::Closed { .. }, Some(_), true) => {
            return Ok(Err(Code::Admission.reject(
                "membership: the task's author is a member without an invite",
            )))
        }
        (Admission::Closed { .. }, None, false) => {
            return Ok(Err(Code::Admission.reject(format!(
                "membership: task {} is closed: joining needs an invite",
                m.task
            ))))
        }
        (Admission::Closed { .. }, Some(invite_hash), false) => {
            let (_, invite) = match typed_record::<Invite>(invite_hash, "Invite")? {
                Ok(i) => i,
                Err(e) => return Ok(Err(Code::Base.reject(format!("membership: {e}")))),
            };
            if let Err(e) = check_invite_use(&invite, m, author) {
                return Ok(Err(Code::Admission.reject(e)));
            }
        }
        _ => {}
    }
    let earlier = earlier_entry::<Membership>(
        author,
        &action.prev_action,
        task_record.action().timestamp(),
        UnitEntryTypes::Membership,
        |other| other.task == m.task,
    )?;
    if let Some(first) = earlier {
        return Ok(Err(Code::Duplicate.reject(format!(
            "membership: the agent already joined task {} ({first}); an invite admits once",
            m.task
        ))));
    }
    Ok(Ok(()))
}

/// Invites and memberships must not be dated before their task: the quota and "joins once"
/// walks stop at the task's timestamp, so a backdated entry would escape them. Pure.
pub fn check_not_before_task(what: &str, at: Timestamp, created: Timestamp) -> Result<(), String> {
    if at < created {
        return Err(format!(
            "{what}: dated {} us, before its task was created at {} us",
            at.as_micros(),
            created.as_micros()
        ));
    }
    Ok(())
}

/// The invite must be for the membership's task and bound to its author. Pure.
pub fn check_invite_use(
    invite: &Invite,
    m: &Membership,
    author: &AgentPubKey,
) -> Result<(), String> {
    if invite.task != m.task {
        return Err("membership: the invite is for another task".into());
    }
    if &invite.invitee != author {
        return Err(format!(
            "membership: the invite is bound to {}, not to {author}",
            invite.invitee
        ));
    }
    Ok(())
}

/// In a closed task, `author` must be the task's author or cite its own valid membership
/// of the task; `what` names the entry in the rejection. An open task admits anyone.
pub fn check_member(
    task_hash: &ActionHash,
    task: &Task,
    task_author: &AgentPubKey,
    author: &AgentPubKey,
    membership: Option<&ActionHash>,
    what: &str,
) -> Check<()> {
    if task.admission == Admission::Open || author == task_author {
        return Ok(Ok(()));
    }
    let Some(hash) = membership else {
        return Ok(Err(format!(
            "{what}: task {task_hash} is closed and {author} cites no membership"
        )));
    };
    Ok(match typed_record::<Membership>(hash, "Membership")? {
        Ok((record, m)) if record.action().author() == author && &m.task == task_hash => Ok(()),
        Ok(_) => Err(format!(
            "{what}: {hash} is not {author}'s membership of task {task_hash}"
        )),
        Err(e) => Err(format!("{what}: {e}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entries::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn agent(key: &SigningKey) -> AgentPubKey {
        AgentPubKey::from_raw_32(key.verifying_key().to_bytes().to_vec())
    }

    fn invite(by: &SigningKey, task: &ActionHash, invitee: &AgentPubKey) -> Invite {
        let signature = by
            .sign(&invite_message(task.get_raw_39(), invitee.get_raw_39()))
            .to_bytes()
            .to_vec();
        Invite {
            task: task.clone(),
            invitee: invitee.clone(),
            standing: None,
            signature,
        }
    }

    fn proof_bytes(p: &InviteProof) -> SerializedBytes {
        SerializedBytes::try_from(p.clone()).unwrap()
    }

    #[test]
    fn membrane_proof_must_be_bound_and_signed() {
        let (author, alice, bob) = (
            SigningKey::from_bytes(&[1; 32]),
            SigningKey::from_bytes(&[2; 32]),
            SigningKey::from_bytes(&[3; 32]),
        );
        let task = ActionHash::from_raw_36(vec![7; 36]);
        let good = InviteProof {
            invite_hash: ActionHash::from_raw_36(vec![8; 36]),
            inviter: agent(&author),
            invite: invite(&author, &task, &agent(&alice)),
        };
        assert_eq!(check_membrane_proof(None, &agent(&alice)), Ok(None));
        assert_eq!(
            check_membrane_proof(Some(&proof_bytes(&good)), &agent(&alice)),
            Ok(Some(good.clone()))
        );
        // Foreign-bound: Bob installs with Alice's invite.
        let e = check_membrane_proof(Some(&proof_bytes(&good)), &agent(&bob)).unwrap_err();
        assert!(e.contains("is bound to"), "{e}");
        // Forged: signed by Bob but naming the task's author as inviter.
        let forged = InviteProof {
            invite: invite(&bob, &task, &agent(&alice)),
            ..good.clone()
        };
        let e = check_membrane_proof(Some(&proof_bytes(&forged)), &agent(&alice)).unwrap_err();
        assert!(e.contains("does not verify"), "{e}");
        // Another task's invite does not verify for this one.
        let mut moved = good.clone();
        moved.invite.task = ActionHash::from_raw_36(vec![9; 36]);
        assert!(check_membrane_proof(Some(&proof_bytes(&moved)), &agent(&alice)).is_err());
        // Not an invite at all.
        let junk = SerializedBytes::from(UnsafeBytes::from(vec![0x93, 1, 2, 3]));
        let e = check_membrane_proof(Some(&junk), &agent(&alice)).unwrap_err();
        assert!(e.contains("not an invite"), "{e}");
        let e = check_invite_signature(&invite(&alice, &task, &agent(&alice)), &agent(&alice))
            .unwrap_err();
        assert!(e.contains("cannot invite itself"), "{e}");
    }

    #[test]
    fn invites_and_memberships_cannot_predate_their_task() {
        let created = Timestamp::from_micros(5_000_000);
        assert_eq!(check_not_before_task("invite", created, created), Ok(()));
        let e = check_not_before_task("membership", Timestamp::from_micros(4_000_000), created)
            .unwrap_err();
        assert_eq!(
            e,
            "membership: dated 4000000 us, before its task was created at 5000000 us"
        );
    }

    #[test]
    fn invite_use_and_standing() {
        let (author, alice, bob) = (
            SigningKey::from_bytes(&[1; 32]),
            SigningKey::from_bytes(&[2; 32]),
            SigningKey::from_bytes(&[3; 32]),
        );
        let task = ActionHash::from_raw_36(vec![7; 36]);
        let i = invite(&author, &task, &agent(&alice));
        let m = Membership {
            task: task.clone(),
            invite: Some(ActionHash::from_raw_36(vec![8; 36])),
        };
        assert_eq!(check_invite_use(&i, &m, &agent(&alice)), Ok(()));
        assert!(check_invite_use(&i, &m, &agent(&bob))
            .unwrap_err()
            .contains("bound to"));
        let other = Membership {
            task: ActionHash::from_raw_36(vec![9; 36]),
            ..m
        };
        assert!(check_invite_use(&i, &other, &agent(&alice))
            .unwrap_err()
            .contains("another task"));

        let aggregate = |rep: u32| RoundAggregate {
            task: task.clone(),
            round: 2,
            base: task.clone(),
            outcomes: vec![],
            model: vec![],
            reputation: vec![crate::ReputationEntry {
                agent: agent(&alice),
                reputation: Reputation(rep),
                missed: 0,
                anchor: Vec::new(),
            }],
            deadline: Timestamp::from_micros(0),
            endorsed: false,
        };
        let min = Reputation::from_f64(0.6);
        assert_eq!(
            check_standing(&i, &agent(&alice), &aggregate(700_000), min),
            Ok(())
        );
        let e = check_standing(&i, &agent(&alice), &aggregate(500_000), min).unwrap_err();
        assert!(e.contains("below the task's bar"), "{e}");
        let e = check_standing(&i, &agent(&bob), &aggregate(700_000), min).unwrap_err();
        assert!(
            e.contains("is not in the reputation table after round 2"),
            "{e}"
        );
    }
}
