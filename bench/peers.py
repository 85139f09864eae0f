"""Times fl_core, ByzFL and Flower aggregators on the same inputs and prints one table.

Run through bench/peers.sh, which installs the peers and builds the Rust side. For every
(n, d) cell it draws one float32 input matrix (an honest cluster plus f scaled, flipped
inputs, f = (n - 3) // 4, the largest f every rule accepts), writes it to disk for
fl_core's peer_bench, times each peer's aggregator on the same numpy array (median of
several calls), and compares the aggregates: `diff` is the largest absolute difference
between fl_core's and the peer's result where both implement the same definition.
"""

import argparse
import importlib.util
import pathlib
import subprocess
import sys
import tempfile
import time
import types

import numpy as np


def import_byzfl():
    """ByzFL's aggregators without torch (see peers.sh): a stand-in module satisfies the
    import and isinstance checks; numpy inputs never reach torch code."""
    if importlib.util.find_spec("torch") is None:
        torch = types.ModuleType("torch")
        torch.Tensor = type("Tensor", (), {})
        torch.linalg = types.ModuleType("torch.linalg")
        sys.modules["torch"] = torch
        sys.modules["torch.linalg"] = torch.linalg
    pkg = types.ModuleType("byzfl")
    pkg.__path__ = list(importlib.util.find_spec("byzfl").submodule_search_locations)
    sys.modules["byzfl"] = pkg
    from byzfl.aggregators import aggregators as agg
    from byzfl.aggregators import preaggregators as pre

    return agg, pre


def make_inputs(n, d, f, seed):
    rng = np.random.default_rng(seed)
    center = rng.uniform(-0.5, 0.5, d).astype(np.float32)
    x = center + 0.1 * rng.uniform(-0.5, 0.5, (n, d)).astype(np.float32)
    x[:f] *= -10.0
    return x.astype(np.float32)


def timed(fn, budget):
    """Median seconds per call and the last result; fewer calls when one is slow."""
    times, out = [], None
    while True:
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= 7 or sum(times) > budget:
            break
    return float(np.median(times)), out


def peer_table(x, f, byzfl, byzfl_pre):
    """(rule, peer) -> callable returning a flat aggregate."""
    import flwr.server.strategy.aggregate as fa

    n = len(x)
    res = lambda: [([row], 1) for row in x]  # Flower's (NDArrays, num_examples) pairs
    return {
        ("mean", "ByzFL"): lambda: byzfl.Average()(x),
        ("mean", "Flower"): lambda: fa.aggregate(res())[0],
        ("krum", "ByzFL"): lambda: byzfl.Krum(f=f)(x),
        ("krum", "Flower"): lambda: fa.aggregate_krum(res(), num_malicious=f, to_keep=0)[0],
        ("multi_krum", "ByzFL"): lambda: byzfl.MultiKrum(f=f)(x),
        ("multi_krum", "Flower"): lambda: fa.aggregate_krum(res(), num_malicious=f, to_keep=n - f)[0],
        ("median", "ByzFL"): lambda: byzfl.Median()(x),
        ("median", "Flower"): lambda: fa.aggregate_median(res())[0],
        ("trimmed_mean", "ByzFL"): lambda: byzfl.TrMean(f=f)(x),
        # int(p * n) == f for p = (f + 0.5) / n.
        ("trimmed_mean", "Flower"): lambda: fa.aggregate_trimmed_avg(res(), (f + 0.5) / n)[0],
        ("geometric_median", "ByzFL"): lambda: byzfl.GeometricMedian(nu=0.1, T=3)(x),
        ("bulyan", "Flower"): lambda: fa.aggregate_bulyan(
            res(), num_malicious=f, aggregation_rule=fa.aggregate_krum, to_keep=0
        )[0],
        ("nnm", "ByzFL"): lambda: byzfl_pre.NNM(f=f)(x),
    }


RULES = ["mean", "krum", "multi_krum", "median", "trimmed_mean", "geometric_median", "bulyan", "nnm"]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin", required=True, help="the peer_bench executable (bench/peer_bench.rs)")
    ap.add_argument("--quick", action="store_true", help="n in {10, 50}, d = 10k only")
    ap.add_argument("--budget", type=float, default=3.0, help="seconds of repeats per peer call")
    args = ap.parse_args()

    byzfl, byzfl_pre = import_byzfl()
    import flwr

    ns = [10, 50] if args.quick else [10, 50, 100]
    ds = [10_000] if args.quick else [10_000, 100_000]
    print(f"peers: ByzFL (numpy path), Flower {flwr.__version__}; numpy {np.__version__}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        for d in ds:
            for n in ns:
                f = (n - 3) // 4
                x = make_inputs(n, d, f, seed=n * 1_000_003 + d)
                (tmp / "x.f32").write_bytes(x.astype("<f4").tobytes())
                out = subprocess.run(
                    [args.bin, str(tmp / "x.f32"), str(n), str(d), str(f), "7", str(tmp / "out")],
                    check=True, capture_output=True, text=True,
                ).stdout
                ours = {line.split()[1]: float(line.split()[2]) for line in out.splitlines() if line.startswith("rule ")}
                peers = peer_table(x, f, byzfl, byzfl_pre)
                for rule in RULES:
                    mine = np.fromfile(tmp / "out" / f"{rule}.f32", dtype="<f4")
                    row = {"rule": rule, "n": n, "d": d, "ours": ours[rule]}
                    for peer in ("ByzFL", "Flower"):
                        fn = peers.get((rule, peer))
                        if fn is None:
                            continue
                        secs, result = timed(fn, args.budget)
                        result = np.asarray(result, dtype=np.float64).reshape(-1)
                        row[peer] = secs
                        row[peer + "_diff"] = float(np.max(np.abs(result - mine.astype(np.float64))))
                    rows.append(row)
                    print(f"  measured {rule:16s} n={n:3d} d={d // 1000:3d}k", file=sys.stderr, flush=True)

    print()
    print("| rule | n | d | fl_core ms | ByzFL ms | ByzFL / fl_core | max diff | Flower ms | Flower / fl_core | max diff |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    worst = None
    for r in rows:
        cells = [r["rule"], str(r["n"]), f"{r['d'] // 1000}k", f"{r['ours'] * 1e3:.2f}"]
        for peer in ("ByzFL", "Flower"):
            if peer in r:
                ratio = r[peer] / r["ours"]
                worst = ratio if worst is None else min(worst, ratio)
                cells += [f"{r[peer] * 1e3:.2f}", f"{ratio:.1f}x", f"{r[peer + '_diff']:.1e}"]
            else:
                cells += ["-", "-", "-"]
        print("| " + " | ".join(cells) + " |")
    print()
    print(f"smallest speed-up over a peer: {worst:.1f}x (ratio > 1 means fl_core is faster)")
    print("ByzFL's Krum averages the n-f-1 nearest distances and Flower's sums the n-f-2 nearest,")
    print("so Krum and Multi-Krum can pick differently from ByzFL on some inputs; see the diff column.")


if __name__ == "__main__":
    main()
