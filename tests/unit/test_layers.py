"""Dependencies run one way: core <- llm <- ray_cluster <- deliberation <- definitions <- cli.

`nats_bridge` is transport and contract (it knows the core's records, not Dagster assets or Ray; Ray's
actors use it for the cluster's response store), and
`benchmarks` sits beside `deliberation`. `sandbox` is an adapter beside `llm` (it runs model-written code; core says
what to run), which the cluster's sandbox nodes use. Function-level imports count: hiding an import in a function
does not change which way a dependency runs.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "fleet_dagster"

# Modules every layer may use: the package's version, local state paths, free ports, run pods' tags.
BASE = {"__init__", "settings", "local_ports", "run_pods"}
ALLOWED = {
    "core": {"core"},
    "sim_llm": {"sim_llm"},
    "llm": {"core", "llm"},
    "ray_cluster": {"core", "llm", "nats_bridge", "sandbox", "ray_cluster"},
    "nats_bridge": {"core", "nats_bridge"},
    "sandbox": {"core", "sandbox"},
    "deliberation": {"core", "llm", "ray_cluster", "nats_bridge", "deliberation"},
    "benchmarks": {"core", "llm", "ray_cluster", "benchmarks"},
    "environment": {"llm", "ray_cluster", "nats_bridge"},
    "fleet_settings": {"core", "llm", "ray_cluster", "nats_bridge", "deliberation", "benchmarks", "sandbox"},
    "definitions": {
        "core",
        "llm",
        "ray_cluster",
        "nats_bridge",
        "deliberation",
        "benchmarks",
        "environment",
        "fleet_settings",
    },
}


def unit_of(path: Path) -> str:
    """The layer a file belongs to: its package under fleet_dagster, or its module's name."""
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def imported_units(path: Path) -> set[str]:
    units = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] if node.module != "fleet_dagster" else [f"fleet_dagster.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        units |= {_unit_named(name.split(".")[1]) for name in names if name.startswith("fleet_dagster.")}
    return units


def _unit_named(name: str) -> str:
    """`from fleet_dagster import __version__` imports the package itself, not a module."""
    is_module = (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").is_file()
    return name if is_module else "__init__"


def layer_violations() -> list[str]:
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        unit = unit_of(path)
        if unit == "cli":  # the shell may use every layer
            continue
        allowed = BASE | ALLOWED.get(unit, set())
        for imported in sorted(imported_units(path) - allowed - {unit}):
            violations.append(f"{path.relative_to(PACKAGE.parent)} ({unit}) imports fleet_dagster.{imported}")
    return violations


def test_every_layer_is_declared():
    units = {unit_of(path) for path in PACKAGE.rglob("*.py")} - {"cli"} - BASE
    assert units <= set(ALLOWED), f"declare the layer of {sorted(units - set(ALLOWED))} in ALLOWED"


def test_no_layer_imports_a_higher_one():
    assert layer_violations() == []


def test_the_check_sees_function_level_imports(tmp_path):
    hidden = tmp_path / "hidden.py"
    hidden.write_text("def f():\n    from fleet_dagster.ray_cluster.actors import embedded_llm\n")
    assert imported_units(hidden) == {"ray_cluster"}
