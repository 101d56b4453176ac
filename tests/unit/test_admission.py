"""Fleet admission: a bound on deliberations running councils, in order of priority then arrival."""

from hypothesis import given, settings
from hypothesis import strategies as st

from fleet_dagster.core.admission import GRANT_TTL_S, PRIORITY_RANK, WAITING_TTL_S, Admission, Admitted
from tests.clock import Clock


def test_admits_up_to_the_limit_and_the_rest_wait_their_turn():
    clock = Clock()
    admission = Admission(clock)
    asks = [(f"d{i}", 0) for i in range(5)]
    assert admission.admit(asks, 2, running=set(), hosted=set()) == Admitted(["d0", "d1"], [])
    assert admission.state(running=set()) == (2, 3)
    # d0 and d1 run; asked again, they are hosted (nothing to start) and the others still wait.
    admission.started(["d0", "d1"])
    assert admission.admit(asks, 2, running={"d0", "d1"}, hosted={"d0", "d1"}) == Admitted([], ["d0", "d1"])
    # d0 ends: its slot goes to the next in line, d2.
    assert admission.admit(asks[2:], 2, running={"d1"}, hosted={"d0", "d1"}).to_start == ["d2"]


def test_a_higher_priority_goes_first_whoever_asked_first():
    admission = Admission(Clock())
    high, low = PRIORITY_RANK["high"], PRIORITY_RANK["low"]
    assert not admission.admit([("old-low", low), ("normal", 0)], 1, running={"busy"}, hosted={"busy"}).to_start
    assert not admission.admit([("new-high", high)], 1, running={"busy"}, hosted={"busy"}).to_start
    # A slot frees: the high one gets it, though it asked last; then normal, then low.
    granted = admission.admit([("old-low", low), ("new-high", high)], 1, running=set(), hosted=set())
    assert granted.to_start == ["new-high"]
    admission.started(["new-high"])
    order: list[str] = []
    for _ in range(2):
        # Each one admitted runs, then ends, its done councils kept until its run collects them.
        admitted = admission.admit([("old-low", low), ("normal", 0)], 1, running=set(), hosted=set(order))
        order += admitted.to_start
        admission.started(order[-1:])
    assert order == ["normal", "old-low"]


def test_hosted_councils_are_admitted_but_only_running_ones_count():
    admission = Admission(Clock())
    # Done councils waiting for their run hold no slot; their runs are admitted at once.
    assert admission.admit([("done", 0), ("new", 0)], 1, running=set(), hosted={"done"}) == Admitted(["new"], ["done"])


def test_a_grant_nobody_uses_and_a_waiter_nobody_asks_for_lapse():
    clock = Clock()
    admission = Admission(clock)
    assert admission.admit([("ghost", 0)], 1, running=set(), hosted=set()).to_start == ["ghost"]
    assert admission.admit([("next", 0)], 1, running=set(), hosted=set()).to_start == []
    clock.now += GRANT_TTL_S + 1  # ghost's asker never started its councils
    assert admission.admit([("next", 0)], 1, running=set(), hosted=set()).to_start == ["next"]
    admission.started(["next"])
    assert admission.admit([("gone", 0)], 1, running={"next"}, hosted={"next"}).to_start == []
    clock.now += WAITING_TTL_S + 1  # gone's asker stopped asking: it no longer holds a place
    assert admission.state(running={"next"}) == (1, 0)


def test_a_freed_slot_goes_to_the_next_waiter_between_asks():
    clock = Clock()
    admission = Admission(clock)
    admission.admit([("a", 0), ("b", 0), ("c", PRIORITY_RANK["high"])], 1, running={"busy"}, hosted={"busy"})
    assert admission.grant_waiting(1, running={"busy"}) == set()
    assert admission.pending() == {"a", "b", "c"}
    # busy ends: without anyone asking, the highest priority waiting holds the slot, and only it.
    assert admission.grant_waiting(1, running=set()) == {"c"}
    admission.started(["c"])
    assert admission.grant_waiting(1, running={"c"}) == set()
    assert admission.pending() == {"a", "b"}
    # Waiting lapses as it does for askers: a keeper's poll does not keep a cancelled run's place.
    clock.now += WAITING_TTL_S + 1
    assert admission.grant_waiting(1, running=set()) == set() and admission.pending() == set()


@settings(max_examples=200, deadline=None)
@given(
    limit=st.integers(1, 6),
    steps=st.lists(
        st.tuples(st.lists(st.tuples(st.integers(0, 9), st.integers(-1, 1)), max_size=6), st.integers(0, 9)),
        max_size=20,
    ),
)
def test_never_more_granted_than_the_slots_running_councils_leave(limit, steps):
    admission = Admission(Clock())
    running: set[str] = set()
    for asks, finished in steps:
        running.discard(f"d{finished}")
        admitted = admission.admit([(f"d{i}", p) for i, p in asks], limit, running=running, hosted=running)
        count, _ = admission.state(running)
        assert count <= max(limit, len(running))
        new = admitted.to_start
        assert len(running) + len(new) <= max(limit, len(running))
        running |= set(new)
        admission.started(new)
