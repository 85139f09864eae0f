//! Fixtures and checks shared by the fuzz targets (`fuzz_targets/`) and the seed-corpus
//! generator (the ignored test `write_seed_corpus` below).
//!
//! The fixture is one consistent round: two valid tasks (f32 and int8), an agent whose
//! ed25519 key signs, a registered device, a signed submission with its proof, a ballot,
//! the round's aggregate and an evaluation of it. The entry target decodes arbitrary bytes
//! as every entry type and runs the integrity zome's pure rules on whatever decodes, with
//! this fixture as the context; each rule may reject, none may panic.

use std::sync::OnceLock;

use ed25519_dalek::{Signer as _, SigningKey};
use federated_learning_integrity::aggregate::{
    check_aggregator, check_outcomes, check_recomputation, compute_aggregate, SubmissionEvidence,
};
use federated_learning_integrity::ballot::check_ballot;
use federated_learning_integrity::committee::{committee_from, RoundContext};
use federated_learning_integrity::device::check_device;
use federated_learning_integrity::evaluation::{check_evaluation_round, check_measurement};
use federated_learning_integrity::submission::{check_submission, check_update};
use federated_learning_integrity::membership::{
    check_invite_signature, check_invite_use, check_membrane_proof, check_standing,
};
use federated_learning_integrity::signing::{device_message, invite_message, UPDATE_DOMAIN};
use federated_learning_integrity::task::{decode_model, validate_create_task};
use federated_learning_integrity::wire::{check_msgpack, decode_entry};
use federated_learning_integrity::{
    CommitteeBallot, CommitteeVote, DeviceRegistration, UpdateSubmission, Invite, InviteProof,
    Membership, ModelEvaluation, PogqProof, RoundAggregate, RoundSchedule, Signer, Task,
};
use fl_core::aggregate::Rule;
use fl_core::{Encoding, RoundParams, Tensor};
use hdi::prelude::{ActionHash, AgentPubKey, EntryHash, SerializedBytes, Timestamp, UnsafeBytes};
use holochain_serialized_bytes::SerializedBytesError;

/// Parameters of the fixture's model.
pub const MODEL_LEN: u32 = 8;

/// One consistent round, the context the entry checks run in.
pub struct Fixture {
    /// The agent's signing key (its agent key is the public half).
    pub agent_key: SigningKey,
    /// The agent.
    pub agent: AgentPubKey,
    /// The registered device's key.
    pub device_key: SigningKey,
    /// The task's action hash.
    pub task_hash: ActionHash,
    /// The task in f32 and, with the same hash, in int8 (block 3).
    pub tasks: [Task; 2],
    /// The device registration.
    pub device: DeviceRegistration,
    /// A submission to round 0 of the f32 task, signed by the agent.
    pub submission: UpdateSubmission,
    /// Its action hash.
    pub submission_hash: ActionHash,
    /// The same update signed by the device.
    pub device_submission: UpdateSubmission,
    /// A ballot accepting the submission.
    pub ballot: CommitteeBallot,
    /// Round 0's aggregate of the submission.
    pub aggregate: RoundAggregate,
    /// The agent's invite of another agent into the task, as that agent's membrane proof.
    pub invite: InviteProof,
    /// An evaluation of it.
    pub evaluation: ModelEvaluation,
}

/// An action hash with every byte `b`.
pub fn action_hash(b: u8) -> ActionHash {
    ActionHash::from_raw_36(vec![b; 36])
}

/// An agent key: 32 key bytes (repeated `b`) and 4 location bytes.
pub fn agent(b: u8) -> AgentPubKey {
    AgentPubKey::from_raw_36(vec![b; 36])
}

/// The agent key of an ed25519 signing key.
pub fn agent_of(key: &SigningKey) -> AgentPubKey {
    let mut raw = key.verifying_key().to_bytes().to_vec();
    raw.extend_from_slice(&[0; 4]);
    AgentPubKey::from_raw_36(raw)
}

/// The context of `round` of `task` on `base`, opened at 1 ms, authored by agent 7's key,
/// as the integrity zome's `round_context` would give it.
pub fn context(
    task_hash: &ActionHash,
    task: &Task,
    round: u32,
    base: &ActionHash,
    previous: Option<&RoundAggregate>,
    committee: Vec<AgentPubKey>,
) -> RoundContext {
    RoundContext {
        task_hash: task_hash.clone(),
        round,
        base: base.clone(),
        task: task.clone(),
        task_author: agent_of(&SigningKey::from_bytes(&[7; 32])),
        opened_at: Timestamp::from_micros(1_000),
        previous: previous.cloned(),
        committee,
        base_entry: previous.map(|_| EntryHash::from_raw_36(vec![5; 36])),
    }
}

