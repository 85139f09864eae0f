// The dashboard's data: the zome's types as they arrive over the app websocket, and the
// pure functions that turn them into what the page shows. No DOM, no network: everything
// here is unit-tested (model.test.ts).

/** A 39-byte Holochain hash (agent key, action hash) as msgpack delivers it. */
export type Hash = Uint8Array;

/** Why the round left an update out (fl_core `Exclusion`). */
export type Exclusion =
  | "equivocation"
  | "above_norm_bound"
  | "invalid_proof"
  | "below_reputation_floor"
  | "negligible_update"
  | "duplicate_update"
  | "committee_rejected"
  | "aggregator_outlier"
  | "no_quorum"
  | "table_full";

/** fl_core `Verdict`: `"included"` or `{ excluded: reason }`. */
export type Verdict = "included" | { excluded: Exclusion };

/** fl_core `Rule` (internally tagged by `rule`). */
export interface Rule {
  rule: string;
  m?: number | null;
  [k: string]: unknown;
}

/** fl_core `RoundParams`. */
export interface RoundParams {
  aggregator: { rule: Rule; f: number; nnm: boolean };
  /** `mad_band`: a vote also passes within this many MADs below its ballot's median score (0: off; absent in older tasks).
   * `loss_scale`: below this loss, scores measure the loss change in units of it rather than relative to the loss (0 or absent: relative). */
  pogq: { probe_lr: number; min_score: number; mad_band?: number; loss_scale?: number };
  reputation: Record<string, number>;
  server_lr: number;
  /** Largest Euclidean norm an update may have; validation rejects larger ones (absent in older tasks: 1000). */
  max_update_norm?: number;
  /** Most agents the reputation table may hold (absent in older tasks: 1000). */
  max_participants?: number;
  /** Fewest trusted committee members a verdict needs; with fewer the committee is silent (absent in older tasks: 1). */
  min_trusted_voters?: number;
  /** Whether an update earns reputation only when it lies along the line of the previous round's global step, either way (absent in older tasks: false). */
  aligned_credit?: boolean;
}

/** The integrity zome's `Task`. */
export interface Task {
  name: string;
  description: string;
  model_len: number;
  /** What to train: model, data schema and preprocessing, local training (fl_core `TaskSpec`). */
  spec: TaskSpec;
  encoding: unknown;
  round: RoundParams;
  committee_size: number;
  quorum: number;
  /** When a round's entries may be dated (integrity `RoundSchedule`). */
  schedule: RoundSchedule;
  /** Who may take part; absent on tasks written before admission existed (open). */
  admission?: Admission;
}

/** fl_core `ModelSpec`: the architecture, which fixes the parameter count. */
export type ModelSpec =
  | { kind: "logreg"; inputs: number; classes: number }
  | { kind: "mlp"; inputs: number; hidden: number; classes: number }
  | { kind: "cnn_mnist"; classes: number };

/** fl_core `TaskSpec`, as `mycelix-fl task create --spec` writes it too. */
export interface TaskSpec {
  model: ModelSpec;
  data: {
    /** Feature columns in order; empty: every column but the label, in the table's order. */
    features: string[];
    label: string;
    /** Label values in class order. */
    classes: string[];
    preprocess:
      | { kind: "none" }
      | { kind: "scale"; factor: number }
      | { kind: "affine"; offset: number[]; scale: number[] };
  };
  training: { learning_rate: number; epochs: number; batch_size: number; momentum: number; weight_decay: number };
}

/** A model spec in a few words, as the node prints it (`logreg 64x10`, `mlp 784-100-10`). */
export function describeModel(m: ModelSpec): string {
  switch (m.kind) {
    case "logreg":
      return `logreg ${m.inputs}x${m.classes}`;
    case "mlp":
      return `mlp ${m.inputs}-${m.hidden}-${m.classes}`;
    case "cnn_mnist":
      return `cnn_mnist 28x28-${m.classes}`;
  }
}

/** Integrity `RoundSchedule`: submission and vote windows and the aggregation slot, in ms. */
export interface RoundSchedule {
  submit_ms: number;
  vote_ms: number;
  slot_ms: number;
}

/** Integrity `Admission`: open, or closed to invited members. */
export type Admission =
  | { kind: "open" }
  | { kind: "closed"; invites_per_member: number; min_inviter_reputation: number };

