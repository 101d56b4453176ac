"""Settings read from a process's environment. Each field names its variable once (its alias); a process reads its
settings once, at its edge (the CLI, the code location, a run's resources, an actor's start), and passes them down.
Core reads no setting from the environment itself (the edge hands it the mapping); only where its resource files
are (FLEET_RESOURCES_DIR, a path) is looked up where it is used."""

import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

# Whether a sensor or a schedule runs until someone turns it off in the UI, or waits to be turned on.
DefaultStatus = Annotated[Literal["RUNNING", "STOPPED"], BeforeValidator(lambda value: str(value).upper())]


class SettingsError(ValueError):
    """An environment variable holds something the deployment cannot use."""


class EnvSettings(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Self:
        """An empty variable counts as unset (a chart renders an optional value empty). Only the declared
        variables are read: a field without one is never set from the environment."""
        values = {variable: environ[variable] for variable in cls.variables().values() if environ.get(variable)}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise SettingsError(f"{cls.__name__} from the environment: {exc}") from None

    @classmethod
    def variables(cls) -> dict[str, str]:
        """Field name -> the environment variable it is read from."""
        return {
            name: field.validation_alias
            for name, field in cls.model_fields.items()
            if isinstance(field.validation_alias, str)
        }


def json_setting(value: Any) -> Any:
    """A setting given as JSON text (a variable) or as a value already (a caller): for `mode="before"` validators."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
