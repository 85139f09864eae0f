//! One participant of a task, on its own conductor with its own data, following the rounds
//! by itself.
//!
//! A [`Participant`] holds nothing of its own but its conductor's keys and its data: what
//! the round is, whether it has already submitted or voted, who may aggregate and when, all
//! come from the DHT through its own conductor on every step, so a participant that is
//! killed and started again picks up wherever the round is. Each step it:
//!
//! 1. reads the latest global model; the round after it is the open one;
//! 2. while the submission window is open and it has not submitted: trains on its own data
//!    from that model, measures its PoGQ proof on its own held-out share, submits, and then
//!    publishes its evaluation of the model on that share;
//! 3. if it sits on the round's committee and has not voted: once the submissions it
//!    expects are there (as many as took part in the round before, at least the quorum; in
//!    round 0 the task's members) or the submission window has closed, re-scores every
//!    submission on its held-out share and casts its ballot;
//! 4. if no aggregate has closed the round: from its aggregation slot on (its committee
//!    rank's, the task author's in round 0, or the fallback's), once every committee member
//!    has voted or the vote window has closed, asks its conductor to aggregate; the
//!    conductor refuses while the round is not ready, and the participant tries again.
//!
//! Nothing here reads another participant's data, keys or client: a participant knows what
//! the DHT tells it and what its own data says.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use federated_learning::{
    CastBallot, CastVote, EvaluationInfo, GlobalModel, JoinTask, ModelRef, RoundProgress, RoundRef,
    RoundState, SubmitUpdate, Submitted, TaskInfo,
};
use federated_learning_integrity::rejection::Code;
use federated_learning_integrity::{
    Admission, InviteProof, ModelEvaluation, RoundAggregate, Task, UpdateSubmission,
};
use fl_core::{PogqMeasurement, Tensor, Verdict};
use holochain::prelude::{ActionHash, AgentPubKey, Timestamp};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::cohort::{CLAIMED_HARM, CLAIMED_IMPROVEMENT};
use crate::conductor::{retriable, Client};
use fl_learn::attacks::{Attack, Knowledge};
use fl_learn::data::Dataset;
use fl_learn::model::Model;
use fl_learn::train::{clip_to_norm, delta, local_train, Sgd};

/// How a participant behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Behaviour {
    /// Trains, proves, votes and evaluates truthfully.
    Honest,
    /// Publishes what the attack crafts from its own (possibly poisoned) training, claims
    /// an improvement for its own update, votes against every other update, and claims a
    /// perfect model in its evaluations. Alone unless given a [`Coalition`]: then it
    /// crafts from every colluder's benign update and votes for the colluders' updates.
    Attack(Attack),
}

/// The explicit channel of colluding attackers: who they are, and each one's benign update
/// of a round. Nothing else passes between them; an honest participant never sees it.
#[derive(Debug, Clone)]
pub struct Coalition {
    inner: Arc<Mutex<CoalitionState>>,
    size: usize,
}

#[derive(Debug, Default)]
struct CoalitionState {
    members: Vec<AgentPubKey>,
    /// Per round, each colluder's benign update, in agent order (so that every colluder
    /// sees them in the same order, whoever shared first).
    updates: HashMap<u32, BTreeMap<AgentPubKey, Vec<f32>>>,
}

/// How long a colluder waits for the others' benign updates before it crafts with what it
/// has.
const COLLUDER_WAIT: Duration = Duration::from_secs(20);

impl Coalition {
    /// A coalition of `size` attackers.
    pub fn new(size: usize) -> Self {
        Coalition {
            inner: Arc::new(Mutex::new(CoalitionState::default())),
            size: size.max(1),
        }
    }

    /// How many attackers collude.
    pub fn size(&self) -> usize {
        self.size
    }

    fn state(&self) -> std::sync::MutexGuard<'_, CoalitionState> {
        // A colluder that panicked leaves nothing half-written worth refusing.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn enlist(&self, agent: &AgentPubKey) {
        let mut s = self.state();
        if !s.members.contains(agent) {
            s.members.push(agent.clone());
        }
    }

    /// Whether `agent` colludes.
    pub fn is_member(&self, agent: &AgentPubKey) -> bool {
        self.state().members.contains(agent)
    }

    /// Shares `agent`'s benign update of `round`, then waits until every colluder has
    /// shared theirs or `until`; every update shared for the round so far.
    async fn exchange(
        &self,
        round: u32,
        agent: &AgentPubKey,
        own: &[f32],
        until: Instant,
    ) -> Vec<Vec<f32>> {
        {
            let mut s = self.state();
            s.updates.retain(|r, _| r + 2 >= round);
            s.updates
                .entry(round)
                .or_default()
                .insert(agent.clone(), own.to_vec());
        }
        loop {
            let shared: Vec<Vec<f32>> = self
                .state()
                .updates
                .get(&round)
                .map(|u| u.values().cloned().collect())
                .unwrap_or_default();
            if shared.len() >= self.size || Instant::now() >= until {
                return shared;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// What a participant did in one round, and how the round ended for it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RoundLine {
    /// The round.
    pub round: u32,
    /// Whether this participant's update is in the round (submitted by it, now or before a
    /// restart).
    pub submitted: bool,
    /// Submissions it voted on, when it sat on the committee.
    pub voted_on: Option<usize>,
    /// Whether its own aggregate closed the round.
    pub aggregated: bool,
    /// Submissions the aggregate lists, and how many of them it included.
    pub listed: usize,
    /// Included submissions.
    pub included: usize,
    /// Whether the round closed as a carry-over (model unchanged).
    pub carry_over: bool,
    /// Its own update's verdict, when the aggregate lists it.
    pub verdict: Option<String>,
    /// Accuracy of the new model on its held-out share.
    pub accuracy: f64,
    /// Seconds from when it first saw the round open until it saw it close.
    pub seconds: f64,
}

impl std::fmt::Display for RoundLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "round {:>3}: ", self.round)?;
        if self.carry_over {
            write!(f, "carried over (no quorum)")?;
        } else {
            write!(f, "{}/{} included", self.included, self.listed)?;
        }
        match (&self.verdict, self.submitted) {
            (Some(v), _) => write!(f, ", mine {v}")?,
            (None, true) => write!(f, ", mine not listed")?,
            (None, false) => write!(f, ", no update of mine")?,
        }
        if let Some(n) = self.voted_on {
            write!(f, ", voted on {n}")?;
        }
        if self.aggregated {
            write!(f, ", aggregated by me")?;
        }
        write!(
            f,
            ", accuracy {:.3} on my data, {:.1} s",
            self.accuracy, self.seconds
        )
    }
}

