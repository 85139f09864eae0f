//! Edge-device keys bound to an agent.

use hdi::prelude::*;

use crate::signing::{device_message, verify_ed25519};

/// An ed25519 key of an edge device that does not run a conductor; the registering agent
/// submits on its behalf, and submissions signed by the key count as the agent's.
#[hdk_entry_helper]
#[derive(Clone, PartialEq)]
pub struct DeviceRegistration {
    /// The device's ed25519 public key (32 bytes).
    #[serde(with = "serde_bytes")]
    pub device_key: Vec<u8>,
    /// Human label.
    pub label: String,
    /// The device key's signature over [`device_message`] of the registering agent: proof
    /// that whoever registers the key holds it.
    #[serde(with = "serde_bytes")]
    pub possession: Vec<u8>,
}

/// The key must be a valid ed25519 key and must have signed the author's agent key.
pub fn validate_create_device(d: &DeviceRegistration, action: &Create) -> Result<(), String> {
    check_device(d, action.author.get_raw_39())
}

/// The rules of [`validate_create_device`] for a registration by `agent` (its 39-byte
/// key): a label of at most 200 bytes and a proof of possession that verifies. Pure.
pub fn check_device(d: &DeviceRegistration, agent: &[u8]) -> Result<(), String> {
    if d.label.len() > 200 {
        return Err("device label is longer than 200 bytes".into());
    }
    verify_ed25519(&d.device_key, &d.possession, &device_message(agent))
        .map_err(|e| format!("device registration: proof of possession is invalid: {e}"))
}
