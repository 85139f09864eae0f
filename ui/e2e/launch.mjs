// End-to-end check of `hc launch` with 3 agents in headless Chromium and three
// `mycelix-fl peer --admin-port` processes: each agent's page connects as its own agent;
// agent 0's page publishes a closed task, which reaches the other pages by signal, and
// invites the other two agents from the page; one peer process per agent (the same
// agent, through its conductor's admin port) joins, one with the invite the page shows and
// one finding its invite by itself, and trains on its own shard; every page shows the
// rounds closing. On SIGTERM every process stops and the
// sandboxes are removed.
//
//   node e2e/launch.mjs [BUNDLE]   (default ../workdir/mycelix_fl.webhapp; `hc` and
//                                   `hc-launch` must be on PATH: scripts/tools.sh --launch)
//   MYCELIX_FL (default mycelix-fl on PATH): the node binary the peers run.
//   ROUNDS (default 2): rounds every page must show closed.
//   SCREENSHOT (default launch.png): agent 1's page at the end.

import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const bundle = process.argv[2] ?? "../workdir/mycelix_fl.webhapp";
const screenshot = process.env.SCREENSHOT ?? "launch.png";
const node = process.env.MYCELIX_FL ?? "mycelix-fl";
const rounds = Number(process.env.ROUNDS ?? 2);
const AGENTS = 3;
const log = (m) => console.log(`launch e2e: ${m}`);

const launcher = spawn("hc", ["launch", bundle, "-n", String(AGENTS)], { detached: true, stdio: ["ignore", "pipe", "pipe"] });
let output = "";
launcher.stdout.on("data", (d) => (output += d));
launcher.stderr.on("data", (d) => (output += d));
const exited = new Promise((res) => launcher.on("exit", (code, signal) => res({ code, signal })));

async function until(what, f, ms = 300_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Processes whose command line names `dir`. */
function processesNaming(dir) {
  return readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid)
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, "utf8").replace(/\0/g, " ").includes(dir);
      } catch {
        return false;
      }
    });
}

/** Live processes in process group `pgid` (zombies excluded). */
function inGroup(pgid) {
  return readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        const stat = readFileSync(`/proc/${p}/stat`, "utf8");
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        return fields[0] !== "Z" && Number(fields[2]) === pgid;
      } catch {
        return false;
      }
    });
}

