//! The data model: every entry and link type of the DNA, with what each entry holds.
//!
//! Nothing here validates. The rules live in one module per entry type (`task`, `device`,
//! `submission`, `proof`, `ballot`, `aggregate`, `evaluation`, `membership`, and `links` for
//! the link types), above the look-ups they share (`lookup`) and a round's context and
//! committee (`committee`). This module depends on none of them, so the rules form no
//! import cycle.

use fl_core::{Encoding, PogqMeasurement, Reputation, RoundParams, Verdict};
use hdi::prelude::*;

use crate::schedule::RoundSchedule;
use crate::signing::{proof_message, update_message, UpdateFields};

/// Every entry type of the DNA.
// Held by value as `hdk_entry_types` expects; one is decoded per op, so a task's few
// hundred bytes beside the smaller variants cost nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Serialize, Deserialize)]
#[serde(tag = "type")]
#[hdk_entry_types]
#[unit_enum(UnitEntryTypes)]
pub enum EntryTypes {
    /// A training job.
    Task(Task),
    /// An edge device's key bound to an agent.
    DeviceRegistration(DeviceRegistration),
    /// A signed model update for one round.
    UpdateSubmission(UpdateSubmission),
    /// The submitter's PoGQ measurement of its update.
    /// A committee member's re-scores of a round's submissions.
    CommitteeBallot(CommitteeBallot),
    /// The outcome of a round.
    RoundAggregate(RoundAggregate),
    /// A participant's measurement of a round's resulting model.
    ModelEvaluation(ModelEvaluation),
    /// An invitation of one agent into a closed task.
    Invite(Invite),
    /// An agent's admission into a task.
    Membership(Membership),
}

/// Every link type of the DNA.
#[derive(Serialize, Deserialize)]
#[hdk_link_types]
pub enum LinkTypes {
    /// `tasks` path -> task.
    AllTasks,
    /// Task -> each round's aggregate (tag: round, big-endian `u32`).
    TaskToAggregates,
    /// A round's base (the task for round 0, else the previous aggregate) -> submission.
    RoundToSubmissions,
    /// A round's base -> the aggregate that closes it.
    RoundToAggregate,
    /// A round's base -> the committee's ballots.
    RoundToBallots,
    /// Agent -> its device registrations.
    AgentToDevices,
    /// A round's aggregate -> evaluations of its model.
    AggregateToEvaluations,
    /// `agents` path -> an agent's own key: the directory peers announce new tasks to.
    AllAgents,
    /// Task -> each member's membership.
    TaskToMembers,
    /// Invitee's key -> the invites written for it.
    AgentToInvites,
}

/// Who may take part in a task.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Admission {
    /// Any agent of the network may submit, vote and evaluate: no sybil resistance beyond
    /// reputation. Shown as "open" wherever the task is shown.
    #[default]
    Open,
    /// Only the task's author and agents holding a `Membership` (from an `Invite`) may
    /// submit or evaluate, so only they enter the reputation table and the committee.
    Closed {
        /// Invites each member other than the task's author may write (the author's are
        /// unlimited).
        invites_per_member: u32,
        /// Reputation a member needs, in one of the task's aggregates, to invite.
        min_inviter_reputation: fl_core::Reputation,
    },
}

impl Admission {
    /// A closed task where each member may invite two agents once its reputation reaches
    /// 0.6 (three accepted rounds from the default initial 0.5).
    pub const CLOSED: Admission = Admission::Closed {
        invites_per_member: 2,
        min_inviter_reputation: fl_core::Reputation(600_000),
    };

    /// `"open"` or `"closed"`, as outputs label a task.
    pub fn label(&self) -> &'static str {
        match self {
            Admission::Open => "open",
            Admission::Closed { .. } => "closed",
        }
    }
}

