// End-to-end check of the dashboard in headless Chromium, against a live sandbox network.
// Run by scripts/sandbox.sh --e2e, which sets DASHBOARD_URL (the served dashboard),
// RESULTS (the training run's JSON, written when training ends). The page is opened
// before training starts, so what it shows arrives through signals.
//
//   ROUNDS (default 2): rounds the training runs; SCREENSHOT: where to save the page.

import { mkdtempSync, readFileSync, existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const url = process.env.DASHBOARD_URL;
const results = process.env.RESULTS;
const rounds = Number(process.env.ROUNDS ?? 2);
const screenshot = process.env.SCREENSHOT ?? "dashboard.png";
const timeoutMs = Number(process.env.E2E_TIMEOUT_MS ?? 600_000);
if (!url || !results) {
  console.error("e2e: DASHBOARD_URL and RESULTS must be set (run through scripts/sandbox.sh --e2e)");
  process.exit(2);
}

const log = (m) => console.log(`e2e: ${m}`);
const profile = mkdtempSync(join(tmpdir(), "mycelix-fl-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
let failed = false;
const page = context.pages()[0] ?? (await context.newPage());
page.on("console", (m) => m.type() === "error" && log(`page console: ${m.text()}`));
page.on("pageerror", (e) => log(`page error: ${e.message}`));
try {
  await page.goto(url);
  await page.locator("#status.connected").waitFor({ timeout: 60_000 });
  log(`connected: ${await page.locator("#status").innerText()}`);

  // Both rounds closed, through signals only (the page is never reloaded).
  for (let r = 0; r < rounds; r++) {
    await page.locator(`li.round.closed[data-round="${r}"]`).waitFor({ timeout: timeoutMs });
    log(`round ${r} closed on the page`);
  }
  // The run's results name the attackers (peers 0..byzantine) by agent key.
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(results) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
  const run = JSON.parse(readFileSync(results, "utf8"));
  const attackers = run.agents.slice(0, run.config.byzantine);
  if (attackers.length === 0) throw new Error("the run had no attacker");
  for (let r = 0; r < rounds; r++) {
    for (const a of attackers) {
      const row = page.locator(`li.round[data-round="${r}"] tr[data-author="${a}"]`);
      await row.waitFor({ timeout: 30_000 });
      const status = await row.getAttribute("data-status");
      const reason = (await row.locator(".reason").innerText().catch(() => "")).trim();
      if (status !== "excluded" || reason.length === 0) {
        throw new Error(`round ${r}: attacker ${a} shows as ${status} (reason "${reason}")`);
      }
      log(`round ${r}: attacker ${a.slice(0, 12)}… excluded: ${reason}`);
    }
  }
  // The task is labelled with its admission, as the run published it.
  const admission = (await page.locator("#task dl").innerText()).match(/admission\s+(\w+)/)?.[1];
  if (admission !== run.config.admission) {
    throw new Error(`the task shows admission "${admission}", the run published a ${run.config.admission} task`);
  }
  log(`task admission: ${admission}`);
  const reputationRows = await page.locator("#reputation tbody tr").count();
  if (reputationRows < run.config.peers) {
    throw new Error(`the reputation table shows ${reputationRows} agents, expected ${run.config.peers}`);
  }
  log(`reputation table: ${reputationRows} agents`);
  await page.locator("#metrics svg.chart").waitFor({ timeout: 60_000 });
  await page.getByText(`After round ${rounds - 1}:`).waitFor({ timeout: 60_000 });
  log(`model chart: ${(await page.locator("#metrics p").first().innerText()).trim()}`);
  const peers = await page.locator("#peers li").count();
  log(`peers online: ${peers}`);
  if (peers < 1) throw new Error("no peers shown online");
} catch (e) {
  failed = true;
  console.error(`e2e: FAILED: ${e.message}`);
} finally {
  await page.screenshot({ path: screenshot, fullPage: true }).catch(() => {});
  log(`screenshot: ${screenshot}`);
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