/** How the dashboard labels a task's admission. */
export function admissionLabel(a: Admission | undefined): string {
  if (!a || a.kind === "open") return "open: any agent on the network may submit (no sybil resistance beyond reputation)";
  return `closed: members by invite only (${a.invites_per_member} invites per member, from reputation ${(a.min_inviter_reputation / 1e6).toFixed(2)})`;
}

/** Coordinator `TaskInfo`. */
export interface TaskInfo {
  hash: Hash;
  author: Hash;
  /** Microseconds since the epoch, by the author's clock. */
  created_at: number;
  task: Task;
}

/** Integrity `PogqProof` (carried in its submission). */
export interface PogqProof {
  loss_before: number;
  loss_after: number;
  samples: number;
}

/** Integrity `CommitteeVote`: one vote of a member's `CommitteeBallot`. */
export interface CommitteeVote {
  submission: Hash;
  loss_before: number;
  loss_after: number;
  samples: number;
  accept: boolean;
}

/** Coordinator `SubmissionInfo`. */
export interface SubmissionInfo {
  hash: Hash;
  author: Hash;
  samples: number;
  update_bytes: number;
  proof: PogqProof;
  votes: [Hash, Hash, CommitteeVote][];
}

/** Integrity `OutcomeRecord`. */
export interface OutcomeRecord {
  submission: Hash;
  votes: Hash[];
  verdict: Verdict;
}

/** Integrity `ReputationEntry`; reputation is fixed point, 1 000 000 = 1.0. */
export interface ReputationEntry {
  agent: Hash;
  reputation: number;
  /** Aggregated rounds in a row the agent took no part in (absent in older aggregates). */
  missed?: number;
}

/** Integrity `RoundAggregate` (the model bytes are not used here). */
export interface RoundAggregate {
  task: Hash;
  round: number;
  base: Hash;
  outcomes: OutcomeRecord[];
  reputation: ReputationEntry[];
}

/** Coordinator `RoundState`. */
export interface RoundState {
  task: Hash;
  round: number;
  base: Hash | null;
  submissions: SubmissionInfo[];
  committee: Hash[];
  quorum: number;
  quorum_met: boolean;
  aggregate: [Hash, RoundAggregate] | null;
}

/** Integrity `ModelEvaluation`. */
export interface ModelEvaluation {
  aggregate: Hash;
  round: number;
  loss: number;
  accuracy: number;
  samples: number;
}

/** Coordinator `EvaluationInfo`. */
export interface EvaluationInfo {
  hash: Hash;
  author: Hash;
  evaluation: ModelEvaluation;
}

/** Coordinator `Event`, the payload of every signal the zome emits. */
export type FlEvent =
  | { type: "task_created"; task: Hash; author: Hash }
  | { type: "submission_created"; task: Hash; round: number; submission: Hash; author: Hash }
  | { type: "ballot_cast"; task: Hash; round: number; ballot: Hash; member: Hash }
  | { type: "round_aggregated"; task: Hash; round: number; aggregate: Hash }
  | { type: "model_evaluated"; task: Hash; round: number; evaluation: Hash; author: Hash };

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** A hash in Holochain's display form: `u` + URL-safe base64 without padding. */
export function hashToString(hash: Hash): string {
  let out = "u";
  for (let i = 0; i < hash.length; i += 3) {
    const n = (hash[i] << 16) | ((hash[i + 1] ?? 0) << 8) | (hash[i + 2] ?? 0);
    const chars = i + 1 >= hash.length ? 2 : i + 2 >= hash.length ? 3 : 4;
    for (let c = 0; c < chars; c++) out += B64[(n >> (18 - 6 * c)) & 63];
  }
  return out;
}

/** A short, stable label for a hash: the first characters of its core bytes. */
export function shortHash(hash: Hash): string {
  return hashToString(hash).slice(5, 13);
}