/// A valid task of [`MODEL_LEN`] parameters with `encoding` and `rule`.
pub fn task(encoding: Encoding, rule: Rule, f: u32, quorum: u32) -> Task {
    let model: Vec<f32> = (0..MODEL_LEN).map(|i| i as f32 / 8.0).collect();
    Task {
        name: "fuzz".into(),
        description: "fixture".into(),
        model_len: MODEL_LEN,
        spec: fl_core::TaskSpec::with_params(MODEL_LEN).expect("an 8-parameter model"),
        encoding,
        round: RoundParams::new(rule, f),
        committee_size: 3,
        quorum,
        schedule: RoundSchedule {
            submit_ms: 1_000,
            vote_ms: 1_000,
            slot_ms: 1_000,
        },
        initial_model: Tensor::new(model).unwrap().encode(encoding).unwrap(),
        admission: Default::default(),
    }
}

fn build() -> Fixture {
    let agent_key = SigningKey::from_bytes(&[7; 32]);
    let device_key = SigningKey::from_bytes(&[9; 32]);
    let me = agent_of(&agent_key);
    let task_hash = action_hash(1);
    let tasks = [
        task(Encoding::F32, Rule::Mean, 0, 1),
        task(Encoding::Int8 { block: 3 }, Rule::Mean, 0, 1),
    ];
    let device = DeviceRegistration {
        device_key: device_key.verifying_key().to_bytes().to_vec(),
        label: "phone".into(),
        possession: device_key
            .sign(&device_message(me.get_raw_39()))
            .to_bytes()
            .to_vec(),
    };
    let update: Vec<f32> = (0..MODEL_LEN).map(|i| 0.5 - i as f32 / 16.0).collect();
    let mut submission = UpdateSubmission {
        task: task_hash.clone(),
        round: 0,
        base: task_hash.clone(),
        update: Tensor::new(update).unwrap().canonical_bytes(),
        samples: 32,
        signer: Signer::Agent,
        signature: Vec::new(),
        proof: PogqProof {
            loss_before: 1.0,
            loss_after: 0.8,
            samples: 32,
            signature: Vec::new(),
        },
        membership: None,
    };
    sign_submission(&agent_key, &mut submission);
    let mut device_submission = UpdateSubmission {
        signer: Signer::Device {
            registration: action_hash(2),
        },
        ..submission.clone()
    };
    sign_submission(&device_key, &mut device_submission);
    let submission_hash = action_hash(3);
    let ballot = CommitteeBallot {
        task: task_hash.clone(),
        round: 0,
        base: task_hash.clone(),
        votes: vec![CommitteeVote {
            submission: submission_hash.clone(),
            loss_before: 1.0,
            loss_after: 0.9,
            samples: 16,
            accept: true,
        }],
    };
    let evidence = vec![SubmissionEvidence {
        hash: submission_hash.clone(),
        author: me.clone(),
        submission: submission.clone(),
        votes: vec![(action_hash(5), agent(6), ballot.votes[0].clone())],
    }];
    let aggregate = compute_aggregate(
        &context(&task_hash, &tasks[0], 0, &task_hash, None, Vec::new()),
        None,
        evidence,
    )
    .unwrap();
    let evaluation = ModelEvaluation {
        aggregate: action_hash(8),
        round: 0,
        loss: 0.7,
        accuracy: 0.6,
        samples: 20,
        membership: None,
    };
    let invitee = agent(6);
    let invite = InviteProof {
        invite_hash: action_hash(10),
        inviter: me.clone(),
        invite: Invite {
            task: task_hash.clone(),
            invitee: invitee.clone(),
            standing: None,
            signature: agent_key
                .sign(&invite_message(
                    task_hash.get_raw_39(),
                    invitee.get_raw_39(),
                ))
                .to_bytes()
                .to_vec(),
        },
    };
    Fixture {
        invite,
        agent_key,
        agent: me,
        device_key,
        task_hash,
        tasks,
        device,
        submission,
        submission_hash,
        device_submission,
        ballot,
        aggregate,
        evaluation,
    }
}