/** The peer processes started, each with its output and exit code. */
const peerProcesses = [];
const profile = mkdtempSync(join(tmpdir(), "mycelix-fl-chromium-"));
let failed = false;
let sandboxes = null;
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const agents = await until(`${AGENTS} agent URLs`, () => {
    const found = [...output.matchAll(/^agent (\d+): (http:\/\/\S+) .*admin port (\d+),/gm)].map((m) => ({
      url: m[2],
      adminPort: Number(m[3]),
    }));
    if (/^error: /m.test(output)) throw new Error(output.trim());
    return found.length === AGENTS && output.includes("agents running") ? found : null;
  });
  sandboxes = output.match(/^sandboxes: (\S+)/m)?.[1];
  log(`agents at ${agents.map((a) => a.url).join(", ")}; sandboxes in ${sandboxes}`);
  const pages = [];
  for (const a of agents) {
    const p = await browser.newPage();
    p.on("pageerror", (e) => log(`page error: ${e.message}`));
    await p.goto(a.url);
    pages.push(p);
  }
  for (const p of pages) await p.locator("#status.connected").waitFor({ timeout: 60_000 });
  const me = async (p) => (await p.locator("#status").innerText()).match(/connected as (\S+)/)[1];
  const keys = await Promise.all(pages.map(me));
  if (new Set(keys).size !== AGENTS) throw new Error(`pages act as agents ${keys.join(", ")}, not ${AGENTS} different ones`);
  log(`pages act as agents ${keys.join(", ")}`);
  const [a] = pages;
  // Agent 0 announces new tasks to the agents in the zome's directory; wait until it
  // lists every agent (each page's first zome call listed its agent), reloading to re-read.
  await until(`all ${AGENTS} agents in agent 0's directory`, async () => {
    try {
      await a.reload();
      await a.locator("#status.connected").waitFor({ timeout: 60_000 });
      return (await a.locator("#directory").getAttribute("data-listed")) === String(AGENTS);
    } catch (e) {
      log(`reloading page 0: ${e.message.split("\n")[0]}; trying again`);
      return false;
    }
  }, 180_000);
  const name = `launch check ${Date.now()}`;
  await a.fill('#task-form input[name="name"]', name);
  await a.selectOption('#task-form select[name="rule"]', "median");
  await a.fill('#task-form input[name="committee"]', "3");
  await a.selectOption('#task-form select[name="admission"]', "closed");
  await a.click('#task-form button[type="submit"]');
  await a.getByText(`published task "${name}"`).waitFor({ timeout: 60_000 });
  const task = await a.locator("#task").getAttribute("data-hash");
  log(`page 0 published the closed task "${name}" (${task})`);
  // The other pages are never reloaded: the task arrives by signal.
  for (const p of pages.slice(1)) await p.locator("#task h2", { hasText: name }).waitFor({ timeout: 60_000 });
  log("every page shows the task");
  // Page 0 invites the other agents; each invite shows on the page for its invitee.
  const buttons = a.locator("#invites button.invite");
  await until("an invite button for each other agent", async () => (await buttons.count()) === AGENTS - 1, 60_000);
  const invitees = await buttons.evaluateAll((bs) => bs.map((b) => b.dataset.invitee));
  for (const invitee of invitees) await a.locator(`#invites button.invite[data-invitee="${invitee}"]`).click();
  const invites = new Map();
  await until("both invites written", async () => {
    for (const li of await a.locator("#invites li[data-invite]").all()) {
      invites.set(await li.getAttribute("data-agent"), await li.getAttribute("data-invite"));
    }
    return invites.size === AGENTS - 1;
  }, 60_000);
  log(`page 0 wrote ${invites.size} invites`);
  // One peer process per agent, through that agent's conductor. Agent 0 authored the task;
  // agent 1 is given the invite the page shows; agent 2 finds its invite by itself.
  for (const [i, { adminPort }] of agents.entries()) {
    const full = i === 0 ? null : [...invites.keys()].find((k) => k.slice(5, 13) === keys[i]);
    if (i > 0 && !full) throw new Error(`no invite for agent ${keys[i]}`);
    const given = i === 1 ? ["--invite", invites.get(full)] : [];
    const args = ["peer", "--admin-port", String(adminPort), "--task", task, "--dataset", "digits",
      "--shard", `${i}/${AGENTS}`, "--rounds", String(rounds), ...given];
    const child = spawn(node, args, { stdio: ["ignore", "pipe", "pipe"] });
    const peer = { args, out: "", code: undefined };
    child.stdout.on("data", (d) => (peer.out += d));
    child.stderr.on("data", (d) => (peer.out += d));
    child.on("exit", (code) => (peer.code = code));
    peerProcesses.push({ child, peer });
  }
  log(`${AGENTS} peer processes started`);
  for (const [i, p] of pages.entries()) {
    await until(`page ${i} to show round ${rounds - 1} closed`, async () => {
      for (const { peer } of peerProcesses) {
        if (peer.code !== undefined && peer.code !== 0) throw new Error(`mycelix-fl ${peer.args.join(" ")} exited with ${peer.code}:\n${peer.out}`);
      }
      return (await p.locator(`#rounds li.round.closed[data-round="${rounds - 1}"]`).count()) === 1;
    }, 600_000);
    log(`page ${i} shows rounds 0 to ${rounds - 1} closed`);
  }
  await until("every peer process to finish", () => peerProcesses.every(({ peer }) => peer.code !== undefined) || null, 180_000);
  for (const { peer } of peerProcesses) {
    if (peer.code !== 0) throw new Error(`mycelix-fl ${peer.args.join(" ")} exited with ${peer.code}:\n${peer.out}`);
  }
  log(`every peer process stopped after ${rounds} rounds:\n${peerProcesses.map(({ peer }) => peer.out.trim()).join("\n")}`);
  await pages[1].screenshot({ path: screenshot, fullPage: true });
  log(`screenshot: ${screenshot}`);
} catch (e) {
  failed = true;
  console.error(`launch e2e: FAILED: ${e.message}\n--- hc launch output ---\n${output}`);
  for (const { peer } of peerProcesses) console.error(`--- mycelix-fl ${peer.args.join(" ")} ---\n${peer.out}`);
} finally {
  for (const { child } of peerProcesses) if (child.exitCode === null) child.kill("SIGINT");
  await Promise.all(
    peerProcesses.map(({ child }) =>
      child.exitCode !== null || child.signalCode !== null
        ? null
        : Promise.race([
            new Promise((r) => child.once("exit", r)),
            new Promise((r) => setTimeout(() => r(child.kill("SIGKILL")), 30_000)),
          ]),
    ),
  );
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
  // Stop as a terminal would: SIGTERM to the launcher's process group.
  try {
    process.kill(-launcher.pid, "SIGTERM");
  } catch {}
  const { code, signal } = await Promise.race([
    exited,
    new Promise((r) => setTimeout(() => r({ code: "timeout" }), 60_000)),
  ]);
  log(`hc launch exited (${code ?? signal})`);
  if (sandboxes) {
    // hc-launch cleans up after `hc` has gone: wait until nothing of the launch is left.
    const parent = join(sandboxes, "..");
    const clean = () =>
      processesNaming(sandboxes).length === 0 && inGroup(launcher.pid).length === 0 && !existsSync(parent);
    const ok = await until("hc launch to stop everything and remove its folder", () => clean() || null, 60_000).catch(() => false);
    if (!ok) {
      failed = true;
      console.error(
        `launch e2e: FAILED: left after 60 s: processes ${[...processesNaming(sandboxes), ...inGroup(launcher.pid)].join(", ") || "none"}; folder ${existsSync(parent) ? parent : "removed"}`,
      );
      try { execFileSync("pkill", ["-KILL", "-f", sandboxes]); } catch {}
    } else {
      log("no process left, sandboxes removed");
    }
  } else {
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
