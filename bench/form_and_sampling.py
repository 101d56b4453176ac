"""Degenerate proposals on the embedded model: how many are flagged with and without the profiles' repetition
controls, and how many winners are flagged when selection goes by score alone (as before the form flags) and
with form before merit (now).

Each deliberation is one council (DEV and QA in turn, `make deliberate`'s 3 agents and 1 round) on the embedded
engine, in this process, with the response store off. The same deliberation ids and seeds run once with every
repetition control off and once with each profile's own (resources/roles/*.yaml).

    python bench/form_and_sampling.py [--deliberations 20] [--frequency 0.5 --presence 0.0 --repetition 1.1]
"""

import argparse
import asyncio
import time

from fleet_dagster.core.council import Council, run_council
from fleet_dagster.core.profiles import RoleProfile, load_profile
from fleet_dagster.core.records import CouncilResult, Proposal
from fleet_dagster.core.request import parse_request
from fleet_dagster.llm.embedded import EmbeddedServer
from fleet_dagster.llm.openai_chat import OpenAIChatModel
from fleet_dagster.llm.resources import LLMResource

TASKS = {
    "DEV": "Design a rate limiter for the public REST API.",
    "QA": "Plan the tests of a rate limiter for the public REST API.",
}
SAMPLING_OFF = {"frequency_penalty": 0.0, "presence_penalty": 0.0, "repetition_penalty": None}


def score_only_winner(proposals: list[Proposal]) -> Proposal | None:
    """The winner as chosen before the form flags: the best score, whatever the text."""
    scored = [p for p in proposals if p.score is not None]
    return min(
        scored, key=lambda p: (-(p.score or 0), -(p.peer_score or 0), -(p.coverage or 0), p.agent_id), default=None
    )


async def deliberate(index: int, profile: RoleProfile, chat: OpenAIChatModel) -> CouncilResult:
    request = parse_request(
        {
            "task": TASKS[profile.role],
            "roles": [profile.role],
            "agents_per_role": 3,
            "rounds": 1,
            "deliberation_id": f"form-bench-{index}",
        }
    )
    council = Council(request, profile, chat, deadline_at=time.time() + 900, call_timeout_s=300)
    return await run_council(council)


def report(name: str, results: list[CouncilResult], wall_s: float) -> dict:
    proposals = [p for r in results for p in r.proposals if p.content is not None]
    flagged = [p for p in proposals if p.flags]
    kinds: dict[str, int] = {}
    for p in flagged:
        for flag in p.flags:
            kinds[flag.split(":")[0]] = kinds.get(flag.split(":")[0], 0) + 1
    before = [score_only_winner(r.proposals) for r in results]
    now = [r.winner for r in results]
    tokens = sum(call.completion_tokens for r in results for call in r.calls)
    figures = {
        "proposals": len(proposals),
        "flagged": len(flagged),
        "kinds": kinds,
        "flagged_winners_score_only": sum(bool(w and w.flags) for w in before),
        "flagged_winners_form_first": sum(bool(w and w.flags) for w in now),
        "deliberations": len(results),
        "completion_tokens": tokens,
        "wall_s": round(wall_s, 1),
    }
    print(
        f"{name:<22} flagged proposals {figures['flagged']:>3}/{figures['proposals']:<3} "
        f"({figures['flagged'] / max(1, figures['proposals']):.0%}) {kinds} | flagged winners: "
        f"by score alone {figures['flagged_winners_score_only']}/{len(results)}, "
        f"form first {figures['flagged_winners_form_first']}/{len(results)} | "
        f"{tokens} completion tokens, {wall_s:.0f} s",
        flush=True,
    )
    return figures


async def run(args: argparse.Namespace) -> None:
    server = EmbeddedServer(slots=4)
    endpoint = LLMResource().embedded_endpoint(server.base_url, 4)
    chat = OpenAIChatModel(endpoint)
    # The controls given on the command line replace the profiles'; those not given stay the profiles'.
    given = {
        name: value
        for name, value in (
            ("frequency_penalty", args.frequency),
            ("presence_penalty", args.presence),
            ("repetition_penalty", args.repetition),
        )
        if value is not None
    }
    variants = {"repetition controls off": SAMPLING_OFF, "controls given" if given else "profiles' controls": given}
    for name, sampling in variants.items():
        started = time.perf_counter()
        results = []
        for index in range(args.deliberations):
            profile = load_profile(("DEV", "QA")[index % 2]).model_copy(update=sampling)
            results.append(await deliberate(index, profile, chat))
        report(name, results, time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliberations", type=int, default=20)
    parser.add_argument(
        "--frequency", type=float, default=None, help="Try this frequency_penalty (default: profiles')."
    )
    parser.add_argument("--presence", type=float, default=None)
    parser.add_argument("--repetition", type=float, default=None)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