/// A training job. Immutable: everything a round needs to be decided and validated.
#[hdk_entry_helper]
#[derive(Clone, PartialEq)]
pub struct Task {
    /// Short human name.
    pub name: String,
    /// Free text: data, model, goal.
    pub description: String,
    /// Number of model parameters; every update and model has exactly this many.
    pub model_len: u32,
    /// What to train: the model (whose parameter count is `model_len`), the data schema
    /// with its preprocessing, and the local training settings.
    pub spec: fl_core::TaskSpec,
    /// Encoding every update and global model must use.
    pub encoding: Encoding,
    /// Aggregator, PoGQ, reputation and server learning rate.
    pub round: RoundParams,
    /// Committee seats per round (from round 1 on; round 0 has no committee).
    pub committee_size: u32,
    /// Submissions a round needs before it may be aggregated.
    pub quorum: u32,
    /// When a round's submissions, ballots and aggregates may be dated
    /// ([`crate::schedule`]).
    pub schedule: RoundSchedule,
    /// The initial global model, encoded with `encoding`.
    #[serde(with = "serde_bytes")]
    pub initial_model: Vec<u8>,
    /// Who may take part (open when absent, for tasks written before admission existed).
    #[serde(default)]
    pub admission: Admission,
}

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
    /// The device key's signature over [`device_message`](crate::signing::device_message) of the registering agent: proof
    /// that whoever registers the key holds it.
    #[serde(with = "serde_bytes")]
    pub possession: Vec<u8>,
}

/// Who signed a submission (and its proof).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Signer {
    /// The authoring agent's own key.
    Agent,
    /// A device key registered to the authoring agent.
    Device {
        /// The `DeviceRegistration` action.
        registration: ActionHash,
    },
}

/// A model update for one round of one task: `update = w_local - w_global` on the
/// submitter's data, encoded with the task's encoding, signed.
#[hdk_entry_helper]
#[derive(Clone, PartialEq)]
pub struct UpdateSubmission {
    /// The task.
    pub task: ActionHash,
    /// Round number, from 0.
    pub round: u32,
    /// The model the update was computed from: the task (round 0) or the previous
    /// round's aggregate.
    pub base: ActionHash,
    /// The encoded update.
    #[serde(with = "serde_bytes")]
    pub update: Vec<u8>,
    /// Training examples behind the update (self-reported; informational only).
    pub samples: u32,
    /// Who signed.
    pub signer: Signer,
    /// ed25519 signature over [`update_message`](crate::signing::update_message).
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
    /// The submitter's PoGQ measurement of the update, signed by the same signer over this
    /// submission's signature.
    pub proof: PogqProof,
    /// The author's `Membership` of the task: required when the task is closed (not
    /// signed: the action's signature already binds it to the author).
    #[serde(default)]
    pub membership: Option<ActionHash>,
}

impl UpdateSubmission {
    /// The bytes the signature covers.
    pub fn signing_bytes(&self) -> Vec<u8> {
        update_message(&UpdateFields {
            task: self.task.get_raw_39(),
            round: self.round,
            base: self.base.get_raw_39(),
            update: &self.update,
            samples: self.samples,
            device_registration: match &self.signer {
                Signer::Agent => None,
                Signer::Device { registration } => Some(registration.get_raw_39()),
            },
        })
    }
}

/// The loss of the base model on the submitter's data before and after applying its update
/// with the task's probe learning rate. It travels inside its [`UpdateSubmission`] (one
/// entry, so no validator ever waits for a proof published apart from its update), signed
/// by the submission's signer over [`proof_message`](crate::signing::proof_message) of the submission's own signature.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct PogqProof {
    /// Loss before applying the update.
    pub loss_before: f64,
    /// Loss after applying it with the probe learning rate.
    pub loss_after: f64,
    /// Examples measured on.
    pub samples: u32,
    /// Signature by the submission's signer over [`proof_message`](crate::signing::proof_message).
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

/// One vote of a ballot: the member's PoGQ measurement of a submission on its own held-out
/// data, and its verdict, which must follow from the measurement and the task's threshold.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct CommitteeVote {
    /// The submission voted on.
    pub submission: ActionHash,
    /// Loss of the base model on the member's data.
    pub loss_before: f64,
    /// Loss after applying the update with the probe learning rate.
    pub loss_after: f64,
    /// Examples measured on.
    pub samples: u32,
    /// Accept or reject.
    pub accept: bool,
}

impl CommitteeVote {
    /// The measurement as fl_core scores it.
    pub fn measurement(&self) -> PogqMeasurement {
        PogqMeasurement {
            loss_before: self.loss_before,
            loss_after: self.loss_after,
            samples: self.samples,
        }
    }
}

