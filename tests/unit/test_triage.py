"""Request triage is pure: whatever bytes arrive, each message gets a run, a duplicate answer or a bounded rejection."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet_dagster.nats_bridge.triage import PriorUse, Triage, request_digest, triage

# Any code point, lone surrogates included: JSON escapes them (\ud800), so valid JSON carries text that
# cannot be encoded as UTF-8 (and so cannot be published) unless triage refuses it.
any_text = st.text(st.characters(exclude_categories=()), max_size=50)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | any_text,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(any_text, children, max_size=5),
    max_leaves=30,
)
request_like = st.fixed_dictionaries(
    {},
    optional={
        "task": any_text | json_values,
        "roles": st.lists(st.sampled_from(["DEV", "QA", "WIZARD", "", "\ud800"]), max_size=4) | json_values,
        "agents_per_role": st.integers(-5, 40) | json_values,
        "rounds": st.integers(-1, 9) | json_values,
        "requirements": st.lists(any_text, max_size=5) | json_values,
        "deliberation_id": any_text | st.sampled_from(["ok-id", "\ud800", "x" * 80]) | json_values,
        "metadata": json_values,
    },
)
payloads = st.one_of(
    st.binary(max_size=2000),
    request_like.map(lambda body: json.dumps(body).encode()),
    st.integers(1, 20_000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(1, 20_000).map(lambda depth: b'{"task":' * depth),
)


def _free(first_seqs: dict[str, int]) -> dict[str, PriorUse]:
    return {}


def _published(outcome: Triage) -> None:
    """What the sensor makes of an outcome, as bytes: the events it publishes, the run's digest tag and config."""
    for event in [*outcome.rejected, *outcome.duplicates]:
        event.model_dump_json().encode()
    for _, request in outcome.accepted:
        request_digest(request).encode()
        request.model_dump_json().encode()


@settings(max_examples=300, deadline=None)
@given(st.lists(payloads, max_size=6))
def test_every_message_is_accounted_for_and_rejections_stay_small(messages):
    outcome = triage(list(enumerate(messages, start=1)), _free)
    handled = [seq for seq, _ in outcome.accepted] + [d.stream_seq for d in outcome.duplicates]
    handled += [r.stream_seq for r in outcome.rejected]
    assert sorted(handled) == list(range(1, len(messages) + 1))
    _published(outcome)
    for rejected in outcome.rejected:
        assert 1 <= len(rejected.errors) <= 21 and len(rejected.model_dump_json()) < 16_384


@pytest.mark.parametrize(
    "payload",
    [
        rb'{"task":"x","roles":["DEV"],"metadata":{"a":["\ud800"]}}',
        rb'{"deliberation_id":"\ud800","task":"x"}',
        rb'{"task":"x\udfff","roles":["DEV"]}',
        rb'{"task":"x","roles":["DEV"],"\ud800":1}',
        rb'{"task":"x","roles":["\ud800"]}',
    ],
)
def test_text_that_is_not_unicode_is_rejected_with_a_rejection_that_can_be_published(payload):
    outcome = triage([(1, payload)], _free)
    [rejected] = outcome.rejected
    assert rejected.errors and rejected.model_dump_json().encode()


def test_a_taken_id_is_a_duplicate_only_for_the_same_request_from_nats():
    body = json.dumps({"task": "t", "roles": ["DEV"], "deliberation_id": "x"}).encode()
    accepted = triage([(1, body)], _free).accepted[0][1]

    def taken(seq: int | None, digest: str | None):
        return lambda first_seqs: {i: PriorUse("by run r1", seq, digest, "r1") for i in first_seqs}

    assert triage([(5, body)], taken(1, request_digest(accepted))).duplicates[0].run_id == "r1"
    assert triage([(5, body)], taken(1, "another request")).rejected[0].errors[0].field == "deliberation_id"
    assert triage([(5, body)], taken(None, None)).rejected, "an id taken by a run not from NATS is no duplicate"


