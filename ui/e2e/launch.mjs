// End-to-end check of `hc launch` with 2 agents in headless Chromium: each agent's page
// connects as its own agent; a task published from agent 0's page appears on agent 1's
// page through signals; on SIGTERM every process stops and the sandboxes are removed.
//
//   node e2e/launch.mjs [BUNDLE]   (default ../workdir/mycelix_fl.webhapp; `hc` and
//                                   `hc-launch` must be on PATH: scripts/tools.sh --launch)
//   SCREENSHOT (default launch.png): agent 1's page at the end.

import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const bundle = process.argv[2] ?? "../workdir/mycelix_fl.webhapp";
const screenshot = process.env.SCREENSHOT ?? "launch.png";
const log = (m) => console.log(`launch e2e: ${m}`);

const launcher = spawn("hc", ["launch", bundle, "-n", "2"], { detached: true, stdio: ["ignore", "pipe", "pipe"] });
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
  const urls = await until("two agent URLs", () => {
    const found = [...output.matchAll(/^agent (\d+): (http:\/\/\S+)/gm)].map((m) => m[2]);
    if (/^error: /m.test(output)) throw new Error(output.trim());
    return found.length === 2 && output.includes("agents running") ? found : null;
  });
  sandboxes = output.match(/^sandboxes: (\S+)/m)?.[1];
  log(`agents at ${urls.join(" and ")}; sandboxes in ${sandboxes}`);
  const [a, b] = [await browser.newPage(), await browser.newPage()];
  for (const p of [a, b]) p.on("pageerror", (e) => log(`page error: ${e.message}`));
  await a.goto(urls[0]);
  await b.goto(urls[1]);
  for (const p of [a, b]) await p.locator("#status.connected").waitFor({ timeout: 60_000 });
  const me = async (p) => (await p.locator("#status").innerText()).match(/connected as (\S+)/)[1];
  const [meA, meB] = [await me(a), await me(b)];
  if (meA === meB) throw new Error(`both pages act as the same agent ${meA}`);
  log(`page 0 is agent ${meA}, page 1 is agent ${meB}`);
  // Agent 0 announces new tasks to the agents in the zome's directory; wait until it
  // lists both (each page's first zome call listed its agent), reloading to re-read.
  await until("both agents in agent 0's directory", async () => {
    await a.reload();
    await a.locator("#status.connected").waitFor({ timeout: 60_000 });
    return (await a.locator("#directory").getAttribute("data-listed")) === "2";
  }, 120_000);
  const name = `launch check ${Date.now()}`;
  await a.fill('#task-form input[name="name"]', name);
  await a.selectOption('#task-form select[name="rule"]', "median");
  await a.click('#task-form button[type="submit"]');
  await a.getByText(`published task "${name}"`).waitFor({ timeout: 60_000 });
  log(`page 0 published "${name}"`);
  // Page 1 is never reloaded: the task arrives by signal.
  await b.locator("#task h2", { hasText: name }).waitFor({ timeout: 60_000 });
  log(`page 1 shows "${name}"`);
  await b.screenshot({ path: screenshot, fullPage: true });
  log(`screenshot: ${screenshot}`);
} catch (e) {
  failed = true;
  console.error(`launch e2e: FAILED: ${e.message}\n--- hc launch output ---\n${output}`);
} finally {
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
