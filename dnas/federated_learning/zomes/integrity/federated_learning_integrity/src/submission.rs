//! Signed model updates.

use hdi::prelude::*;

use crate::committee::{round_context, RoundContext};
use crate::entries::{DeviceRegistration, Signer, Task, UnitEntryTypes, UpdateSubmission};
use crate::lookup::{earlier_entry, typed_record};
use crate::membership::check_member;
use crate::proof::check_proof;
use crate::rejection::Code;
use crate::schedule::check_dated_coded;
use crate::signing::verify_ed25519;
use crate::task::decode_model;

/// The public key that must have signed, for a submission authored by `author`.
pub fn signer_key(signer: &Signer, author: &AgentPubKey) -> ExternResult<Result<Vec<u8>, String>> {
    match signer {
        Signer::Agent => Ok(Ok(author.get_raw_32().to_vec())),
        Signer::Device { registration } => {
            let (record, device) =
                match typed_record::<DeviceRegistration>(registration, "DeviceRegistration")? {
                    Ok(d) => d,
                    Err(_) => {
                        return Ok(Err(format!(
                        "device key is not registered: {registration} is not a device registration"
                    )))
                    }
                };
            if record.action().author() != author {
                return Ok(Err(format!(
                    "device key is not registered to {author}: registration {registration} belongs to {}",
                    record.action().author()
                )));
            }
            Ok(Ok(device.device_key))
        }
    }
}

/// The update must decode as a model of `task` (the task's encoding, exactly `model_len`
/// finite values) and its Euclidean norm must not exceed the task's `max_update_norm`
/// (norm bounding: no update can outweigh honest ones by size, and the distance math of
/// every validator stays far from `f32` overflow). Pure.
pub fn check_update(g: &UpdateSubmission, task: &Task) -> Result<(), String> {
    let update =
        decode_model(task, &g.update).map_err(|e| format!("update submission: update {e}"))?;
    let norm = fl_core::aggregate::distance::l2_norm(update.as_slice());
    let bound = task.round.max_update_norm;
    if norm > f64::from(bound) {
        return Err(format!(
            "update submission: update norm {norm:.6e} exceeds the task's norm bound {bound:e}"
        ));
    }
    Ok(())
}

/// The signature must verify against `signer_key` (the 32-byte ed25519 key that
/// [`signer_key`] names) over [`UpdateSubmission::signing_bytes`]. Pure.
pub fn check_signature(g: &UpdateSubmission, signer_key: &[u8]) -> Result<(), String> {
    verify_ed25519(signer_key, &g.signature, &g.signing_bytes())
        .map_err(|e| format!("update submission: bad signature: {e}"))
}

/// Every rule of a submission that needs no look-up, given its task and the key that must
/// have signed: [`check_update`], [`check_signature`], then [`check_proof`] of its PoGQ
/// proof, as validation runs them.
pub fn check_submission(
    g: &UpdateSubmission,
    task: &Task,
    signer_key: &[u8],
) -> Result<(), String> {
    check_update(g, task)?;
    check_signature(g, signer_key)?;
    check_proof(&g.proof, g, signer_key)
}

/// A newcomer (an agent not in the base aggregate's reputation table) may not submit once
/// that table holds the task's participant bound: the table, and so every aggregate, stays
/// within the entry size limit ([`crate::task::check_capacity`]). Pure.
pub fn check_room(ctx: &RoundContext, author: &AgentPubKey) -> Result<(), String> {
    let Some(previous) = &ctx.previous else {
        return Ok(());
    };
    let bound = ctx.task.round.max_participants as usize;
    let known = previous
        .reputation
        .binary_search_by(|e| e.agent.cmp(author))
        .is_ok();
    if known || previous.reputation.len() < bound {
        return Ok(());
    }
    Err(format!(
        "update submission: the task is full: the reputation table after round {} holds {} agents, the task's participant bound, and {author} is not among them",
        previous.round,
        previous.reputation.len()
    ))
}