/// Signs `s` with `key`, then its proof over the submission's signature.
pub fn sign_submission(key: &SigningKey, s: &mut UpdateSubmission) {
    s.signature = key.sign(&s.signing_bytes()).to_bytes().to_vec();
    s.proof.signature = key
        .sign(&s.proof.signing_bytes(&s.signature))
        .to_bytes()
        .to_vec();
}

/// The fixture, built once per process.
pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(build)
}

/// Serialized bytes of arbitrary data, as an entry arrives in validation.
pub fn entry_bytes(data: &[u8]) -> SerializedBytes {
    SerializedBytes::from(UnsafeBytes::from(data.to_vec()))
}

/// Encodes an entry as the conductor stores it.
pub fn encode<T>(entry: T) -> Vec<u8>
where
    SerializedBytes: TryFrom<T, Error = SerializedBytesError>,
{
    SerializedBytes::try_from(entry)
        .expect("entries always encode")
        .bytes()
        .clone()
}

/// Decodes `data` as `T` the way validation does, and checks that what decodes encodes
/// back to bytes that pass the msgpack check and decode to the same encoding.
fn decode<T>(data: &[u8]) -> Option<T>
where
    T: TryFrom<SerializedBytes, Error = SerializedBytesError> + Clone,
    SerializedBytes: TryFrom<T, Error = SerializedBytesError>,
{
    let t: T = decode_entry(entry_bytes(data)).ok()?;
    let once = encode(t.clone());
    assert_eq!(
        check_msgpack(&once),
        Ok(()),
        "re-encoded entry fails the check"
    );
    let again: T = decode_entry(entry_bytes(&once)).expect("re-encoded entry decodes");
    assert_eq!(encode(again), once, "encoding is not stable");
    Some(t)
}

/// Decodes `data` as every entry type and runs the pure rules of each type on whatever
/// decodes (the `entries` target).
pub fn check_entry_bytes(data: &[u8]) {
    let fx = fixture();
    if let Some(t) = decode::<Task>(data) {
        check_task(&t, fx);
    }
    if let Some(d) = decode::<DeviceRegistration>(data) {
        let r = check_device(&d, fx.agent.get_raw_39());
        if d == fx.device {
            assert_eq!(r, Ok(()));
        }
    }
    if let Some(g) = decode::<UpdateSubmission>(data) {
        assert_eq!(g.signing_bytes().len(), UPDATE_DOMAIN.len() + 32);
        for task in &fx.tasks {
            let signer = match g.signer {
                Signer::Agent => fx.agent_key.verifying_key(),
                Signer::Device { .. } => fx.device_key.verifying_key(),
            };
            let r = check_submission(&g, task, signer.as_bytes());
            if r.is_ok() {
                assert!(decode_model(task, &g.update).is_ok());
            }
            let _ = check_update(&g, task);
        }
    }
    if let Some(b) = decode::<CommitteeBallot>(data) {
        for task in &fx.tasks {
            if check_ballot(&b, task).is_ok() {
                for v in &b.votes {
                    assert_eq!(b.vote_on(&v.submission), Some(v));
                }
            }
        }
    }
    if let Some(a) = decode::<RoundAggregate>(data) {
        check_aggregate(&a, fx);
    }
    if let Some(e) = decode::<ModelEvaluation>(data) {
        let _ = check_measurement(&e);
        let _ = check_evaluation_round(&e, &fx.aggregate);
    }
    if let Some(i) = decode::<Invite>(data) {
        let r = check_invite_signature(&i, &fx.agent);
        if i == fx.invite.invite {
            assert_eq!(r, Ok(()));
        }
        let _ = check_standing(&i, &fx.agent, &fx.aggregate, fl_core::Reputation(500_000));
        let m = Membership {
            task: fx.task_hash.clone(),
            invite: Some(fx.invite.invite_hash.clone()),
        };
        let _ = check_invite_use(&i, &m, &i.invitee);
    }
    if let Some(m) = decode::<Membership>(data) {
        let _ = check_invite_use(&fx.invite.invite, &m, &fx.invite.invite.invitee);
    }
    // The same bytes as a membrane proof, for the invitee and for the inviter.
    let proof = entry_bytes(data);
    for installer in [&fx.invite.invite.invitee, &fx.agent] {
        if let Ok(Some(p)) = check_membrane_proof(Some(&proof), installer) {
            assert_eq!(&p.invite.invitee, installer);
        }
    }
}

