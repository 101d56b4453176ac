"""Where a deliberation's token ledger outlives the runner that keeps it: Ray's internal key-value store.

A runner whose process died is restarted by Ray with nothing in memory; the ledger it kept would start from
zero and let the deliberation spend its budget again. Each charge is put here as it changes, one key per call,
and a runner reads a deliberation's charges back the first time it is asked about it. Why here: the store is the
cluster's own (in the GCS), so it lives as long as the runners and the councils that spend; it costs no new
process, and no new table or bucket in each response store (SQLite, NATS); a charge is a few bytes.
"""

import json

import ray
from ray.experimental import internal_kv

from fleet_dagster.core.budget import Charge


def _kv_namespace() -> str:
    """The store is the cluster's, not a namespace's: keys are kept apart by the runner's actor namespace."""
    return f"{ray.get_runtime_context().namespace}-token-ledger"


def _prefix(deliberation_id: str) -> str:
    return f"{deliberation_id}/"  # an id has no "/": one deliberation's prefix is no other's


def save_charge(deliberation_id: str, key: str, charge: Charge | None) -> None:
    """The call's charge as it is now (None: it has none)."""
    name = _prefix(deliberation_id) + key
    if charge is None:
        internal_kv._internal_kv_del(name, namespace=_kv_namespace())
    else:
        value = json.dumps({"tokens": charge.tokens, "settled": charge.settled})
        internal_kv._internal_kv_put(name, value, namespace=_kv_namespace())


def load_charges(deliberation_id: str) -> dict[str, Charge]:
    prefix = _prefix(deliberation_id)
    charges = {}
    namespace = _kv_namespace()
    for name in internal_kv._internal_kv_list(prefix, namespace=namespace):
        value = internal_kv._internal_kv_get(name, namespace=namespace)
        if value is not None:  # deleted since it was listed
            charges[name.decode().removeprefix(prefix)] = Charge(**json.loads(value))
    return charges


def forget_charges(deliberation_id: str) -> None:
    internal_kv._internal_kv_del(_prefix(deliberation_id), del_by_prefix=True, namespace=_kv_namespace())
