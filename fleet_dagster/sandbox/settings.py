"""Where the sandbox finds bubblewrap and Python, and whom it runs as: read once at a process's edge."""

from pathlib import PurePosixPath

from pydantic import Field, field_validator

from fleet_dagster.core.env_settings import EnvSettings


class SandboxSettings(EnvSettings):
    python: str = Field(
        default="/usr/bin/python3",
        validation_alias="FLEET_SANDBOX_PYTHON",
        description="The interpreter inside the sandbox: only /usr of the host is there.",
    )
    bwrap: str = Field(default="bwrap", validation_alias="FLEET_SANDBOX_BWRAP", description="Looked up on PATH.")
    # As root the sandbox runs as this user: RLIMIT_NPROC does not apply to root, so a fork bomb would not
    # stop. Not root, it runs as the fleet's own user (in a user namespace of its own).
    uid: int = Field(default=65534, ge=1, validation_alias="FLEET_SANDBOX_UID")

    @field_validator("python")
    @classmethod
    def _under_usr(cls, value: str) -> str:
        path = PurePosixPath(value)
        if not path.is_absolute() or ".." in path.parts or path.parts[:2] != ("/", "usr"):
            raise ValueError(f"{value!r}: the sandbox's Python must be an absolute path under /usr")
        return value
