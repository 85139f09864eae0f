//! Rounds on real conductors: every peer's client trains, signs and submits through its own
//! cell, committee members re-score what they read from the DHT and vote, the entitled
//! member aggregates, and every peer reads the next global model back from the DHT.
//!
//! The same [`Cohort`] as the simulation decides what each peer *does*; what happens to
//! it is decided by the hApp: validation on every conductor, the committee drawn by the
//! network from the previous aggregate, and the aggregate recomputed by every validator.
//! The report of a round is read from the published aggregate's verdicts.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use federated_learning::{
    CastBallot, CastVote, GlobalModel, InviteAgent, JoinTask, ModelRef, RoundProgress, RoundRef,
    RoundState, SubmitGradient, Submitted, TaskInfo,
};
use federated_learning_integrity::{
    Admission, GradientSubmission, InviteProof, ModelEvaluation, RoundSchedule, Task,
};
use fl_core::aggregate::Rule;
use fl_core::{Encoding, Tensor, Verdict};
use futures::future::BoxFuture;
use holochain::prelude::{ActionHash, AgentPubKey};
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::cohort::Cohort;
use crate::conductor::{CallError, Client};
use crate::data::Dataset;
use crate::sim::{Experiment, RoundReport};

/// How long any one wait for the network may take before the run fails.
pub const WAIT: Duration = Duration::from_secs(120);

/// Pause between two reads while waiting for the network: the first, growing by half at
/// every miss up to [`POLL_MAX`]. Polls take CPU from validation, more as a run's history
/// grows: holochain 0.6.3's link query selects link ops by type and only then filters
/// the base, so every `get_links` reads every link op the conductor holds.
const POLL: Duration = Duration::from_millis(200);

/// The longest pause between two reads of one wait.
const POLL_MAX: Duration = Duration::from_millis(1000);

/// Where a round's time went.
#[derive(Debug, Clone, Copy, Default)]
pub struct RoundTiming {
    /// Reading the global model, training and crafting updates.
    pub train: Duration,
    /// Submitting every update (signing, validation, publishing).
    pub submit: Duration,
    /// Committee members reading the submissions and voting.
    pub vote: Duration,
    /// The aggregator reading the round and publishing the aggregate.
    pub aggregate: Duration,
    /// Until every peer reads the new global model.
    pub propagate: Duration,
    /// Every peer publishing its evaluation of the previous round's model (after this
    /// round's submissions; not part of `submit`).
    pub evaluate: Duration,
    /// The whole round.
    pub total: Duration,
    /// The peer whose conductor was down for the round (fault runs).
    pub down: Option<usize>,
    /// After the round, until the restarted peer read the new model from its own conductor.
    pub catch_up: Duration,
    /// This process's resident memory at the end of the round (0 where unreadable).
    pub rss_bytes: u64,
}

/// This process's resident set size, from `/proc/self/statm` (0 where unreadable).
pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// A backend that can take a peer's conductor down and bring it back with its data (the
/// embedded one).
pub trait Restart: Send {
    /// Shuts peer `peer`'s conductor down.
    fn stop(&mut self, peer: usize) -> BoxFuture<'_, Result<()>>;
    /// Starts it again from its data directory; the peer's new client.
    fn restart(&mut self, peer: usize) -> BoxFuture<'_, Result<Client>>;
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// One report per round.
    pub reports: Vec<RoundReport>,
    /// Fault runs: the read-back of every included submission from every conductor.
    pub readback: Option<Readback>,
}

/// After a fault run, every submission any aggregate included, read from every peer's
/// conductor.
#[derive(Debug, Clone, Copy)]
pub struct Readback {
    /// Included submissions.
    pub submissions: usize,
    /// Conductors each was read from.
    pub conductors: usize,
}

/// Kill-and-restart faults: every `every` rounds (from round `every` on) a random peer
/// other than the task's author is down for the whole round and restarted after it.
pub struct Faults<'a> {
    /// Rounds between two faults (0: none).
    pub every: usize,
    /// Where conductors are stopped and started.
    pub backend: &'a mut dyn Restart,
}