def test_the_batch_asks_once_how_its_ids_are_taken_each_with_its_first_sequence():
    """One lookup a tick, not one a message: a burst of requests is not a burst of database queries."""
    asked: list[dict[str, int]] = []

    def prior_uses(first_seqs: dict[str, int]) -> dict[str, PriorUse]:
        asked.append(first_seqs)
        return {"used": PriorUse("by run r0", None, None, "r0")}

    ids = ["a", "used", "b", "a"]
    messages = [(seq, json.dumps({"task": "t", "deliberation_id": i}).encode()) for seq, i in enumerate(ids, start=3)]
    outcome = triage([(1, b"not json"), *messages], prior_uses)
    assert asked == [{"a": 3, "used": 4, "b": 5}]
    assert [seq for seq, _ in outcome.accepted] == [3, 5] and [d.stream_seq for d in outcome.duplicates] == [6]
    assert [r.stream_seq for r in outcome.rejected] == [1, 4], "rejections in stream order"
    assert triage([(1, b"not json")], prior_uses).rejected and len(asked) == 1, "nothing to look up: not asked"


def test_a_request_the_model_server_cannot_serve_is_rejected_with_the_reasons():
    def unservable(request):
        return [("roles", f"role {role}: model 'big' is not served") for role in request.roles if role == "QA"]

    messages = [
        (1, json.dumps({"task": "t", "roles": ["DEV"], "deliberation_id": "ok"}).encode()),
        (2, json.dumps({"task": "t", "roles": ["DEV", "QA"], "deliberation_id": "no"}).encode()),
    ]
    outcome = triage(messages, _free, unservable)
    assert [request.deliberation_id for _, request in outcome.accepted] == ["ok"]
    [rejected] = outcome.rejected
    assert rejected.deliberation_id == "no" and rejected.stream_seq == 2
    assert [(e.field, e.message) for e in rejected.errors] == [("roles", "role QA: model 'big' is not served")]


def test_a_retried_request_without_an_id_runs_once():
    """Its identity is its content: the same request (defaults filled, keys in any order) is the same one."""
    first = json.dumps({"task": "t", "roles": ["DEV"], "metadata": {"a": 1, "b": 2}}).encode()
    retry = json.dumps({"metadata": {"b": 2, "a": 1}, "roles": ["dev"], "task": "t", "rounds": 1}).encode()
    other = json.dumps({"task": "another", "roles": ["DEV"]}).encode()
    outcome = triage([(1, first), (2, retry), (3, other)], _free)
    assert [seq for seq, _ in outcome.accepted] == [1, 3]
    [duplicate] = outcome.duplicates
    assert (duplicate.stream_seq, duplicate.original_stream_seq) == (2, 1)
    assert duplicate.deliberation_id == outcome.accepted[0][1].deliberation_id


def test_metadata_keys_in_another_order_are_the_same_request():
    body = {"task": "t", "roles": ["DEV"], "deliberation_id": "x"}
    first = json.dumps({**body, "metadata": {"a": 1, "b": {"c": 1, "d": 2}}}).encode()
    retry = json.dumps({**body, "metadata": {"b": {"d": 2, "c": 1}, "a": 1}}).encode()
    outcome = triage([(1, first), (2, retry)], _free)
    assert [d.stream_seq for d in outcome.duplicates] == [2] and not outcome.rejected


def test_a_check_that_fails_on_one_request_rejects_that_request_only():
    def unservable(request):
        if request.deliberation_id == "odd":
            raise OSError("profile vanished")
        return []

    messages = [
        (seq, json.dumps({"task": "t", "roles": ["DEV"], "deliberation_id": i}).encode())
        for seq, i in [(1, "odd"), (2, "fine")]
    ]
    outcome = triage(messages, _free, unservable)
    assert [request.deliberation_id for _, request in outcome.accepted] == ["fine"]
    [rejected] = outcome.rejected
    assert rejected.stream_seq == 1 and "profile vanished" in rejected.errors[0].message
