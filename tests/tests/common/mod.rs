//! Shared set-up for the sweettest scenarios: real conductors on an in-process rendezvous
//! bootstrap/relay, the packed DNA bundles, and helpers that build tasks and updates.

#![allow(dead_code, unused_imports)]

use std::path::PathBuf;
use std::time::Duration;

pub use federated_learning::{
    AgentReputationRef, CastBallot, CastVote, GlobalModel, ModelRef, RoundRef, RoundState,
    RoundSummary, SignedSubmission, SubmitGradient, Submitted,
};
pub use federated_learning_integrity::{
    CommitteeBallot, CommitteeVote, DeviceRegistration, GradientSubmission, ModelEvaluation,
    PogqProof, ReputationEntry, RoundAggregate, Signer, Task,
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
        layout: format!("{model_len} weights"),
        encoding: Encoding::F32,
        round: RoundParams::new(rule, f),
        committee_size,
        quorum,
        aggregation_timeout_ms: 0,
        initial_model: f32_bytes(&vec![0.0; model_len as usize]),
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
            "submit_gradient",
            SubmitGradient {
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
