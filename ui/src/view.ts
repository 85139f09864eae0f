// Rendering: pure functions from the dashboard's view data to HTML strings. Every value
// that came from the network is escaped.

import {
  admissionLabel,
  describeModel,
  describeRule,
  type MetricPoint,
  type ReputationRow,
  type RoundView,
  type TaskInfo,
  hashToString,
  shortHash,
} from "./model";

/** Escapes text for HTML. */
export function esc(value: unknown): string {
  return String(value)
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

/** An agent or action hash, shortened, with the full hash on hover. */
export function hashLabel(full: string): string {
  return `<code class="hash" title="${esc(full)}">${esc(full.slice(5, 13))}</code>`;
}

const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
const num = (x: number | null, digits = 3) => (x === null ? "–" : x.toFixed(digits));

/** The task and its settings. */
export function taskSection(info: TaskInfo | null, tasks: number): string {
  if (!info) {
    return `<section id="task" class="empty"><h2>Task</h2>
      <p>No training task on this network yet. Publish one with the form below or
      <code>mycelix-fl task create</code>; it appears here as it arrives.</p></section>`;
  }
  const t = info.task;
  const more = tasks > 1 ? `<p class="note">${tasks} tasks on this network; showing the newest.</p>` : "";
  return `<section id="task" data-hash="${esc(hashToString(info.hash))}"><h2>Task: ${esc(t.name)}</h2>
    <p>${esc(t.description)}</p>
    <dl class="settings">
      <dt>admission</dt><dd>${esc(admissionLabel(t.admission))}</dd>
      <dt>aggregator</dt><dd>${esc(describeRule(t.round))}</dd>
      <dt>committee</dt><dd>${t.committee_size} members, PoGQ threshold ${t.round.pogq.min_score}${t.round.pogq.mad_band ? ` or within ${t.round.pogq.mad_band} MADs of the ballot's median` : ""}${t.round.pogq.loss_scale ? `, losses below ${t.round.pogq.loss_scale} scored in units of it` : ""}</dd>
      <dt>quorum</dt><dd>${t.quorum} submissions</dd>
      <dt>schedule</dt><dd>${t.schedule ? `submissions ${t.schedule.submit_ms / 1000} s, votes ${t.schedule.vote_ms / 1000} s more, aggregation slots of ${t.schedule.slot_ms / 1000} s` : "none"}</dd>
      <dt>model</dt><dd>${esc(t.spec ? describeModel(t.spec.model) : "unspecified")} (${t.model_len} parameters)</dd>
      <dt>update norm bound</dt><dd>${t.round.max_update_norm ?? 1000}</dd>
      <dt>participant bound</dt><dd>${t.round.max_participants ?? 1000}</dd>
      <dt>verdicts need</dt><dd>${t.round.min_trusted_voters ?? 1} trusted committee member(s)</dd>
      <dt>reputation for</dt><dd>${t.round.aligned_credit ? "included updates along the line of the previous round's step" : "every included update"}</dd>
      <dt>author</dt><dd>${hashLabel(hashToString(info.author))}</dd>
      <dt>task</dt><dd>${hashLabel(hashToString(info.hash))}</dd>
    </dl>${more}</section>`;
}

/** Rounds as a timeline, newest first; each with its submissions, verdicts and votes. */
export function roundsSection(rounds: RoundView[]): string {
  if (rounds.length === 0) {
    return `<section id="rounds" class="empty"><h2>Rounds</h2><p>No round has started yet.</p></section>`;
  }
  const items = [...rounds]
    .sort((a, b) => b.round - a.round)
    .map((r) => {
      const rows = r.submissions
        .map((s) => {
          const verdict =
            s.status === "excluded"
              ? `<span class="verdict excluded">excluded</span> <span class="reason">${esc(s.reason)}</span>`
              : `<span class="verdict ${s.status}">${s.status}</span>`;
          const votes =
            s.votes.length === 0
              ? "–"
              : s.votes
                  .map(
                    (v) =>
                      `<span class="vote ${v.accept ? "accept" : "reject"}" title="${esc(v.member)}: score ${v.score.toFixed(4)}">${v.accept ? "✔" : "✘"} ${esc(v.member.slice(5, 13))}</span>`,
                  )
                  .join(" ");
          return `<tr data-author="${esc(s.author)}" data-status="${s.status}">
            <td>${hashLabel(s.author)}</td><td>${s.samples}</td>
            <td>${num(s.claimedScore, 4)}</td><td>${votes}</td><td>${verdict}</td></tr>`;
        })
        .join("");
      const committee =
        r.committee.length === 0 ? "none (round 0)" : r.committee.map(hashLabel).join(" ");
      const summary =
        r.status === "closed"
          ? `${r.included} included, ${r.excluded} excluded`
          : `open: ${r.submissions.length} of ${r.quorum} submissions needed`;
      return `<li class="round ${r.status}" data-round="${r.round}">
        <h3>Round ${r.round} <span class="status">${summary}</span></h3>
        <p class="committee">committee: ${committee}</p>
        <table><thead><tr><th>submitter</th><th>samples</th><th>PoGQ score</th><th>committee votes</th><th>verdict</th></tr></thead>
        <tbody>${rows || `<tr><td colspan="5">no submissions yet</td></tr>`}</tbody></table></li>`;
    })
    .join("");
  return `<section id="rounds"><h2>Rounds</h2><ol class="timeline">${items}</ol></section>`;
}

/** The reputation table with each agent's history as a sparkline. */
export function reputationSection(rows: ReputationRow[]): string {
  if (rows.length === 0) {
    return `<section id="reputation" class="empty"><h2>Reputation</h2><p>No round has closed yet.</p></section>`;
  }
  const body = rows
    .map(
      (r) => `<tr data-agent="${esc(r.agent)}"><td>${hashLabel(r.agent)}</td><td>${r.current.toFixed(3)}</td>
        <td>${sparkline(r.history)}</td><td class="history">${r.history.map((h) => num(h, 2)).join(" → ")}</td></tr>`,
    )
    .join("");
  return `<section id="reputation"><h2>Reputation</h2><table>
    <thead><tr><th>agent</th><th>now</th><th>trend</th><th>after each round</th></tr></thead>
    <tbody>${body}</tbody></table></section>`;
}

function sparkline(values: (number | null)[]): string {
  const w = 80;
  const h = 18;
  const pts = values
    .map((v, i) => (v === null ? null : [values.length === 1 ? w / 2 : (i * w) / (values.length - 1), h - v * h]))
    .filter((p): p is number[] => p !== null)
    .map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`)
    .join(" ");
  return `<svg class="spark" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}"><polyline points="${pts}" /></svg>`;
}

