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
    if let Err(e) = p.measurement().score() {
        return Ok(Err(format!("PoGQ proof: {e}")));
    }
    let key = match signer_key(&submission.signer, &action.author)? {
        Ok(k) => k,
        Err(e) => return Ok(Err(format!("PoGQ proof: {e}"))),
    };
    if let Err(e) = verify_ed25519(&key, &p.signature, &p.signing_bytes(&submission.signature)) {
        return Ok(Err(format!("PoGQ proof: bad signature: {e}")));
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