/// What a poll of the round's link counts calls for.
enum Look {
    /// Nothing changed.
    Nothing,
    /// Submissions or ballots were added: act within the round.
    Light(RoundProgress),
    /// Read the latest model and the round.
    Full,
}

/// One participant: its conductor, the task, its data and its model.
pub struct Participant {
    client: Client,
    task_hash: ActionHash,
    info: TaskInfo,
    model: Model,
    sgd: Sgd,
    train: Dataset,
    validation: Dataset,
    behaviour: Behaviour,
    coalition: Option<Coalition>,
    rng: ChaCha8Rng,
    /// The open round as last seen.
    round: Option<OpenRound>,
    /// How often to read the DHT.
    poll: Duration,
    /// Rounds to take part in (all when `None`).
    limit: Option<u32>,
    /// Prefix of every message it writes to stderr (empty: none).
    label: String,
}

/// What a participant knows of the open round between two steps (all of it can be read
/// again from the DHT: a restart loses nothing).
struct OpenRound {
    round: u32,
    base: ActionHash,
    /// The global model the round starts from.
    params: Vec<f32>,
    /// When this participant first saw the round open.
    seen_at: Instant,
    /// The link counts when the state was last read.
    progress: Option<RoundProgress>,
    /// The link counts last polled, read or not: what the cheap poll compares with.
    polled: Option<RoundProgress>,
    state: Option<RoundState>,
    /// When the state was last read.
    read_at: Instant,
    /// Submitters the round waits for before its committee votes.
    expected: usize,
    submitted: bool,
    /// Refused for good: not tried again this round.
    submit_failed: bool,
    /// When a refused submission or ballot that may be retried is tried again.
    retry_at: Instant,
    evaluated: bool,
    voted_on: Option<usize>,
    aggregated: bool,
    /// When this participant first saw the round ready to aggregate: rank `k` waits `k`
    /// slots from then, so that ranks do not all aggregate at once.
    ready_at: Option<Instant>,
    next_aggregate_try: Instant,
    last_refusal: Option<String>,
    /// What this participant has said it is retrying this round.
    waiting_on: std::collections::HashSet<String>,
}

impl OpenRound {
    fn new(round: u32, base: ActionHash, params: Vec<f32>, expected: usize) -> Self {
        let now = Instant::now();
        OpenRound {
            round,
            base,
            params,
            seen_at: now,
            progress: None,
            polled: None,
            state: None,
            read_at: now,
            expected,
            submitted: false,
            submit_failed: false,
            retry_at: now,
            evaluated: false,
            voted_on: None,
            aggregated: false,
            ready_at: None,
            next_aggregate_try: now,
            last_refusal: None,
            waiting_on: Default::default(),
        }
    }
}

/// The longest a participant goes without a full step (reading the latest model and the
/// round), whatever the round's link counts say.
const FULL_STEP: Duration = Duration::from_secs(3);

/// How often a participant that hears its cell's signals polls the round's link counts
/// anyway (signals may be lost).
const SIGNALLED_POLL: Duration = Duration::from_secs(2);

/// After a signal, the link counts are polled up to this many times, every
/// [`QUICK_POLL`], until they change: what the signal announces may take a moment to become
/// readable here.
const QUICK_POLLS: u32 = 4;

/// The pause between two quick polls after a signal.
const QUICK_POLL: Duration = Duration::from_millis(300);

/// How long joining waits for the invite and the task to reach this conductor.
const JOIN_WAIT: Duration = Duration::from_secs(120);

/// How long a participant of a closed task given no invite looks for one written for it.
const INVITE_LOOKUP: Duration = Duration::from_secs(15);

