"""A chat server that behaves like a vLLM server under load, without a GPU: OpenAI's chat completions, and
Anthropic's messages (`/v1/messages`, `/v1/messages/count_tokens`; sim_llm/wires.py shapes each protocol).

- Latency: time to first token (`latency_s`) plus `per_token_s` per generated token; at most
  `capacity` sequences at once, the rest wait in a queue (continuous batching in miniature).
- Text: deterministic for a given seed; it echoes the prompt's words (so that coverage and review
  loops see a relevant answer), padded to `output_tokens` tokens when set, never over `max_tokens`.
  A `response_format` JSON Schema gets JSON that fits it, as guided decoding gives.
- Keyed answers: a prompt holding a question of `answer_key` is answered with a final 'Answer:' line, right
  with the asked model's probability (`model_accuracy`), drawn once per (model, question, seed): models of
  known accuracy, for A/B tests of the benchmark suites.
- Told answers: per agent, the texts of its successive answers that are not JSON (proposals, revisions),
  cycling (`answers`), so that a test decides what a council proposes: loops, echoes, final answers.
- Streaming (`"stream": true`) as server-sent events, with `usage` when asked (always, on the messages wire).
- Tokens: `POST /tokenize` as vLLM serves it (`{"messages": [...]}` with the chat template, or `{"prompt": ...}`),
  and `usage` counts prompts the same way: a word is a token, each digit one more, and the template adds
  tokens per message (`tokenize=False`: a server without the route, as behind a gateway).
- Faults: per agent (`X-Fleet-Agent-Id` header), a plan of actions applied to its successive requests,
  cycling: "ok", "500", "429", "503", "hang", "garbage" (a 200 with a malformed body), "slow" (a
  stream 10x slower), "trickle" (a 200 whose body comes a byte every `trickle_byte_s`), "nousage" (an
  answer that reports no `usage`, as some servers and proxies give); per run
  (`run_faults`) or per model name (`model_faults`), random faults at set rates from a seeded generator.
"""

import contextlib
import itertools
import json
import random
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fleet_dagster.sim_llm.latency import EngineLoad
from fleet_dagster.sim_llm.structured import instance_of
from fleet_dagster.sim_llm.wires import AnthropicWire, OpenAIWire, Wire

OPENAI, ANTHROPIC = OpenAIWire(), AnthropicWire()
WIRES: dict[str, Wire] = {"/v1/chat/completions": OPENAI, "/v1/messages": ANTHROPIC}

FAULT_ACTIONS = {"ok", "500", "429", "503", "hang", "garbage", "slow", "trickle", "nousage"}
ANSWERED_ACTIONS = {"ok", "slow", "nousage"}
SLOW_FACTOR = 10.0
ANY_OBJECT = {"type": "object", "properties": {"answer": {"type": "string"}}}
CREDENTIAL_HEADERS = {"authorization", "x-api-key"}  # lower case: header names are case-insensitive
# The chat template's tokens: role markers around each message, and the assistant's turn opened at the end.
TEMPLATE_TOKENS_PER_MESSAGE = 4
GENERATION_PROMPT_TOKENS = 3


@dataclass
class FaultRates:
    """Random faults; each request draws once: error, then hang, then malformed, then slow stream."""

    error_rate: float = 0.0
    error_codes: tuple[int, ...] = (500,)
    hang_rate: float = 0.0
    malformed_rate: float = 0.0
    slow_rate: float = 0.0

    def draw(self, rng: random.Random, counter: int) -> str:
        roll = rng.random()
        for rate, action in (
            (self.error_rate, str(self.error_codes[counter % len(self.error_codes)])),
            (self.hang_rate, "hang"),
            (self.malformed_rate, "garbage"),
            (self.slow_rate, "slow"),
        ):
            if roll < rate:
                return action
            roll -= rate
        return "ok"


@dataclass
class SimSettings:
    latency_s: float = 0.05  # time to first token
    per_token_s: float = 0.0
    capacity: int = 256
    output_tokens: int | None = None
    hang_s: float = 60.0
    trickle_byte_s: float = 0.05
    seed: int = 0
    model: str = "sim-model"
    models: list[str] = field(default_factory=list)  # served beside `model`, listed by /v1/models
    # As vLLM: only the served names (`model`, `models`) answer (any other gets HTTP 404), their context
    # max_model_len.
    only_model: bool = False
    max_model_len: int = 8192
    # As vLLM with --api-key: every /v1 route answers 401 without `Authorization: Bearer <api_key>`.
    api_key: str | None = None
    tokenize: bool = True  # serves POST /tokenize, as vLLM does
    faults: dict[str, list[str]] = field(default_factory=dict)
    answers: dict[str, list[str]] = field(default_factory=dict)
    # Question text -> its correct answer; a model of model_accuracy answers a prompt holding a question right
    # with that probability (a model not named there answers as usual).
    answer_key: dict[str, str] = field(default_factory=dict)
    model_accuracy: dict[str, float] = field(default_factory=dict)
    run_faults: FaultRates = field(default_factory=FaultRates)
    model_faults: dict[str, FaultRates] = field(default_factory=dict)