/// A task that validates must have a decodable initial model and a round 0 that can be
/// decided with no submissions, leaving a model that decodes for round 1.
fn check_task(t: &Task, fx: &Fixture) {
    if validate_create_task(t).is_err() {
        return;
    }
    assert!(decode_model(t, &t.initial_model).is_ok());
    let first = compute_aggregate(
        &context(&fx.task_hash, t, 0, &fx.task_hash, None, Vec::new()),
        None,
        Vec::new(),
    )
    .expect("round 0 of a valid task can always be decided");
    if let Err(e) = decode_model(t, &first.model) {
        panic!("round 0's model of a valid task does not decode: {e}");
    }
}

/// The pure rules of an aggregate, with the fixture's tasks, and the next round's
/// committee and recomputation from it as the previous aggregate.
fn check_aggregate(a: &RoundAggregate, fx: &Fixture) {
    for task in &fx.tasks {
        let _ = check_outcomes(a);
        let committee = committee_from(task, a, &EntryHash::from_raw_36(vec![5; 36]), [3; 32]);
        assert!(committee.len() <= task.committee_size as usize);
        let next = a.round.wrapping_add(1);
        if let Ok(x) = compute_aggregate(
            &context(
                &fx.task_hash,
                task,
                next,
                &action_hash(9),
                Some(a),
                Vec::new(),
            ),
            None,
            Vec::new(),
        ) {
            assert_eq!(check_recomputation(&x, &x), Ok(()));
            let _ = check_recomputation(a, &x);
        }
        let ctx = RoundContext {
            task_hash: fx.task_hash.clone(),
            round: next,
            base: action_hash(9),
            task: task.clone(),
            task_author: fx.agent.clone(),
            opened_at: Timestamp::from_micros(1_000),
            previous: Some(a.clone()),
            committee,
            base_entry: Some(EntryHash::from_raw_36(vec![5; 36])),
        };
        for member in ctx.committee.iter().chain([&fx.agent]) {
            let _ = check_aggregator(&ctx, member, Timestamp::from_micros(i64::MAX));
            let _ = check_aggregator(&ctx, member, Timestamp::from_micros(i64::MIN));
        }
    }
}

