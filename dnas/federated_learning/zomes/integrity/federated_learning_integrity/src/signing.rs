//! Canonical byte encodings that submissions, proofs and device registrations sign, and
//! ed25519 verification. Pure: callable natively (tests, fuzzing, clients that sign with
//! their own device keys) and inside validation.
//!
//! A message is its domain string followed by the SHA-256 digest of its fields (hashes as
//! their 39-byte form, integers little-endian, floats as their IEEE bits, variable-length
//! fields prefixed by their length). The domain keeps a signature over one kind of message
//! from being replayed as another; the digest keeps the signed message short whatever the
//! update's size (the conductor's keystore signs at most 8 KiB per request).

use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

/// Domain of an update submission's signature.
pub const UPDATE_DOMAIN: &[u8] = b"mycelix-fl/update/v1";
/// Domain of a PoGQ proof's signature.
pub const PROOF_DOMAIN: &[u8] = b"mycelix-fl/pogq-proof/v1";
/// Domain of a device registration's proof of possession.
pub const DEVICE_DOMAIN: &[u8] = b"mycelix-fl/device/v1";
/// Domain of an invite into a closed task.
pub const INVITE_DOMAIN: &[u8] = b"mycelix-fl/invite/v1";

/// The fields of an update submission that are signed, as raw bytes.
pub struct UpdateFields<'a> {
    /// Task action hash, 39 bytes.
    pub task: &'a [u8],
    /// Round number.
    pub round: u32,
    /// Base (task or previous aggregate) action hash, 39 bytes.
    pub base: &'a [u8],
    /// Encoded update.
    pub update: &'a [u8],
    /// Sample count.
    pub samples: u32,
    /// Signer: `None` for the agent key, or the device registration's action hash.
    pub device_registration: Option<&'a [u8]>,
}

/// `domain || SHA-256(body)`.
fn message(domain: &[u8], body: &[u8]) -> Vec<u8> {
    let mut m = domain.to_vec();
    m.extend_from_slice(&Sha256::digest(body));
    m
}

/// The bytes an update submission's signature covers.
pub fn update_message(f: &UpdateFields<'_>) -> Vec<u8> {
    let mut m = Vec::with_capacity(f.update.len() + 140);
    push_bytes(&mut m, f.task);
    m.extend_from_slice(&f.round.to_le_bytes());
    push_bytes(&mut m, f.base);
    m.extend_from_slice(&f.samples.to_le_bytes());
    match f.device_registration {
        None => m.push(0),
        Some(r) => {
            m.push(1);
            push_bytes(&mut m, r);
        }
    }
    push_bytes(&mut m, f.update);
    message(UPDATE_DOMAIN, &m)
}

/// The bytes a PoGQ proof's signature covers. The proof binds to its submission through
/// the submission's signature, which a device can sign over before anything is committed.
pub fn proof_message(
    submission_signature: &[u8],
    loss_before: f64,
    loss_after: f64,
    samples: u32,
) -> Vec<u8> {
    let mut m = Vec::with_capacity(100);
    push_bytes(&mut m, submission_signature);
    m.extend_from_slice(&loss_before.to_bits().to_le_bytes());
    m.extend_from_slice(&loss_after.to_bits().to_le_bytes());
    m.extend_from_slice(&samples.to_le_bytes());
    message(PROOF_DOMAIN, &m)
}

/// The bytes a device key signs to prove it belongs to `agent` (39-byte agent key).
pub fn device_message(agent: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(48);
    push_bytes(&mut m, agent);
    message(DEVICE_DOMAIN, &m)
}

/// The bytes an inviter signs to invite `invitee` (39-byte agent key) into `task`
/// (39-byte action hash).
pub fn invite_message(task: &[u8], invitee: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(96);
    push_bytes(&mut m, task);
    push_bytes(&mut m, invitee);
    message(INVITE_DOMAIN, &m)
}

fn push_bytes(m: &mut Vec<u8>, b: &[u8]) {
    m.extend_from_slice(&(b.len() as u64).to_le_bytes());
    m.extend_from_slice(b);
}

/// Verifies an ed25519 signature with `verify_strict` (no small-order keys, no
/// non-canonical encodings, so one message has no second valid signature by a weak key);
/// the error says what was wrong.
pub fn verify_ed25519(key: &[u8], signature: &[u8], message: &[u8]) -> Result<(), String> {
    let key: [u8; 32] = key
        .try_into()
        .map_err(|_| format!("signing key has {} bytes, expected 32", key.len()))?;
    let signature: [u8; 64] = signature
        .try_into()
        .map_err(|_| format!("signature has {} bytes, expected 64", signature.len()))?;
    let key = VerifyingKey::from_bytes(&key)
        .map_err(|_| "signing key is not a valid ed25519 point".to_string())?;
    key.verify_strict(message, &Signature::from_bytes(&signature))
        .map_err(|_| "signature does not verify against the signing key".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey, Verifier};

    #[test]
    fn messages_differ_by_domain_and_field() {
        let f = UpdateFields {
            task: &[1; 39],
            round: 3,
            base: &[2; 39],
            update: &[9, 9],
            samples: 10,
            device_registration: None,
        };
        let a = update_message(&f);
        let b = update_message(&UpdateFields { round: 4, ..f });
        assert_ne!(a, b);
        assert!(a.starts_with(UPDATE_DOMAIN));
        assert_eq!(a.len(), UPDATE_DOMAIN.len() + 32);
        let big = update_message(&UpdateFields {
            update: &[0; 100_000],
            ..f
        });
        assert_eq!(big.len(), UPDATE_DOMAIN.len() + 32);
        assert_ne!(
            proof_message(&[1; 64], 1.0, 0.5, 3),
            proof_message(&[1; 64], 1.0, 0.5, 4)
        );
    }

    #[test]
    fn verifies_good_and_rejects_bad_signatures() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let msg = device_message(&[3; 39]);
        let sig = key.sign(&msg).to_bytes();
        let vk = key.verifying_key().to_bytes();
        assert_eq!(verify_ed25519(&vk, &sig, &msg), Ok(()));
        let mut other = msg.clone();
        other.push(0);
        assert!(verify_ed25519(&vk, &sig, &other)
            .unwrap_err()
            .contains("does not verify"));
        assert!(verify_ed25519(&vk[..31], &sig, &msg)
            .unwrap_err()
            .contains("32"));
        assert!(verify_ed25519(&vk, &sig[..63], &msg)
            .unwrap_err()
            .contains("64"));
    }

    #[test]
    fn a_small_order_key_signs_nothing() {
        // The identity point as a key with R = identity and s = 0 satisfies the plain
        // equation [s]B = R + [k]A for every message; verify_strict refuses the weak key.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut sig = [0u8; 64];
        sig[0] = 1;
        let msg = device_message(&[3; 39]);
        let plain = VerifyingKey::from_bytes(&identity).unwrap();
        assert!(plain.verify(&msg, &Signature::from_bytes(&sig)).is_ok());
        assert!(verify_ed25519(&identity, &sig, &msg)
            .unwrap_err()
            .contains("does not verify"));
    }
}
