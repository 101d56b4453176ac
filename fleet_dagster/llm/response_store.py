"""Answers the model already gave, so that no finished call is paid for twice.

A council restarted after its runner died, a re-run of a deliberation, and `fleet-dagster replay` ask for
the same calls again: they are answered from here. Keys come from `prepared_call.response_key` (what
determines an answer, never a credential); values are the answer and its token counts. Each store also
keeps every deliberation's request, which `replay` needs, and is bounded by age and size.

Where (FLEET_RESPONSE_STORE): a SQLite file under FLEET_HOME by default (one machine: the local head and
its nodes share it), `nats` for a JetStream key-value bucket (a cluster: every Ray node and run pod
reaches NATS already, see nats_bridge/response_bucket.py), a path, or `off`.
"""

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

from pydantic import BaseModel, Field

from fleet_dagster.core.env_settings import EnvSettings
from fleet_dagster.core.records import ChatResult
from fleet_dagster.core.request import DeliberationRequest
from fleet_dagster.llm.endpoint import LLMEndpoint
from fleet_dagster.llm.settings import display_url
from fleet_dagster.settings import fleet_home

DISABLED = "off"
IN_NATS = "nats"
PRUNE_EVERY = 500  # puts between two prunes: a prune scans the table
# Another process's write holds the lock for milliseconds: a lock held this long is a store that is away.
LOCK_WAIT_S = 2.0
REOPEN_AFTER_S = 30.0  # a file that could not be opened is tried again after this long, not on every call
log = logging.getLogger(__name__)
T = TypeVar("T")


class ResponseStoreSettings(EnvSettings):
    path: str | None = Field(
        None,
        validation_alias="FLEET_RESPONSE_STORE",
        description=f"SQLite file (unset: FLEET_HOME/responses.sqlite), '{IN_NATS}' or '{DISABLED}'.",
    )
    ttl_s: float = Field(
        7 * 86400.0,
        gt=0,
        validation_alias="FLEET_RESPONSE_TTL_S",
        description="Answers older than this are not replayed, and dropped.",
    )
    max_entries: int = Field(
        200_000,
        ge=1,
        validation_alias="FLEET_RESPONSE_MAX_ENTRIES",
        description="SQLite: the oldest answers beyond this many are dropped.",
    )
    max_bytes: int = Field(
        1 << 30,
        ge=1 << 20,
        validation_alias="FLEET_RESPONSE_MAX_BYTES",
        description="NATS: the bucket's size (full: new answers go unstored).",
    )


RESPONSE_STORE_ENV = ResponseStoreSettings.variables()


class ResponseStore(Protocol):
    """Async: a store may be across the network. Failures to store are the store's to absorb (logged)."""

    async def get(self, key: str) -> ChatResult | None: ...

    async def put(self, key: str, result: ChatResult) -> None: ...

    async def put_deliberation(self, deliberation_id: str, document: str) -> None: ...

    async def deliberation(self, deliberation_id: str) -> str | None: ...