/// The seed inputs of every target, by target name: encoded fixture entries and a few
/// hand-made edge cases. Small; `cargo fuzz cmin` trims them after a run.
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let fx = fixture();
    let mut out = Vec::new();
    let mut add = |target: &'static str, name: &str, bytes: Vec<u8>| {
        out.push((target, name.to_string(), bytes));
    };
    add("entries", "task_f32", encode(fx.tasks[0].clone()));
    add("entries", "task_int8", encode(fx.tasks[1].clone()));
    let mut krum = task(Encoding::F32, Rule::MultiKrum { m: Some(2) }, 1, 5);
    krum.round.aggregator.nnm = true;
    add("entries", "task_multikrum", encode(krum));
    add("entries", "device", encode(fx.device.clone()));
    add("entries", "submission", encode(fx.submission.clone()));
    add(
        "entries",
        "submission_device",
        encode(fx.device_submission.clone()),
    );
    add("entries", "ballot", encode(fx.ballot.clone()));
    add("entries", "aggregate", encode(fx.aggregate.clone()));
    add("entries", "evaluation", encode(fx.evaluation.clone()));
    add("entries", "invite", encode(fx.invite.invite.clone()));
    add(
        "entries",
        "membership",
        encode(Membership {
            task: fx.task_hash.clone(),
            invite: Some(fx.invite.invite_hash.clone()),
        }),
    );
    add("entries", "invite_proof", encode(fx.invite.clone()));
    let mut int8 = fx.submission.clone();
    int8.update = Tensor::decode(&fx.submission.update, MODEL_LEN as usize)
        .unwrap()
        .encode(fx.tasks[1].encoding)
        .unwrap();
    int8.signature = fx.agent_key.sign(&int8.signing_bytes()).to_bytes().to_vec();
    add("entries", "submission_int8", encode(int8));
    let mut reject = fx.ballot.clone();
    reject.votes.push(CommitteeVote {
        submission: action_hash(0xf0),
        loss_before: 1.0,
        loss_after: 2.0,
        samples: 4,
        accept: false,
    });
    add("entries", "ballot_reject", encode(reject));

    // tensor_codec: a mode byte (see the target), then the bytes.
    let t = Tensor::new(vec![1.0, -2.5, 0.0, 3.25]).unwrap();
    let mut tensor = |name: &str, mode: u8, encoding: Encoding| {
        let mut b = vec![mode];
        if mode == 1 {
            b.extend(4u16.to_le_bytes());
        }
        b.extend(t.encode(encoding).unwrap());
        add("tensor_codec", name, b);
    };
    tensor("f32", 0, Encoding::F32);
    tensor("int8_block2", 0, Encoding::Int8 { block: 2 });
    tensor("int8_block256", 0, Encoding::int8());
    tensor("f32_len4", 1, Encoding::F32);
    let mut values = vec![2u8, 3, 0];
    for v in [1.0f32, -2.5, 0.0, 3.25, f32::MAX, 1e-40] {
        values.extend(v.to_le_bytes());
    }
    add("tensor_codec", "encode_block3", values);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use federated_learning_integrity::submission::check_signature;

    #[test]
    fn the_fixture_passes_every_rule() {
        let fx = fixture();
        let key = fx.agent_key.verifying_key();
        for t in &fx.tasks {
            assert_eq!(validate_create_task(t), Ok(()));
        }
        assert_eq!(check_device(&fx.device, fx.agent.get_raw_39()), Ok(()));
        assert_eq!(
            check_submission(&fx.submission, &fx.tasks[0], key.as_bytes()),
            Ok(())
        );
        assert_eq!(
            check_signature(
                &fx.device_submission,
                fx.device_key.verifying_key().as_bytes()
            ),
            Ok(())
        );
        assert_eq!(
            federated_learning_integrity::proof::check_proof(
                &fx.submission.proof,
                &fx.submission,
                key.as_bytes()
            ),
            Ok(())
        );
        assert_eq!(check_ballot(&fx.ballot, &fx.tasks[0]), Ok(()));
        assert_eq!(check_outcomes(&fx.aggregate), Ok(()));
        assert_eq!(check_measurement(&fx.evaluation), Ok(()));
        for (_, _, bytes) in seeds() {
            check_entry_bytes(&bytes);
        }
    }

    /// Writes the seed corpora under `fuzz/corpus/<target>/`:
    /// `cargo test --manifest-path fuzz/Cargo.toml --lib -- --ignored`.
    #[test]
    #[ignore]
    fn write_seed_corpus() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
        for (target, name, bytes) in seeds() {
            let dir = root.join(target);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(format!("seed_{name}")), bytes).unwrap();
        }
    }
}

/// A fuzzed value: mostly small steps (so updates are near each other), sometimes any
/// `f32`.
#[derive(arbitrary::Arbitrary, Debug, Clone, Copy)]
pub enum Val {
    /// `v / 16`.
    Small(i8),
    /// Any bits.
    Any(f32),
}

impl Val {
    /// The value.
    pub fn get(self) -> f32 {
        match self {
            Val::Small(v) => f32::from(v) / 16.0,
            Val::Any(v) => v,
        }
    }
}

/// An aggregation rule from fuzzed bytes. Weiszfeld iterations are capped at 63 to keep
/// executions fast (task validation allows up to 1000).
pub fn rule_of(rule: u8, multi_m: Option<u8>, weiszfeld: (f64, u8, f64)) -> fl_core::Rule {
    use fl_core::aggregate::WeiszfeldParams;
    use fl_core::Rule;
    match rule % 7 {
        0 => Rule::Mean,
        1 => Rule::Krum,
        2 => Rule::MultiKrum {
            m: multi_m.map(u32::from),
        },
        3 => Rule::Median,
        4 => Rule::TrimmedMean,
        5 => Rule::GeometricMedian(WeiszfeldParams {
            nu: weiszfeld.0,
            max_iterations: u32::from(weiszfeld.1 % 64),
            tolerance: weiszfeld.2,
        }),
        _ => Rule::Bulyan,
    }
}

/// Reputation parameters from six fuzzed values, each reduced into `[0, 1]`.
pub fn reputation_params(raw: [u32; 6]) -> fl_core::ReputationParams {
    let r = raw.map(|v| fl_core::Reputation(v % 1_000_001));
    fl_core::ReputationParams {
        initial: r[0],
        gain: r[1],
        disputed_keep: r[2],
        clear_keep: r[3],
        floor: r[4],
        committee_threshold: r[5],
    }
}
