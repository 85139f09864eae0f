//! Evaluations of each round's global model, published by participants.

use federated_learning_integrity::{EntryTypes, LinkTypes, ModelEvaluation, RoundAggregate};
use hdk::prelude::*;

use crate::membership::own_membership;
use crate::{fail, linked_entries};

/// One participant's evaluation of a round's model.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct EvaluationInfo {
    /// The evaluation's action.
    pub hash: ActionHash,
    /// Who measured.
    pub author: AgentPubKey,
    /// The measurement.
    pub evaluation: ModelEvaluation,
}

/// Publishes the caller's evaluation of a round's model on its own held-out data.
#[hdk_extern]
pub fn publish_evaluation(mut evaluation: ModelEvaluation) -> ExternResult<ActionHash> {
    let record = get(evaluation.aggregate.clone(), GetOptions::default())?
        .ok_or_else(|| fail(format!("aggregate {} not found", evaluation.aggregate)))?;
    let aggregate = RoundAggregate::try_from(record)
        .map_err(|_| fail(format!("{} is not a round aggregate", evaluation.aggregate)))?;
    if evaluation.membership.is_none() {
        evaluation.membership = own_membership(&aggregate.task)?;
    }
    let hash = create_entry(EntryTypes::ModelEvaluation(evaluation.clone()))?;
    create_link(
        evaluation.aggregate.clone(),
        hash.clone(),
        LinkTypes::AggregateToEvaluations,
        (),
    )?;
    Ok(hash)
}

/// The evaluations of an aggregate's model, one per author (its first), ordered by author.
#[hdk_extern]
pub fn get_evaluations(aggregate: ActionHash) -> ExternResult<Vec<EvaluationInfo>> {
    let mut links = get_links(
        LinkQuery::try_new(aggregate, LinkTypes::AggregateToEvaluations)?,
        GetStrategy::Network,
    )?;
    links.sort_by_key(|l| (l.author.clone(), l.timestamp));
    links.dedup_by(|b, a| a.author == b.author);
    Ok(linked_entries::<ModelEvaluation>(links)?
        .into_iter()
        .map(|(hash, author, evaluation)| EvaluationInfo {
            hash,
            author,
            evaluation,
        })
        .collect())
}
