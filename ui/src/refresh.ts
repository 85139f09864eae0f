// Coalesces the re-reads that signals ask for: a burst of signals about one round (a
// committee's votes, say) becomes one read of that round, and a read that does not yet
// show what a signal announced is retried with a growing delay.

import { type Refresh } from "./model";

/** Reads the given rounds' states and evaluations; resolves to every hash now visible. */
export type ReadFn = (rounds: number[], evaluations: number[]) => Promise<Set<string>>;

/** Coalescing, retrying refresh queue. */
export class RefreshQueue {
  private rounds = new Set<number>();
  private evaluations = new Set<number>();
  private awaited = new Map<string, { refresh: Refresh; attempts: number }>();
  private timer: ReturnType<typeof setTimeout> | null = null;
  private running = false;

  /** `read` does the reads; `delayMs` is the first wait, doubled per retry up to 32x;
   *  an announced hash is given up after `maxAttempts` reads. */
  constructor(
    private read: ReadFn,
    private delayMs = 200,
    private maxAttempts = 12,
  ) {}

  /** Schedules the reads `r` calls for. */
  push(r: Refresh) {
    r.rounds.forEach((x) => this.rounds.add(x));
    r.evaluations.forEach((x) => this.evaluations.add(x));
    if (!this.awaited.has(r.expect)) this.awaited.set(r.expect, { refresh: r, attempts: 0 });
    this.schedule(this.delayMs);
  }

  /** Hashes announced but not yet seen in a read. */
  pending(): string[] {
    return [...this.awaited.keys()];
  }

  private schedule(ms: number) {
    if (this.timer || this.running) return;
    this.timer = setTimeout(() => void this.flush(), ms);
  }

  private async flush() {
    this.timer = null;
    this.running = true;
    const rounds = [...this.rounds].sort((a, b) => a - b);
    const evaluations = [...this.evaluations].sort((a, b) => a - b);
    this.rounds.clear();
    this.evaluations.clear();
    let seen = new Set<string>();
    try {
      seen = await this.read(rounds, evaluations);
    } catch (e) {
      // A failed read counts as an attempt; the retry below tries again.
      console.error("dashboard: re-reading after a signal failed", e);
    } finally {
      this.running = false;
    }
    let retry = 0;
    for (const [hash, entry] of this.awaited) {
      entry.attempts += 1;
      if (seen.has(hash) || entry.attempts >= this.maxAttempts) {
        this.awaited.delete(hash);
        continue;
      }
      entry.refresh.rounds.forEach((x) => this.rounds.add(x));
      entry.refresh.evaluations.forEach((x) => this.evaluations.add(x));
      retry = Math.max(retry, entry.attempts);
    }
    if (this.rounds.size || this.evaluations.size) {
      this.schedule(retry ? this.delayMs * 2 ** Math.min(retry, 5) : this.delayMs);
    }
  }
}
