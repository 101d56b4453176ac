"""The token ledgers a runner keeps (one per deliberation, see actors.ledger_index), each read back as its charges
were kept the first time it is asked about (this runner may be a restarted one), every change kept at once.
Where charges are kept is injected (ledger_store.py on Ray)."""

import time
from collections.abc import Callable

from fleet_dagster.core.budget import Charge, TokenLedger
from fleet_dagster.ray_cluster.council_host import UNRELEASED_TTL_S
from fleet_dagster.ray_cluster.expiring import Expiring


class Ledgers:
    def __init__(
        self,
        load: Callable[[str], dict[str, Charge]],
        save: Callable[[str, str, Charge | None], None],
        forget: Callable[[str], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._load, self._save, self._forget = load, save, forget
        self._clock = clock
        self._ledgers: Expiring[str, TokenLedger] = Expiring(on_expire=lambda d, _: forget(d), clock=clock)

    def reserve(self, deliberation_id: str, limit: int, key: str, tokens: int) -> bool:
        ledger = self._ledger(deliberation_id, limit)
        granted = ledger.reserve(key, tokens)
        if granted:  # kept before the caller knows: a charge must outlive this process
            self._save(deliberation_id, key, ledger.charges.get(key))
        return granted

    def settle(self, deliberation_id: str, limit: int, key: str, used: int, replayed: bool) -> None:
        ledger = self._ledger(deliberation_id, limit)
        ledger.settle(key, used, replayed)
        self._save(deliberation_id, key, ledger.charges.get(key))

    def release(self, deliberation_id: str) -> None:
        self._ledgers.pop(deliberation_id)
        self._forget(deliberation_id)  # kept there too, even when this runner restarted and never read them

    def _ledger(self, deliberation_id: str, limit: int) -> TokenLedger:
        ledger = self._ledgers.get(deliberation_id)
        if ledger is None:
            self._ledgers.prune()
            ledger = TokenLedger(limit, self._load(deliberation_id))
            self._ledgers.put(deliberation_id, ledger, self._clock() + UNRELEASED_TTL_S)
        return ledger