def served_models(settings: SimSettings) -> list[str]:
    return [settings.model, *settings.models]


def wrong_answer(correct: str) -> str:
    try:
        return str(int(correct) + 1)
    except ValueError:
        return f"not {correct}"


def keyed_answer(settings: SimSettings, model: str, messages: list[dict[str, str]]) -> str | None:
    """The final answer line to a question of the answer key that the prompt holds (the longest such, so that a
    question inside another's text is not taken for it): right with the model's accuracy. The draw is seeded by
    (model, question, seed) alone, so every call of a run, and every run, answers that question alike."""
    accuracy = settings.model_accuracy.get(model)
    if accuracy is None:
        return None
    prompt = "\n".join(str(m.get("content", "")) for m in messages)
    question = max((q for q in settings.answer_key if q in prompt), key=len, default=None)
    if question is None:
        return None
    correct = settings.answer_key[question]
    # A string seed is hashed with SHA-512: the same in every process, unlike hash().
    right = random.Random(f"{model}\0{question}\0{settings.seed}").random() < accuracy
    return f"Answer: {correct if right else wrong_answer(correct)}"


def _words(prompt: str) -> list[str]:
    return list(dict.fromkeys(re.findall(r"[A-Za-z][A-Za-z0-9_-]{3,}", prompt))) or ["answer"]


def text_tokens(text: str) -> int:
    """As a real tokenizer counts digits: one token each (a word is one token, as `generate` makes them)."""
    return len(re.findall(r"\d|[^\s\d]+", text))


def prompt_tokens(messages: list[dict[str, str]]) -> int:
    """The prompt as the model sees it: the messages in the chat template."""
    return GENERATION_PROMPT_TOKENS + sum(
        TEMPLATE_TOKENS_PER_MESSAGE + text_tokens(str(m.get("content", ""))) for m in messages
    )


def generate(
    messages: list[dict[str, str]], response_format: dict | None, seed: int, max_tokens: int, length: int | None
) -> str:
    prompt = messages[-1].get("content", "") if messages else ""
    if response_format:  # a schema, or plain JSON mode ({"type": "json_object"})
        schema = (response_format.get("json_schema") or {}).get("schema") or ANY_OBJECT
        return json.dumps(instance_of(schema, random.Random(seed)))
    words = _words(prompt)
    rng = random.Random(seed)
    count = min(max_tokens, length if length is not None else len(words) + 4)
    body = [f"Proposal#{seed}:", *words]  # one token, like every other word
    while len(body) < count:
        body.append(rng.choice(words))
    return " ".join(body[:count])


