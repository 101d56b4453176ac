"""The A/B asset's plot: each arm's accuracy with its Wilson interval (imported inside the asset, as plots.py)."""

from typing import Any

from fleet_dagster.benchmarks.plots import markdown_png, plt


def ab_accuracy(verdict: dict[str, Any], specs: tuple[str, str]) -> str:
    """verdict: ab_test.ab_verdict's figures."""
    figure, axis = plt.subplots(figsize=(6, 3.5))
    for index, (arm, spec) in enumerate(zip(verdict["arms"], specs, strict=True)):
        accuracy = arm["accuracy"] or 0.0
        errors = [[accuracy - arm["ci_low"]], [arm["ci_high"] - accuracy]]
        axis.errorbar(index, accuracy, yerr=errors, fmt="o", capsize=6)
        axis.annotate(f"{arm['arm']}: {spec or 'suite default'}", (index, accuracy), xytext=(8, 0),
                      textcoords="offset points", fontsize=8)  # fmt: skip
    axis.set_xticks([0, 1], ["A", "B"])
    axis.set_xlim(-0.5, 1.5)
    axis.set_ylim(-0.05, 1.05)
    axis.set_ylabel("accuracy (95 % Wilson interval)")
    axis.set_title(f"{verdict['verdict']} (McNemar p = {verdict['p_value']:.3g}, {verdict['paired']} tasks)")
    return markdown_png(figure, "A/B accuracy")
