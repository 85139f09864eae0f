import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { RefreshQueue } from "../src/refresh";

const r = (rounds: number[], expect: string, evaluations: number[] = []) => ({ task: "t", rounds, evaluations, expect });

describe("RefreshQueue", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("turns a burst of signals into one read per round", async () => {
    const reads: [number[], number[]][] = [];
    const q = new RefreshQueue(async (rounds, evals) => {
      reads.push([rounds, evals]);
      return new Set(["a", "b", "c"]);
    }, 100);
    q.push(r([2], "a"));
    q.push(r([2], "b"));
    q.push(r([2, 3], "c", [1]));
    await vi.advanceTimersByTimeAsync(100);
    expect(reads).toEqual([[[2, 3], [1]]]);
    expect(q.pending()).toEqual([]);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(reads).toHaveLength(1);
  });

  it("re-reads with a growing delay until the announced entry shows, then stops", async () => {
    let visible = false;
    const times: number[] = [];
    const q = new RefreshQueue(async () => {
      times.push(Date.now());
      return new Set(visible ? ["x"] : []);
    }, 100);
    const start = Date.now();
    q.push(r([0], "x"));
    await vi.advanceTimersByTimeAsync(100); // read 1 at +100
    await vi.advanceTimersByTimeAsync(200); // read 2 at +300
    visible = true;
    await vi.advanceTimersByTimeAsync(400); // read 3 at +700 sees it
    await vi.advanceTimersByTimeAsync(10_000);
    expect(times.map((t) => t - start)).toEqual([100, 300, 700]);
    expect(q.pending()).toEqual([]);
  });

  it("gives up on an entry after the attempt limit", async () => {
    let reads = 0;
    const q = new RefreshQueue(async () => {
      reads += 1;
      return new Set();
    }, 10, 3);
    q.push(r([0], "never"));
    await vi.advanceTimersByTimeAsync(60_000);
    expect(reads).toBe(3);
    expect(q.pending()).toEqual([]);
  });
});
