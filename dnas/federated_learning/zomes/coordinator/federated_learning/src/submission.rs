//! Publishing updates with their PoGQ proofs.

use federated_learning_integrity::rejection::Code;
use federated_learning_integrity::{EntryTypes, LinkTypes, PogqProof, Signer, UpdateSubmission};
use hdk::prelude::*;

use crate::fail;
use crate::membership::own_membership;
use crate::round::round_base;

/// An update to sign with the agent key and publish, with its PoGQ measurement.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct SubmitUpdate {
    /// Task.
    pub task: ActionHash,
    /// Round (must be the open one).
    pub round: u32,
    /// The encoded update (task's encoding).
    #[serde(with = "serde_bytes")]
    pub update: Vec<u8>,
    /// Training examples behind it.
    pub samples: u32,
    /// Loss before applying the update (PoGQ).
    pub loss_before: f64,
    /// Loss after applying it with the probe learning rate.
    pub loss_after: f64,
    /// Examples the losses were measured on.
    pub proof_samples: u32,
}

/// An update and its proof already signed by a registered device.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct SignedSubmission {
    /// The submission (signer: the device), its proof signed over its signature.
    pub submission: UpdateSubmission,
}

/// The published entry.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Submitted {
    /// The submission (its proof inside).
    pub submission: ActionHash,
}

/// Signs `input` with the agent key and publishes it with its proof (citing the caller's
/// membership of the task, which a closed task requires: see [`crate::join_task`]).
#[hdk_extern]
pub fn submit_update(input: SubmitUpdate) -> ExternResult<Submitted> {
    let me = agent_info()?.agent_initial_pubkey;
    let base = round_base(&input.task, input.round)?.ok_or_else(|| {
        fail(Code::NotYet.reject(format!("round {} is not open yet", input.round)))
    })?;
    let mut submission = UpdateSubmission {
        task: input.task,
        round: input.round,
        base,
        update: input.update,
        samples: input.samples,
        signer: Signer::Agent,
        signature: Vec::new(),
        proof: PogqProof {
            loss_before: input.loss_before,
            loss_after: input.loss_after,
            samples: input.proof_samples,
            signature: Vec::new(),
        },
        membership: None,
    };
    submission.signature = sign_raw(me.clone(), submission.signing_bytes())?.0.to_vec();
    submission.proof.signature =
        sign_raw(me, submission.proof.signing_bytes(&submission.signature))?
            .0
            .to_vec();
    publish(submission)
}

/// A published submission, update bytes included (committee members re-score it).
#[hdk_extern]
pub fn get_submission(hash: ActionHash) -> ExternResult<UpdateSubmission> {
    let record = get(hash.clone(), GetOptions::default())?
        .ok_or_else(|| fail(format!("submission {hash} not found")))?;
    UpdateSubmission::try_from(record)
        .map_err(|_| fail(format!("{hash} is not an update submission")))
}

/// Publishes an update and proof signed by one of the caller's registered devices.
#[hdk_extern]
pub fn submit_signed(input: SignedSubmission) -> ExternResult<Submitted> {
    publish(input.submission)
}

fn publish(mut submission: UpdateSubmission) -> ExternResult<Submitted> {
    if submission.membership.is_none() {
        submission.membership = own_membership(&submission.task)?;
    }
    let base = submission.base.clone();
    let hash = create_entry(EntryTypes::UpdateSubmission(submission))?;
    create_link(
        base.clone(),
        hash.clone(),
        LinkTypes::RoundToSubmissions,
        (),
    )?;
    Ok(Submitted { submission: hash })
}
