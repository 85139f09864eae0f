//! Proof of Gradient Quality: the submitter's own measurement of its update, carried in
//! the submission.

use crate::entries::{PogqProof, UpdateSubmission};
use crate::signing::verify_ed25519;

/// The measurement alone must be scorable: finite non-negative losses and at least one
/// example. Pure.
pub fn check_proof_fields(p: &PogqProof) -> Result<(), String> {
    p.measurement()
        .check()
        .map_err(|e| format!("PoGQ proof: {e}"))
}

/// The signature must verify against `signer_key` (the key that signed `submission`) over
/// [`PogqProof::signing_bytes`] of the submission's signature. Pure.
pub fn check_proof_signature(
    p: &PogqProof,
    submission: &UpdateSubmission,
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
    submission: &UpdateSubmission,
    signer_key: &[u8],
) -> Result<(), String> {
    check_proof_fields(p)?;
    check_proof_signature(p, submission, signer_key)
}
