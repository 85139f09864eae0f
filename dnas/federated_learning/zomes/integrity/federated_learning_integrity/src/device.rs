//! Edge-device keys bound to an agent.

use hdi::prelude::*;

use crate::entries::DeviceRegistration;
use crate::rejection::Code;
use crate::signing::{device_message, verify_ed25519};

/// The key must be a valid ed25519 key and must have signed the author's agent key.
pub fn validate_create_device(d: &DeviceRegistration, action: &Create) -> Result<(), String> {
    check_device(d, action.author.get_raw_39()).map_err(|e| {
        let code = if d.label.len() > MAX_LABEL_LEN {
            Code::Malformed
        } else {
            Code::Signature
        };
        code.reject(e)
    })
}

/// Longest device label, in bytes.
pub const MAX_LABEL_LEN: usize = 200;

/// The rules of [`validate_create_device`] for a registration by `agent` (its 39-byte
/// key): a label of at most 200 bytes and a proof of possession that verifies. Pure.
pub fn check_device(d: &DeviceRegistration, agent: &[u8]) -> Result<(), String> {
    if d.label.len() > MAX_LABEL_LEN {
        return Err(format!("device label is longer than {MAX_LABEL_LEN} bytes"));
    }
    verify_ed25519(&d.device_key, &d.possession, &device_message(agent))
        .map_err(|e| format!("device registration: proof of possession is invalid: {e}"))
}
