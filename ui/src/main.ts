// The dashboard: connects to the agent's conductor, reads the newest task's rounds and
// re-reads exactly what each zome signal says changed.

import { connect, type Connection } from "./connection";
import { RefreshQueue } from "./refresh";
import {
  type EvaluationInfo,
  type FlEvent,
  type RoundState,
  type TaskInfo,
  hashToString,
  hashesIn,
  type Hash,
  isFlEvent,
  taskFromForm,
  metricSeries,
  type Refresh,
  refreshFor,
  reputationTable,
  roundView,
  sameHash,
} from "./model";
import {
  invitesSection,
  metricsSection,
  newTaskSection,
  type PeerView,
  peersSection,
  reputationSection,
  roundsSection,
  statusBanner,
  taskSection,
} from "./view";

interface State {
  status: { state: "connecting" | "connected" | "error"; message?: string };
  tasks: TaskInfo[];
  task: TaskInfo | null;
  rounds: Map<number, RoundState>;
  evaluations: Map<number, EvaluationInfo[]>;
  peers: PeerView[];
  /** Agents in the zome's directory, by key. */
  directory: Map<string, Hash>;
  /** The shown task's members. */
  members: Set<string>;
  /** Invites this page wrote, by invitee. */
  invites: Map<string, string>;
  /** Invitees whose invite is being written. */
  inviting: Set<string>;
  /** Why the last invite was not written, if it was not. */
  inviteMessage: string | null;
  /** The outcome of the last "new task" submission. */
  formMessage: { ok: boolean; text: string } | null;
}

const state: State = {
  status: { state: "connecting" },
  tasks: [],
  task: null,
  rounds: new Map(),
  evaluations: new Map(),
  peers: [],
  directory: new Map(),
  members: new Set(),
  invites: new Map(),
  inviting: new Set(),
  inviteMessage: null,
  formMessage: null,
};

let connection: Connection | null = null;

const app = document.getElementById("app")!;

function render() {
  if (state.status.state !== "connected" && !state.task) {
    // Nothing read yet: an empty "no task" would be a guess, so show only the status.
    app.innerHTML = statusBanner(state.status);
    return;
  }
  const rounds = [...state.rounds.values()];
  app.innerHTML = [
    statusBanner(state.status),
    `<div class="grid">`,
    taskSection(state.task, state.tasks.length),
    peersSection(state.peers, Date.now(), state.directory.size),
    metricsSection(metricSeries(state.evaluations)),
    reputationSection(reputationTable(rounds)),
    invitesSection(
      state.task,
      connection?.agent ?? "",
      [...state.directory.keys()].map((agent) => ({
        agent,
        member: state.members.has(agent),
        invite: state.invites.get(agent) ?? null,
        pending: state.inviting.has(agent),
      })),
      state.inviteMessage,
    ),
    `</div>`,
    roundsSection(
      rounds
        .filter((r) => r.base !== null)
        .map((r) => roundView(r, state.task?.task.round.pogq.loss_scale ?? 0)),
    ),
  ].join("");
  // The form lives outside #app, so a re-render never loses what is being typed.
  const forms = document.getElementById("forms")!;
  if (state.status.state === "connected" && !document.getElementById("task-form")) {
    forms.innerHTML = newTaskSection();
    document.getElementById("task-form")!.addEventListener("submit", onSubmitTask);
  }
  const message = document.getElementById("task-form-message");
  if (message && state.formMessage) {
    message.textContent = state.formMessage.text;
    message.className = state.formMessage.ok ? "ok" : "error";
  }
}

async function onSubmitTask(e: Event) {
  e.preventDefault();
  const c = connection;
  if (!c) return;
  const data = new FormData(e.target as HTMLFormElement);
  const text = (k: string) => String(data.get(k) ?? "");
  try {
    const task = taskFromForm({
      name: text("name"),
      description: text("description"),
      rule: text("rule"),
      f: Number(text("f")),
      committee: Number(text("committee")),
      features: Number(text("features")),
      classes: Number(text("classes")),
      scale: Number(text("scale")),
      admission: text("admission") === "open" ? "open" : "closed",
    });
    await c.call("create_task", task);
    state.formMessage = { ok: true, text: `published task "${task.name}"` };
    await loadTasks(c);
  } catch (err) {
    state.formMessage = { ok: false, text: `not published: ${String((err as Error)?.message ?? err)}` };
  }
  render();
}

/** Writes an invite of `agent` into the shown task, as this agent (the task's author). */
async function onInvite(c: Connection, agent: string) {
  const invitee = state.directory.get(agent);
  const task = state.task;
  if (!task || !invitee || state.inviting.has(agent)) return;
  state.inviting.add(agent);
  state.inviteMessage = null;
  render();
  try {
    const proof = await c.call<{ invite_hash: Hash }>("invite_agent", {
      task: task.hash,
      invitee,
      standing: null,
    });
    // The page may have moved to another task meanwhile.
    if (sameHash(task.hash, state.task?.hash)) state.invites.set(agent, hashToString(proof.invite_hash));
  } catch (e) {
    // A refused invite is the page's answer to a click, not a lost connection.
    state.inviteMessage = `no invite written for ${agent.slice(5, 13)}: ${String((e as Error)?.message ?? e)}`;
  } finally {
    state.inviting.delete(agent);
    render();
  }
}

