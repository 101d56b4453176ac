"""A live view of a running deliberation: one bar per role (its phase) and one for proposals."""

from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn


class DeliberationProgress:
    def __init__(self, roles: list[str], expected: int, console: Console):
        # Role names come from profile files and phases from the councils: text, never rich markup.
        self.progress = Progress(
            TextColumn("{task.fields[label]:<12}", markup=False),
            TextColumn("{task.description:<12}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.proposals = self.progress.add_task("proposals", total=expected, label="all roles")
        self.roles: dict[str, TaskID] = {
            role: self.progress.add_task("waiting", total=None, label=role) for role in roles
        }

    def __enter__(self) -> "DeliberationProgress":
        self.progress.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.progress.__exit__(kind, error, traceback)

    def update(self, document: dict[str, Any]) -> None:
        self.progress.update(self.proposals, completed=document.get("current_count") or 0)
        for role, state in (document.get("progress") or {}).items():
            if role in self.roles:
                self.progress.update(
                    self.roles[role], description=state["phase"], completed=state["done"], total=state["total"] or None
                )
