//! A local run: every peer of an experiment as an autonomous [`Participant`] in this
//! process, each on its own conductor with its own shard, keys and behaviour, and an
//! observer that reads what the network published.
//!
//! Nobody steps the peers. Each one follows the rounds from the DHT exactly as
//! `mycelix-fl peer` does on a machine of its own: it submits inside the window, votes when
//! drawn, aggregates in its slot and evaluates each new model. Attackers are participants
//! with an attack; colluders share their benign updates through a [`Coalition`] and
//! nothing else. The last peer (honest whenever any peer is) authors the task and, for a
//! closed task, issues every other peer its invite.
//!
//! The observer reads each closed round's aggregate through the task author's conductor
//! and compares its verdicts with the run's list of attackers: that ground truth is used
//! for the metrics only, never by a peer.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use federated_learning::{GlobalModel, InviteAgent, ModelRef, RoundRef, RoundState, TaskInfo};
use federated_learning_integrity::{
    Admission, InviteProof, RoundAggregate, RoundSchedule, Task, UpdateSubmission,
};
use fl_core::aggregate::Rule;
use fl_core::{Encoding, Tensor, Verdict};
use futures::future::BoxFuture;
use holochain::prelude::{ActionHash, AgentPubKey};
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cohort::Cohort;
use crate::conductor::{CallError, Client, EmbeddedNetwork};
use crate::experiment::{Experiment, RoundReport};
use crate::peer::{Behaviour, Coalition, Participant};
use fl_learn::data::Dataset;

/// How long any one wait for the network may take beyond the task's schedule before the
/// run fails.
pub const WAIT: Duration = Duration::from_secs(120);

/// Pause between two reads while waiting for the network: the first, growing by half at
/// every miss up to [`POLL_MAX`]. Polls take CPU from validation, more as a run's history
/// grows: holochain 0.6.3's link query selects link ops by type and only then filters
/// the base, so every `get_links` reads every link op the conductor holds.
const POLL: Duration = Duration::from_millis(200);

/// The longest pause between two reads of one wait.
const POLL_MAX: Duration = Duration::from_millis(1000);

/// How a round looked from outside, besides its verdicts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Observed {
    /// Since the observer saw the round before close (round 0: since the participants
    /// started).
    pub elapsed: Duration,
    /// The peer whose conductor was down for the round (fault runs).
    pub down: Option<usize>,
    /// After the round, until the restarted peer read the new model from its own conductor.
    pub catch_up: Duration,
    /// This process's resident memory when the round closed (0 where unreadable).
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

impl Restart for EmbeddedNetwork {
    fn stop(&mut self, peer: usize) -> BoxFuture<'_, Result<()>> {
        Box::pin(EmbeddedNetwork::stop(self, peer))
    }

    fn restart(&mut self, peer: usize) -> BoxFuture<'_, Result<Client>> {
        Box::pin(EmbeddedNetwork::restart(self, peer))
    }
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
/// other than the task's author is stopped, participant and conductor, when the round
/// before closes, and restarted from its data directory once the round has closed without
/// it.
pub struct Faults<'a> {
    /// Rounds between two faults (0: none).
    pub every: usize,
    /// Where conductors are stopped and started.
    pub backend: &'a mut dyn Restart,
}

/// The smallest quorum `rule` can run at with `f` Byzantine inputs (the task's rule):
/// [`Rule::min_inputs`].
pub fn minimum_quorum(rule: &Rule, f: u32) -> u32 {
    u32::try_from(rule.min_inputs(f as usize)).unwrap_or(u32::MAX)
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

/// Canonical `f32` bytes of `values`.
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
/// [`POLL_MAX`], failing after `within` with `what`.
async fn until<T, F, Fut>(within: Duration, what: impl Fn() -> String, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + within;
    let mut pause = POLL;
    loop {
        if let Some(t) = f().await? {
            return Ok(t);
        }
        if Instant::now() > deadline {
            bail!("{} within {} s", what(), within.as_secs());
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 3 / 2).min(POLL_MAX);
    }
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
            Err(e) if e.retriable() && Instant::now() < deadline => tokio::time::sleep(POLL).await,
            other => return other,
        }
    }
}

/// The invites `clients[author]`, the author of the closed task `task`, issues to every
/// other peer: one per peer, `None` for the author.
async fn invite_all(
    clients: &[Client],
    author: usize,
    task: &ActionHash,
) -> Result<Vec<Option<ActionHash>>> {
    let mut invites = vec![None; clients.len()];
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
        invites[p] = Some(proof.invite_hash);
    }
    Ok(invites)
}