/** Whether two hashes are equal. */
export function sameHash(a: Hash | null | undefined, b: Hash | null | undefined): boolean {
  if (!a || !b || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A sentence for an exclusion, as `Exclusion::describe` in fl_core words it. */
export function describeExclusion(e: Exclusion): string {
  switch (e) {
    case "equivocation":
      return "one of several submissions by the same agent";
    case "above_norm_bound":
      return "update norm above the task's bound";
    case "invalid_proof":
      return "missing or failing PoGQ proof";
    case "below_reputation_floor":
      return "reputation below the floor";
    case "negligible_update":
      return "negligible update (no work done)";
    case "duplicate_update":
      return "copy of another update in the round";
    case "committee_rejected":
      return "rejected by the trusted committee members";
    case "aggregator_outlier":
      return "left out by the robust aggregator";
    case "no_quorum":
      return "the round closed without a quorum (carry-over)";
    case "table_full":
      return "the task's participant bound is reached (no room for a newcomer)";
    default:
      return `excluded (${String(e)})`;
  }
}

/** The aggregation rule in words, e.g. `multi_krum (m = 5), f = 3`. */
export function describeRule(params: RoundParams): string {
  const { rule, f, nnm } = params.aggregator;
  const m = rule.m != null ? ` (m = ${rule.m})` : "";
  return `${rule.rule}${m}, f = ${f}${nnm ? ", with NNM" : ""}`;
}

/** PoGQ score as fl_core computes it: the loss improvement relative to the loss, or in
 * units of the task's `loss_scale` once the loss is below it (0 or absent: relative). */
export function pogqScore(lossBefore: number, lossAfter: number, lossScale = 0): number {
  return (lossBefore - lossAfter) / Math.max(lossBefore, lossScale, 1e-6);
}

/** Fixed-point reputation as a number in [0, 1]. */
export function reputationValue(fixed: number): number {
  return fixed / 1_000_000;
}

/** Median of `xs`, `null` when empty. */
export function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** One submission as the page shows it. */
export interface SubmissionView {
  hash: string;
  author: string;
  samples: number;
  /** The submitter's claimed PoGQ score. */
  claimedScore: number;
  /** Committee votes: member, accept, the member's own score. */
  votes: { member: string; accept: boolean; score: number }[];
  /** `pending` until the round closes. */
  status: "pending" | "included" | "excluded";
  /** Why it was excluded. */
  reason: string | null;
}

/** One round as the page shows it. */
export interface RoundView {
  round: number;
  status: "open" | "closed";
  quorum: number;
  committee: string[];
  submissions: SubmissionView[];
  included: number;
  excluded: number;
}

/** Turns a round's state into its view: every submission with its verdict and votes,
 * scored with the task's `lossScale` (`PogqParams::loss_scale`). */
export function roundView(state: RoundState, lossScale = 0): RoundView {
  const outcomes = state.aggregate?.[1].outcomes ?? [];
  const submissions = state.submissions.map((s): SubmissionView => {
    const outcome = outcomes.find((o) => sameHash(o.submission, s.hash));
    let status: SubmissionView["status"] = "pending";
    let reason: string | null = null;
    if (outcome) {
      if (outcome.verdict === "included") status = "included";
      else {
        status = "excluded";
        reason = describeExclusion(outcome.verdict.excluded);
      }
    } else if (state.aggregate) {
      status = "excluded";
      reason = "left out of the aggregate";
    }
    return {
      hash: hashToString(s.hash),
      author: hashToString(s.author),
      samples: s.samples,
      claimedScore: pogqScore(s.proof.loss_before, s.proof.loss_after, lossScale),
      votes: s.votes.map(([, member, v]) => ({
        member: hashToString(member),
        accept: v.accept,
        score: pogqScore(v.loss_before, v.loss_after, lossScale),
      })),
      status,
      reason,
    };
  });
  return {
    round: state.round,
    status: state.aggregate ? "closed" : "open",
    quorum: state.quorum,
    committee: state.committee.map(hashToString),
    submissions,
    included: submissions.filter((s) => s.status === "included").length,
    excluded: submissions.filter((s) => s.status === "excluded").length,
  };
}

/** One agent's row in the reputation table. */
export interface ReputationRow {
  agent: string;
  /** After the latest closed round. */
  current: number;
  /** After each closed round, oldest first (`null` before the agent appears). */
  history: (number | null)[];
}

/** The reputation table after the latest closed round, with each agent's history,
 *  best first. */
export function reputationTable(rounds: RoundState[]): ReputationRow[] {
  const closed = rounds
    .filter((r) => r.aggregate)
    .sort((a, b) => a.round - b.round)
    .map((r) => r.aggregate![1].reputation);
  const agents = new Map<string, (number | null)[]>();
  closed.forEach((table, i) => {
    for (const e of table) {
      const key = hashToString(e.agent);
      if (!agents.has(key)) agents.set(key, new Array(closed.length).fill(null));
      agents.get(key)![i] = reputationValue(e.reputation);
    }
  });
  const rows: ReputationRow[] = [];
  for (const [agent, history] of agents) {
    const latest = [...history].reverse().find((v) => v !== null) ?? 0;
    rows.push({ agent, current: latest, history });
  }
  return rows.sort((a, b) => b.current - a.current || a.agent.localeCompare(b.agent));
}

/** The global model's quality after one round. */
export interface MetricPoint {
  round: number;
  /** Median accuracy over the participants' evaluations. */
  accuracy: number;
  /** Median loss over the participants' evaluations. */
  loss: number;
  /** How many participants evaluated it. */
  evaluations: number;
}

/** Medians of each round's evaluations (rounds without any are skipped). */
export function metricSeries(byRound: Map<number, EvaluationInfo[]>): MetricPoint[] {
  const out: MetricPoint[] = [];
  for (const [round, evals] of [...byRound].sort((a, b) => a[0] - b[0])) {
    const accuracy = median(evals.map((e) => e.evaluation.accuracy));
    const loss = median(evals.map((e) => e.evaluation.loss));
    if (accuracy === null || loss === null) continue;
    out.push({ round, accuracy, loss, evaluations: evals.length });
  }
  return out;
}

/** What a signal makes the page re-read. */
export interface Refresh {
  /** The event's task. */
  task: string;
  /** Rounds whose state changed. */
  rounds: number[];
  /** Rounds whose evaluations changed. */
  evaluations: number[];
  /** The hash the re-read must contain; until it does, the read is retried. */
  expect: string;
}

/** Maps a round event to the reads that bring the page up to date. */
export function refreshFor(event: Exclude<FlEvent, { type: "task_created" }>): Refresh {
  const task = hashToString(event.task);
  switch (event.type) {
    case "submission_created":
      return { task, rounds: [event.round], evaluations: [], expect: hashToString(event.submission) };
    case "ballot_cast":
      return { task, rounds: [event.round], evaluations: [], expect: hashToString(event.ballot) };
    case "round_aggregated":
      // Closing a round opens the next one.
      return {
        task,
        rounds: [event.round, event.round + 1],
        evaluations: [],
        expect: hashToString(event.aggregate),
      };
    case "model_evaluated":
      return { task, rounds: [], evaluations: [event.round], expect: hashToString(event.evaluation) };
  }
}

/** Whether a signal payload is one of the zome's events. */
export function isFlEvent(payload: unknown): payload is FlEvent {
  if (typeof payload !== "object" || payload === null) return false;
  const p = payload as Record<string, unknown>;
  if (!(p.task instanceof Uint8Array)) return false;
  if (p.type === "task_created") return p.author instanceof Uint8Array;
  return (
    typeof p.type === "string" &&
    ["submission_created", "ballot_cast", "round_aggregated", "model_evaluated"].includes(p.type) &&
    typeof p.round === "number"
  );
}

/** Rules a task can be created with from the page, with the smallest quorum each allows
 *  for a Byzantine bound `f`: fl_core's `Rule::min_inputs`, which task validation applies. */
export const RULES: Record<string, (f: number) => number> = {
  median: (f) => 2 * f + 1,
  trimmed_mean: (f) => 2 * f + 1,
  krum: (f) => 2 * f + 3,
  multi_krum: (f) => 2 * f + 3,
  bulyan: (f) => 4 * f + 3,
  mean: () => 1,
};

/** The canonical f32 tensor bytes of `values` (fl_core's codec: tag 0x01, u32 count,
 *  little-endian f32s). */
export function f32Tensor(values: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(5 + 4 * values.length);
  const view = new DataView(out.buffer);
  out[0] = 0x01;
  view.setUint32(1, values.length, true);
  for (let i = 0; i < values.length; i++) view.setFloat32(5 + 4 * i, values[i], true);
  return out;
}

/** What the page's "new task" form asks for. */
export interface TaskForm {
  name: string;
  description: string;
  rule: string;
  f: number;
  committee: number;
  /** Features and classes of the multinomial logistic regression (64 x 10 for digits). */
  features: number;
  classes: number;
  /** Factor every peer multiplies its feature values by (1/16 for digits' 0-16 pixels). */
  scale: number;
  /** Open to any agent, or closed: members by invite only. */
  admission: "open" | "closed";
}

/** The admission of tasks closed from the page: as `Admission::CLOSED` in the integrity
 *  zome, each member may invite two agents once its reputation reaches 0.6; the author's
 *  invites are unlimited. */
export const CLOSED: Admission = { kind: "closed", invites_per_member: 2, min_inviter_reputation: 600_000 };

/** A `Task` as the integrity zome expects it: the default PoGQ and reputation rules,
 *  the smallest quorum the rule allows, a zero initial model. Throws on a bad form. */
export function taskFromForm(form: TaskForm): Task & { initial_model: Uint8Array } {
  const quorum = RULES[form.rule];
  if (!quorum) throw new Error(`unknown aggregation rule ${form.rule}`);
  if (!form.name.trim()) throw new Error("the task needs a name");
  for (const [k, v] of [["f", form.f], ["committee", form.committee], ["features", form.features], ["classes", form.classes]] as const) {
    if (!Number.isInteger(v) || v < (k === "f" ? 0 : 1)) throw new Error(`${k} must be a whole number${k === "f" ? "" : " above 0"}`);
  }
  if (form.classes < 2) throw new Error("a model needs at least 2 classes");
  if (!Number.isFinite(form.scale) || form.scale <= 0) throw new Error("the feature scale must be a number above 0");
  if (form.admission !== "open" && form.admission !== "closed") throw new Error(`unknown admission ${form.admission}`);
  const modelLen = (form.features + 1) * form.classes;
  return {
    name: form.name.trim(),
    description: form.description,
    model_len: modelLen,
    spec: {
      model: { kind: "logreg", inputs: form.features, classes: form.classes },
      data: {
        features: [],
        label: "label",
        classes: Array.from({ length: form.classes }, (_, i) => String(i)),
        preprocess: form.scale === 1 ? { kind: "none" } : { kind: "scale", factor: form.scale },
      },
      training: { learning_rate: 0.1, epochs: 1, batch_size: 32, momentum: 0, weight_decay: 0 },
    },
    encoding: "f32",
    round: {
      aggregator: { rule: form.rule === "multi_krum" ? { rule: "multi_krum", m: null } : { rule: form.rule }, f: form.f, nnm: false },
      // A share of a uniform guess's loss, ln(classes): 1 nat for ten classes, 0.3 for two
      // (the default of `mycelix-fl`, docs/PROTOCOL.md).
      pogq: { probe_lr: 1, min_score: -0.01, mad_band: 3, loss_scale: Math.log10(form.classes) },
      reputation: {
        initial: 500_000,
        gain: 100_000,
        disputed_keep: 900_000,
        clear_keep: 500_000,
        floor: 100_000,
        committee_threshold: 400_000,
      },
      server_lr: 1,
      // Honest logistic-regression updates on standardised features stay far below this.
      max_update_norm: 10,
      min_trusted_voters: defaultMinTrustedVoters(form.committee),
      // Noise the committee passes earns no reputation (docs/PROTOCOL.md, step 3).
      aligned_credit: true,
    },
    committee_size: form.committee,
    quorum: quorum(form.f),
    // Ten minutes to submit and to vote; the first-ranked member aggregates at once, the
    // next after 10 s, anyone after the last rank's slot.
    schedule: { submit_ms: 600_000, vote_ms: 600_000, slot_ms: 10_000 },
    initial_model: f32Tensor(new Float32Array(modelLen)),
    admission: form.admission === "closed" ? CLOSED : { kind: "open" },
  };
}

/** fl_core `default_min_trusted_voters_for`: a majority of the committee's seats, at most 3. */
export function defaultMinTrustedVoters(committee: number): number {
  return Math.min(3, Math.floor(committee / 2) + 1);
}

/** Every hash a round's state contains (submissions, ballots, aggregate). */
export function hashesIn(state: RoundState): Set<string> {
  const out = new Set<string>();
  for (const s of state.submissions) {
    out.add(hashToString(s.hash));
    for (const [v] of s.votes) out.add(hashToString(v));
  }
  if (state.aggregate) out.add(hashToString(state.aggregate[0]));
  return out;
}