class SqliteResponseStore:
    """Safe to share between processes (SQLite's WAL mode and busy timeout) and between threads.

    A store is a cache: a file that cannot be opened (a directory in its place, a full or read-only disk) or a
    lock held longer than LOCK_WAIT_S is a miss or an unstored answer, logged, never a failed call nor an actor
    that cannot start. Statements run on a thread, so a lock waited on never holds up the caller's other calls."""

    def __init__(self, path: Path, ttl_s: float, max_entries: int, clock=time.time) -> None:
        self.path = path
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._puts = 0
        self._db: sqlite3.Connection | None = None  # opened on first use, and again REOPEN_AFTER_S after it failed
        self._unopenable_until = 0.0

    def _connection(self) -> sqlite3.Connection:
        if self._db is not None:
            return self._db
        if self._clock() < self._unopenable_until:
            raise sqlite3.OperationalError(f"could not be opened less than {REOPEN_AFTER_S:.0f} s ago")
        try:
            self._db = _opened(self.path)
        except (OSError, sqlite3.Error):
            self._unopenable_until = self._clock() + REOPEN_AFTER_S
            raise
        return self._db

    async def _absorbed(self, what: str, statements: Callable[[sqlite3.Connection], T], otherwise: T) -> T:
        def run() -> T:
            with self._lock:
                return statements(self._connection())

        try:
            return await asyncio.to_thread(run)
        except (OSError, sqlite3.Error, ValueError) as exc:  # ValueError: an entry that no longer parses
            log.warning(f"response store {self.path}: {what} failed: {exc!r}")
            return otherwise

    async def get(self, key: str) -> ChatResult | None:
        def read(db: sqlite3.Connection) -> ChatResult | None:
            row = db.execute(
                "SELECT result FROM responses WHERE key = ? AND stored_at > ?", (key, self._clock() - self.ttl_s)
            ).fetchone()
            return ChatResult.model_validate_json(row[0]) if row else None

        return await self._absorbed("get", read, None)

    async def put(self, key: str, result: ChatResult) -> None:
        document = result.stored_form()
        if document is None:
            return

        def write(db: sqlite3.Connection) -> None:
            db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?)", (key, self._clock(), document))
            self._puts += 1
            if self._puts % PRUNE_EVERY == 0:
                self._prune(db)

        await self._absorbed("put", write, None)

    async def put_deliberation(self, deliberation_id: str, document: str) -> None:
        def write(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT OR REPLACE INTO deliberations VALUES (?, ?, ?)", (deliberation_id, self._clock(), document)
            )

        await self._absorbed("put_deliberation", write, None)

    async def deliberation(self, deliberation_id: str) -> str | None:
        def read(db: sqlite3.Connection) -> str | None:
            row = db.execute(
                "SELECT document FROM deliberations WHERE id = ? AND stored_at > ?",
                (deliberation_id, self._clock() - self.ttl_s),
            ).fetchone()
            return row[0] if row else None

        return await self._absorbed("deliberation", read, None)

    def __len__(self) -> int:
        with self._lock:
            return self._connection().execute("SELECT count(*) FROM responses").fetchone()[0]

    def prune(self) -> None:
        with self._lock:
            self._prune(self._connection())

    def _prune(self, db: sqlite3.Connection) -> None:
        oldest_kept = self._clock() - self.ttl_s
        db.execute("DELETE FROM responses WHERE stored_at <= ?", (oldest_kept,))
        db.execute("DELETE FROM deliberations WHERE stored_at <= ?", (oldest_kept,))
        db.execute(
            "DELETE FROM responses WHERE key IN (SELECT key FROM responses ORDER BY stored_at DESC LIMIT -1 OFFSET ?)",
            (self.max_entries,),
        )

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
            self._db = None


def _opened(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=LOCK_WAIT_S, check_same_thread=False, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, stored_at REAL, result TEXT)")
        db.execute("CREATE INDEX IF NOT EXISTS responses_age ON responses (stored_at)")
        db.execute("CREATE TABLE IF NOT EXISTS deliberations (id TEXT PRIMARY KEY, stored_at REAL, document TEXT)")
    except sqlite3.Error:
        db.close()
        raise
    return db


def sqlite_response_store(settings: ResponseStoreSettings) -> SqliteResponseStore:
    path = Path(settings.path) if settings.path else fleet_home() / "responses.sqlite"
    return SqliteResponseStore(path, settings.ttl_s, settings.max_entries)


class ReplayDocument(BaseModel):
    """What `fleet-dagster replay` needs to ask a deliberation's calls again: its request and where they went."""

    request: DeliberationRequest
    endpoint: LLMEndpoint


def replay_document(request: DeliberationRequest, endpoint: LLMEndpoint) -> str:
    """The document without a credential: no key, no user:password in a URL (replay makes no call, and the
    store's keys are computed from the URLs without them)."""
    stored = endpoint.model_copy(
        update={
            "base_url": display_url(endpoint.base_url),
            "model_urls": {model: display_url(url) for model, url in endpoint.model_urls.items()},
        }
    )
    return ReplayDocument(request=request, endpoint=stored).model_dump_json(exclude={"endpoint": {"api_key"}})
