"""The council runner's units without Ray: hosting and ownership (council_host.py), the ledgers (ledgers.py) and
the one way state expires (expiring.py)."""

import asyncio

from fleet_dagster.core.budget import Charge
from fleet_dagster.core.request import MAX_DEADLINE_S
from fleet_dagster.ray_cluster.council_host import UNCOLLECTED_TTL_S, CouncilHost
from fleet_dagster.ray_cluster.expiring import Expiring
from fleet_dagster.ray_cluster.ledgers import Ledgers
from tests.clock import Clock
from tests.unit.test_council import ScriptedModel, make


def test_entries_expire_at_their_own_time_unless_kept():
    clock, expired = Clock(), []
    entries: Expiring[str, int] = Expiring(on_expire=lambda key, value: expired.append((key, value)), clock=clock)
    entries.put("early", 1, expires_at=1_010)
    entries.put("late", 2, expires_at=1_020)
    entries.put("busy", 3, expires_at=1_010)
    clock.now = 1_015
    assert entries.prune(keep=lambda value: value == 3) == ["early"] and expired == [("early", 1)]
    assert "late" in entries and entries.get("busy") == 3 and len(entries) == 2
    clock.now = 1_020
    assert entries.prune() == ["late", "busy"] and len(entries) == 0


def test_a_council_is_owned_by_its_run_adopted_once_and_never_taken_over():
    async def scenario():
        host = CouncilHost()
        council = make(ScriptedModel(delay_s=0.05))
        assert host.claim("d1", "DEV", "arrival-7").to_start
        host.host("d1", "DEV", council, "arrival-7")
        refused = host.claim("d1", "DEV", "run-b")
        assert refused.refusal is not None and "already running in run arrival-7" in refused.refusal
        # The run of the request that started it adopts it; the same run asking again is told it is hosted.
        assert host.claim("d1", "DEV", "run-a", adopt_from="arrival-7").hosted
        assert host.claim("d1", "DEV", "run-a").hosted and host.published("d1", "run-a") == {"DEV": 0}
        assert host.claim("d1", "DEV", "run-c", adopt_from="arrival-7").refusal is not None  # adopted already
        result = await host.result("d1", "DEV")
        assert result is not None and result.proposals_done == 3
        host.mark_published("d1", "run-a", {"DEV": 2})
        host.mark_published("d1", "run-a", {"DEV": 1})  # a late, smaller mark never moves it back
        assert host.published("d1", "run-a") == {"DEV": 2}
        assert len(host.calls_since("d1", {"DEV": 2})["DEV"]) == len(result.calls) - 2
        # A finished council of another run may be replaced; a released run starts nothing again.
        assert host.claim("d1", "DEV", "run-d").to_start
        assert host.release("d1", "run-a") == 1 and host.of("d1") == {}
        assert "released its councils" in (host.claim("d1", "DEV", "run-a").refusal or "")

    asyncio.run(scenario())


def test_uncollected_results_go_once_well_past_their_deadline():
    async def scenario():
        clock = Clock()
        host = CouncilHost(clock=clock)
        first = make(ScriptedModel())
        host.host("d1", "DEV", first, "run-a")
        await host.result("d1", "DEV")
        clock.now = first.deadline_at + UNCOLLECTED_TTL_S + 1
        host.host("d2", "DEV", make(ScriptedModel()), "run-b")  # hosting prunes what nobody collected
        assert set(host.progress("d1")) == set() and set(host.progress("d2")) == {"DEV"}

    asyncio.run(scenario())


def test_a_ledger_is_read_back_kept_on_every_change_and_forgotten_when_released_or_stale():
    kept: dict[str, dict[str, Charge]] = {"d1": {"earlier-call": Charge(40, settled=True)}}
    forgotten: list[str] = []

    def save(deliberation_id: str, key: str, charge: Charge | None) -> None:
        charges = kept.setdefault(deliberation_id, {})
        if charge is None:
            charges.pop(key, None)
        else:
            charges[key] = charge

    clock = Clock()
    ledgers = Ledgers(lambda d: dict(kept.get(d, {})), save, forgotten.append, clock=clock)
    # The restarted runner's ledger starts from what was spent: 40 of 100.
    assert ledgers.reserve("d1", 100, "call-1", 50) and not ledgers.reserve("d1", 100, "call-2", 20)
    assert kept["d1"]["call-1"] == Charge(50, settled=False)
    ledgers.settle("d1", 100, "call-1", 30, replayed=False)
    assert kept["d1"]["call-1"] == Charge(30, settled=True) and ledgers.reserve("d1", 100, "call-2", 20)
    ledgers.release("d1")
    assert forgotten == ["d1"]
    ledgers.reserve("d2", 100, "call-1", 10)
    clock.now += MAX_DEADLINE_S + UNCOLLECTED_TTL_S
    ledgers.reserve("d3", 100, "call-1", 10)  # opening a ledger drops those nobody released
    assert forgotten == ["d1", "d2"]
