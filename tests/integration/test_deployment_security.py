"""What a launch can and cannot change: endpoints and credentials are the deployment's, never run config's."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from contextlib import closing
from pathlib import Path

import dagster as dg
import pytest

from fleet_dagster.core.profiles import load_profile
from fleet_dagster.core.request import parse_request
from fleet_dagster.core.resource_files import resources_dir
from fleet_dagster.definitions import defs
from fleet_dagster.deliberation.archive import DeliberationArchive
from fleet_dagster.deliberation.retention import archive_deliberation, deliberation_runs
from fleet_dagster.deliberation.run_config import run_config_for
from fleet_dagster.llm.settings import LLM_ENV
from fleet_dagster.local_ports import free_port, port_open
from fleet_dagster.nats_bridge.local_server import LocalNatsServer
from fleet_dagster.ray_cluster.local_head import stop_session
from tests import nats_helpers
from tests.helm_chart import code_location_env, generated_secret, named, render, run_pod_job
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

KEY = "sk-deployment-key"


def launch(instance, deliberation_id: str, resources: dict) -> dg.ExecuteInProcessResult:
    request = parse_request({"task": "Design a cache", "roles": ["DEV"], "agents_per_role": 2, "rounds": 0})
    request = request.model_copy(update={"deliberation_id": deliberation_id})
    instance.add_dynamic_partitions("deliberations", [deliberation_id])
    return defs.resolve_job_def("deliberation_job").execute_in_process(
        run_config={**run_config_for(request), "resources": resources},
        instance=instance,
        partition_key=deliberation_id,
        raise_on_error=False,
    )


@pytest.mark.parametrize(
    ("resources", "field"),
    [
        ({"llm": {"config": {"base_url": "{elsewhere}"}}}, "base_url"),
        ({"llm": {"config": {"model_urls": {"m": "{elsewhere}"}}}}, "model_urls"),
        ({"nats": {"config": {"url": "nats://{elsewhere_host}"}}}, "url"),
    ],
    ids=["llm.base_url", "llm.model_urls", "nats.url"],
)
def test_a_launch_cannot_point_the_deployments_credentials_elsewhere(
    ray_head, instance, sim_llm_factory, monkeypatch, resources, field
):
    deployed = sim_llm_factory(latency_s=0.01, api_key=KEY)
    elsewhere = sim_llm_factory(latency_s=0.01)
    monkeypatch.setenv(LLM_ENV["base_url"], deployed.base_url)
    monkeypatch.setenv(LLM_ENV["api_key"], KEY)
    host = elsewhere.base_url.split("//")[1].split("/")[0]
    text = repr(resources).replace("{elsewhere}", elsewhere.base_url).replace("{elsewhere_host}", host)
    with pytest.raises(dg.DagsterInvalidConfigError, match=field):
        launch(instance, f"redirect-{field}", eval(text))  # noqa: S307 - the test's own literal
    assert elsewhere.authorizations == []


def test_the_deployments_key_reaches_the_deployments_server(ray_head, instance, sim_llm_factory, monkeypatch):
    deployed = sim_llm_factory(latency_s=0.01, api_key=KEY)
    monkeypatch.setenv(LLM_ENV["base_url"], deployed.base_url)
    monkeypatch.delenv(LLM_ENV["api_key"], raising=False)
    refused = launch(instance, "no-key", {})
    assert not refused.success and set(deployed.authorizations) == {"Bearer not-needed"}
    monkeypatch.setenv(LLM_ENV["api_key"], KEY)
    outcome = launch(instance, "with-key", {})
    assert outcome.success
    assert f"Bearer {KEY}" in deployed.authorizations


def kubelet_env(job: dict, rendered: list[dict], secret: dict[str, str]) -> dict[str, str]:
    """The environment the kubelet gives the run pod's container: its ConfigMaps, then its own variables,
    secretKeyRefs resolved from the rendered Secret."""
    container = job["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(named(rendered, "ConfigMap", source["configMapRef"]["name"])["data"])
    for variable in container["env"]:
        reference = variable.get("valueFrom", {}).get("secretKeyRef")
        if reference and reference["name"].endswith("-auth"):
            env[variable["name"]] = secret[reference["key"]]
        elif "value" in variable:
            env[variable["name"]] = variable["value"]
    return env


def test_the_default_deployment_runs_with_its_own_env_and_authenticates_everywhere(
    helm, ray_head, instance, sim_llm_factory, monkeypatch, tmp_path
):
    """The chart's default render, run here: nats-server with the rendered arguments, config file and token, a model
    server that (like vLLM with VLLM_API_KEY) wants the generated key, and a run with the run pod's env."""
    rendered = render(helm, None)
    secret = generated_secret(rendered)
    nats_pod = named(rendered, "StatefulSet", "-nats")["spec"]["template"]["spec"]
    nats_container = nats_pod["containers"][0]
    # The server's config file as mounted from its ConfigMap, and its env from the Secret.
    config_dir = tmp_path / "nats-config"
    config_dir.mkdir()
    config_map = next(v["configMap"]["name"] for v in nats_pod["volumes"] if v["name"] == "config")
    for file, text in next(m for m in rendered if m["metadata"]["name"] == config_map)["data"].items():
        (config_dir / file).write_text(text)
    mount = next(m["mountPath"] for m in nats_container["volumeMounts"] if m["name"] == "config")
    nats_token = secret[
        next(v for v in nats_container["env"] if v["name"] == "NATS_TOKEN")["valueFrom"]["secretKeyRef"]["key"]
    ]
    monkeypatch.setenv("NATS_TOKEN", nats_token)
    nats_options = [a.replace(mount, str(config_dir)) for a in nats_container["args"]] + ["-m", str(free_port())]
    vllm = named(rendered, "Deployment", "-vllm-qwen-7b")["spec"]["template"]["spec"]["containers"][0]
    api_key = secret[next(v for v in vllm["env"] if v["name"] == "VLLM_API_KEY")["valueFrom"]["secretKeyRef"]["key"]]
    served = vllm["args"][1].removeprefix("--served-model-name=")
    job = run_pod_job(rendered, instance, tmp_path)
    env = kubelet_env(job, rendered, secret)

    with LocalNatsServer(tmp_path / "jetstream", options=nats_options) as nats_server:
        with pytest.raises(Exception, match="[Aa]uthoriz"):
            nats_helpers.publish_raw(nats_server.url, [])  # no token: refused
        model = sim_llm_factory(latency_s=0.01, model=served, only_model=True, api_key=api_key)
        # The cluster's names become this machine's addresses; the rest of the env is as rendered.
        env |= {
            "NATS_URL": nats_server.url,
            "FLEET_LLM_URL": model.base_url,
            "FLEET_LLM_MODEL_URLS": json.dumps(
                {name: model.base_url for name in json.loads(env["FLEET_LLM_MODEL_URLS"])}
            ),
            "RAY_ADDRESS": ray_head.address,
            "FLEET_RESOURCES_DIR": str(resources_dir()),
        }
        # The local head has no token auth (KubeRay's authOptions gives it to Ray's pods); this test's
        # instance and homes stay its own.
        for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "DAGSTER_HOME", "FLEET_HOME"):
            env.pop(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        outcome = launch(instance, "as-deployed", {})
        assert outcome.success
        assert model.authorizations and set(model.authorizations) == {f"Bearer {api_key}"}
        with_token = nats_server.url.replace("nats://", f"nats://{nats_token}@")
        completed = nats_helpers.stored_events(with_token, "deliberation.completed")
        assert [event["status"] for event in completed] == ["COMPLETED"]
        # No credential in the run's config, its event log (metadata included) or the published events.
        stored = [message.data.decode() for message in nats_helpers.stored_messages(with_token)]
        recorded = [str(outcome.dagster_run.run_config), *map(str, instance.all_logs(outcome.run_id)), *stored]
        assert len(stored) > 3 and not [value for value in secret.values() if any(value in r for r in recorded)]


def test_ray_clients_with_the_rendered_env_reach_a_token_auth_cluster_and_others_do_not(helm, tmp_path):
    """A head started as KubeRay's authOptions start one (RAY_AUTH_MODE=token, the token from the Secret): a
    driver with the code location's Ray variables runs a task, one with another token is refused.

    It connects by GCS address, not through Ray Client as the pods do: the token check is the same, and
    Ray Client's per-session server failed to start now and then on a busy 2-core machine, auth or not."""
    rendered = render(helm, None)
    secret = generated_secret(rendered)
    client_env = {v["name"]: v for v in code_location_env(rendered) if v["name"].startswith("RAY_AUTH")}
    token = secret[client_env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["key"]]
    gcs_port = free_port()
    head_env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "RAY_USAGE_STATS_ENABLED": "0"}
    head_env.pop("RAY_ADDRESS", None)
    temp_dir = Path(tempfile.mkdtemp(prefix="fleet-ray-auth-", dir="/tmp"))  # Ray's socket paths must stay short
    head = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("ray")),
            "start",
            "--head",
            "--block",
            f"--port={gcs_port}",
            "--node-ip-address=127.0.0.1",
            "--include-dashboard=false",
            "--num-cpus=1",
            f"--temp-dir={temp_dir}",
        ],  # fmt: skip
        env=head_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    script = "import ray; ray.init(); print(ray.get(ray.remote(lambda: 41 + 1).remote()))"

    def client(auth_token: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "RAY_ADDRESS": f"127.0.0.1:{gcs_port}"}
        env |= {"RAY_AUTH_MODE": client_env["RAY_AUTH_MODE"]["value"], "RAY_AUTH_TOKEN": auth_token}
        return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)

    try:

        def listening() -> bool:
            assert head.poll() is None, "the token-auth head exited"
            return port_open(f"127.0.0.1:{gcs_port}")

        wait_until(listening, 60, "the token-auth head", poll_s=0.2)
        allowed = client(token)
        assert allowed.returncode == 0 and allowed.stdout.strip().endswith("42"), allowed.stderr[-2000:]
        refused = client("not-the-token")
        assert refused.returncode != 0 and "Failed to connect" in refused.stderr, refused.stderr[-2000:]
    finally:
        stop_session(head.pid)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_no_credential_of_the_model_server_is_stored_logged_or_archived(
    ray_head, fleet_home, instance, sim_llm_factory, monkeypatch, tmp_path
):
    """A model URL may carry user:password (an operator's proxy): the run calls through it, and nothing it keeps
    (run config, event log, the response store's answers and replay document, the archive) holds either
    password or the API key."""
    served = load_profile("DEV").model
    model = sim_llm_factory(latency_s=0.01, model=served)
    monkeypatch.setenv(LLM_ENV["base_url"], model.base_url.replace("://", "://fleet:url-password@"))
    per_model = {served: model.base_url.replace("://", "://fleet:models-password@")}
    monkeypatch.setenv(LLM_ENV["model_urls"], json.dumps(per_model))
    monkeypatch.setenv(LLM_ENV["api_key"], KEY)
    outcome = launch(instance, "credentialed-urls", {})
    assert outcome.success and model.authorizations  # the calls went through the URL with its password
    recorded = [str(outcome.dagster_run.run_config), *map(str, instance.all_logs(outcome.run_id))]
    # The local head's workers keep the session's FLEET_HOME: its SQLite store holds this run's answers.
    with closing(sqlite3.connect(fleet_home / "responses.sqlite")) as store:
        stored = [
            repr(row) for table in ("responses", "deliberations") for row in store.execute(f"SELECT * FROM {table}")
        ]
    assert any("credentialed-urls" in row for row in stored)  # the replay document is there
    archive = DeliberationArchive(str(tmp_path / "archive"))
    archive_deliberation(instance, archive, "credentialed-urls", deliberation_runs(instance, "credentialed-urls"))
    archived = json.dumps(archive.documents("credentialed-urls"))
    assert "credentialed-urls" in archived  # the archive holds the deliberation
    secrets = ("url-password", "models-password", KEY)
    leaks = [(secret, kept[:300]) for kept in [*recorded, *stored, archived] for secret in secrets if secret in kept]
    assert leaks == []
