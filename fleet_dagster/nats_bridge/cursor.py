"""The request sensor's cursor: the last stream sequence handled, and which stream it belongs to.

A stream that is deleted and created again restarts its sequence at 1, below a plain sequence cursor, so
"next after the cursor" would find nothing forever. The cursor keeps the stream's creation time to notice.
"""

import json
from dataclasses import dataclass

from pydantic import BaseModel


class RequestCursor(BaseModel):
    seq: int = 0
    stream_created: str | None = None

    @classmethod
    def parse(cls, raw: str | None) -> "RequestCursor":
        """Also reads the plain sequence numbers that earlier releases stored."""
        if not raw:
            return cls()
        if raw.strip().isdigit():
            return cls(seq=int(raw))
        return cls.model_validate(json.loads(raw))

    def dump(self) -> str:
        return self.model_dump_json()


@dataclass(frozen=True)
class StreamState:
    created: str | None
    first_seq: int
    last_seq: int


def read_after(cursor: RequestCursor, stream: StreamState) -> tuple[int, list[str]]:
    """The sequence to read after, and what the operator should be told about the way there."""
    notes: list[str] = []
    after = cursor.seq
    recreated = cursor.stream_created is not None and cursor.stream_created != stream.created
    if recreated or after > stream.last_seq:
        notes.append(
            f"the stream was recreated or reset (cursor at sequence {after}"
            f"{f' of the stream created {cursor.stream_created}' if cursor.stream_created else ''}, the stream now "
            f"created {stream.created} holds {stream.first_seq}..{stream.last_seq}): reading it from its start"
        )
        after = 0
    if after + 1 < stream.first_seq:
        notes.append(
            f"stream sequences {after + 1}..{stream.first_seq - 1} expired or were purged before the bridge read "
            f"them: requests among them were never run"
        )
        after = stream.first_seq - 1
    return after, notes
