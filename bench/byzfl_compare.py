"""ByzFL's benchmark results beside `mycelix-fl matrix --byzfl`'s, cell by cell.

    python bench/byzfl_compare.py BYZFL_RESULTS MYCELIX_JSON OUT

BYZFL_RESULTS is ByzFL's results directory (one folder per run, each with its config.json
and test_accuracy_tr_seed_*_dd_seed_*.txt); MYCELIX_JSON is the byzfl.json that
`mycelix-fl matrix --byzfl` writes. Both sides are scored with ByzFL's heatmap metric
(`test_heatmap` in byzfl/benchmark/evaluate_results.py): per (f, data distribution), the
worst case over attacks of the best checkpoint of the seed-averaged test accuracy; ByzFL's
side takes its best aggregator (and pre-aggregator chain) per cell, as its
`aggregated_test_heatmap` does, and so does Mycelix FL's when several aggregators ran.

Writes OUT/compare.md (the table) and OUT/heatmaps.png (the pair of heatmaps).

Two helpers for bench/byzfl.sh:
    python bench/byzfl_compare.py --clip-bound CONFIG   # ByzFL's Clipping c x learning rate
    python bench/byzfl_compare.py --stage CONFIG OUT    # OUT/byzfl/config.json for ByzFL
"""

import glob
import json
import math
import os
import sys
from collections import defaultdict


def label(dist):
    """The distribution's label as Mycelix FL writes it: iid_None, gamma_similarity_niid_0.66."""
    name = dist["name"]
    param = dist.get("distribution_parameter")
    if name in ("iid", "extreme_niid") or param is None:
        return f"{name}_None"
    if isinstance(param, list):
        param = param[0]
    return f"{name}_{float(param)}"


def first(v):
    return v[0] if isinstance(v, list) else v


def clip_bound(config):
    """ByzFL's Clipping bound times the learning rate (1000, the default bound, without it)."""
    c = json.load(open(config))
    lr = first(c["model"].get("learning_rate", 0.1))
    chain = c.get("pre_aggregators") or []
    if chain and isinstance(chain[0], list):
        chain = chain[0]
    clip = [p for p in chain if p.get("name") == "Clipping"]
    return (clip[0].get("parameters") or {}).get("c", 2.0) * lr if clip else 1000.0


def stage(config, out):
    """ByzFL's config.json in OUT/byzfl: on the CPU, with the staged data and results there."""
    c = json.load(open(config))
    c["benchmark_config"]["device"] = "cpu"
    c["evaluation_and_results"]["data_folder"] = os.path.join(out, "data")
    c["evaluation_and_results"]["results_directory"] = os.path.join(out, "byzfl", "results")
    json.dump(c, open(os.path.join(out, "byzfl", "config.json"), "w"), indent=2)


def byzfl_runs(results):
    """(f, distribution label, method, attack) -> best checkpoint of the seed-mean curve.

    Only the runs of the grid in results/config.json count (a reused folder may hold
    others), and each must be complete for every seed of that grid.
    """
    top = json.load(open(os.path.join(results, "config.json")))
    tb, tm, th = top["benchmark_config"], top["model"], top["honest_clients"]
    delta = top["evaluation_and_results"]["evaluation_delta"]
    expected = 1 + math.ceil(tb["nb_steps"] / delta)
    seeds = [
        f"tr_seed_{s}_dd_seed_{d}.txt"
        for s in range(tb.get("training_seed", 0), tb.get("training_seed", 0) + tb.get("nb_training_seeds", 1))
        for d in range(tb.get("data_distribution_seed", 0),
                       tb.get("data_distribution_seed", 0) + tb.get("nb_data_distribution_seeds", 1))
    ]
    same = lambda a, b: (b if isinstance(b, list) else [b]).count(a) > 0
    curves = defaultdict(list)
    for run in sorted(glob.glob(os.path.join(results, "*", "config.json"))):
        folder = os.path.dirname(run)
        c = json.load(open(run))
        b = c["benchmark_config"]
        if not (b["nb_steps"] == tb["nb_steps"] and c["evaluation_and_results"]["evaluation_delta"] == delta
                and same(c["model"]["name"], tm["name"]) and same(c["model"]["dataset_name"], tm["dataset_name"])
                and same(c["model"]["learning_rate"], tm["learning_rate"])
                and same(c["honest_clients"]["momentum"], th["momentum"])
                and same(c["honest_clients"]["weight_decay"], th["weight_decay"])):
            continue
        chain = "_".join(p["name"] for p in c.get("pre_aggregators") or [])
        method = first(c["aggregator"])["name"] + (f" + {chain}" if chain else "")
        key = (int(first(b["f"])), label(first(b["data_distribution"])), method,
               first(c["attack"])["name"])
        for tag in seeds:
            if not os.path.exists(os.path.join(folder, "train_time_" + tag)):
                sys.exit(f"{folder}: run {tag} did not finish")
            text = open(os.path.join(folder, "test_accuracy_" + tag)).read().strip()
            values = [float(x) for x in text.split(",") if x]
            if len(values) != expected:
                sys.exit(f"{folder}: {len(values)} accuracies in test_accuracy_{tag}, expected {expected}")
            curves[key].append(values)
    best = {}
    for key, cs in curves.items():
        n = min(len(c) for c in cs)
        mean = [sum(c[i] for c in cs) / len(cs) for i in range(n)]
        best[key] = max(mean)
    return best


