"""An OpenAI-compatible chat server that answers after a fixed latency, with per-agent faults.

Agents are told apart by the `X-Fleet-Agent-Id` header that fleet-dagster sends. A fault plan maps an
agent id to actions applied to its successive requests, cycling: "ok", "500", "429", "503", "hang"
(sleep `hang_s`, past any sane client timeout) or "garbage" (a 200 with a malformed body).
"""

import itertools
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULT_ACTIONS = {"ok", "500", "429", "503", "hang", "garbage"}


@dataclass
class SimSettings:
    latency_s: float = 0.05
    hang_s: float = 60.0
    faults: dict[str, list[str]] = field(default_factory=dict)
    model: str = "sim-model"


def _answer(messages: list[dict[str, str]], wants_json: bool, seed: int) -> str:
    prompt = messages[-1]["content"] if messages else ""
    if wants_json:
        criteria = re.findall(r'"(\w+)": <integer 1-10>', prompt) or ["overall"]
        scores = {c: 4 + (seed + i) % 6 for i, c in enumerate(criteria)}
        return json.dumps(
            {
                "scores": scores,
                "strengths": ["clear structure"],
                "weaknesses": ["few tests"],
                "suggestions": ["add a test for the failure path"],
            }
        )
    # Echo the prompt's content words so that coverage and review loops see a relevant answer.
    words = re.findall(r"[A-Za-z][A-Za-z0-9_-]{3,}", prompt)
    return f"Proposal (seed {seed}): " + " ".join(dict.fromkeys(words).keys())[:1500]


class _Handler(BaseHTTPRequestHandler):
    server: "SimLLMServer"

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: dict) -> None:
        self._send(status, json.dumps(payload).encode())

    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("/health", "/v1/health"):
            self._json(200, {"status": "ok"})
        elif self.path.rstrip("/") == "/v1/models":
            self._json(
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": self.server.settings.model, "object": "model", "created": 0, "owned_by": "fleet-sim"}
                    ],
                },
            )
        else:
            self._json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._json(404, {"error": {"message": f"no route {self.path}"}})
            return
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        agent = self.headers.get("X-Fleet-Agent-Id", "")
        action = self.server.next_action(agent)
        self.server.record(agent)
        if action == "hang":
            time.sleep(self.server.settings.hang_s)
            return
        time.sleep(self.server.settings.latency_s)
        if action in {"500", "429", "503"}:
            self._json(int(action), {"error": {"message": f"injected HTTP {action}", "type": "sim_fault"}})
            return
        if action == "garbage":
            self._send(200, b"{not json")
            return
        content = _answer(body.get("messages", []), "response_format" in body, int(body.get("seed") or 0))
        completion_tokens = min(len(content.split()), int(body.get("max_tokens") or 512))
        prompt_tokens = sum(len(m.get("content", "").split()) for m in body.get("messages", []))
        self._json(
            200,
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model") or self.server.settings.model,
                "choices": [
                    {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
        )


class SimLLMServer(ThreadingHTTPServer):
    daemon_threads = True  # a hanging request must not keep the process alive
    request_queue_size = 256  # the default backlog of 5 drops concurrent connects (1 s SYN retries)

    def __init__(self, settings: SimSettings, host: str = "127.0.0.1", port: int = 0):
        unknown = {a for actions in settings.faults.values() for a in actions} - FAULT_ACTIONS
        if unknown:
            raise ValueError(f"unknown fault action(s) {sorted(unknown)}; known: {sorted(FAULT_ACTIONS)}")
        super().__init__((host, port), _Handler)
        self.settings = settings
        self._plans = {agent: itertools.cycle(actions) for agent, actions in settings.faults.items()}
        self._lock = threading.Lock()
        self.requests_by_agent: dict[str, int] = {}
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"

    def next_action(self, agent: str) -> str:
        with self._lock:
            plan = self._plans.get(agent)
            return next(plan) if plan else "ok"

    def record(self, agent: str) -> None:
        with self._lock:
            self.requests_by_agent[agent] = self.requests_by_agent.get(agent, 0) + 1

    def __enter__(self) -> "SimLLMServer":
        self._thread = threading.Thread(target=self.serve_forever, name="sim-llm", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
