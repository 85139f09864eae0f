import { HoloHashType, encodeHashToBase64, hashFrom32AndType } from "@holochain/client";
import { describe, expect, it } from "vitest";
import {
  admissionLabel,
  type FlEvent,
  type RoundState,
  hashToString,
  hashesIn,
  isFlEvent,
  f32Tensor,
  median,
  metricSeries,
  taskFromForm,
  describeModel,
  pogqScore,
  refreshFor,
  reputationTable,
  roundView,
} from "../src/model";
import { parseAgentInfos } from "../src/peers";
import {
  esc,
  metricsSection,
  invitesSection,
  peersSection,
  reputationSection,
  roundsSection,
  statusBanner,
  taskSection,
} from "../src/view";

/** A 39-byte hash of a given type prefix whose core bytes are all `n`. */
const h = (n: number, prefix = [132, 41, 36]) => new Uint8Array([...prefix, ...new Array(32).fill(n), 0, 0, 0, 0]);
const agent = (n: number) => h(n, [132, 32, 36]);

function roundState(aggregated: boolean): RoundState {
  return {
    task: h(1),
    round: 1,
    base: h(2),
    committee: [agent(3)],
    quorum: 2,
    quorum_met: true,
    submissions: [
      {
        hash: h(10),
        author: agent(3),
        samples: 40,
        update_bytes: 2600,
        proof: { loss_before: 2, loss_after: 1.5, samples: 10 },
        votes: [[h(12), agent(3), { submission: h(10), loss_before: 2, loss_after: 1.6, samples: 9, accept: true }]],
      },
      {
        hash: h(20),
        author: agent(4),
        samples: 40,
        update_bytes: 2600,
        proof: { loss_before: 2, loss_after: 1, samples: 10 },
        votes: [[h(22), agent(3), { submission: h(20), loss_before: 2, loss_after: 3, samples: 9, accept: false }]],
      },
      { hash: h(30), author: agent(5), samples: 40, update_bytes: 2600, proof: { loss_before: 2, loss_after: 2.5, samples: 10 }, votes: [] },
    ],
    aggregate: aggregated
      ? [
          h(40),
          {
            task: h(1),
            round: 1,
            base: h(2),
            outcomes: [
              { submission: h(10), votes: [h(12)], verdict: "included" },
              { submission: h(20), votes: [h(22)], verdict: { excluded: "committee_rejected" } },
            ],
            reputation: [
              { agent: agent(3), reputation: 900_000 },
              { agent: agent(4), reputation: 300_000 },
            ],
          },
        ]
      : null,
  };
}

describe("hashes", () => {
  it("display like @holochain/client's encodeHashToBase64", () => {
    for (const x of [agent(7), h(200), new Uint8Array(39).map((_, i) => i * 7)]) {
      expect(hashToString(x)).toBe(encodeHashToBase64(x));
    }
  });
});

describe("roundView", () => {
  it("gives every submission its verdict, reason, claimed score and votes", () => {
    const v = roundView(roundState(true));
    expect(v.status).toBe("closed");
    expect(v.included).toBe(1);
    expect(v.excluded).toBe(2);
    const [a, b, c] = v.submissions;
    expect(a.status).toBe("included");
    expect(a.claimedScore).toBeCloseTo(0.25);
    expect(a.votes).toEqual([{ member: hashToString(agent(3)), accept: true, score: pogqScore(2, 1.6) }]);
    expect(b.status).toBe("excluded");
    expect(b.reason).toBe("rejected by the trusted committee members");
    expect(b.votes[0].accept).toBe(false);
    // Published but not among the aggregate's outcomes.
    expect(c.status).toBe("excluded");
    expect(c.reason).toBe("left out of the aggregate");
    expect(c.claimedScore).toBeCloseTo(pogqScore(2, 2.5));
  });

  it("scores in units of the task's loss scale once the loss is below it, as fl_core does", () => {
    // A converged member: 0.01 nats is 5 % of its loss but 1 % of a one-nat scale.
    expect(pogqScore(0.2, 0.21)).toBeCloseTo(-0.05);
    expect(pogqScore(0.2, 0.21, 1)).toBeCloseTo(-0.01);
    expect(pogqScore(2, 2.5, 1)).toBeCloseTo(pogqScore(2, 2.5));
    const v = roundView(roundState(true), 4);
    expect(v.submissions[0].claimedScore).toBeCloseTo(0.125); // (2 - 1.5) / 4
  });

  it("leaves an open round's submissions pending", () => {
    const v = roundView(roundState(false));
    expect(v.status).toBe("open");
    expect(v.submissions.map((s) => s.status)).toEqual(["pending", "pending", "pending"]);
    expect(v.excluded).toBe(0);
  });
});

