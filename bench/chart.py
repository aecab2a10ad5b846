"""Draws the charts of BENCHMARKS.md from a results file of `cargo xtask bench`.

    python bench/chart.py RESULTS_JSON OUT_DIR

writes OUT_DIR/throughput.png (tasks per second by system, for the no-op, fib(25) and markdown
workloads, on a log scale) and OUT_DIR/scaling.png (wasq's no-op tasks per second by workers).
Runs that did not complete are left out of the charts; the tables say why.
"""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend is chosen first

WORKLOADS = [("noop", "no-op"), ("fib", "fib(25)"), ("markdown", "markdown")]


def systems(runs):
    """(id, label) of every system, in the order they ran."""
    seen = {}
    for run in runs:
        seen.setdefault(run["system"], run.get("label") or run["system"])
    return list(seen.items())


def throughput(results, out):
    runs = [r for r in results["runs"] if r.get("per_s") and not r.get("error")]
    names = systems(results["runs"])
    fig, ax = plt.subplots(figsize=(9, 0.9 * len(names) + 1.5))
    height = 0.8 / len(WORKLOADS)
    for i, (workload, title) in enumerate(WORKLOADS):
        rates = {r["system"]: r["per_s"] for r in runs if r["workload"] == workload}
        ys = [k + i * height for k in range(len(names))]
        values = [rates.get(system, 0) for system, _ in names]
        bars = ax.barh(ys, values, height=height, label=title)
        for bar, value in zip(bars, values):
            if value:
                ax.text(value * 1.05, bar.get_y() + bar.get_height() / 2, f"{value:,.0f}",
                        va="center", fontsize=7)
    ax.set_yticks([k + height * (len(WORKLOADS) - 1) / 2 for k in range(len(names))])
    ax.set_yticklabels([label for _, label in names])
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("tasks per second, end to end (log scale)")
    ax.set_title(f"{results['tasks']:,} tasks per run, {results['workers']} workers each")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=110)
    plt.close(fig)


def scaling(results, out):
    fig, ax = plt.subplots(figsize=(7, 4))
    points = [p for p in results.get("scaling", []) if p.get("per_s") and not p.get("error")]
    for system, label in systems(points):
        mine = sorted((p["workers"], p["per_s"]) for p in points if p["system"] == system)
        ax.plot([w for w, _ in mine], [r for _, r in mine], marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("workers")
    ax.set_ylabel("no-op tasks per second, end to end")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if points:
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "scaling.png", dpi=110)
    plt.close(fig)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    results = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    throughput(results, out)
    scaling(results, out)


if __name__ == "__main__":
    main()