/// The newest invite into `task` written for this agent, looked for up to
/// [`INVITE_LOOKUP`] (an invite written moments ago may still be on its way). `None` at
/// once when the agent is a member already or its membrane proof holds an invite for the
/// task (joining uses that), and `None` when none turns up: joining then says the task
/// is closed.
async fn invite_for(client: &Client, task: &ActionHash) -> Result<Option<ActionHash>> {
    let member: Option<ActionHash> = client
        .call("get_my_membership", task.clone())
        .await
        .map_err(|e| anyhow::anyhow!("reading this agent's membership: {}", e.message))?;
    let installed: Option<InviteProof> = client
        .call("membrane_invite", ())
        .await
        .map_err(|e| anyhow::anyhow!("reading this agent's membrane proof: {}", e.message))?;
    if member.is_some() || installed.is_some_and(|p| &p.invite.task == task) {
        return Ok(None);
    }
    let deadline = Instant::now() + INVITE_LOOKUP;
    loop {
        // A failed look-up is tried again until the deadline, like a missing invite.
        let newest = client
            .call::<_, Vec<InviteProof>>("list_invites", ())
            .await
            .ok()
            .and_then(|invites| {
                invites
                    .into_iter()
                    .rev()
                    .find(|p| &p.invite.task == task)
                    .map(|p| p.invite_hash)
            });
        if newest.is_some() || Instant::now() >= deadline {
            return Ok(newest);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// How long a state read stays fresh while nothing seems to change.
const REREAD: Duration = Duration::from_secs(5);

impl Participant {
    /// A participant of `task_hash` on `client`'s conductor with its own `data` (already in
    /// the task's schema and preprocessed): a fifth of it is held out for proofs, votes and
    /// evaluations. Joins the task when it has not (with `invite` for a closed task).
    pub async fn new(
        client: Client,
        task_hash: ActionHash,
        data: Dataset,
        invite: Option<ActionHash>,
        behaviour: Behaviour,
        seed: u64,
    ) -> Result<Self> {
        // A fifth is held out, and proofs, votes and evaluations need at least one row.
        if data.len() < 3 {
            bail!(
                "the data has {} rows; a participant needs at least 3",
                data.len()
            );
        }
        let (train, validation) = data.split(0.2, seed);
        Self::with_shares(
            client,
            task_hash,
            (train, validation),
            invite,
            behaviour,
            seed,
        )
        .await
    }

    /// As [`Participant::new`], with the data already split into what it trains on and
    /// what it holds out for proofs, votes and evaluations.
    pub async fn with_shares(
        client: Client,
        task_hash: ActionHash,
        (train, validation): (Dataset, Dataset),
        invite: Option<ActionHash>,
        behaviour: Behaviour,
        seed: u64,
    ) -> Result<Self> {
        let info: TaskInfo = client
            .call("get_task", task_hash.clone())
            .await
            .with_context(|| format!("reading task {task_hash}"))?;
        let spec = &info.task.spec;
        let model = Model::from(spec.model);
        if let Model::Cnn { .. } = model {
            fl_learn::train::tune_allocator();
        }
        for data in [&train, &validation] {
            if data.features() != model.spec().inputs() as usize
                || data.classes != spec.data.classes.len()
            {
                bail!(
                    "the data has {} features and {} classes; the task's model takes {} and {}",
                    data.features(),
                    data.classes,
                    spec.model.inputs(),
                    spec.model.classes()
                );
            }
        }
        if train.is_empty() || validation.is_empty() {
            bail!("a participant needs data to train on and data to hold out");
        }
        let invite = match invite {
            None if info.task.admission != Admission::Open && &info.author != client.agent() => {
                invite_for(&client, &task_hash).await?
            }
            given => given,
        };
        // Joining again returns the first membership; a closed task without an invite for
        // this agent is refused here, before anything else is written. An invite written
        // moments ago may not have reached this conductor yet: validation says the join
        // may be retried, and it is, for up to `JOIN_WAIT`.
        let join = JoinTask {
            task: task_hash.clone(),
            invite,
        };
        let deadline = Instant::now() + JOIN_WAIT;
        loop {
            match client
                .call::<_, ActionHash>("join_task", join.clone())
                .await
            {
                Err(e) if e.retriable() && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(500)).await
                }
                other => {
                    other?;
                    break;
                }
            }
        }
        Ok(Participant {
            sgd: Sgd::from(spec.training),
            model,
            client,
            task_hash,
            info,
            train,
            validation,
            behaviour,
            coalition: None,
            rng: ChaCha8Rng::seed_from_u64(seed),
            round: None,
            poll: Duration::from_millis(500),
            limit: None,
            label: String::new(),
        })
    }

    /// An attacker colluding through `coalition` (an honest participant ignores it).
    pub fn colluding(mut self, coalition: Coalition) -> Self {
        if matches!(self.behaviour, Behaviour::Attack(_)) {
            coalition.enlist(self.client.agent());
            self.coalition = Some(coalition);
        }
        self
    }

    /// Prefixes every message this participant writes to stderr with `label` (several
    /// participants in one process).
    pub fn labelled(mut self, label: impl Into<String>) -> Self {
        self.label = format!("{}: ", label.into());
        self
    }

    /// The participant's agent key.
    pub fn agent(&self) -> &AgentPubKey {
        self.client.agent()
    }

    /// The task.
    pub fn task(&self) -> &Task {
        &self.info.task
    }

    /// Follows the task until `rounds` rounds have closed (for ever when `None`) or `stop`
    /// resolves; `on_round` hears each round this participant saw close. After the last
    /// round it publishes its evaluation of the last model.
    pub async fn run(
        &mut self,
        rounds: Option<u32>,
        stop: impl std::future::Future<Output = ()>,
        mut on_round: impl FnMut(&RoundLine),
    ) -> Result<()> {
        tokio::pin!(stop);
        self.limit = rounds;
        let mut last_error = String::new();
        // A full step reads the latest model and the round; between full steps only the
        // round's link counts are read. A full step follows when they change, when the
        // last step did something (the next thing may be due at once), and at least every
        // `FULL_STEP` (windows close and slots open with time alone).
        let mut last_full: Option<Instant> = None;
        let mut eager = true;
        // Signals wake the participant at once; without them it polls every `self.poll`.
        let wake = match self.client.signal_wake(self.task_hash.clone()).await {
            Ok(wake) => Some(wake),
            Err(e) => {
                eprintln!(
                    "{}warning: no signals ({e:#}); polling every {:?}",
                    self.label, self.poll
                );
                None
            }
        };
        let poll = if wake.is_some() {
            SIGNALLED_POLL.max(self.poll)
        } else {
            self.poll
        };
        // Quick polls left before the next pause of `poll`: a signal asks for a few, since
        // what it announces may not be readable here at once.
        let mut quick_polls = 0u32;
        let mut last_poll: Option<Instant> = None;
        loop {
            let due = eager || last_full.is_none_or(|t| t.elapsed() >= FULL_STEP);
            let look = if due {
                Look::Full
            } else {
                // However many signals arrive, polls stay `QUICK_POLL` apart: a peer that
                // floods this one with signals costs it no more than that.
                if let Some(gap) = last_poll.and_then(|t| QUICK_POLL.checked_sub(t.elapsed())) {
                    tokio::time::sleep(gap).await;
                }
                last_poll = Some(Instant::now());
                let look = self.poll().await;
                if !matches!(look, Look::Nothing) {
                    // What the signals announced is readable: no more quick polls.
                    quick_polls = 0;
                }
                look
            };
            if !matches!(look, Look::Nothing) {
                let before = self.snapshot();
                let full = matches!(look, Look::Full);
                let stepped = match look {
                    Look::Light(progress) => self.light_step(progress).await.map(|()| None),
                    _ => self.step().await,
                };
                match stepped {
                    Ok(Some(line)) => on_round(&line),
                    Ok(None) => {}
                    // The DHT or the conductor may be briefly unable to answer; the next
                    // step reads everything again.
                    Err(e) => {
                        let message = format!("{e:#}");
                        if message != last_error {
                            eprintln!("{}warning: {message}; trying again", self.label);
                            last_error = message;
                        }
                    }
                }
                if full {
                    last_full = Some(Instant::now());
                }
                eager = self.snapshot() != before;
            }
            if self.done() && self.round.as_ref().is_some_and(|o| o.evaluated) {
                return Ok(());
            }
            let pause = if quick_polls > 0 {
                quick_polls -= 1;
                QUICK_POLL
            } else {
                poll
            };
            // Windows close and slots open with time alone: never sleep past the next full
            // step.
            let pause = pause
                .min(last_full.map_or(Duration::ZERO, |t| FULL_STEP.saturating_sub(t.elapsed())));
            tokio::select! {
                _ = &mut stop => return Ok(()),
                _ = tokio::time::sleep(pause) => {}
                _ = async {
                    match &wake {
                        Some(wake) => wake.notified().await,
                        None => std::future::pending().await,
                    }
                } => quick_polls = QUICK_POLLS,
            }
        }
    }

    /// Whether the round's link counts say that what this participant waits for may be
    /// complete: the submissions it expects before voting (when it sits on the committee
    /// and has not voted; all there are once the submission window has closed), or those
    /// and every member's ballot (before aggregating), or an aggregate.
    fn counts_call_for_a_read(&self, state: &RoundState, progress: &RoundProgress) -> bool {
        let open = self.round.as_ref().expect("a round is open");
        let enough = progress.submissions as usize >= open.expected;
        let member = state.committee.contains(self.client.agent());
        let closed = state.opened_at.is_some_and(|opened| {
            Timestamp::now() >= self.info.task.schedule.submissions_close(opened)
        });
        let to_vote = member && open.voted_on.is_none() && (enough || closed);
        let to_aggregate =
            !open.aggregated && enough && progress.ballots as usize >= state.committee.len();
        to_vote || to_aggregate || progress.aggregates > 0
    }

    /// What a step may change of the open round: when it changes, another step follows
    /// at once.
    fn snapshot(&self) -> Option<(u32, ActionHash, [bool; 5], Option<usize>)> {
        self.round.as_ref().map(|o| {
            (
                o.round,
                o.base.clone(),
                [
                    o.submitted,
                    o.submit_failed,
                    o.evaluated,
                    o.aggregated,
                    o.state.is_some(),
                ],
                o.voted_on,
            )
        })
    }

    /// What the open round's link counts call for: nothing while they are those last
    /// polled; a light step when submissions or ballots were added; a full step when an
    /// aggregate may have closed the round (only then can the latest model change, but for
    /// a better-ranked aggregate of the round before, which the periodic full step finds),
    /// when no round is open, or when the read fails (the full step says why).
    async fn poll(&self) -> Look {
        let Some(open) = self.round.as_ref() else {
            return Look::Full;
        };
        if self.done() {
            // Past the last round only the last evaluation is due, which full steps retry.
            return Look::Nothing;
        }
        match self
            .call::<_, RoundProgress>("round_progress", open.base.clone())
            .await
        {
            Ok(p) if open.polled == Some(p) => Look::Nothing,
            Ok(p) if p.aggregates > 0 => Look::Full,
            Ok(p) => Look::Light(p),
            Err(_) => Look::Full,
        }
    }

    /// A step within the open round, its base unchanged: whatever is due, given the link
    /// counts just polled.
    async fn light_step(&mut self, progress: RoundProgress) -> Result<()> {
        if self.done() {
            return Ok(());
        }
        self.act(Some(progress)).await
    }

    async fn call<I, O>(&self, function: &str, input: I) -> Result<O>
    where
        I: Serialize + std::fmt::Debug,
        O: serde::de::DeserializeOwned + std::fmt::Debug,
    {
        Ok(self.client.call(function, input).await?)
    }

    /// One look at the DHT and whatever is due; the line of a round that closed since the
    /// last step.
    pub async fn step(&mut self) -> Result<Option<RoundLine>> {
        let latest: GlobalModel = self
            .call(
                "get_global_model",
                ModelRef {
                    task: self.task_hash.clone(),
                    round: None,
                },
            )
            .await?;
        let round = latest.round.map_or(0, |r| r + 1);
        let base = latest.aggregate.clone().unwrap_or(self.task_hash.clone());
        let mut closed = None;
        // A new round, or the same round on another base (a better-ranked aggregate
        // replaced the one this participant saw first): start it over.
        if self
            .round
            .as_ref()
            .is_none_or(|o| o.round != round || o.base != base)
        {
            let params = Tensor::decode(&latest.model, self.info.task.model_len as usize)
                .context("decoding the global model")?
                .into_vec();
            let expected = self.expected(&latest).await?;
            let previous = self
                .round
                .replace(OpenRound::new(round, base, params, expected));
            if let (Some(previous), Some(aggregate)) = (previous, &latest.aggregate) {
                if previous.round + 1 == round {
                    let params = &self.round.as_ref().expect("just set").params;
                    match self.report(&previous, aggregate, params).await {
                        Ok(line) => closed = Some(line),
                        Err(e) => {
                            eprintln!("{}round {}: no report: {e:#}", self.label, previous.round)
                        }
                    }
                }
            }
        }
        if self.done() {
            // Past the last round: only the last model's evaluation is still due.
            if !self.round.as_ref().is_some_and(|o| o.evaluated) {
                self.evaluate_previous().await?;
            }
        } else {
            self.act(None).await?;
        }
        Ok(closed)
    }

    /// Whether the rounds this participant takes part in have all closed.
    fn done(&self) -> bool {
        match (self.limit, &self.round) {
            (Some(limit), Some(open)) => open.round >= limit,
            _ => false,
        }
    }

    /// Submitters the open round waits for before voting: at least the quorum; those who
    /// took part in the round before (table rows with no round missed), or in round 0 the
    /// task's members.
    async fn expected(&self, latest: &GlobalModel) -> Result<usize> {
        let quorum = self.info.task.quorum as usize;
        let others = match &latest.aggregate {
            Some(hash) => {
                let previous: RoundAggregate = self.call("get_aggregate", hash.clone()).await?;
                let present = previous.reputation.iter().filter(|r| r.missed == 0).count();
                present.min(previous.outcomes.len())
            }
            None => self.members().await?,
        };
        Ok(quorum.max(others))
    }

    async fn members(&self) -> Result<usize> {
        let members: Vec<federated_learning::MemberInfo> =
            self.call("list_members", self.task_hash.clone()).await?;
        Ok(members.len())
    }

    /// Reads the round's state again when its links changed, when the state read lags the
    /// links (records not fetched yet), or when it is a few seconds old. `polled`: the
    /// link counts, when the caller has just read them.
    async fn refresh(&mut self, polled: Option<RoundProgress>) -> Result<()> {
        let Some(open) = self.round.as_ref() else {
            return Ok(());
        };
        let progress: RoundProgress = match polled {
            Some(p) => p,
            None => self.call("round_progress", open.base.clone()).await?,
        };
        let fresh = match (&open.state, open.progress) {
            (Some(state), Some(seen)) => {
                let voters = voters(state).len() as u32;
                let current = seen == progress
                    && state.submissions.len() as u32 >= progress.submissions
                    && voters >= progress.ballots;
                // New links matter only when they may complete what this participant
                // waits for; ten participants re-reading the whole round at every
                // submission and ballot kept small machines busy.
                (current || !self.counts_call_for_a_read(state, &progress))
                    && open.read_at.elapsed() < REREAD
            }
            _ => false,
        };
        if fresh {
            // Counts that call for no read are still seen: the cheap poll compares with
            // them, so it does not take them for a change at every poll.
            if let Some(open) = self.round.as_mut() {
                open.polled = Some(progress);
            }
            return Ok(());
        }
        let state: RoundState = self
            .call(
                "get_round",
                RoundRef {
                    task: self.task_hash.clone(),
                    round: open.round,
                },
            )
            .await?;
        // Round 0 waits for the task's members, who keep joining while it is open.
        let expected = if open.round == 0 {
            Some(self.members().await?.max(self.info.task.quorum as usize))
        } else {
            None
        };
        let me = self.client.agent().clone();
        let open = self.round.as_mut().expect("checked above");
        if state.base.as_ref() != Some(&open.base) {
            // The DHT moved on between two reads; the next step starts the new round.
            open.polled = Some(progress);
            return Ok(());
        }
        if let Some(e) = expected {
            open.expected = e;
        }
        open.submitted |= state.submissions.iter().any(|s| s.author == me);
        if open.voted_on.is_none() {
            let mine = state
                .submissions
                .iter()
                .filter(|s| s.votes.iter().any(|(_, m, _)| m == &me))
                .count();
            if mine > 0 {
                open.voted_on = Some(mine);
            }
        }
        open.progress = Some(progress);
        open.polled = Some(progress);
        open.state = Some(state);
        open.read_at = Instant::now();
        Ok(())
    }

    /// Refreshes the round's state (`polled`: the link counts, when just read) and does
    /// whatever is due: submit, evaluate the previous model, vote or aggregate.
    async fn act(&mut self, polled: Option<RoundProgress>) -> Result<()> {
        self.refresh(polled).await?;
        let now = Timestamp::now();
        let schedule = self.info.task.schedule;
        let open = self.round.as_ref().expect("a round is open");
        let Some(state) = open.state.as_ref() else {
            return Ok(());
        };
        let Some(opened) = state.opened_at else {
            return Ok(());
        };
        if state.aggregate.is_some() {
            return Ok(());
        }
        let committee = state.committee.clone();
        let submitters = distinct_submitters(state);
        let waiting = Instant::now() < open.retry_at;
        let submit_open = now < schedule.submissions_close(opened);
        if !open.submitted && !open.submit_failed && submit_open {
            if !waiting {
                self.submit(opened).await?;
            }
            return Ok(());
        }
        if !open.evaluated && open.round > 0 {
            self.evaluate_previous().await?;
        }
        let open = self.round.as_ref().expect("a round is open");
        let me = self.client.agent().clone();
        if committee.contains(&me)
            && open.voted_on.is_none()
            && submitters > 0
            && now < schedule.ballots_close(opened)
            && (submitters >= open.expected || !submit_open)
        {
            if !waiting {
                self.vote().await?;
            }
            return Ok(());
        }
        self.maybe_aggregate(opened, &committee, now).await
    }

    /// Records a refusal: tried again shortly when the conductor says it may be, else not
    /// this round. Returns whether it gave up.
    fn refused(&mut self, what: &str, message: &str) -> bool {
        let open = self.round.as_mut().expect("a round is open");
        if retriable(message) {
            open.retry_at = Instant::now() + Duration::from_secs(1);
            // Said once per round and kind: validation is waiting for entries to arrive.
            if open.waiting_on.insert(what.to_string()) {
                eprintln!(
                    "{}round {}: my {what} waits for entries its validation needs; trying again: {message}",
                    self.label, open.round
                );
            }
            false
        } else {
            eprintln!(
                "{}round {}: my {what} was refused: {message}",
                self.label, open.round
            );
            true
        }
    }

    async fn submit(&mut self, opened: Timestamp) -> Result<()> {
        let open = self.round.as_ref().expect("a round is open");
        let (round, params) = (open.round, open.params.clone());
        let data = match self.behaviour {
            Behaviour::Attack(a) => a.poison(&self.train),
            Behaviour::Honest => self.train.clone(),
        };
        // Training is the one long computation; it runs where it does not hold up the
        // conductor's tasks on the same runtime.
        let (model, sgd, rng) = (&self.model, &self.sgd, &mut self.rng);
        let own = compute(|| delta(&local_train(model, &params, &data, sgd, rng), &params));
        let mut update = match self.behaviour {
            Behaviour::Honest => own,
            Behaviour::Attack(a) => {
                let colluders = match &self.coalition {
                    Some(c) => {
                        let close = self.info.task.schedule.submissions_close(opened);
                        let left = Duration::from_micros(
                            (close.as_micros() - Timestamp::now().as_micros()).max(0) as u64,
                        );
                        let until = Instant::now() + COLLUDER_WAIT.min(left / 2);
                        c.exchange(round, self.client.agent(), &own, until).await
                    }
                    None => vec![own.clone()],
                };
                a.craft(
                    &Knowledge {
                        own: &own,
                        colluders: &colluders,
                        peers: self.expected_peers(),
                        attackers: colluders.len(),
                        // A peer process keeps only the current global model.
                        last_step: None,
                    },
                    &mut self.rng,
                )
            }
        };
        clip_to_norm(&mut update, self.info.task.round.max_update_norm);
        let proof = match self.behaviour {
            Behaviour::Honest => compute(|| self.measure(&params, &update)),
            Behaviour::Attack(_) => PogqMeasurement {
                samples: self.validation.len() as u32,
                ..CLAIMED_IMPROVEMENT
            },
        };
        // Training takes time: the entry is dated when it is committed.
        if Timestamp::now() >= self.info.task.schedule.submissions_close(opened) {
            eprintln!(
                "{}round {round}: trained too late for the submission window",
                self.label
            );
            self.round.as_mut().expect("a round is open").submit_failed = true;
            return Ok(());
        }
        let encoded = Tensor::new(update).and_then(|t| t.encode(self.info.task.encoding));
        let result = match encoded {
            Ok(update) => self
                .client
                .call::<_, Submitted>(
                    "submit_update",
                    SubmitUpdate {
                        task: self.task_hash.clone(),
                        round,
                        update,
                        samples: self.train.len() as u32,
                        loss_before: proof.loss_before,
                        loss_after: proof.loss_after,
                        proof_samples: proof.samples,
                    },
                )
                .await
                .map_err(|e| e.message),
            Err(e) => Err(format!("encoding the update: {e}")),
        };
        match result {
            Ok(_) => {
                let open = self.round.as_mut().expect("a round is open");
                open.submitted = true;
                open.state = None;
            }
            // Already there (a restart lost the answer to the first try): submitted.
            Err(message) if Code::of(&message) == Some(Code::Duplicate) => {
                let open = self.round.as_mut().expect("a round is open");
                open.submitted = true;
                open.state = None;
            }
            Err(message) => {
                if self.refused("update", &message) {
                    self.round.as_mut().expect("a round is open").submit_failed = true;
                }
            }
        }
        Ok(())
    }

    /// Peers the attack assumes for its statistics: those the round waits for.
    fn expected_peers(&self) -> usize {
        self.round.as_ref().map_or(1, |o| o.expected.max(1))
    }

    /// The truthful PoGQ measurement of `update` against `params` on the held-out share.
    fn measure(&self, params: &[f32], update: &[f32]) -> PogqMeasurement {
        crate::cohort::measure(
            &self.model,
            self.info.task.round.pogq.probe_lr,
            params,
            update,
            &self.validation,
        )
    }

    /// Publishes the evaluation of the model the open round starts from (the previous
    /// round's aggregate), unless this agent already has.
    async fn evaluate_previous(&mut self) -> Result<()> {
        let open = self.round.as_ref().expect("a round is open");
        let Some(round) = open.round.checked_sub(1) else {
            // Round 0 starts from the task's initial model: nothing to evaluate.
            self.round.as_mut().expect("a round is open").evaluated = true;
            return Ok(());
        };
        let aggregate = open.base.clone();
        let existing: Vec<EvaluationInfo> = self.call("get_evaluations", aggregate.clone()).await?;
        let done = if existing.iter().any(|e| &e.author == self.client.agent()) {
            true
        } else {
            let v = &self.validation;
            let params = &open.params;
            let (loss, accuracy) = match self.behaviour {
                Behaviour::Attack(_) => (0.0, 1.0),
                Behaviour::Honest => {
                    let loss = self.model.loss(params, v.x.view(), &v.y);
                    (
                        if loss.is_finite() { loss } else { f64::MAX },
                        self.model.accuracy(params, v.x.view(), &v.y),
                    )
                }
            };
            let evaluation = ModelEvaluation {
                aggregate,
                round,
                loss,
                accuracy,
                samples: v.len() as u32,
                membership: None,
            };
            match self
                .client
                .call::<_, ActionHash>("publish_evaluation", evaluation)
                .await
            {
                Ok(_) => true,
                Err(e) => self.refused("evaluation", &e.message),
            }
        };
        self.round.as_mut().expect("a round is open").evaluated = done;
        Ok(())
    }

    async fn vote(&mut self) -> Result<()> {
        let open = self.round.as_ref().expect("a round is open");
        let state = open.state.as_ref().expect("state read");
        let (round, params) = (open.round, open.params.clone());
        let len = self.info.task.model_len as usize;
        let mut measured = Vec::with_capacity(state.submissions.len());
        for s in &state.submissions {
            let m = match self.behaviour {
                Behaviour::Honest => {
                    let full: UpdateSubmission =
                        self.call("get_submission", s.hash.clone()).await?;
                    let update = Tensor::decode(&full.update, len)
                        .with_context(|| format!("decoding submission {}", s.hash))?
                        .into_vec();
                    Score::Measure(update)
                }
                Behaviour::Attack(_) => {
                    let ours = &s.author == self.client.agent()
                        || self
                            .coalition
                            .as_ref()
                            .is_some_and(|c| c.is_member(&s.author));
                    Score::Claim(PogqMeasurement {
                        samples: self.validation.len() as u32,
                        ..if ours {
                            CLAIMED_IMPROVEMENT
                        } else {
                            CLAIMED_HARM
                        }
                    })
                }
            };
            measured.push((s, m));
        }
        let measured: Vec<_> = compute(|| {
            // The round's model is scored once; every update against it.
            let v = &self.validation;
            let mut before = None;
            measured
                .into_iter()
                .map(|(s, m)| match m {
                    Score::Claim(c) => (s, c),
                    Score::Measure(u) => {
                        let before = *before
                            .get_or_insert_with(|| self.model.loss(&params, v.x.view(), &v.y));
                        let m = crate::cohort::measure_after(
                            &self.model,
                            self.info.task.round.pogq.probe_lr,
                            &params,
                            before,
                            &u,
                            v,
                        );
                        (s, m)
                    }
                })
                .collect()
        });
        let mut votes = Vec::with_capacity(measured.len());
        for (s, m) in measured {
            votes.push(CastVote {
                submission: s.hash.clone(),
                loss_before: m.loss_before,
                loss_after: m.loss_after,
                samples: m.samples,
            });
        }
        let n = votes.len();
        let r = RoundRef {
            task: self.task_hash.clone(),
            round,
        };
        let result = self
            .client
            .call::<_, ActionHash>("cast_ballot", CastBallot { round: r, votes })
            .await;
        match result {
            Ok(_) => {
                let open = self.round.as_mut().expect("a round is open");
                open.voted_on = Some(n);
                open.state = None;
            }
            Err(e) => {
                if self.refused("ballot", &e.message) {
                    // Not retried within the round: one ballot per member.
                    self.round.as_mut().expect("a round is open").voted_on = Some(0);
                }
            }
        }
        Ok(())
    }

    async fn maybe_aggregate(
        &mut self,
        opened: Timestamp,
        committee: &[AgentPubKey],
        now: Timestamp,
    ) -> Result<()> {
        let schedule = self.info.task.schedule;
        let me = self.client.agent();
        let rank = if committee.is_empty() {
            (me == &self.info.author).then_some(0)
        } else {
            committee.iter().position(|m| m == me)
        };
        let open = self.round.as_ref().expect("a round is open");
        let state = open.state.as_ref().expect("state read");
        let voted = voters(state);
        let everyone_voted = committee.iter().all(|m| voted.contains(&m));
        let evidence_complete =
            distinct_submitters(state) >= open.expected && (committee.is_empty() || everyone_voted);
        let windows_closed = now >= schedule.ballots_close(opened)
            || (committee.is_empty() && now >= schedule.submissions_close(opened));
        let ready = evidence_complete || windows_closed;
        if ready && open.ready_at.is_none() {
            self.round.as_mut().expect("a round is open").ready_at = Some(Instant::now());
        }
        let open = self.round.as_ref().expect("a round is open");
        let slot = Duration::from_millis(schedule.slot_ms);
        // The schedule's slot, and as many slots after this participant saw the round
        // ready: better ranks go first, each rank one slot after the one before.
        let my_turn = match rank {
            Some(k) => {
                now >= schedule.rank_opens(opened, k)
                    && open
                        .ready_at
                        .is_some_and(|at| at.elapsed() >= slot * k as u32)
            }
            None => now >= schedule.fallback_opens(opened, committee.len()),
        };
        if !(ready && my_turn) || Instant::now() < open.next_aggregate_try {
            return Ok(());
        }
        let round = open.round;
        let result = self
            .client
            .call::<_, ActionHash>(
                "aggregate_round",
                RoundRef {
                    task: self.task_hash.clone(),
                    round,
                },
            )
            .await;
        let open = self.round.as_mut().expect("a round is open");
        match result {
            Ok(_) => {
                open.aggregated = true;
                open.state = None;
            }
            Err(e) => {
                open.next_aggregate_try = Instant::now() + Duration::from_secs(2);
                open.state = None;
                // Said once per reason: the conductor refuses until the round is ready.
                if open.last_refusal.as_deref() != Some(&e.message) {
                    if std::env::var_os("MYCELIX_FL_TRACE").is_some() {
                        eprintln!(
                            "{}round {round}: not aggregated yet: {}",
                            self.label, e.message
                        );
                    }
                    open.last_refusal = Some(e.message);
                }
            }
        }
        Ok(())
    }

    /// The line of the round `previous` that `aggregate` closed with the model `params`.
    async fn report(
        &self,
        previous: &OpenRound,
        aggregate: &ActionHash,
        params: &[f32],
    ) -> Result<RoundLine> {
        let agg: RoundAggregate = self.call("get_aggregate", aggregate.clone()).await?;
        let me = self.client.agent();
        let state: RoundState = self
            .call(
                "get_round",
                RoundRef {
                    task: self.task_hash.clone(),
                    round: previous.round,
                },
            )
            .await?;
        let mine: Vec<&ActionHash> = state
            .submissions
            .iter()
            .filter(|s| &s.author == me)
            .map(|s| &s.hash)
            .collect();
        let verdict = agg
            .outcomes
            .iter()
            .find(|o| mine.contains(&&o.submission))
            .map(|o| match o.verdict {
                Verdict::Included => "included".to_string(),
                Verdict::Excluded(why) => format!("excluded ({})", why.describe()),
            });
        let v = &self.validation;
        Ok(RoundLine {
            round: previous.round,
            submitted: previous.submitted || !mine.is_empty(),
            voted_on: previous.voted_on,
            aggregated: previous.aggregated
                && state.aggregate.as_ref().map(|(h, _)| h) == Some(aggregate),
            listed: agg.outcomes.len(),
            included: agg
                .outcomes
                .iter()
                .filter(|o| o.verdict == Verdict::Included)
                .count(),
            carry_over: agg.is_carry_over(),
            verdict,
            accuracy: self.model.accuracy(params, v.x.view(), &v.y),
            seconds: previous.seen_at.elapsed().as_secs_f64(),
        })
    }
}

/// A committee member's score of one submission: measured on its held-out share, or
/// claimed without looking.
enum Score {
    Measure(Vec<f32>),
    Claim(PogqMeasurement),
}

/// Runs the CPU-bound `f` off the runtime's async workers when the runtime has several
/// (a conductor in the same process keeps answering meanwhile), in place otherwise.
fn compute<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// The committee members with a ballot in the round.
fn voters(state: &RoundState) -> Vec<&AgentPubKey> {
    let mut v: Vec<&AgentPubKey> = state
        .submissions
        .iter()
        .flat_map(|s| s.votes.iter().map(|(_, m, _)| m))
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Agents with a submission in the round.
fn distinct_submitters(state: &RoundState) -> usize {
    let mut a: Vec<&AgentPubKey> = state.submissions.iter().map(|s| &s.author).collect();
    a.sort();
    a.dedup();
    a.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(b: u8) -> AgentPubKey {
        AgentPubKey::from_raw_36(vec![b; 36])
    }

    #[tokio::test]
    async fn colluders_see_each_others_benign_updates_and_nothing_else() {
        let c = Coalition::new(2);
        let (one, two) = (agent(1), agent(2));
        c.enlist(&one);
        c.enlist(&two);
        let until = Instant::now() + Duration::from_secs(5);
        let (a, b) = tokio::join!(
            c.exchange(3, &one, &[1.0], until),
            c.exchange(3, &two, &[2.0], until)
        );
        for shared in [a, b] {
            let mut v: Vec<f32> = shared.into_iter().flatten().collect();
            v.sort_by(f32::total_cmp);
            assert_eq!(v, [1.0, 2.0]);
        }
        assert!(c.is_member(&agent(2)));
        assert!(!c.is_member(&agent(3)));
        // Another round starts empty.
        let alone = c.exchange(4, &one, &[5.0], Instant::now()).await;
        assert_eq!(alone, vec![vec![5.0]]);
    }

    #[tokio::test]
    async fn a_colluder_that_never_shares_delays_the_others_only_until_their_deadline() {
        let c = Coalition::new(3);
        let (started, one) = (Instant::now(), agent(1));
        let shared = c
            .exchange(0, &one, &[1.0], started + Duration::from_millis(200))
            .await;
        assert_eq!(shared, vec![vec![1.0]]);
        assert!(started.elapsed() >= Duration::from_millis(200));
    }
}
