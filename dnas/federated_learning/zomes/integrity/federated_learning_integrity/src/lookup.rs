//! Deterministic look-ups that several rules share: a record or action decoded as the
//! entry type a rule expects, and "no earlier entry like this in the author's chain".

use hdi::prelude::*;

use crate::entries::UnitEntryTypes;
use crate::wire::decode_entry;

/// A rule's outcome: `Err` carries the rejection message; host failures are the outer error.
pub type Check<T> = ExternResult<Result<T, String>>;

/// Fetches a valid record and decodes its entry as `T`; a record of another type is a
/// rejection naming `what`.
pub fn typed_record<T>(hash: &ActionHash, what: &str) -> Check<(Record, T)>
where
    T: TryFrom<SerializedBytes, Error = SerializedBytesError>,
{
    let record = must_get_valid_record(hash.clone())?;
    let decoded = record.entry().as_option().and_then(app_entry::<T>);
    Ok(match decoded {
        Some(t) => Ok((record, t)),
        None => Err(not_a(hash, what)),
    })
}

/// Fetches an action and its entry, validated or not, and decodes the entry as `T`; an
/// action of another type is a rejection naming `what`. Unlike [`typed_record`] this does
/// not wait for the record to be validated and integrated here: `must_get_action` and
/// `must_get_entry` read what the conductor holds, in validation limbo too. For rules
/// that look only at what the target says (a link's target fits its type), whose own
/// authorities validate the target; a link published with its target in one commit then
/// validates at once instead of waiting for the target's integration (holochain 0.6.3
/// retries ops that await a dependency only after 100 ms to 3 s).
pub fn typed_action<T>(hash: &ActionHash, what: &str) -> Check<(SignedActionHashed, T)>
where
    T: TryFrom<SerializedBytes, Error = SerializedBytesError>,
{
    let action = must_get_action(hash.clone())?;
    let decoded = match action.action().entry_hash() {
        Some(entry_hash) => app_entry::<T>(must_get_entry(entry_hash.clone())?.as_content()),
        None => None,
    };
    Ok(match decoded {
        Some(t) => Ok((action, t)),
        None => Err(not_a(hash, what)),
    })
}

/// An app entry decoded as `T`; `None` for any other entry or a failed decoding.
fn app_entry<T>(entry: &Entry) -> Option<T>
where
    T: TryFrom<SerializedBytes, Error = SerializedBytesError>,
{
    match entry {
        Entry::App(bytes) => decode_entry::<T>(SerializedBytes::from(bytes.clone())).ok(),
        _ => None,
    }
}

/// "`hash` is not a(n) `what`".
fn not_a(hash: &ActionHash, what: &str) -> String {
    let article = if what.starts_with(['A', 'E', 'I', 'O', 'U']) {
        "an"
    } else {
        "a"
    };
    format!("{hash} is not {article} {what}")
}

/// The first entry of type `unit` in `author`'s chain, from `chain_top` back to `since`,
/// for which `matches` holds (used for "one per agent per round" rules).
pub fn earlier_entry<T>(
    author: &AgentPubKey,
    chain_top: &ActionHash,
    since: Timestamp,
    unit: UnitEntryTypes,
    matches: impl Fn(&T) -> bool,
) -> ExternResult<Option<ActionHash>>
where
    T: TryFrom<SerializedBytes, Error = SerializedBytesError>,
{
    Ok(earlier_entries(author, chain_top, since, unit, matches, 1)?
        .into_iter()
        .next())
}

/// Up to `limit` entries of type `unit` in `author`'s chain, latest first, from
/// `chain_top` back to `since`, for which `matches` holds (used for "one per agent per
/// round" rules and per-agent quotas).
pub fn earlier_entries<T>(
    author: &AgentPubKey,
    chain_top: &ActionHash,
    since: Timestamp,
    unit: UnitEntryTypes,
    matches: impl Fn(&T) -> bool,
    limit: usize,
) -> ExternResult<Vec<ActionHash>>
where
    T: TryFrom<SerializedBytes, Error = SerializedBytesError>,
{
    let mut found = Vec::new();
    if limit == 0 {
        return Ok(found);
    }
    let wanted = ScopedEntryDefIndex::try_from(unit)?;
    // Nothing in range when the chain top predates `since`. Checking this first also
    // avoids a subtraction overflow in holochain 0.6.3's ChainFilter::until_timestamp,
    // which panics when the first action after the timestamp lies above the chain top.
    if must_get_action(chain_top.clone())?.action().timestamp() < since {
        return Ok(found);
    }
    let activity = must_get_agent_activity(
        author.clone(),
        ChainFilter::new(chain_top.clone())
            .until_timestamp(since)
            .include_cached_entries(),
    )?;
    for item in activity {
        let action = item.action.action();
        if action.timestamp() < since {
            break;
        }
        let Some((entry_hash, EntryType::App(def))) = action.entry_data() else {
            continue;
        };
        if def.zome_index != wanted.zome_index || def.entry_index != wanted.zome_type {
            continue;
        }
        let entry = match item.cached_entry {
            Some(e) => e,
            None => must_get_entry(entry_hash.clone())?.into_content(),
        };
        if app_entry::<T>(&entry).is_some_and(|t| matches(&t)) {
            found.push(item.action.as_hash().clone());
            if found.len() >= limit {
                break;
            }
        }
    }
    Ok(found)
}
