"""A pydantic model as an asset event's metadata, one entry per field under the field's own name (numbers and text
as they are, for the UI to plot and show; the rest as JSON), and back. The write side (materialization.py) and the
read side (status_query.py) share it: reading a status needs none of the tables' or events' imports."""

from collections.abc import Mapping
from typing import Any, TypeVar

import dagster as dg
from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)


def model_metadata(model: BaseModel) -> dict[str, Any]:
    return {
        name: dg.MetadataValue.json(value) if isinstance(value, dict | list) else value
        for name, value in model.model_dump(mode="json").items()
    }


def model_from_metadata(model_type: type[Model], metadata: Mapping[str, dg.MetadataValue]) -> Model | None:
    """None when the metadata is not such a model's (written by an earlier release)."""
    try:
        return model_type.model_validate({name: entry.value for name, entry in metadata.items()})
    except ValidationError:
        return None
