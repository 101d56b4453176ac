"""JSON Schemas of the NATS contract and of the status document, kept in resources/schemas/ (regenerate: python -m
this module)."""

import json
from pathlib import Path
from typing import Any

from fleet_dagster.core.request import DeliberationRequest
from fleet_dagster.core.resource_files import resources_dir
from fleet_dagster.core.status_document import StatusDocument
from fleet_dagster.nats_bridge.events import EVENT_SUBJECTS
from fleet_dagster.nats_bridge.subjects import Subject, schema_name


def schema_documents() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema, one per subject (agent.response.* share one), and the status document's."""
    documents = {
        schema_name(Subject.REQUESTED): DeliberationRequest.model_json_schema(),
        STATUS_DOCUMENT_SCHEMA: StatusDocument.model_json_schema(mode="serialization"),
    }
    for subject, model in EVENT_SUBJECTS.items():
        documents[schema_name(subject)] = model.model_json_schema()
    for name, document in documents.items():
        document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        document["$id"] = f"https://fleet-dagster.dev/schemas/{name}"
    return documents


STATUS_DOCUMENT_SCHEMA = "status.json"


def schema_for_subject(subject: str) -> dict[str, Any]:
    return committed_schema(schema_name(subject))


def committed_schema(name: str) -> dict[str, Any]:
    return json.loads((resources_dir() / "schemas" / name).read_text())


def write_schemas(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, document in schema_documents().items():
        (folder / name).write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    write_schemas(resources_dir() / "schemas")
