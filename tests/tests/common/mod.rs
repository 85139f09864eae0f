//! Shared set-up for the sweettest scenarios: real conductors on an in-process rendezvous
//! bootstrap/relay, the packed DNA bundles, and helpers that build tasks and updates.

#![allow(dead_code, unused_imports)]

use std::path::PathBuf;
use std::time::Duration;

pub use federated_learning::{
    AgentReputationRef, CastBallot, CastVote, GlobalModel, ModelRef, RoundRef, RoundState,
    RoundSummary, SignedSubmission, SubmitUpdate, Submitted,
};
pub use federated_learning::{InviteAgent, JoinTask, MemberInfo};
pub use federated_learning_integrity::rejection::Code;
pub use federated_learning_integrity::{Admission, Invite, InviteProof, Membership};
pub use federated_learning_integrity::{
    CommitteeBallot, CommitteeVote, DeviceRegistration, ModelEvaluation, PogqProof,
    ReputationEntry, RoundAggregate, RoundSchedule, Signer, Task, UpdateSubmission,
};
pub use fl_core::aggregate::{AggregatorConfig, Rule};
pub use fl_core::{
    Encoding, Exclusion, PogqParams, Reputation, ReputationParams, RoundParams, Tensor, Verdict,
};
pub use holochain::prelude::*;
pub use holochain::sweettest::*;

/// The production coordinator zome.
pub const ZOME: &str = "federated_learning";
/// The cheating peer's coordinator (test bundle only).
pub const ADVERSARY: &str = "adversary";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Loads a packed DNA, with a clear message when `scripts/pack.sh` has not run.
async fn load(path: PathBuf) -> DnaFile {
    assert!(
        path.exists(),
        "{} is missing: run scripts/pack.sh first",
        path.display()
    );
    SweetDnaFile::from_bundle(&path)
        .await
        .expect("packed DNA loads")
}

/// `n` conductors with the production DNA (`dnas/federated_learning/workdir`).
pub async fn production_network(n: usize) -> (SweetConductorBatch, Vec<SweetCell>) {
    network(
        n,
        load(repo().join("dnas/federated_learning/workdir/federated_learning.dna")).await,
    )
    .await
}

/// `n` conductors with the test DNA (production plus the `adversary` coordinator; same
/// integrity zome, same DNA hash).
pub async fn adversarial_network(n: usize) -> (SweetConductorBatch, Vec<SweetCell>) {
    network(
        n,
        load(repo().join("tests/workdir/federated_learning.dna")).await,
    )
    .await
}

async fn network(n: usize, dna: DnaFile) -> (SweetConductorBatch, Vec<SweetCell>) {
    let mut conductors = SweetConductorBatch::from_standard_config_rendezvous(n).await;
    let apps = conductors
        .setup_app("mycelix_fl", &[dna])
        .await
        .expect("app installs");
    let cells = apps.cells_flattened();
    conductors.exchange_peer_info().await;
    (conductors, cells)
}

/// The test DNA (production plus the `adversary` coordinator).
pub async fn adversarial_dna() -> DnaFile {
    load(repo().join("tests/workdir/federated_learning.dna")).await
}

/// Installs `dna` on `conductor` for a new agent with `membrane_proof`, as an invitee
/// installing the hApp with its invite does. The error is the conductor's, genesis
/// failures included.
pub async fn install_with_proof(
    conductor: &SweetConductor,
    dna: &DnaFile,
    app_id: &str,
    membrane_proof: Option<SerializedBytes>,
) -> Result<SweetCell, String> {
    let agent = SweetAgents::one(conductor.keystore()).await;
    install_for_agent(conductor, dna, app_id, agent, membrane_proof).await
}