def mycelix_runs(path):
    best = {}
    for row in json.load(open(path)):
        key = (row["f"], row["distribution"], row["aggregator"], row["attack"])
        best[key] = row["best_accuracy"]
    return best


def heatmap(best):
    """(f, distribution) -> (worst case over attacks of the best method, that method, attack)."""
    worst = {}
    for (f, d, method, attack), acc in best.items():
        k = (f, d, method)
        if k not in worst or acc < worst[k][0]:
            worst[k] = (acc, attack)
    cells = {}
    for (f, d, method), (acc, attack) in worst.items():
        if (f, d) not in cells or acc > cells[(f, d)][0]:
            cells[(f, d)] = (acc, method, attack)
    return cells


def main():
    if sys.argv[1] == "--clip-bound":
        print(clip_bound(sys.argv[2]))
        return
    if sys.argv[1] == "--stage":
        stage(sys.argv[2], sys.argv[3])
        return
    results, mine, out = sys.argv[1], sys.argv[2], sys.argv[3]
    theirs = heatmap(byzfl_runs(results))
    ours = heatmap(mycelix_runs(mine))
    fs = sorted({f for f, _ in theirs} | {f for f, _ in ours})
    order = []
    for row in json.load(open(mine)):
        if row["distribution"] not in order:
            order.append(row["distribution"])
    for _, d in theirs:
        if d not in order:
            order.append(d)

    lines = [
        "| distribution | f | ByzFL, best aggregator | Mycelix FL | difference |",
        "|---|---:|---|---|---:|",
    ]
    held = total = 0
    for d in order:
        for f in fs:
            t, o = theirs.get((f, d)), ours.get((f, d))
            if t is None or o is None:
                continue
            total += 1
            held += o[0] >= t[0]
            lines.append(
                f"| {d} | {f} | {t[0]:.3f} ({t[1]}; worst: {t[2]}) | {o[0]:.3f} ({o[1]}; worst: {o[2]}) "
                f"| {o[0] - t[0]:+.3f} |"
            )
    lines.append("")
    lines.append(f"Mycelix FL at least ByzFL's best in {held} of {total} cells.")
    lines.append("")
    lines.append(
        "Each cell: the worst case over attacks of the best checkpoint of the seed-averaged "
        "test accuracy (ByzFL's heatmap metric); ByzFL's side takes its best aggregator per "
        "cell. Differences in the setting: ByzFL's attackers read every honest client's "
        "vector, Mycelix FL's only their colluders' (so its ALIE has no spread to use at "
        "f = 1, and the Optimal_ attacks run at a fixed tau); ByzFL flips training and test "
        "images at random, Mycelix FL does not; Mycelix FL's honest peers keep 5 % of their "
        "shards to score updates; Mycelix FL's update norm bound is ByzFL's Clipping bound "
        "times the learning rate (an update is the step, not the vector)."
    )
    md = "\n".join(lines) + "\n"
    open(os.path.join(out, "compare.md"), "w").write(md)
    print(md)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(5 + 1.6 * len(fs), 1.5 + 0.8 * len(order)))
    for ax, (title, cells) in zip(axes, [("ByzFL (best aggregator)", theirs), ("Mycelix FL", ours)]):
        grid = [[cells.get((f, d), (float("nan"),))[0] for f in fs] for d in order]
        ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        for i, row in enumerate(grid):
            for j, v in enumerate(row):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center",
                        color="white" if v < 0.6 else "black")
        ax.set_xticks(range(len(fs)), [str(f) for f in fs])
        ax.set_yticks(range(len(order)), order)
        ax.set_xlabel("Byzantine clients f")
        ax.set_title(title)
    axes[0].set_ylabel("data distribution")
    fig.suptitle("worst-case test accuracy over attacks (ByzFL's metric)")
    fig.tight_layout()
    png = os.path.join(out, "heatmaps.png")
    fig.savefig(png, dpi=120)
    print(f"table: {os.path.join(out, 'compare.md')}; heatmaps: {png}")


if __name__ == "__main__":
    main()
