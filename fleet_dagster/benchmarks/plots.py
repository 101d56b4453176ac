"""Trend plots for the benchmark_results asset, as PNGs embedded in markdown metadata."""

import base64
import io

import matplotlib

matplotlib.use("Agg")  # headless: run workers and CI have no display
import matplotlib.pyplot as plt


def markdown_png(figure: plt.Figure, title: str) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(figure)
    return f"![{title}](data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()})"


def _trend(history: list[tuple[str, dict]], series: dict[str, str], ylabel: str, title: str) -> plt.Figure:
    """One line per summary key in `series` (key -> label) across partitions; a missing value is a gap."""
    figure, axis = plt.subplots(figsize=(7, 3))
    partitions = [p for p, _ in history]
    for key, label in series.items():
        values = [s.get(key) for _, s in history]
        axis.plot(partitions, [float("nan") if v is None else v for v in values], marker="o", label=label)
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.legend()
    axis.tick_params(axis="x", labelrotation=45)
    return figure


def latency_trend(history: list[tuple[str, dict]]) -> str:
    """history: (partition, summary) oldest first, the current partition last."""
    series = {"latency_p50_ms": "p50", "latency_p95_ms": "p95"}
    figure = _trend(history, series, "agent call latency (ms)", "Latency by partition")
    return markdown_png(figure, "latency trend")


def accuracy_trend(history: list[tuple[str, dict]]) -> str:
    series = {
        "accuracy_single": "quality: single agent",
        "accuracy_deliberation": "quality: deliberation",
        "accuracy_code_single": "code: single agent",
        "accuracy_code_execution": "code: selection by execution",
    }
    figure = _trend(history, series, "accuracy", "Single agent vs deliberation (quality) and execution (code)")
    figure.axes[0].set_ylim(-0.05, 1.05)
    return markdown_png(figure, "accuracy trend")


def accuracy_vs_tokens(table: list[dict], suite: str = "Quality") -> str:
    """table: quality_stats.method_table rows of one suite. The question it answers: what does each point of
    accuracy cost?"""
    figure, axis = plt.subplots(figsize=(7, 4))
    placed: dict[tuple, int] = {}
    for row in table:
        point = (row["tokens_per_task"], row["accuracy"])
        errors = [[row["accuracy"] - row["ci_low"]], [row["ci_high"] - row["accuracy"]]]
        axis.errorbar(*point, yerr=errors, fmt="o", capsize=4)
        # Methods at one point (a deliberation read by score and by vote) get their labels one under another.
        below = placed[point] = placed.get(point, -1) + 1
        axis.annotate(row["method"], point, xytext=(6, 4 - 12 * below), textcoords="offset points")
    axis.set_xscale("log")  # one sample to nine samples or a council: costs span an order of magnitude
    axis.set_xlabel("tokens per task (prompt + completion)")
    axis.set_ylabel("accuracy (95 % Wilson interval)")
    axis.set_ylim(-0.05, 1.05)
    axis.set_title(f"{suite} suite: accuracy against cost, per method")
    return markdown_png(figure, "accuracy vs tokens")
