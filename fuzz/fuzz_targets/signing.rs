//! The canonical signing encodings (`federated_learning_integrity::signing`) and ed25519
//! verification on structured input: equal messages only for equal fields (the length
//! prefixes leave no ambiguity), fixed message length, verification of arbitrary keys and
//! signatures without panicking, and a signature that verifies only for its own message.
#![no_main]

use arbitrary::Arbitrary;
use ed25519_dalek::{Signer, SigningKey};
use federated_learning_integrity::signing::{
    device_message, update_message, proof_message, verify_ed25519, UpdateFields, DEVICE_DOMAIN,
    UPDATE_DOMAIN, PROOF_DOMAIN,
};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug, PartialEq)]
struct Fields<'a> {
    task: &'a [u8],
    round: u32,
    base: &'a [u8],
    update: &'a [u8],
    samples: u32,
    device_registration: Option<&'a [u8]>,
}

impl<'a> Fields<'a> {
    fn message(&self) -> Vec<u8> {
        update_message(&UpdateFields {
            task: self.task,
            round: self.round,
            base: self.base,
            update: self.update,
            samples: self.samples,
            device_registration: self.device_registration,
        })
    }
}

/// A proof's fields with the losses as their bits (what the message encodes).
fn bits(p: (&[u8], f64, f64, u32)) -> (&[u8], u64, u64, u32) {
    (p.0, p.1.to_bits(), p.2.to_bits(), p.3)
}

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    a: Fields<'a>,
    b: Fields<'a>,
    proof_a: (&'a [u8], f64, f64, u32),
    proof_b: (&'a [u8], f64, f64, u32),
    agent_a: &'a [u8],
    agent_b: &'a [u8],
    seed: [u8; 32],
    key: &'a [u8],
    signature: &'a [u8],
    flip: u16,
}

fuzz_target!(|input: Input<'_>| {
    let (ga, gb) = (input.a.message(), input.b.message());
    assert!(ga.starts_with(UPDATE_DOMAIN) && ga.len() == UPDATE_DOMAIN.len() + 32);
    assert_eq!(ga == gb, input.a == input.b, "update messages collide");

    let proof = |(sig, before, after, samples): (&[u8], f64, f64, u32)| {
        proof_message(sig, before, after, samples)
    };
    let (pa, pb) = (proof(input.proof_a), proof(input.proof_b));
    assert!(pa.starts_with(PROOF_DOMAIN) && pa.len() == PROOF_DOMAIN.len() + 32);
    assert_eq!(pa == pb, bits(input.proof_a) == bits(input.proof_b));

    let (da, db) = (device_message(input.agent_a), device_message(input.agent_b));
    assert!(da.starts_with(DEVICE_DOMAIN) && da.len() == DEVICE_DOMAIN.len() + 32);
    assert_eq!(da == db, input.agent_a == input.agent_b);

    // Arbitrary keys and signatures: errors, never panics.
    let _ = verify_ed25519(input.key, input.signature, &ga);

    let key = SigningKey::from_bytes(&input.seed);
    let public = key.verifying_key().to_bytes();
    let sig = key.sign(&ga).to_bytes();
    assert_eq!(verify_ed25519(&public, &sig, &ga), Ok(()));
    if ga != gb {
        assert!(verify_ed25519(&public, &sig, &gb).is_err());
    }
    let mut flipped = ga.clone();
    let i = usize::from(input.flip) % flipped.len();
    flipped[i] ^= 1 << (input.flip % 8);
    assert!(verify_ed25519(&public, &sig, &flipped).is_err());
    let mut bad = sig;
    bad[i % 64] ^= 1 << (input.flip % 8);
    assert!(verify_ed25519(&public, &bad, &ga).is_err());
});