/** Accuracy and loss of the global model over rounds, as an SVG line chart. */
export function metricsSection(points: MetricPoint[]): string {
  if (points.length === 0) {
    return `<section id="metrics" class="empty"><h2>Global model</h2><p>No evaluation of the global model yet.</p></section>`;
  }
  const w = 520;
  const h = 200;
  const pad = 34;
  const maxRound = Math.max(1, ...points.map((p) => p.round));
  const maxLoss = Math.max(1e-9, ...points.map((p) => p.loss));
  const x = (r: number) => pad + (r / maxRound) * (w - 2 * pad);
  const yAcc = (a: number) => h - pad + -a * (h - 2 * pad);
  const yLoss = (l: number) => h - pad + -(l / maxLoss) * (h - 2 * pad);
  const line = (f: (p: MetricPoint) => number) =>
    points.map((p) => `${x(p.round).toFixed(1)},${f(p).toFixed(1)}`).join(" ");
  const dots = (f: (p: MetricPoint) => number, cls: string) =>
    points.map((p) => `<circle class="${cls}" cx="${x(p.round).toFixed(1)}" cy="${f(p).toFixed(1)}" r="3" />`).join("");
  const ticks = points
    .map((p) => `<text x="${x(p.round).toFixed(1)}" y="${h - pad + 16}" text-anchor="middle">${p.round}</text>`)
    .join("");
  const last = points[points.length - 1];
  const rows = points
    .map((p) => `<tr><td>${p.round}</td><td>${pct(p.accuracy)}</td><td>${p.loss.toFixed(3)}</td><td>${p.evaluations}</td></tr>`)
    .join("");
  return `<section id="metrics"><h2>Global model</h2>
    <p>After round ${last.round}: accuracy <strong>${pct(last.accuracy)}</strong>, loss <strong>${last.loss.toFixed(3)}</strong>
    (${last.evaluations === 1 ? "one participant's evaluation" : `medians of ${last.evaluations} participants' evaluations`} on their own held-out data).</p>
    <svg class="chart" viewBox="0 0 ${w} ${h}" role="img" aria-label="accuracy and loss over rounds">
      <line class="axis" x1="${pad}" y1="${h - pad}" x2="${w - pad}" y2="${h - pad}" />
      <line class="axis" x1="${pad}" y1="${pad}" x2="${pad}" y2="${h - pad}" />
      <text x="${pad - 6}" y="${pad + 4}" text-anchor="end">1</text>
      <text x="${pad - 6}" y="${h - pad + 4}" text-anchor="end">0</text>
      <text x="${w - pad + 4}" y="${pad + 4}">${maxLoss.toFixed(2)}</text>
      ${ticks}
      <polyline class="accuracy" points="${line((p) => yAcc(p.accuracy))}" />${dots((p) => yAcc(p.accuracy), "accuracy")}
      <polyline class="loss" points="${line((p) => yLoss(p.loss))}" />${dots((p) => yLoss(p.loss), "loss")}
    </svg>
    <p class="legend"><span class="accuracy">■ accuracy</span> <span class="loss">■ loss (right scale)</span> by round</p>
    <table><thead><tr><th>round</th><th>accuracy</th><th>loss</th><th>evaluations</th></tr></thead><tbody>${rows}</tbody></table>
    </section>`;
}

/** The form that publishes a new task as this agent. */
export function newTaskSection(): string {
  const rules = ["median", "trimmed_mean", "multi_krum", "krum", "bulyan", "mean"]
    .map((r) => `<option value="${r}">${r}</option>`)
    .join("");
  return `<section id="new-task"><h2>New task</h2>
    <form id="task-form">
      <label>name <input name="name" required maxlength="200" value="" placeholder="digits, robust" /></label>
      <label>description <input name="description" value="" placeholder="what peers train" /></label>
      <label>aggregator <select name="rule">${rules}</select></label>
      <label>f <input name="f" type="number" min="0" value="1" /></label>
      <label>committee <input name="committee" type="number" min="1" value="5" /></label>
      <label>model: logreg <input name="features" type="number" min="1" value="64" /> x <input name="classes" type="number" min="1" value="10" /></label>
      <label>feature scale <input name="scale" type="number" min="0" step="any" value="0.0625" title="every peer multiplies its feature values by this (1/16 for the digits' 0-16 pixels)" /></label>
      <label>admission <select name="admission"><option value="closed">closed: members by invite</option><option value="open">open: any agent</option></select></label>
      <button type="submit">Publish task</button>
    </form><p id="task-form-message" role="status"></p>
    <p class="note">Publishes a task entry as this agent (validated by every peer; the quorum is the smallest the rule allows).
    Other agents' dashboards show it as it arrives. Peers train it with
    <code>mycelix-fl peer --task HASH --data mine.csv</code> (a CSV with a <code>label</code> column of 0 to classes - 1).</p></section>`;
}

/** One agent of the directory as the invite section shows it. */
export interface InviteRow {
  /** The agent's key. */
  agent: string;
  /** Whether it has joined the task. */
  member: boolean;
  /** The invite this page wrote for it, if any. */
  invite: string | null;
  /** Whether this page is writing an invite for it. */
  pending: boolean;
}

/** For the author of a closed task: the agents of the directory, each with an invite
 *  button, the invite once written, or "member"; and the command a peer runs. */
export function invitesSection(task: TaskInfo | null, me: string, rows: InviteRow[], message: string | null = null): string {
  if (!task || task.task.admission?.kind !== "closed" || hashToString(task.author) !== me) return "";
  const hash = hashToString(task.hash);
  const items = rows
    .filter((r) => r.agent !== me)
    .map((r) => {
      const state = r.member
        ? `<span class="verdict accepted">member</span>`
        : r.invite
          ? `invite <code class="invite">${esc(r.invite)}</code>`
          : `<button type="button" class="invite" data-invitee="${esc(r.agent)}"${r.pending ? " disabled" : ""}>${r.pending ? "inviting…" : "invite"}</button>`;
      return `<li data-agent="${esc(r.agent)}"${r.invite ? ` data-invite="${esc(r.invite)}"` : ""}>${hashLabel(r.agent)} ${state}</li>`;
    })
    .join("");
  return `<section id="invites"><h2>Invites</h2>
    ${items ? `<ul>${items}</ul>` : `<p>No other agent in the directory yet: an agent is listed once its dashboard or peer has made a call.</p>`}
    ${message ? `<p class="error" role="status">${esc(message)}</p>` : ""}
    <p class="note">An invited agent joins with
    <code>mycelix-fl peer --task ${esc(hash)} --invite INVITE</code> (or without <code>--invite</code>: the peer finds invites written for it).</p></section>`;
}

/** A peer the conductor currently knows. */
export interface PeerView {
  agent: string;
  /** Whether it is this dashboard's own agent. */
  me: boolean;
  /** When its signed agent info expires (ms since the epoch), if known. */
  expiresAt: number | null;
}

/** Peers online: the agents this conductor's peer store holds unexpired infos for. */
export function peersSection(peers: PeerView[], now: number, listed: number): string {
  const online = peers.filter((p) => p.expiresAt === null || p.expiresAt > now);
  const directory = `<p class="note" id="directory" data-listed="${listed}">${listed} agent${listed === 1 ? "" : "s"} in the task directory (announced new tasks)</p>`;
  if (online.length === 0) {
    return `<section id="peers" class="empty"><h2>Peers online</h2><p>No peers known yet.</p>${directory}</section>`;
  }
  const items = online
    .map((p) => `<li>${hashLabel(p.agent)}${p.me ? " <em>(this dashboard's agent)</em>" : ""}</li>`)
    .join("");
  return `<section id="peers"><h2>Peers online <span class="count">${online.length}</span></h2><ul>${items}</ul>${directory}</section>`;
}

/** The connection banner: connecting, connected, or the error. */
export function statusBanner(status: { state: "connecting" | "connected" | "error"; message?: string }): string {
  if (status.state === "error") {
    return `<div id="status" class="error" role="alert"><strong>Cannot reach the conductor.</strong> ${esc(status.message ?? "")}</div>`;
  }
  if (status.state === "connecting") return `<div id="status" class="connecting">Connecting to the conductor…</div>`;
  return `<div id="status" class="connected">${esc(status.message ?? "connected")}</div>`;
}

export { shortHash };