/// A submission must decode to the task's model size in the task's encoding with finite
/// values, carry a valid signature by the author or its registered device and a scorable
/// PoGQ proof signed by the same key, target the open round with the right base, come from
/// a member when the task is closed, find room in a full table (newcomers), be dated in the round's submission window, and be the
/// author's only one in that round.
pub fn validate_create_submission(
    g: &UpdateSubmission,
    action: &Create,
) -> ExternResult<Result<(), String>> {
    let ctx = match round_context(&g.task, g.round, &g.base)? {
        Ok(c) => c,
        Err(e) => return Ok(Err(Code::Base.reject(format!("update submission: {e}")))),
    };
    if let Err(e) = check_update(g, &ctx.task) {
        return Ok(Err(Code::Malformed.reject(e)));
    }
    if let Err(e) = check_room(&ctx, &action.author) {
        return Ok(Err(Code::Full.reject(e)));
    }
    if let Err(e) = check_member(
        &g.task,
        &ctx.task,
        &ctx.task_author,
        &action.author,
        g.membership.as_ref(),
        "update submission",
    )? {
        return Ok(Err(Code::Admission.reject(e)));
    }
    let key = match signer_key(&g.signer, &action.author)? {
        Ok(k) => k,
        Err(e) => {
            return Ok(Err(
                Code::Signature.reject(format!("update submission: {e}"))
            ))
        }
    };
    if let Err(e) = check_signature(g, &key) {
        return Ok(Err(Code::Signature.reject(e)));
    }
    if let Err(e) = check_proof(&g.proof, g, &key) {
        return Ok(Err(Code::Proof.reject(e)));
    }
    if let Err(e) = check_dated_coded(
        "update submission",
        g.round,
        action.timestamp,
        ctx.opened_at,
        ctx.task.schedule.submissions_close(ctx.opened_at),
    ) {
        return Ok(Err(e));
    }
    let earlier = earlier_entry::<UpdateSubmission>(
        &action.author,
        &action.prev_action,
        ctx.opened_at,
        UnitEntryTypes::UpdateSubmission,
        |other| other.task == g.task && other.round == g.round && other.base == g.base,
    )?;
    if let Some(first) = earlier {
        return Ok(Err(Code::Duplicate.reject(format!(
            "update submission: the agent already submitted for round {} ({first})",
            g.round
        ))));
    }
    Ok(Ok(()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::entries::*;
    use fl_core::aggregate::Rule;
    use fl_core::{Encoding, RoundParams, Tensor};

    fn task(bound: f32) -> Task {
        let mut round = RoundParams::new(Rule::Median, 0);
        round.max_update_norm = bound;
        Task {
            name: "t".into(),
            description: String::new(),
            model_len: 2,
            spec: crate::task::fixture_spec(2),
            encoding: Encoding::F32,
            round,
            committee_size: 3,
            quorum: 1,
            schedule: Default::default(),
            initial_model: Tensor::new(vec![0.0; 2]).unwrap().canonical_bytes(),
            admission: Default::default(),
        }
    }

    /// A submission of `update` with a passing proof and no signature (tests of pure rules).
    pub(crate) fn submission(update: Vec<f32>) -> UpdateSubmission {
        let hash = ActionHash::from_raw_36(vec![1; 36]);
        UpdateSubmission {
            task: hash.clone(),
            round: 0,
            base: hash,
            update: Tensor::new(update).unwrap().canonical_bytes(),
            samples: 1,
            signer: Signer::Agent,
            signature: Vec::new(),
            proof: PogqProof {
                loss_before: 1.0,
                loss_after: 0.9,
                samples: 1,
                signature: Vec::new(),
            },
            membership: None,
        }
    }

    #[test]
    fn rejects_updates_above_the_task_norm_bound() {
        assert_eq!(
            check_update(&submission(vec![3.0, 4.0]), &task(5.0)),
            Ok(())
        );
        assert_eq!(
            check_update(&submission(vec![3.0, 4.0]), &task(4.5)).unwrap_err(),
            "update submission: update norm 5.000000e0 exceeds the task's norm bound 4.5e0"
        );
        let e = check_update(&submission(vec![f32::MAX, -f32::MAX]), &task(1e12)).unwrap_err();
        assert!(e.contains("exceeds the task's norm bound"), "{e}");
    }
}
