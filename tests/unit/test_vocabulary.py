"""The fleet's vocabulary is declared once: a NATS subject in nats_bridge/subjects.py, each closed set of names (phases,
review modes, selections, suites, statuses) in one Literal or enum, every selection but the architect's registered."""

import ast
import json
from pathlib import Path
from typing import get_args

from fleet_dagster.benchmarks.suites import SUITE_CHOICES
from fleet_dagster.core.records import SelectionMethod
from fleet_dagster.core.selection import SELECT_FROM_PROPOSALS
from fleet_dagster.nats_bridge.subjects import Subject

PACKAGE = Path(__file__).resolve().parents[2] / "fleet_dagster"


def modules() -> list[tuple[str, ast.Module]]:
    return [(str(path.relative_to(PACKAGE)), ast.parse(path.read_text())) for path in sorted(PACKAGE.rglob("*.py"))]


def test_each_subject_is_written_only_where_it_is_declared():
    subjects = {subject.value for subject in Subject}
    written = {
        (module, node.value)
        for module, tree in modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value in subjects
    }
    assert {module for module, _ in written} == {"nats_bridge/subjects.py"}


def literal_sets(tree: ast.Module) -> list[frozenset[str]]:
    """The names of each `Literal["a", "b", ...]` the module writes."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "Literal":
            members = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            names = [m.value for m in members if isinstance(m, ast.Constant) and isinstance(m.value, str)]
            if len(names) > 1:
                found.append(frozenset(names))
    return found


def test_no_closed_set_of_names_is_declared_twice():
    declared: dict[frozenset[str], list[str]] = {}
    for module, tree in modules():
        for names in literal_sets(tree):
            declared.setdefault(names, []).append(module)
    assert {tuple(sorted(names)): where for names, where in declared.items() if len(where) > 1} == {}


def test_every_selection_is_registered_or_is_the_architects_phase():
    # The architect's is a phase of its council; execution is chosen across councils (core/cross_execution.py).
    assert set(get_args(SelectionMethod)) == set(SELECT_FROM_PROPOSALS) | {"architect", "execution"}


def test_the_charts_benchmark_suites_are_the_codes():
    """The chart's schema lists the suites the schedule may run (a static file): the code's, no fewer or more."""
    schema = json.loads((Path(__file__).resolve().parents[2] / "helm/fleet-dagster/values.schema.json").read_text())
    assert schema["properties"]["benchmarks"]["properties"]["suite"]["enum"] == list(SUITE_CHOICES)
