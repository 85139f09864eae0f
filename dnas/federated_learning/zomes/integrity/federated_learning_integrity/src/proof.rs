//! Proof of Gradient Quality: the submitter's own measurement of its update.

use fl_core::PogqMeasurement;
use hdi::prelude::*;

use crate::chain::{earlier_entry, typed_record};
use crate::gradient::{signer_key, GradientSubmission};
use crate::signing::{proof_message, verify_ed25519};
use crate::UnitEntryTypes;

/// The loss of the base model on the submitter's data before and after applying its update
/// with the task's probe learning rate, bound to the submission (its action, and in the
/// signature its signature) and signed by the same key.
#[hdk_entry_helper]
#[derive(Clone, PartialEq)]
pub struct PogqProof {
    /// The submission measured.
    pub submission: ActionHash,
    /// Loss before applying the update.
    pub loss_before: f64,
    /// Loss after applying it with the probe learning rate.
    pub loss_after: f64,
    /// Examples measured on.
    pub samples: u32,
    /// Signature by the submission's signer over [`proof_message`].
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

impl PogqProof {
    /// The measurement as fl_core scores it.
    pub fn measurement(&self) -> PogqMeasurement {
        PogqMeasurement {
            loss_before: self.loss_before,
            loss_after: self.loss_after,
            samples: self.samples,
        }
    }

    /// The bytes the signature covers, given the submission's signature.
    pub fn signing_bytes(&self, submission_signature: &[u8]) -> Vec<u8> {
        proof_message(
            submission_signature,
            self.loss_before,
            self.loss_after,
            self.samples,
        )
    }
}

/// The measurement alone must be scorable: finite non-negative losses and at least one
/// example. Pure.
pub fn check_proof_fields(p: &PogqProof) -> Result<(), String> {
    p.measurement()
        .score()
        .map(|_| ())
        .map_err(|e| format!("PoGQ proof: {e}"))
}

/// The signature must verify against `signer_key` (the key that signed `submission`) over
/// [`PogqProof::signing_bytes`] of the submission's signature. Pure.
pub fn check_proof_signature(
    p: &PogqProof,
    submission: &GradientSubmission,
    signer_key: &[u8],
) -> Result<(), String> {
    verify_ed25519(
        signer_key,
        &p.signature,
        &p.signing_bytes(&submission.signature),
    )
    .map_err(|e| format!("PoGQ proof: bad signature: {e}"))
}

/// Every rule of a proof that needs no look-up, given its submission and the key that
/// signed it: [`check_proof_fields`], then [`check_proof_signature`], as validation runs
/// them.
pub fn check_proof(
    p: &PogqProof,
    submission: &GradientSubmission,
    signer_key: &[u8],
) -> Result<(), String> {
    check_proof_fields(p)?;
    check_proof_signature(p, submission, signer_key)
}

/// A proof must bind to a gradient submission by the same author, carry finite
/// non-negative losses, be signed by the submission's signer, and be the only proof of
/// that submission.
pub fn validate_create_proof(p: &PogqProof, action: &Create) -> ExternResult<Result<(), String>> {
    let (record, submission) =
        match typed_record::<GradientSubmission>(&p.submission, "GradientSubmission")? {
            Ok(s) => s,
            Err(e) => {
                return Ok(Err(format!(
                    "PoGQ proof does not bind to a submission: {e}"
                )))
            }
        };
    if record.action().author() != &action.author {
        return Ok(Err(format!(
            "PoGQ proof is written by {} but the submission is by {}",
            action.author,
            record.action().author()
        )));
    }
    if let Err(e) = check_proof_fields(p) {
        return Ok(Err(e));
    }
    let key = match signer_key(&submission.signer, &action.author)? {
        Ok(k) => k,
        Err(e) => return Ok(Err(format!("PoGQ proof: {e}"))),
    };
    if let Err(e) = check_proof_signature(p, &submission, &key) {
        return Ok(Err(e));
    }
    let since = record.action().timestamp();
    if action.timestamp < since {
        return Ok(Err("PoGQ proof is dated before its submission".into()));
    }
    let earlier = earlier_entry::<PogqProof>(
        &action.author,
        &action.prev_action,
        since,
        UnitEntryTypes::PogqProof,
        |other| other.submission == p.submission,
    )?;
    if let Some(first) = earlier {
        return Ok(Err(format!(
            "PoGQ proof: the submission already has a proof ({first})"
        )));
    }
    Ok(Ok(()))
}