/// A participant following the task on its own tokio task.
struct Running {
    stop: watch::Sender<bool>,
    handle: JoinHandle<Result<()>>,
}

impl Running {
    /// Stops the participant after its current step and waits for it.
    async fn stop(self) -> Result<()> {
        let _ = self.stop.send(true);
        self.handle.await.context("a participant's task")?
    }
}

/// What every peer of the run starts from.
struct Setup<'a> {
    exp: &'a Experiment,
    cohort: &'a Cohort,
    task: &'a ActionHash,
    coalition: Option<Coalition>,
}

impl Setup<'_> {
    /// Peer `p` as a participant on `client`, joined with `invite`.
    async fn join(
        &self,
        p: usize,
        client: Client,
        invite: Option<ActionHash>,
    ) -> Result<Participant> {
        let behaviour = if self.cohort.is_byzantine(p) {
            Behaviour::Attack(self.exp.attack)
        } else {
            Behaviour::Honest
        };
        let shares = (
            self.cohort.data[p].clone(),
            self.cohort.validation[p].clone(),
        );
        let seed = self.exp.seed ^ (0x9e37_79b9_7f4a_7c15u64.wrapping_mul(p as u64 + 1));
        let mut participant =
            Participant::with_shares(client, self.task.clone(), shares, invite, behaviour, seed)
                .await
                .with_context(|| format!("peer {p} joining the task"))?
                .labelled(format!("peer {p}"));
        if let Some(c) = &self.coalition {
            participant = participant.colluding(c.clone());
        }
        Ok(participant)
    }

    /// Lets `participant` follow the task on a tokio task of its own until the run's last
    /// round has closed.
    fn spawn(&self, mut participant: Participant) -> Running {
        let (stop, mut stopped) = watch::channel(false);
        let rounds = self.exp.rounds as u32;
        let handle = tokio::spawn(async move {
            let stop = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            participant.run(Some(rounds), stop, |_| {}).await
        });
        Running { stop, handle }
    }
}