class _Handler(BaseHTTPRequestHandler):
    server: "SimLLMServer"
    protocol_version = "HTTP/1.1"

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

    def _authorized(self, wire: Wire) -> bool:
        """Records the key as it came (a test checks where a key went): `Authorization: Bearer` (OpenAI) or
        `x-api-key` (Anthropic); 401 without the key."""
        header = self.headers.get("Authorization")
        if header is None and (key := self.headers.get("x-api-key")) is not None:
            header = f"x-api-key {key}"
        self.server.record_authorization(header)
        expected = self.server.settings.api_key
        if expected is None or header in (f"Bearer {expected}", f"x-api-key {expected}"):
            return True
        self._json(401, wire.error(401, "invalid API key"))
        return False

    def do_GET(self) -> None:
        path = self.path.rstrip("/")
        if path in ("/health", "/v1/health"):  # vLLM leaves its health check open
            self._json(200, {"status": "ok"})
        elif not self._authorized(OPENAI):
            return
        elif path == "/v1/models":
            settings = self.server.settings
            models = [
                {
                    "id": name,
                    "object": "model",
                    "created": 0,
                    "owned_by": "fleet-sim",
                    "max_model_len": settings.max_model_len,
                }
                for name in served_models(settings)
            ]
            self._json(200, {"object": "list", "data": models})
        else:
            self._json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))  # all of it: the connection is kept
        path = self.path.rstrip("/")
        wire = WIRES.get(path, OPENAI)
        if not self._authorized(wire):
            return
        if path == "/tokenize":
            self.server.count_tokenize_request()
        if path == "/tokenize" and self.server.settings.tokenize:
            self._tokenize(json.loads(raw or b"{}"))
            return
        if path == "/v1/messages/count_tokens":
            agent = self.headers.get("X-Fleet-Agent-Id", "")
            self._json(
                200, {"input_tokens": prompt_tokens(ANTHROPIC.neutral(json.loads(raw or b"{}"), agent)["messages"])}
            )
            return
        if path not in WIRES:
            self._json(404, {"error": {"message": f"no route {self.path}"}})
            return
        body = wire.neutral(json.loads(raw or b"{}"), self.headers.get("X-Fleet-Agent-Id", ""))
        self.server.count_chat_request(path, self.headers)
        deliberation_id = self.headers.get("X-Fleet-Deliberation-Id", "")
        self.server.entered(deliberation_id, self.headers.get("traceparent"))
        try:
            self._complete(body, wire)
        finally:
            self.server.left(deliberation_id)

    def _tokenize(self, body: dict) -> None:
        """vLLM's answer: the count, the token ids (made up here) and the model's context."""
        count = prompt_tokens(body["messages"]) if "messages" in body else text_tokens(str(body.get("prompt", "")))
        self._json(200, {"count": count, "max_model_len": self.server.settings.max_model_len, "tokens": [0] * count})

    def _complete(self, body: dict, wire: Wire) -> None:
        settings = self.server.settings
        if settings.only_model and body.get("model") not in served_models(settings):
            names = ", ".join(served_models(settings))
            message = f"The model `{body.get('model')}` does not exist. Valid aliases: {names}"
            self._json(404, wire.error(404, message))
            return
        action = self.server.next_action(self.headers.get("X-Fleet-Agent-Id", ""), body.get("model", ""))
        self.server.wait_until_answering()
        if action == "hang":
            time.sleep(settings.hang_s)
            return
        if action in {"500", "429", "503"}:
            time.sleep(settings.latency_s)
            self._json(int(action), wire.error(int(action), f"injected HTTP {action}"))
            return
        seed = int(body.get("seed") or settings.seed)
        model = body.get("model") or settings.model
        messages = body.get("messages", [])
        free_text = not body.get("response_format")
        told = self.server.told_answer(self.headers.get("X-Fleet-Agent-Id", "")) if free_text else None
        keyed = keyed_answer(settings, model, messages) if free_text and not told else None
        # A keyed answer's line ends the text, within max_tokens.
        max_tokens = int(body.get("max_tokens") or 512) - (text_tokens(keyed) if keyed else 0)
        content = told or generate(
            messages, body.get("response_format"), seed, max(max_tokens, 1), settings.output_tokens
        )
        if keyed:
            content = f"{content}\n{keyed}"
        tokens = content.split(" ")
        per_token = settings.per_token_s * (SLOW_FACTOR if action == "slow" else 1.0)
        usage = None if action == "nousage" else (prompt_tokens(messages), len(tokens))
        self.server.load.acquire()
        try:
            time.sleep(settings.latency_s)
            if action == "garbage":
                self._send(200, b"{not json")
            elif action == "trickle":
                self._trickle(json.dumps(wire.answer(model, content, usage)).encode())
            elif body.get("stream"):
                # OpenAI's stream reports usage only when asked to; Anthropic's always does.
                asked = wire is not OPENAI or (body.get("stream_options") or {}).get("include_usage")
                self._stream(wire.events(model, tokens, usage if asked else None), per_token)
            else:
                time.sleep(per_token * len(tokens))
                self._json(200, wire.answer(model, content, usage))
            if action in ANSWERED_ACTIONS:
                self.server.record_answer(body)
        finally:
            self.server.load.release()

    def _trickle(self, body: bytes) -> None:
        """A valid answer, sent so slowly that only a deadline on the whole call cuts it."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            for index in range(len(body)):
                self.wfile.write(body[index : index + 1])
                self.wfile.flush()
                time.sleep(self.server.settings.trickle_byte_s)
        except ConnectionError:  # the client gave up, as it should
            self.close_connection = True

    def _stream(self, events: Iterator[tuple[bytes, bool]], per_token: float) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event, carries_token in events:
            self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
            self.wfile.flush()
            if carries_token:
                time.sleep(per_token)
        self.wfile.write(b"0\r\n\r\n")


class SimLLMServer(ThreadingHTTPServer):
    daemon_threads = True  # a hanging request must not keep the process alive
    request_queue_size = 256  # the default backlog of 5 drops concurrent connects (1 s SYN retries)

    def __init__(self, settings: SimSettings, host: str = "127.0.0.1", port: int = 0):
        unknown = {a for actions in settings.faults.values() for a in actions} - FAULT_ACTIONS
        if unknown:
            raise ValueError(f"unknown fault action(s) {sorted(unknown)}; known: {sorted(FAULT_ACTIONS)}")
        super().__init__((host, port), _Handler)
        self.settings = settings
        self.load = EngineLoad(settings.capacity)
        self._plans = {agent: itertools.cycle(actions) for agent, actions in settings.faults.items()}
        self._answers = {agent: itertools.cycle(texts) for agent, texts in settings.answers.items() if texts}
        self._rng = random.Random(settings.seed)
        self._lock = threading.Lock()
        self._counter = 0
        self.requests_by_agent: dict[str, int] = {}
        self.authorizations: list[str | None] = []
        self.chat_requests_by_path: dict[str, int] = {}  # /v1/chat/completions, /v1/messages
        self.chat_headers: list[dict[str, str]] = []  # each chat request's headers but its credentials
        self.tokenize_requests = 0  # answered or not (404 with tokenize=False)
        self.in_flight = 0
        self.peak_in_flight = 0  # the most chat requests it held at once, queued or decoding
        self.answered: list[str] = []  # a fingerprint of each request it answered, in order
        self.first_call_at: dict[str, float] = {}  # by deliberation id (header): when its first call came
        self.last_answer_at: dict[str, float] = {}  # and when its latest call was answered
        self.traceparents: dict[str, list[str]] = {}  # by deliberation id: the trace context each call carried
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()  # open now: kept alive between requests, or answering
        # While cleared (`hold`), chat requests are taken in and counted but not answered: a test keeps a
        # deliberation in progress for as long as it needs, whatever the machine's speed, then `let_go`.
        self._answering = threading.Event()
        self._answering.set()

    def hold(self) -> None:
        self._answering.clear()

    def let_go(self) -> None:
        self._answering.set()

    def wait_until_answering(self) -> None:
        self._answering.wait()

    @property
    def base_url(self) -> str:
        host, port = self.socket.getsockname()[:2]
        return f"http://{host}:{port}/v1"

    def next_action(self, agent: str, model: str) -> str:
        with self._lock:
            self.requests_by_agent[agent] = self.requests_by_agent.get(agent, 0) + 1
            self._counter += 1
            if plan := self._plans.get(agent):
                return next(plan)
            rates = self.settings.model_faults.get(model, self.settings.run_faults)
            return rates.draw(self._rng, self._counter)

    def told_answer(self, agent: str) -> str | None:
        with self._lock:
            answers = self._answers.get(agent)
            return next(answers) if answers else None

    def entered(self, deliberation_id: str, traceparent: str | None) -> None:
        with self._lock:
            self.first_call_at.setdefault(deliberation_id, time.time())
            if traceparent:
                self.traceparents.setdefault(deliberation_id, []).append(traceparent)
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def left(self, deliberation_id: str) -> None:
        with self._lock:
            self.in_flight -= 1
            self.last_answer_at[deliberation_id] = time.time()

    def record_answer(self, body: dict) -> None:
        """What identifies the call (everything but headers and streaming): the same call answered twice shows."""
        fields = {name: body.get(name) for name in ("model", "messages", "temperature", "max_tokens", "seed")}
        with self._lock:
            self.answered.append(json.dumps(fields, sort_keys=True))

    def count_chat_request(self, path: str, headers: Message) -> None:
        """Counts it by path and keeps its headers, the credentials left out (`authorizations` records those)."""
        kept = {name: value for name, value in headers.items() if name.lower() not in CREDENTIAL_HEADERS}
        with self._lock:
            self.chat_requests_by_path[path] = self.chat_requests_by_path.get(path, 0) + 1
            self.chat_headers.append(kept)

    def count_tokenize_request(self) -> None:
        with self._lock:
            self.tokenize_requests += 1

    def record_authorization(self, header: str | None) -> None:
        with self._lock:
            self.authorizations.append(header)

    def __enter__(self) -> "SimLLMServer":
        self._thread = threading.Thread(target=self.serve_forever, name="sim-llm", daemon=True)
        self._thread.start()
        return self

    def wait(self) -> None:
        """Blocks until the server stops (it serves from the thread `with` started)."""
        if self._thread is not None:
            self._thread.join()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def __exit__(self, *exc: object) -> None:
        """Stops as a server process that ends: a client's kept-alive connection is closed too, never answered."""
        self.shutdown()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # closed already
                connection.shutdown(socket.SHUT_RDWR)
        self.server_close()
