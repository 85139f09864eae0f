//! Link validation: every link's target must be the entry its type names, related to the
//! base as the type says, and created by the target's author.

use hdi::prelude::*;

use crate::entries::{
    CommitteeBallot, DeviceRegistration, Invite, LinkTypes, Membership, ModelEvaluation,
    RoundAggregate, Task, UpdateSubmission,
};
use crate::lookup::typed_action;
use crate::rejection::Code;

/// Checks a new link of any type.
pub fn validate_create_link(
    link_type: LinkTypes,
    base: &AnyLinkableHash,
    target: &AnyLinkableHash,
    tag: &LinkTag,
    action: &CreateLink,
) -> ExternResult<ValidateCallbackResult> {
    if let LinkTypes::AllAgents = link_type {
        return Ok(match target.clone().into_agent_pub_key() {
            Some(agent) if agent == action.author => ValidateCallbackResult::Valid,
            _ => ValidateCallbackResult::Invalid(
                Code::Link.reject("AllAgents link: an agent lists only its own key"),
            ),
        });
    }
    let Some(target_hash) = target.clone().into_action_hash() else {
        return Ok(ValidateCallbackResult::Invalid(Code::Link.reject(format!(
            "{link_type:?} link must point to an action hash"
        ))));
    };
    let author = &action.author;
    let base_action = base.clone().into_action_hash();
    let base_agent = base.clone().into_agent_pub_key();
    let result: Result<(), String> = match link_type {
        LinkTypes::AllTasks => target_of::<Task>(&target_hash, "Task", author)?.map(|_| ()),
        LinkTypes::TaskToAggregates => {
            match target_of::<RoundAggregate>(&target_hash, "RoundAggregate", author)? {
                Ok(a) if Some(&a.task) != base_action.as_ref() => {
                    Err("the aggregate belongs to another task".into())
                }
                Ok(a) if tag.0 != a.round.to_be_bytes() => Err(format!(
                    "the tag must be the aggregate's round {} as a big-endian u32",
                    a.round
                )),
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            }
        }
        LinkTypes::RoundToAggregate => {
            match target_of::<RoundAggregate>(&target_hash, "RoundAggregate", author)? {
                Ok(a) if Some(&a.base) == base_action.as_ref() => Ok(()),
                Ok(_) => Err("the aggregate closes another round".into()),
                Err(e) => Err(e),
            }
        }
        LinkTypes::RoundToSubmissions => {
            match target_of::<UpdateSubmission>(&target_hash, "UpdateSubmission", author)? {
                Ok(s) if Some(&s.base) == base_action.as_ref() => Ok(()),
                Ok(_) => Err("the submission belongs to another round".into()),
                Err(e) => Err(e),
            }
        }
        LinkTypes::RoundToBallots => {
            match target_of::<CommitteeBallot>(&target_hash, "CommitteeBallot", author)? {
                Ok(b) if Some(&b.base) == base_action.as_ref() => Ok(()),
                Ok(_) => Err("the ballot is for another round".into()),
                Err(e) => Err(e),
            }
        }
        LinkTypes::AgentToDevices => {
            if base_agent.as_ref() != Some(author) {
                Err("an agent links only its own devices".into())
            } else {
                target_of::<DeviceRegistration>(&target_hash, "DeviceRegistration", author)?
                    .map(|_| ())
            }
        }
        LinkTypes::AllAgents => Ok(()),
        LinkTypes::TaskToMembers => {
            match target_of::<Membership>(&target_hash, "Membership", author)? {
                Ok(m) if Some(&m.task) == base_action.as_ref() => Ok(()),
                Ok(_) => Err("the membership is of another task".into()),
                Err(e) => Err(e),
            }
        }
        LinkTypes::AgentToInvites => match target_of::<Invite>(&target_hash, "Invite", author)? {
            Ok(i) if Some(&i.invitee) == base_agent.as_ref() => Ok(()),
            Ok(_) => Err("the invite is for another agent".into()),
            Err(e) => Err(e),
        },
        LinkTypes::AggregateToEvaluations => {
            match target_of::<ModelEvaluation>(&target_hash, "ModelEvaluation", author)? {
                Ok(e) if Some(&e.aggregate) == base_action.as_ref() => Ok(()),
                Ok(_) => Err("the evaluation is of another aggregate's model".into()),
                Err(e) => Err(e),
            }
        }
    };
    Ok(match result {
        Ok(()) => ValidateCallbackResult::Valid,
        Err(e) => {
            ValidateCallbackResult::Invalid(Code::Link.reject(format!("{link_type:?} link: {e}")))
        }
    })
}

/// The link target decoded as `T` (validated here or not: its own authorities validate
/// it), which the link's author must have written.
fn target_of<T>(
    hash: &ActionHash,
    what: &str,
    author: &AgentPubKey,
) -> ExternResult<Result<T, String>>
where
    T: TryFrom<SerializedBytes, Error = SerializedBytesError>,
{
    Ok(match typed_action::<T>(hash, what)? {
        Ok((action, t)) if action.action().author() == author => Ok(t),
        Ok((action, _)) => Err(format!(
            "created by {author} but the target was written by {}",
            action.action().author()
        )),
        Err(e) => Err(format!("target {e}")),
    })
}