/// Runs `exp` with one autonomous participant per client: the last peer creates the task
/// with `schedule` and invites the others into a closed one, every peer then follows the
/// rounds by itself, and the observer reports each round as it closes to `on_round`.
/// `progress` hears the start-up steps.
#[allow(clippy::too_many_arguments)]
pub async fn run_peers(
    exp: &Experiment,
    mut clients: Vec<Client>,
    train: &Dataset,
    test: &Dataset,
    schedule: RoundSchedule,
    mut faults: Option<Faults<'_>>,
    progress: impl Fn(String),
    mut on_round: impl FnMut(&RoundReport, &Observed),
) -> Result<RunResult> {
    if clients.len() != exp.peers {
        bail!(
            "{} peers need {} conductors, got {}",
            exp.peers,
            exp.peers,
            clients.len()
        );
    }
    let mut fault_rng = ChaCha8Rng::seed_from_u64(exp.seed ^ 0xfa17);
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
        schedule,
        initial_model: f32_bytes(&initial),
        admission: exp.admission,
    };
    let task_hash: ActionHash = clients[author]
        .call("create_task", task.clone())
        .await
        .context("creating the task")?;
    for (p, c) in clients.iter().enumerate() {
        until(
            WAIT,
            || format!("peer {p} did not see the task"),
            || async {
                Ok(c.call::<_, TaskInfo>("get_task", task_hash.clone())
                    .await
                    .ok())
            },
        )
        .await?;
    }
    let created = Instant::now();
    progress(format!(
        "task {task_hash} published by peer {author}; round 0 takes submissions for {} s from now",
        schedule.submit_ms / 1000
    ));
    let invites = if exp.admission == Admission::Open {
        vec![None; clients.len()]
    } else {
        let invites = invite_all(&clients, author, &task_hash).await?;
        progress(format!(
            "{} invites issued after {:.1} s",
            clients.len() - 1,
            created.elapsed().as_secs_f64()
        ));
        invites
    };
    let setup = Setup {
        exp,
        cohort: &cohort,
        task: &task_hash,
        coalition: (exp.byzantine > 0).then(|| Coalition::new(exp.byzantine)),
    };
    // Everyone joins before anyone starts: round 0 waits for the members it can see.
    let joined = futures::future::try_join_all(clients.iter().zip(invites).enumerate().map(
        |(p, (c, invite))| {
            let setup = &setup;
            async move { setup.join(p, c.clone(), invite).await }
        },
    ))
    .await?;
    // Round 0 waits for the members each conductor can see, and the author closes it: a
    // membership not yet gossiped to the author would leave that peer's update out.
    for (p, c) in clients.iter().enumerate() {
        until(
            WAIT,
            || format!("peer {p} did not see every member join"),
            || async {
                let members: Vec<federated_learning::MemberInfo> =
                    c.call("list_members", task_hash.clone()).await?;
                Ok((members.len() >= exp.peers).then_some(()))
            },
        )
        .await?;
    }
    progress(format!(
        "{} participants joined after {:.1} s; each now follows the rounds by itself",
        joined.len(),
        created.elapsed().as_secs_f64()
    ));
    if created.elapsed() > Duration::from_millis(schedule.submit_ms) {
        progress(
            "warning: joining took longer than the submission window, so round 0 closes without updates (a longer --submit-window avoids it)".into(),
        );
    }
    let mut running: Vec<Option<Running>> =
        joined.into_iter().map(|p| Some(setup.spawn(p))).collect();
    let index: HashMap<AgentPubKey, usize> = clients
        .iter()
        .enumerate()
        .map(|(p, c)| (c.agent().clone(), p))
        .collect();
    let observer = clients[author].clone();
    // The longest a round may take: every window and slot of its schedule, and the margin.
    let round_limit = Duration::from_millis(
        schedule.submit_ms
            + schedule.vote_ms
            + (exp.committee_size.min(exp.peers) as u64 + 2) * schedule.slot_ms,
    ) + WAIT;

    let mut reports = Vec::with_capacity(exp.rounds);
    let mut included: Vec<ActionHash> = Vec::new();
    let mut last = Instant::now();
    let mut down: Option<usize> = None;
    for round in 0..exp.rounds as u32 {
        let m = ModelRef {
            task: task_hash.clone(),
            round: Some(round),
        };
        let closed = until(
            round_limit,
            || {
                let stopped: Vec<String> = running
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.as_ref().is_some_and(|r| r.handle.is_finished()))
                    .map(|(p, _)| p.to_string())
                    .collect();
                format!(
                    "round {round} did not close{}",
                    if stopped.is_empty() {
                        String::new()
                    } else {
                        format!(" (peers that stopped: {})", stopped.join(", "))
                    }
                )
            },
            || async {
                Ok(observer
                    .call::<_, GlobalModel>("get_global_model", m.clone())
                    .await
                    .ok()
                    .filter(|g| g.aggregate.is_some()))
            },
        )
        .await?;
        let elapsed = last.elapsed();
        // The next round opened when this one closed, whatever the observer does next.
        last = Instant::now();
        let aggregate = closed.aggregate.clone().expect("filtered above");
        let agg: RoundAggregate = observer.call("get_aggregate", aggregate.clone()).await?;
        // The round as the observer's conductor holds it, once it has every submission the
        // aggregate lists (links may arrive after the aggregate).
        let r = RoundRef {
            task: task_hash.clone(),
            round,
        };
        let state: RoundState = until(
            WAIT,
            || format!("round {round}: the observer did not read every listed submission"),
            || async {
                let s: RoundState = observer.call("get_round", r.clone()).await?;
                let complete = agg
                    .outcomes
                    .iter()
                    .all(|o| s.submissions.iter().any(|x| x.hash == o.submission));
                Ok(complete.then_some(s))
            },
        )
        .await?;
        let mut author_of: HashMap<&ActionHash, usize> = HashMap::new();
        for s in &state.submissions {
            if let Some(&p) = index.get(&s.author) {
                author_of.insert(&s.hash, p);
            }
        }
        let mut excluded: Vec<(usize, String)> = Vec::new();
        for o in &agg.outcomes {
            let Some(&p) = author_of.get(&o.submission) else {
                bail!(
                    "round {round}: the aggregate lists a submission no peer of the run made: {}",
                    o.submission
                );
            };
            match o.verdict {
                Verdict::Excluded(reason) => excluded.push((p, reason.describe().to_string())),
                Verdict::Included => included.push(o.submission.clone()),
            }
        }
        let listed = |p: usize| {
            agg.outcomes
                .iter()
                .any(|o| author_of.get(&o.submission) == Some(&p))
        };
        let submitted = |p: usize| author_of.values().any(|&a| a == p);
        let mut absent = Vec::new();
        for p in 0..exp.peers {
            if listed(p) {
                continue;
            }
            // The peer stopped for the round may have submitted before it stopped; unless
            // the aggregate counted that update, it took no part.
            if down == Some(p) {
                absent.push(p);
            } else if submitted(p) {
                excluded.push((p, "left out of the aggregate".into()));
            } else {
                excluded.push((p, "no update in the round".into()));
            }
        }
        // One entry per peer: an equivocating peer's two updates are one exclusion.
        excluded.sort();
        excluded.dedup_by_key(|(p, _)| *p);
        let model = Tensor::decode(&closed.model, params)?.into_vec();
        let report = RoundReport::new(
            round as usize,
            cohort.truth(),
            &absent,
            (
                exp.model.accuracy(&model, test.x.view(), &test.y),
                exp.model.loss(&model, test.x.view(), &test.y),
            ),
            excluded,
        );
        let mut observed = Observed {
            elapsed,
            down,
            catch_up: Duration::ZERO,
            rss_bytes: resident_bytes(),
        };
        if let (Some(v), Some(f)) = (down.take(), faults.as_mut()) {
            // The peer that was down starts again and catches up on its own: its conductor
            // fetches what it missed and serves the new model.
            let at = Instant::now();
            let client = f
                .backend
                .restart(v)
                .await
                .with_context(|| format!("round {round}: restarting peer {v}"))?;
            until(
                WAIT,
                || format!("round {round}: restarted peer {v} did not read the new model"),
                || async {
                    // Any aggregate of the round: a better-ranked one may have replaced
                    // the one the observer saw first.
                    Ok(client
                        .call::<_, GlobalModel>("get_global_model", m.clone())
                        .await
                        .ok()
                        .filter(|g| g.aggregate.is_some())
                        .map(|_| ()))
                },
            )
            .await?;
            observed.catch_up = at.elapsed();
            running[v] = Some(setup.spawn(setup.join(v, client.clone(), None).await?));
            clients[v] = client;
        }
        let next = round as usize + 1;
        if let Some(f) = faults.as_mut() {
            if f.every > 0 && next < exp.rounds && next.is_multiple_of(f.every) {
                let mut victim = fault_rng.random_range(0..exp.peers - 1);
                if victim >= author {
                    victim += 1;
                }
                if let Some(r) = running[victim].take() {
                    r.stop()
                        .await
                        .with_context(|| format!("round {next}: stopping peer {victim}"))?;
                }
                f.backend
                    .stop(victim)
                    .await
                    .with_context(|| format!("round {next}: stopping peer {victim}"))?;
                down = Some(victim);
            }
        }
        on_round(&report, &observed);
        reports.push(report);
    }
    // Every participant publishes its evaluation of the last model and stops.
    for (p, r) in running.into_iter().enumerate() {
        if let Some(mut r) = r {
            match tokio::time::timeout(WAIT, &mut r.handle).await {
                Ok(joined) => joined
                    .context("a participant's task")?
                    .with_context(|| format!("peer {p}"))?,
                Err(_) => {
                    r.handle.abort();
                    bail!(
                        "peer {p} did not finish its last evaluation within {} s",
                        WAIT.as_secs()
                    );
                }
            }
        }
    }
    let readback = match faults {
        Some(_) => Some(read_back(&clients, &included).await?),
        None => None,
    };
    Ok(RunResult { reports, readback })
}

/// Reads every submission in `included` from every client's conductor.
async fn read_back(clients: &[Client], included: &[ActionHash]) -> Result<Readback> {
    for (p, c) in clients.iter().enumerate() {
        for h in included {
            until(
                WAIT,
                || format!("peer {p} could not read included submission {h}"),
                || async {
                    Ok(c.call::<_, UpdateSubmission>("get_submission", h.clone())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorums_leave_room_for_f_byzantine_inputs() {
        assert_eq!(minimum_quorum(&Rule::Median, 2), 5);
        assert_eq!(minimum_quorum(&Rule::Krum, 1), 5);
        assert_eq!(minimum_quorum(&Rule::Bulyan, 1), 7);
        assert_eq!(minimum_quorum(&Rule::Mean, 3), 1);
    }

    #[test]
    fn f32_bytes_decode_to_the_same_values() {
        let v = [1.0f32, -2.5, 0.0];
        let t = Tensor::decode(&f32_bytes(&v), 3).expect("decodes");
        assert_eq!(t.into_vec(), v);
    }
}