/// The smallest quorum `rule` can run at with `f` Byzantine inputs (the task's rule).
pub fn minimum_quorum(rule: &Rule, f: u32) -> u32 {
    match rule {
        Rule::Mean => 1,
        Rule::Krum | Rule::MultiKrum { .. } => 2 * f + 3,
        Rule::Median | Rule::TrimmedMean | Rule::GeometricMedian(_) => 2 * f + 1,
        Rule::Bulyan => 4 * f + 3,
    }
}

/// The spec of the task `exp` trains on `train`: its model, local training and
/// preprocessing; the features unnamed, the classes `"0"`, `"1"`, ... in label order.
pub fn task_spec(exp: &Experiment, train: &Dataset) -> fl_core::TaskSpec {
    let mut spec = fl_core::TaskSpec::unnamed(exp.model.spec(), "label");
    spec.data.classes = (0..train.classes).map(|c| c.to_string()).collect();
    spec.data.preprocess = exp.preprocess.clone();
    spec.training = exp.sgd.into();
    spec
}

/// Canonical `f32` bytes of `values`, non-finite values included (validation, not the
/// client, rejects those).
fn f32_bytes(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + 4 * values.len());
    out.push(fl_core::tensor::TAG_F32);
    out.extend_from_slice(&(values.len() as u32).to_le_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Polls `f` until it returns `Some`, [`POLL`] apart at first and backing off to
/// [`POLL_MAX`], failing after [`WAIT`] with `what`.
async fn until<T, F, Fut>(what: impl Fn() -> String, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + WAIT;
    let mut pause = POLL;
    loop {
        if let Some(t) = f().await? {
            return Ok(t);
        }
        if Instant::now() > deadline {
            bail!("{} within {} s", what(), WAIT.as_secs());
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 3 / 2).min(POLL_MAX);
    }
}

/// The progress of the round based on `base`, as `client`'s conductor holds it.
async fn progress(client: &Client, base: &ActionHash) -> Result<RoundProgress> {
    Ok(client.call("round_progress", base.clone()).await?)
}

/// Waits until `client`'s conductor serves `aggregate` (which closes the round based on
/// `base`) as the model after `round` of `task`; the model's bytes.
async fn read_new_model(
    client: &Client,
    task: &ActionHash,
    round: u32,
    base: &ActionHash,
    aggregate: &ActionHash,
    what: impl Fn() -> String,
) -> Result<Vec<u8>> {
    let m = ModelRef {
        task: task.clone(),
        round: Some(round),
    };
    until(what, || async {
        if progress(client, base).await?.aggregates == 0 {
            return Ok(None);
        }
        Ok(
            match client
                .call::<_, GlobalModel>("get_global_model", m.clone())
                .await
            {
                Ok(g) if g.aggregate.as_ref() == Some(aggregate) => Some(g.model),
                _ => None,
            },
        )
    })
    .await
}

/// Calls `function` on `client`, retrying for up to [`WAIT`] while the conductor reports
/// that a commit may be retried (its validation needs entries it cannot fetch yet).
async fn commit<I, O>(client: &Client, function: &str, input: I) -> Result<O, CallError>
where
    I: serde::Serialize + std::fmt::Debug + Clone,
    O: serde::de::DeserializeOwned + std::fmt::Debug,
{
    let deadline = Instant::now() + WAIT;
    loop {
        match client.call(function, input.clone()).await {
            // "may be retried": validation needs entries the conductor cannot fetch yet;
            // "may aggregate only from": a lower-ranked aggregator before its turn.
            Err(e)
                if (e.message.contains("may be retried")
                    || e.message.contains("may aggregate only from"))
                    && Instant::now() < deadline =>
            {
                tokio::time::sleep(POLL).await
            }
            other => {
                if std::env::var_os("MYCELIX_FL_TRACE").is_some() {
                    eprintln!("TRACE {function} -> {other:?}");
                }
                return other;
            }
        }
    }
}

/// Admits every peer into the closed task `task` that `clients[author]` wrote: the author
/// invites each other peer, and each joins with its invite (its membership is what its
/// submissions and evaluations cite).
async fn admit_all(clients: &[Client], author: usize, task: &ActionHash) -> Result<()> {
    let mut invites = Vec::with_capacity(clients.len());
    for (p, c) in clients.iter().enumerate() {
        if p == author {
            continue;
        }
        let invite = InviteAgent {
            task: task.clone(),
            invitee: c.agent().clone(),
            standing: None,
        };
        let proof: InviteProof = commit(&clients[author], "invite_agent", invite)
            .await
            .with_context(|| format!("the task's author inviting peer {p}"))?;
        invites.push((p, proof.invite_hash));
    }
    futures::future::try_join_all(invites.into_iter().map(|(p, invite)| async move {
        let join = JoinTask {
            task: task.clone(),
            invite: Some(invite),
        };
        commit::<_, ActionHash>(&clients[p], "join_task", join)
            .await
            .with_context(|| format!("peer {p} joining the closed task"))
    }))
    .await?;
    Ok(())
}

/// Runs `exp` with one peer per client: creates the task (the last peer, honest whenever
/// any peer is, authors it), then plays every round. `on_round` sees each round's report
/// and timings as it closes.
pub async fn run_rounds(
    exp: &Experiment,
    mut clients: Vec<Client>,
    train: &Dataset,
    test: &Dataset,
    mut faults: Option<Faults<'_>>,
    mut on_round: impl FnMut(&RoundReport, &RoundTiming),
) -> Result<RunResult> {
    let mut fault_rng = ChaCha8Rng::seed_from_u64(exp.seed ^ 0xfa17);
    if clients.len() != exp.peers {
        bail!(
            "{} peers need {} conductors, got {}",
            exp.peers,
            exp.peers,
            clients.len()
        );
    }
    let mut rng = ChaCha8Rng::seed_from_u64(exp.seed);
    let cohort = Cohort::new(exp, train, &mut rng)?;
    let params = exp.model.param_count();
    let initial = exp.model.init(&mut rng);
    let author = exp.peers - 1;
    let task = Task {
        name: format!("mycelix-fl {}", train.name),
        description: format!("{} on {}", exp.model.describe(), train.name),
        model_len: params as u32,
        spec: task_spec(exp, train),
        encoding: Encoding::F32,
        round: exp.round,
        committee_size: exp.committee_size as u32,
        quorum: minimum_quorum(&exp.round.aggregator.rule, exp.round.aggregator.f),
        // Windows far longer than a lockstep round takes; 10 s slots, so that a fault run
        // whose first-ranked member is down waits 10 s for the second.
        schedule: RoundSchedule {
            slot_ms: 10_000,
            ..RoundSchedule::default()
        },
        initial_model: f32_bytes(&initial),
        admission: exp.admission,
    };
    let task_hash: ActionHash = clients[author]
        .call("create_task", task.clone())
        .await
        .context("creating the task")?;
    for (p, c) in clients.iter().enumerate() {
        until(
            || format!("peer {p} did not see the task"),
            || async {
                Ok(c.call::<_, TaskInfo>("get_task", task_hash.clone())
                    .await
                    .ok())
            },
        )
        .await?;
    }
    if exp.admission != Admission::Open {
        admit_all(&clients, author, &task_hash).await?;
    }
    let index: HashMap<AgentPubKey, usize> = clients
        .iter()
        .enumerate()
        .map(|(p, c)| (c.agent().clone(), p))
        .collect();

    let mut reports = Vec::with_capacity(exp.rounds);
    let mut included: Vec<ActionHash> = Vec::new();
    // The open round's base: the task, then each round's aggregate. Waits poll the cheap
    // `round_progress` of the base and read the full round only once its counts are there.
    let mut base = task_hash.clone();
    // The last closed round's model, which the peers evaluate during the next round.
    let mut evaluations: Option<Evaluations> = None;
    for round in 0..exp.rounds as u32 {
        let started = Instant::now();
        let mut timing = RoundTiming::default();
        let previous = round.checked_sub(1);
        // A fault run takes one peer (never the task's author) down for this round.
        if let Some(f) = faults.as_mut() {
            if f.every > 0 && round > 0 && (round as usize).is_multiple_of(f.every) {
                let mut victim = fault_rng.random_range(0..clients.len() - 1);
                if victim >= author {
                    victim += 1;
                }
                // The victim evaluates the last model before it goes down.
                if let Some(pending) = &evaluations {
                    publish_evaluations(&clients, &[victim], &cohort, exp, pending).await?;
                }
                f.backend
                    .stop(victim)
                    .await
                    .with_context(|| format!("round {round}: stopping peer {victim}"))?;
                timing.down = Some(victim);
            }
        }
        let online: Vec<usize> = (0..clients.len())
            .filter(|p| Some(*p) != timing.down)
            .collect();
        // Every peer reads the global model from its own conductor.
        let models = futures::future::try_join_all(online.iter().map(|&p| {
            let c = &clients[p];
            let m = ModelRef {
                task: task_hash.clone(),
                round: previous,
            };
            async move {
                let m: GlobalModel = c.call("get_global_model", m).await?;
                Ok::<_, anyhow::Error>(Tensor::decode(&m.model, params)?.into_vec())
            }
        }))
        .await
        .with_context(|| format!("round {round}: reading the global model"))?;
        if models.windows(2).any(|w| w[0] != w[1]) {
            bail!("round {round}: peers read different global models");
        }
        let model = models.into_iter().next().unwrap_or_default();
        let updates = cohort.updates(exp, &model, &mut rng);
        timing.train = started.elapsed();

        let at = Instant::now();
        let submitted = futures::future::join_all(online.iter().map(|&p| {
            let c = &clients[p];
            let proof = cohort.proof(exp, p, &model, &updates[p]);
            let input = SubmitGradient {
                task: task_hash.clone(),
                round,
                update: f32_bytes(&updates[p]),
                samples: cohort.data[p].len() as u32,
                loss_before: proof.loss_before,
                loss_after: proof.loss_after,
                proof_samples: proof.samples,
            };
            async move { commit::<_, Submitted>(c, "submit_gradient", input).await }
        }))
        .await;
        let mut excluded: Vec<(usize, String)> = Vec::new();
        let mut by_submission: HashMap<ActionHash, usize> = HashMap::new();
        for (&p, s) in online.iter().zip(submitted) {
            match s {
                Ok(s) => {
                    by_submission.insert(s.submission, p);
                }
                Err(e) => excluded.push((p, format!("rejected: {}", e.message))),
            }
        }
        timing.submit = at.elapsed();
        // The previous round's evaluations go out after this round's submissions, so that
        // a submission's author has committed nothing since the round opened: the
        // one-submission-per-round rule then has no chain to read, where an evaluation
        // committed in between made validators wait for its agent activity (holochain
        // 0.6.3 retries such an op only after up to 3 s).
        if let Some(pending) = evaluations.take() {
            let at = Instant::now();
            publish_evaluations(&clients, &online, &cohort, exp, &pending).await?;
            timing.evaluate = at.elapsed();
        }
        if by_submission.len() < task.quorum as usize {
            bail!(
                "round {round}: only {} updates were accepted, the task's quorum is {} ({})",
                by_submission.len(),
                task.quorum,
                excluded
                    .iter()
                    .map(|(p, why)| format!("peer {p}: {why}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
        let r = RoundRef {
            task: task_hash.clone(),
            round,
        };

        // The committee, as the network drew it; its members re-score and vote.
        let at = Instant::now();
        let committee: Vec<AgentPubKey> = clients[author].call("get_committee", r.clone()).await?;
        let ranked: Vec<usize> = committee
            .iter()
            .map(|a| {
                index
                    .get(a)
                    .copied()
                    .ok_or_else(|| anyhow!("round {round}: committee member {a} is not a peer"))
            })
            .collect::<Result<_>>()?;
        // A member whose conductor is down casts no ballot (it abstains).
        let members: Vec<usize> = ranked
            .iter()
            .copied()
            .filter(|m| Some(*m) != timing.down)
            .collect();
        let expected = by_submission.len();
        futures::future::try_join_all(members.iter().map(|&m| {
            let (c, r, by_submission) = (&clients[m], r.clone(), &by_submission);
            let (cohort, model, base) = (&cohort, &model, &base);
            async move {
                let state = until(
                    || format!("round {round}: member {m} did not see {expected} submissions"),
                    || async {
                        if (progress(c, base).await?.submissions as usize) < expected {
                            return Ok(None);
                        }
                        let s: RoundState = c.call("get_round", r.clone()).await?;
                        Ok((s.submissions.len() >= expected).then_some(s))
                    },
                )
                .await?;
                // One ballot per member: every re-score of the round in one commit.
                let mut updates = Vec::with_capacity(state.submissions.len());
                for s in &state.submissions {
                    let full: GradientSubmission = c.call("get_submission", s.hash.clone()).await?;
                    let update = Tensor::decode(&full.update, params)?.into_vec();
                    let submitter = by_submission.get(&s.hash).copied().unwrap_or(usize::MAX);
                    updates.push((submitter, update));
                }
                let scored: Vec<(usize, &[f32])> =
                    updates.iter().map(|(p, u)| (*p, &u[..])).collect();
                let votes = state
                    .submissions
                    .iter()
                    .zip(cohort.ballot(exp, m, model, &scored))
                    .map(|(s, v)| CastVote {
                        submission: s.hash.clone(),
                        loss_before: v.loss_before,
                        loss_after: v.loss_after,
                        samples: v.samples,
                    })
                    .collect();
                let _: ActionHash =
                    commit(c, "cast_ballot", CastBallot { round: r, votes }).await?;
                anyhow::Ok(())
            }
        }))
        .await?;
        timing.vote = at.elapsed();

        // The entitled peer aggregates once it sees every submission with every vote.
        let at = Instant::now();
        // The best-ranked member that is up (rank r may aggregate r slots after the round
        // opened; `commit` waits for that).
        let aggregator = members.first().copied().unwrap_or(author);
        let c = &clients[aggregator];
        until(
            || format!("round {round}: the aggregator (peer {aggregator}) did not see every vote"),
            || async {
                let p = progress(c, &base).await?;
                if (p.submissions as usize) < expected || (p.ballots as usize) < members.len() {
                    return Ok(None);
                }
                let s: RoundState = c.call("get_round", r.clone()).await?;
                Ok((s.submissions.len() >= expected
                    && s.submissions.iter().all(|x| x.votes.len() >= members.len()))
                .then_some(()))
            },
        )
        .await?;
        let aggregate: ActionHash = commit(c, "aggregate_round", r.clone())
            .await
            .with_context(|| format!("round {round}: aggregating"))?;
        timing.aggregate = at.elapsed();

        // Every peer reads the new model.
        let at = Instant::now();
        let models = futures::future::try_join_all(online.iter().map(|&p| {
            read_new_model(
                &clients[p],
                &task_hash,
                round,
                &base,
                &aggregate,
                move || format!("round {round}: peer {p} did not read the new model"),
            )
        }))
        .await?;
        if models.windows(2).any(|w| w[0] != w[1]) {
            bail!("round {round}: peers read different new models");
        }
        timing.propagate = at.elapsed();

        let new_model = Tensor::decode(&models[0], params)?.into_vec();
        timing.total = started.elapsed();

        timing.rss_bytes = resident_bytes();

        let state: RoundState = c.call("get_round", r.clone()).await?;
        let (_, agg) = state
            .aggregate
            .ok_or_else(|| anyhow!("round {round}: the aggregate is not readable"))?;
        let mut counted = 0;
        for o in &agg.outcomes {
            let Some(&p) = by_submission.get(&o.submission) else {
                bail!(
                    "round {round}: the aggregate lists an unknown submission {}",
                    o.submission
                );
            };
            counted += 1;
            match o.verdict {
                Verdict::Excluded(reason) => excluded.push((p, reason.describe().to_string())),
                Verdict::Included => included.push(o.submission.clone()),
            }
        }
        if counted < by_submission.len() {
            for (h, &p) in &by_submission {
                if !agg.outcomes.iter().any(|o| &o.submission == h) {
                    excluded.push((p, "left out of the aggregate".into()));
                }
            }
        }
        // The peer that was down starts again and catches up on its own: its conductor
        // fetches what it missed and serves the new model.
        if let (Some(v), Some(f)) = (timing.down, faults.as_mut()) {
            let at = Instant::now();
            clients[v] = f
                .backend
                .restart(v)
                .await
                .with_context(|| format!("round {round}: restarting peer {v}"))?;
            read_new_model(&clients[v], &task_hash, round, &base, &aggregate, || {
                format!("round {round}: restarted peer {v} did not read the new model")
            })
            .await?;
            timing.catch_up = at.elapsed();
        }
        evaluations = Some(Evaluations {
            aggregate: aggregate.clone(),
            round,
            model: new_model.clone(),
        });
        base = aggregate;
        let report = RoundReport::new(
            round as usize,
            &cohort,
            timing.down.as_slice(),
            (
                exp.model.accuracy(&new_model, test.x.view(), &test.y),
                exp.model.loss(&new_model, test.x.view(), &test.y),
            ),
            excluded,
        );
        on_round(&report, &timing);
        reports.push(report);
    }
    // The last round's evaluations, from every peer (all are up between rounds).
    if let Some(pending) = evaluations.take() {
        let all: Vec<usize> = (0..clients.len()).collect();
        publish_evaluations(&clients, &all, &cohort, exp, &pending).await?;
    }
    let readback = match faults {
        Some(_) => Some(read_back(&clients, &included).await?),
        None => None,
    };
    Ok(RunResult { reports, readback })
}

/// A closed round's model, which the peers evaluate.
struct Evaluations {
    /// The round's aggregate.
    aggregate: ActionHash,
    /// The round.
    round: u32,
    /// The aggregated model's parameters.
    model: Vec<f32>,
}

/// Every peer in `peers` publishes its evaluation of `pending.model` on its own held-out
/// data (what the dashboard charts).
async fn publish_evaluations(
    clients: &[Client],
    peers: &[usize],
    cohort: &Cohort,
    exp: &Experiment,
    pending: &Evaluations,
) -> Result<()> {
    let Evaluations {
        aggregate,
        round,
        model,
    } = pending;
    let round = *round;
    futures::future::try_join_all(peers.iter().map(|&p| {
        let c = &clients[p];
        let (loss, accuracy, samples) = cohort.evaluation(exp, p, model);
        let evaluation = ModelEvaluation {
            aggregate: aggregate.clone(),
            round,
            loss,
            accuracy,
            samples,
            membership: None,
        };
        async move {
            commit::<_, ActionHash>(c, "publish_evaluation", evaluation)
                .await
                .with_context(|| format!("round {round}: peer {p} publishing its evaluation"))
        }
    }))
    .await?;
    Ok(())
}

/// Reads every submission in `included` from every client's conductor.
async fn read_back(clients: &[Client], included: &[ActionHash]) -> Result<Readback> {
    for (p, c) in clients.iter().enumerate() {
        for h in included {
            until(
                || format!("peer {p} could not read included submission {h}"),
                || async {
                    Ok(c.call::<_, GradientSubmission>("get_submission", h.clone())
                        .await
                        .ok()
                        .filter(|s| !s.update.is_empty()))
                },
            )
            .await?;
        }
    }
    Ok(Readback {
        submissions: included.len(),
        conductors: clients.len(),
    })
}
