//! Edge-device keys.

use federated_learning_integrity::{DeviceRegistration, EntryTypes, LinkTypes};
use hdk::prelude::*;

/// Registers a device key (with its proof of possession) to the calling agent.
#[hdk_extern]
pub fn register_device(registration: DeviceRegistration) -> ExternResult<ActionHash> {
    let hash = create_entry(EntryTypes::DeviceRegistration(registration))?;
    create_link(
        agent_info()?.agent_initial_pubkey,
        hash.clone(),
        LinkTypes::AgentToDevices,
        (),
    )?;
    Ok(hash)
}