describe("reputationTable", () => {
  it("orders agents by current reputation with their history per closed round", () => {
    const r0 = { ...roundState(true), round: 0 };
    r0.aggregate = [h(41), { ...r0.aggregate![1], reputation: [{ agent: agent(4), reputation: 500_000 }] }];
    const r1 = roundState(true);
    const open = { ...roundState(false), round: 2 };
    const rows = reputationTable([r1, open, r0]);
    expect(rows.map((r) => r.agent)).toEqual([hashToString(agent(3)), hashToString(agent(4))]);
    expect(rows[0]).toMatchObject({ current: 0.9, history: [null, 0.9] });
    expect(rows[1]).toMatchObject({ current: 0.3, history: [0.5, 0.3] });
  });
  it("is empty before any round closes", () => {
    expect(reputationTable([roundState(false)])).toEqual([]);
  });
});

describe("metricSeries", () => {
  it("takes the median over participants, which one liar cannot move far", () => {
    const e = (accuracy: number, loss: number) => ({
      hash: h(1),
      author: agent(1),
      evaluation: { aggregate: h(2), round: 0, accuracy, loss, samples: 10 },
    });
    const series = metricSeries(
      new Map([
        [1, [e(0.8, 0.6), e(1, 0), e(0.7, 0.7)]],
        [0, [e(0.5, 1.2), e(0.6, 1.0)]],
        [2, []],
      ]),
    );
    expect(series).toEqual([
      { round: 0, accuracy: 0.55, loss: 1.1, evaluations: 2 },
      { round: 1, accuracy: 0.8, loss: 0.6, evaluations: 3 },
    ]);
    expect(median([])).toBeNull();
  });
});

describe("signals", () => {
  const ev: FlEvent = { type: "round_aggregated", task: h(1), round: 3, aggregate: h(9) };
  it("recognises the zome's events only", () => {
    expect(isFlEvent(ev)).toBe(true);
    expect(isFlEvent({ type: "other", task: h(1), round: 1 })).toBe(false);
    expect(isFlEvent({ type: "ballot_cast", task: "x", round: 1 })).toBe(false);
    expect(isFlEvent(null)).toBe(false);
  });
  it("re-read what changed: closing a round opens the next", () => {
    expect(refreshFor(ev)).toEqual({ task: hashToString(h(1)), rounds: [3, 4], evaluations: [], expect: hashToString(h(9)) });
    const sub: FlEvent = { type: "submission_created", task: h(1), round: 2, submission: h(10), author: agent(1) };
    expect(refreshFor(sub).rounds).toEqual([2]);
    const evald: FlEvent = { type: "model_evaluated", task: h(1), round: 2, evaluation: h(11), author: agent(1) };
    expect(refreshFor(evald)).toMatchObject({ rounds: [], evaluations: [2] });
    // A ballot is awaited by its hash, which the round lists beside every vote it holds.
    const ballot: FlEvent = { type: "ballot_cast", task: h(1), round: 2, ballot: h(12), member: agent(3) };
    expect(refreshFor(ballot)).toEqual({ task: hashToString(h(1)), rounds: [2], evaluations: [], expect: hashToString(h(12)) });
  });
  it("a re-read is complete when it holds the awaited hash", () => {
    const s = roundState(true);
    const hashes = hashesIn(s);
    for (const x of [h(10), h(12), h(22), h(40)]) expect(hashes.has(hashToString(x))).toBe(true);
    for (const x of [h(11), h(99)]) expect(hashes.has(hashToString(x))).toBe(false);
  });
});