/// [`install_with_proof`] for a given agent key of `conductor`'s keystore.
pub async fn install_for_agent(
    conductor: &SweetConductor,
    dna: &DnaFile,
    app_id: &str,
    agent: AgentPubKey,
    membrane_proof: Option<SerializedBytes>,
) -> Result<SweetCell, String> {
    let role = dna.dna_hash().to_string();
    let bundle = app_bundle_from_dnas(std::slice::from_ref(dna), false, None).await;
    let settings = RoleSettings::Provisioned {
        membrane_proof: membrane_proof.map(std::sync::Arc::new),
        modifiers: None,
        init_properties: None,
    };
    let app = conductor
        .raw_handle()
        .install_app_bundle(InstallAppPayload {
            source: AppBundleSource::Bytes(bundle.pack().expect("bundle packs")),
            agent_key: Some(agent),
            installed_app_id: Some(app_id.to_string()),
            network_seed: None,
            roles_settings: Some([(role, settings)].into_iter().collect()),
            ignore_genesis_failure: false,
        })
        .await
        .map_err(|e| match e {
            holochain::conductor::error::ConductorError::GenesisFailed { errors } => errors
                .iter()
                .map(|(_, e)| e.to_string())
                .collect::<Vec<_>>()
                .join("; "),
            other => other.to_string(),
        })?;
    let cell_id = app.all_cells().next().expect("one cell").clone();
    conductor
        .enable_app(app_id.to_string())
        .await
        .map_err(|e| e.to_string())?;
    conductor.get_sweet_cell(cell_id).map_err(|e| e.to_string())
}

/// Waits until every cell has seen every op.
pub async fn settle(cells: &[SweetCell]) {
    await_consistency_s(120, cells)
        .await
        .expect("network reaches consistency");
}

/// A task over `model_len` parameters, initial model all zeros, `f32` encoding.
pub fn task(model_len: u32, rule: Rule, f: u32, committee_size: u32, quorum: u32) -> Task {
    Task {
        name: "sweettest".into(),
        description: "scenario".into(),
        model_len,
        spec: fl_core::TaskSpec::with_params(model_len).expect("a model of this size"),
        encoding: Encoding::F32,
        round: RoundParams::new(rule, f),
        committee_size,
        quorum,
        schedule: RoundSchedule::default(),
        initial_model: f32_bytes(&vec![0.0; model_len as usize]),
        admission: Admission::Open,
    }
}

/// Canonical `f32` bytes of `v`.
pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    Tensor::new(v.to_vec()).expect("finite").canonical_bytes()
}

/// A deterministic pseudo-random vector in [-0.5, 0.5).
pub fn noise(seed: u64, len: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

/// Signs and submits `update` for `round` with an honest-looking PoGQ proof.
pub async fn submit(
    conductor: &SweetConductor,
    cell: &SweetCell,
    task: &ActionHash,
    round: u32,
    update: &[f32],
) -> Submitted {
    conductor
        .call(
            &cell.zome(ZOME),
            "submit_update",
            SubmitUpdate {
                task: task.clone(),
                round,
                update: f32_bytes(update),
                samples: 100,
                loss_before: 1.0,
                loss_after: 0.9,
                proof_samples: 50,
            },
        )
        .await
}

/// Calls `zome.function`, expects a failure and returns its message.
pub async fn call_err<I>(
    conductor: &SweetConductor,
    cell: &SweetCell,
    zome: &str,
    function: &str,
    input: I,
) -> String
where
    I: serde::Serialize + std::fmt::Debug,
{
    match conductor
        .call_fallible::<_, ActionHash>(&cell.zome(zome), function, input)
        .await
    {
        Ok(h) => panic!("{zome}.{function} should have failed, but committed {h}"),
        Err(e) => e.to_string(),
    }
}

/// Asserts that `message` contains `expected`, showing both otherwise.
#[track_caller]
pub fn assert_rejected(message: &str, expected: &str) {
    assert!(
        message.contains(expected),
        "expected a rejection containing {expected:?}, got: {message}"
    );
}

/// Asserts that `message` is a refusal under `code` whose words contain `expected`.
pub fn assert_refused(code: Code, message: &str, expected: &str) {
    assert_eq!(
        Code::of(message),
        Some(code),
        "expected a [{code}] refusal, got: {message}"
    );
    assert_rejected(message, expected);
}

/// Polls `f` until it returns `Some`, for up to `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(t) = f().await {
            return t;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
