"""Every process that loads the code location (each run worker, the code server, the daemon's sensors and
schedules) imports the definitions; a deliberation's run needs none of the benchmarks' tables, plots and runners
nor the sandbox's harness. They are imported where they are used, in the assets' bodies."""

import json
import subprocess
import sys

# Third-party packages that only the benchmarks (pandas, numpy, matplotlib) and the deliberation's collect step
# (pandas, for its value) use: ~0.4 s of CPU and ~45 MB in every process that imported them with the definitions.
HEAVY_PACKAGES = {"pandas", "numpy", "matplotlib", "tabulate"}
# The benchmarks' runners, figures and plots, the drain's harness, and the code that runs model-written code.
HEAVY_MODULES = {
    "fleet_dagster.benchmarks.runner",
    "fleet_dagster.benchmarks.ab_runner",
    "fleet_dagster.benchmarks.figures",
    "fleet_dagster.benchmarks.code_figures",
    "fleet_dagster.benchmarks.plots",
    "fleet_dagster.benchmarks.ab_plots",
    "fleet_dagster.ray_cluster.deliberate",
    "fleet_dagster.sandbox.harness",
    "fleet_dagster.sandbox.bubblewrap",
    "fleet_dagster.sandbox.runner",
    "fleet_dagster.cli.drain",
}

LOADED = """
import json, sys
import fleet_dagster.definitions
print(json.dumps(sorted(sys.modules)))
"""


def test_loading_the_definitions_imports_no_benchmark_or_sandbox_code():
    printed = subprocess.run([sys.executable, "-c", LOADED], capture_output=True, text=True, check=True).stdout
    loaded = set(json.loads(printed))
    heavy = sorted(({name.split(".")[0] for name in loaded} & HEAVY_PACKAGES) | (HEAVY_MODULES & loaded))
    assert not heavy, f"import these where they are used, not with the definitions: {heavy}"