/// A committee member's votes in one round of one task, ordered by submission hash, one
/// per submission at most.
#[hdk_entry_helper]
#[derive(Clone, PartialEq)]
pub struct CommitteeBallot {
    /// The task.
    pub task: ActionHash,
    /// The round voted in.
    pub round: u32,
    /// The round's base (the task for round 0, else the previous aggregate).
    pub base: ActionHash,
    /// The votes, ordered by submission hash.
    pub votes: Vec<CommitteeVote>,
}

impl CommitteeBallot {
    /// The ballot's vote on `submission`, if it has one.
    pub fn vote_on(&self, submission: &ActionHash) -> Option<&CommitteeVote> {
        self.votes
            .binary_search_by(|v| v.submission.cmp(submission))
            .ok()
            .map(|i| &self.votes[i])
    }
}

/// What a round decided about one submission, with the entries that decided it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct OutcomeRecord {
    /// The submission (its PoGQ proof inside).
    pub submission: ActionHash,
    /// The committee ballots cited for their vote on it: every cited ballot's vote on every
    /// listed submission is cited (validation checks), and the round decision then counts
    /// those of trusted members.
    pub votes: Vec<ActionHash>,
    /// Included, or excluded with the reason.
    pub verdict: Verdict,
}

/// One agent's reputation after the round.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ReputationEntry {
    /// The agent.
    pub agent: AgentPubKey,
    /// Its reputation.
    pub reputation: Reputation,
    /// Aggregated rounds in a row the agent took no part in (no listed submission, no
    /// cited ballot); carry-overs do not count. Beyond `fl_core::reputation::ABSENCE_GRACE`
    /// absence lowers the reputation to just under the committee threshold
    /// (`fl_core::age_for_absence`).
    pub missed: u32,
    /// The entry hash (32 bytes) of the aggregate that first listed the agent, empty in
    /// that aggregate itself: it goes into the agent's committee tickets
    /// (`committee::committee_from`), so that a key cannot be chosen for its tickets.
    #[serde(with = "serde_bytes")]
    pub anchor: Vec<u8>,
}

/// The outcome of round `round`: verdicts, the next global model and the reputation table.
/// The next round's committee is drawn from this table, seeded by the task and the round
/// (`committee::committee_seed`).
#[hdk_entry_helper]
#[derive(Clone, PartialEq)]
pub struct RoundAggregate {
    /// The task.
    pub task: ActionHash,
    /// The round closed.
    pub round: u32,
    /// The round's base (task for round 0, else the previous aggregate).
    pub base: ActionHash,
    /// One per submission, ordered by submission hash.
    pub outcomes: Vec<OutcomeRecord>,
    /// The next global model, in the task's encoding.
    #[serde(with = "serde_bytes")]
    pub model: Vec<u8>,
    /// Every agent's reputation after the round, ordered by agent key.
    pub reputation: Vec<ReputationEntry>,
    /// The round's deadline under the task's schedule: the next round opens at the earlier
    /// of this aggregate's date and this ([`crate::schedule`]).
    pub deadline: Timestamp,
    /// Whether the cited ballots come from committee members holding more than half of
    /// the committee's reputation, or the round has no committee ([`endorsement`](crate::aggregate::endorsement)). Only
    /// an endorsed aggregate may be published before the fallback slot, counts absences,
    /// and readers prefer it to any aggregate that is not.
    pub endorsed: bool,
}

impl RoundAggregate {
    /// Whether the aggregate closed its round without a quorum (a carry-over: nothing
    /// aggregated, the model unchanged).
    pub fn is_carry_over(&self) -> bool {
        self.outcomes
            .iter()
            .all(|o| o.verdict == Verdict::Excluded(fl_core::Exclusion::NoQuorum))
    }
}

