// The dashboard: connects to the agent's conductor, reads the newest task's rounds and
// re-reads exactly what each zome signal says changed.

import { connect, type Connection } from "./connection";
import {
  type EvaluationInfo,
  type FlEvent,
  type RoundState,
  type TaskInfo,
  hashToString,
  hashesIn,
  isFlEvent,
  metricSeries,
  type Refresh,
  refreshFor,
  reputationTable,
  roundView,
  sameHash,
} from "./model";
import {
  metricsSection,
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
  /** Hashes seen in signals that the reads do not show yet. */
  awaited: Set<string>;
}

const state: State = {
  status: { state: "connecting" },
  tasks: [],
  task: null,
  rounds: new Map(),
  evaluations: new Map(),
  peers: [],
  awaited: new Set(),
};

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
    peersSection(state.peers, Date.now()),
    metricsSection(metricSeries(state.evaluations)),
    reputationSection(reputationTable(rounds)),
    `</div>`,
    roundsSection(rounds.filter((r) => r.base !== null).map(roundView)),
  ].join("");
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
  }
}

async function loadRound(c: Connection, round: number) {
  if (!state.task) return;
  const s = await c.call<RoundState>("get_round", { task: state.task.hash, round });
  state.rounds.set(round, s);
  for (const h of hashesIn(s)) state.awaited.delete(h);
}

async function loadEvaluations(c: Connection, round: number) {
  const closed = state.rounds.get(round)?.aggregate;
  if (!closed) return;
  const evals = await c.call<EvaluationInfo[]>("get_evaluations", closed[0]);
  state.evaluations.set(round, evals);
  for (const e of evals) state.awaited.delete(hashToString(e.hash));
}

/** Reads everything: every closed round, the open one, and the evaluations. */
async function loadAll(c: Connection) {
  await loadTasks(c);
  if (!state.task) return;
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
}

/** Applies a signal: re-reads what it names; retries while the read lags the signal
 *  (the event can arrive before this conductor has validated the entry). */
async function onEvent(c: Connection, event: FlEvent) {
  const r: Refresh = refreshFor(event);
  if (!state.task || r.task !== hashToString(state.task.hash)) {
    await loadTasks(c);
    if (!state.task || r.task !== hashToString(state.task.hash)) return;
  }
  state.awaited.add(r.expect);
  for (let attempt = 0; attempt < 12 && state.awaited.has(r.expect); attempt++) {
    if (attempt > 0) await new Promise((res) => setTimeout(res, 250 * 2 ** Math.min(attempt, 5)));
    for (const round of r.rounds) await loadRound(c, round);
    for (const round of r.evaluations) {
      if (!state.rounds.get(round)?.aggregate) await loadRound(c, round);
      await loadEvaluations(c, round);
    }
    render();
  }
  state.awaited.delete(r.expect);
}

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
  state.status = { state: "connected", message: `connected as ${c.agentLabel} to ${c.url}` };
  c.onEvent((payload) => {
    if (isFlEvent(payload)) void onEvent(c, payload).catch(report);
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
