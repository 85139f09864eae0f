//! Proof of Gradient Quality: the submitter's own measurement of its update, carried in
//! the submission.

use fl_core::PogqMeasurement;
use hdi::prelude::*;

use crate::gradient::GradientSubmission;
use crate::signing::{proof_message, verify_ed25519};

/// The loss of the base model on the submitter's data before and after applying its update
/// with the task's probe learning rate. It travels inside its [`GradientSubmission`] (one
/// entry, so no validator ever waits for a proof published apart from its update), signed
/// by the submission's signer over [`proof_message`] of the submission's own signature.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct PogqProof {
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