/// The largest entry an aggregate of `task` can be: the task's model, two outcomes per
/// participant (a forked agent's two submissions) each citing a ballot from every
/// committee seat with the longest verdict, and a reputation row per participant, as the
/// entry is serialized. Validation keeps every aggregate within this: at most
/// `max_participants` rows (`fl_core::decide_round` turns newcomers away from a full
/// table) and outcomes of at most that many agents, two each ([`check_participants`](crate::aggregate::check_participants)).
pub fn max_aggregate_bytes(task: &Task) -> usize {
    let hash = ActionHash::from_raw_36(vec![0xdb; 36]);
    let outcome = |verdict| OutcomeRecord {
        submission: hash.clone(),
        votes: vec![hash.clone(); task.committee_size as usize],
        verdict,
    };
    let encoded =
        |x: &dyn Fn() -> Result<Vec<u8>, SerializedBytesError>| x().map_or(0, |b| b.len());
    let longest_outcome = std::iter::once(Verdict::Included)
        .chain(fl_core::Exclusion::ALL.map(Verdict::Excluded))
        .map(|v| {
            let o = outcome(v);
            encoded(&|| holochain_serialized_bytes::encode(&o))
        })
        .max()
        .unwrap_or(0);
    let row = ReputationEntry {
        agent: AgentPubKey::from_raw_36(vec![0xdb; 36]),
        reputation: Reputation(u32::MAX),
        missed: u32::MAX,
        anchor: vec![0xdb; 32],
    };
    let row = encoded(&|| holochain_serialized_bytes::encode(&row));
    let skeleton = RoundAggregate {
        task: hash.clone(),
        round: u32::MAX,
        base: hash.clone(),
        outcomes: Vec::new(),
        model: vec![0; task.initial_model.len()],
        reputation: Vec::new(),
        deadline: Timestamp(i64::MAX),
        endorsed: false,
    };
    // Two empty arrays take one byte each; the longest array header takes five.
    let skeleton = encoded(&|| holochain_serialized_bytes::encode(&skeleton)) + 2 * 4;
    skeleton + task.round.max_participants as usize * (MAX_LISTED_PER_AGENT * longest_outcome + row)
}

/// Most submissions of one agent an aggregate lists: two prove that its chain forked
/// (`Equivocation`); a third adds nothing but size.
pub const MAX_LISTED_PER_AGENT: usize = 2;

/// The loss and accuracy of the model a round's aggregate produced, measured by the author
/// on data it holds. Self-reported: readers take the median over authors, one per author.
#[hdk_entry_helper]
#[derive(Clone, PartialEq)]
pub struct ModelEvaluation {
    /// The aggregate whose model was evaluated.
    pub aggregate: ActionHash,
    /// The round that aggregate closed.
    pub round: u32,
    /// Mean cross-entropy loss.
    pub loss: f64,
    /// Fraction of examples classified correctly.
    pub accuracy: f64,
    /// Examples evaluated on.
    pub samples: u32,
    /// The author's `Membership` of the task: required when the task is closed.
    #[serde(default)]
    pub membership: Option<ActionHash>,
}

/// An invitation of one agent into one closed task, written by the inviter.
#[hdk_entry_helper]
#[derive(Clone, PartialEq)]
pub struct Invite {
    /// The closed task.
    pub task: ActionHash,
    /// The only agent that may use it.
    pub invitee: AgentPubKey,
    /// For an inviter other than the task's author: an aggregate of the task whose
    /// reputation table gives the inviter at least the task's `min_inviter_reputation`.
    pub standing: Option<ActionHash>,
    /// The inviter's ed25519 signature over [`invite_message`](crate::signing::invite_message), so the invite can be
    /// verified offline (in `genesis_self_check`) without its record.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

/// An agent's admission into a task, written by the agent.
#[hdk_entry_helper]
#[derive(Clone, PartialEq)]
pub struct Membership {
    /// The task joined.
    pub task: ActionHash,
    /// The `Invite` action that admits the author: required for a closed task, absent for
    /// an open one.
    pub invite: Option<ActionHash>,
}

/// The membrane proof an invitee installs the hApp with: an invite and where it lives.
#[derive(Serialize, Deserialize, SerializedBytes, Debug, Clone, PartialEq)]
pub struct InviteProof {
    /// The `Invite` action.
    pub invite_hash: ActionHash,
    /// Its author.
    pub inviter: AgentPubKey,
    /// The invite itself.
    pub invite: Invite,
}
