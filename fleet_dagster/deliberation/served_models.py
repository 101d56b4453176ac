"""What the deployment's model server serves, asked once a request-sensor tick (see llm/preflight.py)."""

import contextlib
import logging

from fleet_dagster.core.request import DeliberationRequest
from fleet_dagster.deliberation.config import unlaunchable_roles
from fleet_dagster.deliberation.tick_budget import TickBudget
from fleet_dagster.llm.preflight import (
    PREFLIGHT_TIMEOUT_S,
    PreflightError,
    ServerUnavailable,
    model_listing,
    preflight,
)
from fleet_dagster.llm.resources import LLMResource


class ServedModels:
    """The deployment's model server as one tick sees it: its model list fetched once, what each request needs."""

    def __init__(self, llm: LLMResource, log: logging.Logger, budget: TickBudget) -> None:
        self._served = llm.served_endpoint()
        # Two tries in what is left of the tick: a server that takes longer is one that does not answer.
        self._listing = (
            model_listing(self._served, lambda: budget.for_step_s(2 * PREFLIGHT_TIMEOUT_S) / 2)
            if self._served is not None
            else None
        )
        self._log = log
        self._overrides: dict[str, str | None] = {}  # by deliberation id: the model that serves every role

    def prefetch(self) -> None:
        """Lists the deployment's server's models now, for the tick (asked in a thread while NATS is read)."""
        if self._served is not None and self._listing is not None:
            with contextlib.suppress(ServerUnavailable):  # kept by the listing: `problems` says it
                self._listing(self._served.base_url)

    def refusals(self, request: DeliberationRequest) -> list[tuple[str, str]]:
        """Why the fleet cannot run a request: roles it cannot launch, else what the server cannot serve of it."""
        return unlaunchable_roles(request) or self.problems(request)

    def problems(self, request: DeliberationRequest) -> list[tuple[str, str]]:
        """What the server cannot serve of the request. A server that does not answer rejects nothing: the
        request is not at fault."""
        if self._served is None:  # the embedded engine serves every role its one model
            return []
        try:
            checked = preflight(self._served, request, served_at=self._listing)
        except ServerUnavailable as exc:
            self._log.warning(f"not checked against the model server: {exc}")
        except PreflightError as exc:
            return exc.errors
        else:
            self._overrides[request.deliberation_id] = checked.model_override
        return []

    def model_override(self, request: DeliberationRequest) -> str | None:
        """The model that serves every role of a request checked this tick (a request waiting for admission
        since an earlier tick is checked again)."""
        if request.deliberation_id not in self._overrides:
            self.problems(request)
        return self._overrides.get(request.deliberation_id)