async function loadMembers(c: Connection) {
  const task = state.task;
  if (!task) return;
  const members = await c.call<{ agent: Hash }[]>("list_members", task.hash);
  if (sameHash(task.hash, state.task?.hash)) state.members = new Set(members.map((m) => hashToString(m.agent)));
}

async function loadTasks(c: Connection) {
  state.tasks = await c.call<TaskInfo[]>("list_tasks", null);
  const newest = state.tasks[state.tasks.length - 1] ?? null;
  const wanted = new URLSearchParams(location.search).get("task");
  const chosen = state.tasks.find((t) => hashToString(t.hash) === wanted) ?? newest;
  if (chosen && !sameHash(chosen.hash, state.task?.hash)) {
    state.task = chosen;
    state.rounds.clear();
    state.evaluations.clear();
    state.members.clear();
    state.invites.clear();
  }
}

async function loadRound(c: Connection, round: number) {
  if (!state.task) return;
  const s = await c.call<RoundState>("get_round", { task: state.task.hash, round });
  state.rounds.set(round, s);
}

async function loadEvaluations(c: Connection, round: number) {
  const closed = state.rounds.get(round)?.aggregate;
  if (!closed) return;
  const evals = await c.call<EvaluationInfo[]>("get_evaluations", closed[0]);
  state.evaluations.set(round, evals);
}

/** Reads everything: every closed round, the open one, and the evaluations. */
async function loadAll(c: Connection) {
  await loadTasks(c);
  if (!state.task) return;
  await loadMembers(c);
  let round = 0;
  for (;;) {
    await loadRound(c, round);
    const s = state.rounds.get(round)!;
    if (!s.aggregate) break;
    await loadEvaluations(c, round);
    round += 1;
  }
}

async function loadPeers(c: Connection) {
  state.peers = await c.peers();
  const agents = await c.call<Hash[]>("list_agents", null);
  state.directory = new Map(agents.map((a) => [hashToString(a), a]));
  await loadMembers(c);
}

/** Applies a signal: re-reads what it names; retries while the read lags the signal
 *  (the event can arrive before this conductor has validated the entry). */
async function onEvent(c: Connection, event: FlEvent) {
  if (event.type === "task_created") {
    // The entry can reach this conductor after the signal: re-read until it is listed.
    const wanted = hashToString(event.task);
    for (let attempt = 0; attempt < 12; attempt++) {
      if (attempt > 0) await new Promise((res) => setTimeout(res, 250 * 2 ** Math.min(attempt, 5)));
      await loadTasks(c);
      if (state.tasks.some((t) => hashToString(t.hash) === wanted)) break;
    }
    render();
    return;
  }
  const r: Refresh = refreshFor(event);
  if (!state.task || r.task !== hashToString(state.task.hash)) {
    await loadTasks(c);
    if (!state.task || r.task !== hashToString(state.task.hash)) return;
  }
  refreshes ??= new RefreshQueue(async (rounds, evaluations) => {
    const seen = new Set<string>();
    for (const round of rounds) {
      await loadRound(c, round);
      hashesIn(state.rounds.get(round)!).forEach((h) => seen.add(h));
    }
    for (const round of evaluations) {
      if (!state.rounds.get(round)?.aggregate) await loadRound(c, round);
      await loadEvaluations(c, round);
      (state.evaluations.get(round) ?? []).forEach((e) => seen.add(hashToString(e.hash)));
    }
    render();
    return seen;
  });
  refreshes.push(r);
}

let refreshes: RefreshQueue | undefined;

async function main() {
  render();
  let c: Connection;
  try {
    c = await connect();
  } catch (e) {
    state.status = { state: "error", message: String((e as Error)?.message ?? e) };
    render();
    return;
  }
  connection = c;
  state.status = { state: "connected", message: `connected as ${c.agentLabel} to ${c.url}` };
  c.onEvent((payload) => {
    if (isFlEvent(payload)) void onEvent(c, payload).catch(report);
  });
  app.addEventListener("click", (e) => {
    const button = (e.target as HTMLElement).closest<HTMLButtonElement>("button.invite");
    const agent = button?.dataset.invitee;
    if (!button || !agent) return;
    void onInvite(c, agent).catch(report);
  });
  c.onClose((why) => {
    state.status = { state: "error", message: `connection closed: ${why}` };
    render();
  });
  try {
    await Promise.all([loadAll(c), loadPeers(c)]);
  } catch (e) {
    report(e);
  }
  render();
  // Peer infos expire on their own; re-read the peer store now and then.
  setInterval(() => void loadPeers(c).then(render).catch(report), 15_000);
}

function report(e: unknown) {
  console.error(e);
  state.status = { state: "error", message: String((e as Error)?.message ?? e) };
  render();
}

void main();
