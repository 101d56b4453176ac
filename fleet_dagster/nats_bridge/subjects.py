"""The contract's subjects, before the deployment's prefix (NatsSettings.subject): each written here once."""

from enum import StrEnum


class Subject(StrEnum):
    REQUESTED = "deliberation.requested"
    ACCEPTED = "deliberation.accepted"
    REJECTED = "deliberation.rejected"
    DUPLICATE = "deliberation.duplicate"
    AGENT_COMPLETED = "agent.response.completed"
    AGENT_FAILED = "agent.response.failed"
    COMPLETED = "deliberation.completed"
    FAILED = "deliberation.failed"
    CANCELED = "deliberation.canceled"


# What ends a run's deliberation, one of them per run.
FINAL_SUBJECTS = (Subject.COMPLETED, Subject.FAILED, Subject.CANCELED)
# What the FLEET stream stores: every subject above. The first is every deliberation.* subject.
DELIBERATION_SUBJECTS = "deliberation.>"
STREAM_SUBJECT_FILTERS = (DELIBERATION_SUBJECTS, "agent.response.>")
# The agent.response.* subjects share one JSON Schema.
AGENT_RESPONSE_SCHEMA = "agent.response.json"


def schema_name(subject: str) -> str:
    return AGENT_RESPONSE_SCHEMA if subject.startswith("agent.response.") else f"{subject}.json"