describe("peers", () => {
  const info = (core: number, createdAt: number, expiresAt: number, tombstone = false) => {
    const agent = btoa(String.fromCharCode(...new Array(32).fill(core))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    return JSON.stringify({
      agentInfo: JSON.stringify({ agent, space: "x", createdAt: String(createdAt), expiresAt: String(expiresAt), isTombstone: tombstone }),
      signature: "sig",
    });
  };
  it("keeps the newest info per agent, drops tombstones and garbage, marks this agent", () => {
    const peers = parseAgentInfos(
      [info(1, 10, 5_000_000), info(1, 20, 9_000_000), info(2, 10, 5_000_000, true), "not json", info(3, 1, 7_000_000)],
      hashFrom32AndType(new Uint8Array(32).fill(3), HoloHashType.Agent),
    );
    expect(peers).toHaveLength(2);
    expect(peers[0]).toMatchObject({ me: true, expiresAt: 7000 });
    expect(peers[1]).toMatchObject({ me: false, expiresAt: 9000 });
    expect(peers[1].agent).toBe(hashToString(hashFrom32AndType(new Uint8Array(32).fill(1), HoloHashType.Agent)));
  });
});

describe("view", () => {
  it("escapes what came from the network", () => {
    expect(esc(`<img src=x onerror="a">&'`)).toBe("&lt;img src=x onerror=&quot;a&quot;&gt;&amp;&#39;");
  });
  it("shows empty states rather than nothing", () => {
    expect(taskSection(null, 0)).toContain("No training task on this network yet");
    expect(roundsSection([])).toContain("No round has started yet");
    expect(reputationSection([])).toContain("No round has closed yet");
    expect(metricsSection([])).toContain("No evaluation of the global model yet");
    expect(peersSection([], Date.now(), 0)).toContain("No peers known yet");
  });
  it("offers the author of a closed task an invite for each listed agent", () => {
    const task = (admission: "open" | "closed") => ({
      hash: h(9),
      author: agent(1),
      created_at: 0,
      task: { ...taskFromForm({ name: "t", description: "", rule: "median", f: 1, committee: 3, features: 2, classes: 2, scale: 1, admission }) },
    });
    const me = hashToString(agent(1));
    const rows = [
      { agent: me, member: false, invite: null, pending: false },
      { agent: hashToString(agent(2)), member: false, invite: null, pending: false },
      { agent: hashToString(agent(3)), member: false, invite: "uhCkkINVITE", pending: false },
      { agent: hashToString(agent(4)), member: true, invite: null, pending: false },
      { agent: hashToString(agent(5)), member: false, invite: null, pending: true },
    ];
    const html = invitesSection(task("closed") as never, me, rows);
    expect(html).toContain(`data-invitee="${hashToString(agent(2))}"`);
    expect(html).not.toContain(`data-invitee="${me}"`);
    expect(html).toContain('data-invite="uhCkkINVITE"');
    expect(html).toContain(`data-invitee="${hashToString(agent(5))}" disabled>inviting…`);
    expect(html).toContain("member");
    expect(html).toContain(`--task ${hashToString(h(9))}`);
    expect(invitesSection(task("open") as never, me, rows)).toBe("");
    expect(invitesSection(task("closed") as never, me, rows, "no invite written for <x>")).toContain(
      "no invite written for &lt;x&gt;",
    );
    expect(invitesSection(task("closed") as never, hashToString(agent(2)), rows)).toBe("");
  });
  it("shows a connection error as an alert, with the reason escaped", () => {
    const html = statusBanner({ state: "error", message: "connect ECONNREFUSED <port>" });
    expect(html).toContain('role="alert"');
    expect(html).toContain("Cannot reach the conductor.");
    expect(html).toContain("ECONNREFUSED &lt;port&gt;");
    expect(statusBanner({ state: "connecting" })).toContain("Connecting");
  });
  it("shows an excluded submission with its reason", () => {
    const html = roundsSection([roundView(roundState(true))]);
    expect(html).toContain("Round 1");
    expect(html).toContain("rejected by the trusted committee members");
    expect(html).toContain('data-status="excluded"');
  });
  it("does not count expired peers as online", () => {
    const html = peersSection(
      [
        { agent: hashToString(agent(1)), me: true, expiresAt: null },
        { agent: hashToString(agent(2)), me: false, expiresAt: 1000 },
      ],
      2000,
      2,
    );
    expect(html).toContain('<span class="count">1</span>');
    expect(html).toContain("2 agents in the task directory");
  });
});

describe("new task form", () => {
  const form = {
    name: " digits ",
    description: "d",
    rule: "multi_krum",
    f: 2,
    committee: 5,
    features: 64,
    classes: 10,
    scale: 1,
    admission: "open" as const,
  };
  it("builds a task the integrity zome accepts: quorum, zero model, default rules", () => {
    const t = taskFromForm(form);
    expect(t.name).toBe("digits");
    expect(t.model_len).toBe(650);
    expect(t.quorum).toBe(7);
    expect(t.round.aggregator).toEqual({ rule: { rule: "multi_krum", m: null }, f: 2, nnm: false });
    expect(t.initial_model.length).toBe(5 + 4 * 650);
    expect([...t.initial_model.slice(0, 5)]).toEqual([1, 138, 2, 0, 0]);
    expect(taskFromForm({ ...form, rule: "median" }).quorum).toBe(5);
    expect(t.admission).toEqual({ kind: "open" });
    expect(t.round.max_update_norm).toBe(10);
    expect(t.round.pogq.loss_scale).toBeCloseTo(1);
    expect(taskFromForm({ ...form, classes: 2 }).round.pogq.loss_scale).toBeCloseTo(0.301);
    // A majority of the seats, at most three: fl_core's default_min_trusted_voters_for.
    expect([1, 2, 3, 4, 5, 12].map((committee) => taskFromForm({ ...form, committee }).round.min_trusted_voters)).toEqual([1, 2, 2, 3, 3, 3]);
    // Noise the committee passes earns no reputation: fl_core's aligned_credit, on for new tasks.
    expect(taskFromForm(form).round.aligned_credit).toBe(true);
    expect(t.schedule).toEqual({ submit_ms: 600_000, vote_ms: 600_000, slot_ms: 10_000 });
    expect(t.spec.model).toEqual({ kind: "logreg", inputs: 64, classes: 10 });
    expect(t.spec.data.classes).toEqual(["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
    expect(describeModel(t.spec.model)).toBe("logreg 64x10");
    expect(describeModel({ kind: "mlp", inputs: 784, hidden: 100, classes: 10 })).toBe("mlp 784-100-10");
    expect(describeModel({ kind: "cnn_mnist", classes: 10 })).toBe("cnn_mnist 28x28-10");
    expect(t.spec.data.preprocess).toEqual({ kind: "none" });
  });
  it("closes a task and scales its features when the form says so", () => {
    const t = taskFromForm({ ...form, scale: 0.0625, admission: "closed" });
    expect(t.admission).toEqual({ kind: "closed", invites_per_member: 2, min_inviter_reputation: 600_000 });
    expect(t.spec.data.preprocess).toEqual({ kind: "scale", factor: 0.0625 });
  });
  it("labels every task open or closed", () => {
    expect(admissionLabel(undefined)).toMatch(/^open: any agent/);
    expect(admissionLabel({ kind: "open" })).toMatch(/^open: any agent/);
    expect(admissionLabel({ kind: "closed", invites_per_member: 2, min_inviter_reputation: 600_000 })).toBe(
      "closed: members by invite only (2 invites per member, from reputation 0.60)",
    );
  });
  it("refuses a bad form with a reason", () => {
    expect(() => taskFromForm({ ...form, name: "  " })).toThrow("needs a name");
    expect(() => taskFromForm({ ...form, rule: "avg" })).toThrow("unknown aggregation rule avg");
    expect(() => taskFromForm({ ...form, f: -1 })).toThrow("f must be a whole number");
    expect(() => taskFromForm({ ...form, classes: 0 })).toThrow("classes must be a whole number above 0");
    expect(() => taskFromForm({ ...form, classes: 1 })).toThrow("a model needs at least 2 classes");
    expect(() => taskFromForm({ ...form, scale: 0 })).toThrow("feature scale must be a number above 0");
  });
  it("encodes tensors as fl_core does", () => {
    expect([...f32Tensor([1.5])]).toEqual([1, 1, 0, 0, 0, 0, 0, 0xc0, 0x3f]);
  });
  it("recognises task_created events", () => {
    expect(isFlEvent({ type: "task_created", task: h(1), author: agent(1) })).toBe(true);
    expect(isFlEvent({ type: "task_created", task: h(1) })).toBe(false);
  });
});
