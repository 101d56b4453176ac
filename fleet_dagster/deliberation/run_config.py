"""Run config for the deliberation job from a request: shared by the CLI and the NATS sensor."""

from typing import Any

from fleet_dagster.core.request import DeliberationRequest


def run_config_for(
    request: DeliberationRequest, llm_config: dict[str, Any] | None = None, quiet: bool = False
) -> dict[str, Any]:
    """`llm_config` overrides tuning fields of the `llm` resource (call_timeout_s, max_retries, ...); endpoints
    and keys are not among them: they are the deployment's (llm/settings.py)."""
    config = request.model_dump(exclude={"deliberation_id"})
    run_config: dict[str, Any] = {"ops": {"deliberation": {"config": config}}}
    if llm_config:
        run_config["resources"] = {"llm": {"config": llm_config}}
    if quiet:
        run_config["loggers"] = {"console": {"config": {"log_level": "WARNING"}}}
    return run_config
