"""The Helm chart rendered by a real helm binary, every manifest validated offline."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from fleet_dagster.ray_cluster.local_head import stop_session
from tests.helm_chart import (
    CHART,
    NAMESPACE,
    ROOT,
    VALUE_FILES,
    containers,
    env_config,
    named,
    pod_templates,
    ray_groups,
    render,
    sandbox_group,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

# KubeRay's CRD schemas: FLEET_KUBERAY_CRDS (CI sets it, and then they must be there), else ../shared/crds when
# present. A user's clone has neither: then only the RayCluster/RayService schema check is skipped.
CRDS = Path(os.environ.get("FLEET_KUBERAY_CRDS") or ROOT.parent / "shared" / "crds")
CRD_FILES = {"RayCluster": "ray.io_rayclusters.yaml", "RayService": "ray.io_rayservices.yaml"}
KUBERNETES_VERSION = "1.33"
SECRET_VARIABLES = {"FLEET_LLM_API_KEY", "NATS_TOKEN", "HF_TOKEN", "RAY_AUTH_TOKEN", "VLLM_API_KEY"}
# The Prometheus operator's custom resources: kubernetes-validate knows Kubernetes' own kinds only, and no
# CRD schema of theirs is at hand; test_the_monitors_scrape_the_metrics_port_of_every_ray_pod checks them.
PROMETHEUS_OPERATOR_KINDS = {"PodMonitor", "ServiceMonitor"}
DASHBOARD = CHART / "dashboards" / "fleet-dagster.json"


@pytest.mark.parametrize("values", VALUE_FILES, ids=lambda v: v.name if v else "defaults")
def test_lint_and_validate_every_manifest(helm, values):
    lint = subprocess.run(
        [helm, "lint", str(CHART), *(["-f", str(values)] if values else [])], capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    for manifest in render(helm, values):
        if manifest["kind"] in PROMETHEUS_OPERATOR_KINDS:
            assert manifest["apiVersion"] == "monitoring.coreos.com/v1"
        elif manifest["kind"] not in CRD_FILES:
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def kuberay_schemas() -> dict[str, dict]:
    if not CRDS.is_dir():
        if os.environ.get("FLEET_KUBERAY_CRDS"):
            pytest.fail(f"FLEET_KUBERAY_CRDS={CRDS} is not a folder")
        pytest.skip(
            f"KubeRay CRD schemas not found in {CRDS}: set FLEET_KUBERAY_CRDS to a folder holding "
            f"{' and '.join(CRD_FILES.values())} (the ray-operator Helm chart's crds/) to validate them"
        )
    schemas = {}
    for kind, file in CRD_FILES.items():
        crd = yaml.safe_load((CRDS / file).read_text())
        schemas[kind] = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")["schema"]["openAPIV3Schema"]
    return schemas


@pytest.mark.parametrize("values", VALUE_FILES, ids=lambda v: v.name if v else "defaults")
def test_kuberay_resources_match_the_crds(helm, values):
    schemas = kuberay_schemas()
    rendered = [manifest for manifest in render(helm, values) if manifest["kind"] in schemas]
    assert rendered, "every value set renders a RayCluster or a RayService"
    for manifest in rendered:
        jsonschema.validate(manifest, schemas[manifest["kind"]])


@pytest.mark.parametrize("values", VALUE_FILES, ids=lambda v: v.name if v else "defaults")
def test_every_container_has_limits_and_runs_as_non_root(helm, values):
    for manifest in render(helm, values):
        for pod, container in containers(manifest):
            where = f"{manifest['kind']}/{manifest['metadata']['name']}/{container['name']}"
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), where
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), where
            assert pod["securityContext"]["runAsNonRoot"] is True, where
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, where
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"], where


@pytest.mark.parametrize("values", VALUE_FILES, ids=lambda v: v.name if v else "defaults")
def test_no_secret_carries_a_value(helm, values):
    """The only Secret the chart writes holds random values it generated, different on each fresh render."""
    first, second = render(helm, values), render(helm, values)
    secrets = [m for m in first if m["kind"] == "Secret"]
    assert [m["metadata"]["name"] for m in secrets] in ([], ["fleet-fleet-dagster-auth"])
    for secret in secrets:
        again = named(second, "Secret", "-auth")
        assert all(secret["data"][key] != again["data"][key] for key in secret["data"])
    for manifest in first:
        for _, container in containers(manifest):
            for variable in container.get("env", []):
                if variable["name"] in SECRET_VARIABLES:
                    assert "value" not in variable and "secretKeyRef" in variable["valueFrom"]


def test_gpus_on_vllm_and_the_gpu_worker_group(helm):
    rendered = render(helm, CHART / "ci" / "gpu-vllm-values.yaml")
    vllm = {m["metadata"]["name"]: m for m in rendered if m["kind"] == "Deployment" and "vllm" in m["metadata"]["name"]}
    assert set(vllm) == {"fleet-fleet-dagster-vllm-qwen-32b", "fleet-fleet-dagster-vllm-llama-8b"}
    big = vllm["fleet-fleet-dagster-vllm-qwen-32b"]["spec"]["template"]["spec"]
    assert big["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert "--tensor-parallel-size=2" in big["containers"][0]["args"]
    assert big["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert big["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/health"
    ray = next(m for m in rendered if m["kind"] == "RayCluster")
    gpu_group = next(g for g in ray["spec"]["workerGroupSpecs"] if g["groupName"] == "gpu-workers")
    assert gpu_group["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    env = next(m for m in rendered if m["kind"] == "ConfigMap" and m["metadata"]["name"].endswith("-env"))["data"]
    assert json.loads(env["FLEET_LLM_MODEL_URLS"]) == {
        "Qwen/Qwen2.5-32B-Instruct": "http://fleet-fleet-dagster-vllm-qwen-32b:8000/v1",
        "llama-8b": "http://fleet-fleet-dagster-vllm-llama-8b:8000/v1",
    }
    policy = named(rendered, "NetworkPolicy", "-vllm")
    allowed = [peer["podSelector"]["matchLabels"] for peer in policy["spec"]["ingress"][0]["from"]]
    assert {"app.kubernetes.io/component": "code-location"}.items() <= allowed[0].items()


def test_ray_address_is_the_rendered_head_service(helm):
    rendered = render(helm, None)
    ray = next(m for m in rendered if m["kind"] == "RayCluster")
    env = next(m for m in rendered if m["kind"] == "ConfigMap" and m["metadata"]["name"].endswith("-env"))["data"]
    # KubeRay names the head service <RayCluster name>-head-svc; Ray Client listens on 10001.
    assert env["RAY_ADDRESS"] == f"ray://{ray['metadata']['name']}-head-svc:10001"
    head_ports = {
        p["containerPort"] for p in ray["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["ports"]
    }
    assert 10001 in head_ports
    location = next(
        m for m in rendered if m["kind"] == "Deployment" and m["metadata"]["name"].endswith("code-location")
    )
    env_from = location["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["configMapRef"]["name"]
    assert (
        env_from
        == next(m for m in rendered if m["kind"] == "ConfigMap" and m["metadata"]["name"].endswith("-env"))["metadata"][
            "name"
        ]
    )


def test_rayservice_replaces_the_vllm_deployments(helm):
    rendered = render(helm, CHART / "ci" / "rayservice-values.yaml")
    kinds = [m["kind"] for m in rendered]
    assert "RayService" in kinds and not any("vllm" in m["metadata"]["name"] for m in rendered)
    service = next(m for m in rendered if m["kind"] == "RayService")
    serve = yaml.safe_load(service["spec"]["serveConfigV2"])
    assert serve["applications"][0]["import_path"] == "ray.serve.llm:build_openai_app"
    env = next(m for m in rendered if m["kind"] == "ConfigMap" and m["metadata"]["name"].endswith("-env"))["data"]
    assert env["FLEET_LLM_URL"] == f"http://{service['metadata']['name']}-serve-svc:8000/v1"


def test_external_nats_renders_no_statefulset(helm):
    rendered = render(helm, CHART / "ci" / "external-nats-values.yaml")
    assert not [m for m in rendered if m["kind"] == "StatefulSet"]
    env = next(m for m in rendered if m["kind"] == "ConfigMap" and m["metadata"]["name"].endswith("-env"))["data"]
    assert (
        env["NATS_URL"] == "tls://nats.messaging.svc:4222" and env["FLEET_LLM_URL"] == "https://llm-gateway.internal/v1"
    )


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("llm.backend=nonsense", "value must be one of 'vllm', 'rayservice', 'external'"),
        ("ray.gpuWorkers.gpus=0", "minimum"),
        ("codeLocation.port=70000", "maximum"),
        ("nats.sensorStatus=ON", "value must be one of"),
        ("ray.cpuWorkers.maxReplicas=0", "minimum"),
        ("unknownKey=1", "additional properties"),
        ("llm.prices.m.prompt=-1,llm.prices.m.completion=2", "'/llm/prices/m/prompt': minimum"),
        ("llm.prices.m.prompt=1,llm.prices.m.completion=2,llm.prices.m.input=1", "properties 'input' not allowed"),
        ("llm.prices.m.prompt=1", "missing property 'completion'"),
        ("metrics.interval=fast", "does not match pattern"),
        ("metrics.podMonitor.enable=true", "additional properties 'enable' not allowed"),
        ("retention.scheduleStatus=RUNNING", "retention/archiveDir"),  # the pods' FLEET_HOME is scratch space
        ("retention.days=0", "exclusiveMinimum"),
        # No syscall filter at all only where gVisor or Kata filter syscalls themselves.
        ("ray.sandboxWorkers.seccompProfile.type=Unconfined", "/ray/sandboxWorkers/runtimeClassName"),
        ("ray.sandboxWorkers.appArmorProfile.type=Unconfined", "/ray/sandboxWorkers/runtimeClassName"),
        ("ray.sandboxWorkers.seccompProfile.type=Localhost", "missing property 'localhostProfile'"),
        ("ray.sandboxWorkers.slots=0", "'/ray/sandboxWorkers/slots': minimum"),
        ("ray.sandboxWorkers.runtimeClassName=gVisor", "does not match pattern"),
        ("ray.sandboxWorkers.scratchSizeLimit=1GB", "does not match pattern"),
    ],
)
def test_bad_values_are_rejected_by_the_schema(helm, setting, message):
    done = subprocess.run([helm, "template", "fleet", str(CHART), "--set", setting], capture_output=True, text=True)
    assert done.returncode != 0 and message in done.stderr, done.stderr


def test_rendered_code_location_command_loads_the_definitions(helm, tmp_path):
    rendered = render(helm, None)
    location = next(
        m for m in rendered if m["kind"] == "Deployment" and m["metadata"]["name"].endswith("code-location")
    )
    container = location["spec"]["template"]["spec"]["containers"][0]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = [str(port) if arg == str(container["ports"][0]["containerPort"]) else arg for arg in container["args"]]
    args = ["127.0.0.1" if arg == "0.0.0.0" else arg for arg in args]
    executable = str(Path(sys.executable).with_name(container["command"][0]))
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    # Its log goes to a file: a pipe nobody reads fills up and blocks the server mid-write, shutdown included.
    log = tmp_path / "code-server.log"
    with log.open("w") as sink:
        server = subprocess.Popen(
            [executable, *container["command"][1:], *args],
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    try:
        probe = container["readinessProbe"]["exec"]["command"]
        probe = [
            str(Path(sys.executable).with_name(probe[0])),
            *[str(port) if a == str(container["ports"][0]["containerPort"]) else a for a in probe[1:]],
        ]

        def healthy() -> bool:
            assert server.poll() is None, log.read_text()[-2000:]
            return subprocess.run(probe, env=env, capture_output=True).returncode == 0

        wait_until(healthy, 120, "the code server's readiness", poll_s=1)
        listed = subprocess.run(
            [
                str(Path(sys.executable).with_name("dagster")),
                "job",
                "list",
                "--grpc-port",
                str(port),
                "--grpc-host",
                "127.0.0.1",
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        assert "deliberation_job" in listed.stdout and "benchmark_job" in listed.stdout, listed.stderr
    finally:
        # SIGTERM, then SIGKILL after the grace a pod gets (30 s): the test is about loading, not shutting down.
        stop_session(server.pid, grace_s=30)
        server.wait()


def snake_case(value):
    if isinstance(value, dict):
        return {re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower(): snake_case(item) for key, item in value.items()}
    return value


def test_the_dagster_yaml_for_k8s_run_launcher_is_accepted(tmp_path):
    from dagster._core.instance.config import dagster_instance_config
    from dagster_k8s import K8sRunLauncher

    shutil.copy(ROOT / "helm" / "dagster-instance.yaml", tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["run_launcher"]["class"] == "K8sRunLauncher"
    launcher_config = config["run_launcher"]["config"]
    from dagster._config import process_config

    assert process_config(K8sRunLauncher.config_type(), launcher_config).success
    values = yaml.safe_load((ROOT / "helm" / "dagster-values.yaml").read_text())
    k8s = values["runLauncher"]["config"]["k8sRunLauncher"]
    # The Dagster chart passes runK8sConfig through as it is; dagster-k8s reads either spelling.
    assert snake_case(k8s["runK8sConfig"]) == launcher_config["run_k8s_config"]
    assert k8s["jobNamespace"] == launcher_config["job_namespace"]
    assert values["dagsterWebserver"]["workspace"]["servers"][0]["host"] == "fleet-fleet-dagster-code-location"
    monitoring = values["dagsterDaemon"]["runMonitoring"]
    assert monitoring["enabled"] and config["run_monitoring"]["enabled"]
    assert monitoring["maxResumeRunAttempts"] == config["run_monitoring"]["max_resume_run_attempts"]


def test_stream_retention_values_reach_the_bridge_settings(helm, monkeypatch):
    from fleet_dagster.nats_bridge.settings import NatsSettings

    rendered = render(helm, None, "--set", "nats.stream.maxAgeSeconds=3600", "--set", "nats.publishRetrySeconds=5")
    env = next(m for m in rendered if m["kind"] == "ConfigMap" and m["metadata"]["name"].endswith("-env"))["data"]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = NatsSettings.deployed(os.environ)
    assert (settings.max_age_s, settings.max_bytes, settings.publish_retry_s) == (3600, 1024**3, 5)


def test_retention_values_reach_the_retention_settings_and_the_archive(helm, monkeypatch):
    from fleet_dagster.deliberation.archive import DeliberationArchive
    from fleet_dagster.deliberation.retention_policy import RetentionSettings

    rendered = render(
        helm, None, "--set", "retention.days=30", "--set", "retention.scheduleStatus=RUNNING",
        "--set", "retention.archiveDir=s3://fleet-archive/deliberations",
    )  # fmt: skip
    env = next(m for m in rendered if m["kind"] == "ConfigMap" and m["metadata"]["name"].endswith("-env"))["data"]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert RetentionSettings.from_environ(os.environ).max_age_days == 30
    assert env["FLEET_RETENTION_SCHEDULE_STATUS"] == "RUNNING"
    assert DeliberationArchive.from_env().location == "s3://fleet-archive/deliberations"


def test_load_values_reach_the_model_endpoint_and_the_response_store(helm, monkeypatch):
    from fleet_dagster.llm.resources import LLMResource
    from fleet_dagster.nats_bridge.response_bucket import NatsResponseStore
    from fleet_dagster.ray_cluster.response_stores import response_store_from_env

    rendered = render(helm, None, "--set", "llm.maxInFlight=64", "--set", "responseStore.ttlSeconds=3600")
    for name, value in env_config(rendered).items():
        monkeypatch.setenv(name, value)
    endpoint = LLMResource().served_endpoint()
    assert endpoint is not None and endpoint.max_in_flight == 64
    from fleet_dagster.llm.settings import LLMSettings

    assert LLMSettings.from_environ(env_config(render(helm, None))).max_in_flight is None  # unset: the code's default
    store = response_store_from_env()  # with the chart's NATS, every pod shares the bucket
    assert isinstance(store, NatsResponseStore) and store.ttl_s == 3600

    for backend, variable in (("sqlite", ""), ("off", "off")):  # "": SQLite under each pod's FLEET_HOME
        chosen = env_config(render(helm, None, "--set", f"responseStore.backend={backend}"))
        assert chosen["FLEET_RESPONSE_STORE"] == variable


def ray_nodes(rendered: list[dict]) -> list[tuple[dict, dict]]:
    """(rayStartParams, pod template) of every Ray node group the release renders: RayCluster and RayService."""
    nodes = []
    for manifest in rendered:
        if manifest["kind"] in CRD_FILES:
            spec = manifest["spec"].get("rayClusterConfig", manifest["spec"])
            for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]:
                nodes.append((group["rayStartParams"], group["template"]))
    return nodes


def selects(selector: dict, labels: dict) -> bool:
    return selector.items() <= labels.items()


def test_the_monitors_scrape_the_metrics_port_of_every_ray_pod(helm):
    default = render(helm, None)
    assert not [
        m for m in default if m["kind"] in PROMETHEUS_OPERATOR_KINDS or m["metadata"]["name"].endswith("-metrics")
    ]
    ray_policy = named(default, "NetworkPolicy", "-ray")
    assert all(8080 not in {p["port"] for p in rule.get("ports", [])} for rule in ray_policy["spec"]["ingress"])

    # Both clusters (the fleet's RayCluster and the RayService's) and both kinds of monitor.
    rendered = render(
        helm,
        CHART / "ci" / "rayservice-values.yaml",
        *("--set", "metrics.podMonitor.enabled=true", "--set", "metrics.labels.release=kube-prometheus-stack"),
    )
    nodes = ray_nodes(rendered)
    assert len(nodes) == 7  # a head and two worker groups, twice, and the fleet cluster's sandbox workers
    templates = [template for manifest in rendered for template in pod_templates(manifest)]
    # The monitors select every Ray node, the sandbox workers too: the code runs are counted where they run.
    ray_templates = [t for _, t in nodes]
    for params, template in nodes:  # Ray serves its metrics where the container declares them
        ports = {p["name"]: p["containerPort"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
        assert ports["metrics"] == int(params["metrics-export-port"]) == 8080

    def assert_scrapes_every_ray_pod(selector: dict, port: str) -> None:
        """The selector picks every Ray pod and no other, and each of them declares the port."""
        picked = [template for template in templates if selects(selector, template["metadata"]["labels"])]
        assert picked == ray_templates
        for template in picked:
            assert port in {p["name"] for c in template["spec"]["containers"] for p in c.get("ports", [])}

    pod_monitor = named(rendered, "PodMonitor", "-ray")
    service_monitor = named(rendered, "ServiceMonitor", "-ray")
    for monitor in (pod_monitor, service_monitor):
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    [endpoint] = pod_monitor["spec"]["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"], endpoint["interval"]) == ("metrics", "/metrics", "30s")
    assert_scrapes_every_ray_pod(pod_monitor["spec"]["selector"]["matchLabels"], endpoint["port"])

    # The ServiceMonitor scrapes the endpoints (every Ray pod) of the one Service it selects.
    services = [m for m in rendered if m["kind"] == "Service"]
    [service] = [
        s for s in services if selects(service_monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
    ]
    assert service["spec"]["clusterIP"] == "None"
    [endpoint] = service_monitor["spec"]["endpoints"]
    [port] = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
    assert (port["port"], endpoint["path"], endpoint["interval"]) == (8080, "/metrics", "30s")
    assert_scrapes_every_ray_pod(service["spec"]["selector"], port["targetPort"])

    # Prometheus, and only its pods in its namespace, reach that port through the Ray NetworkPolicy.
    [rule] = [
        r
        for r in named(rendered, "NetworkPolicy", "-ray")["spec"]["ingress"]
        if {"port": 8080, "protocol": "TCP"} in r.get("ports", [])
    ]
    assert rule["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
        }
    ]

    # With a Ray cluster managed elsewhere there are no Ray pods to scrape.
    elsewhere = render(
        helm, None, "--set", "ray.externalAddress=ray://ray-head:10001", "--set", "metrics.podMonitor.enabled=true"
    )
    assert not [m for m in elsewhere if m["kind"] in PROMETHEUS_OPERATOR_KINDS]


def test_the_grafana_dashboard_charts_every_exported_metric_and_no_other(helm):
    from fleet_dagster.ray_cluster.metrics import EXPORTED_METRIC_NAMES

    exported = set(EXPORTED_METRIC_NAMES)
    config_map = named(render(helm, None), "ConfigMap", "-grafana-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config_map["data"]["fleet-dagster.json"])
    assert dashboard == json.loads(DASHBOARD.read_text())

    def metric_names(expr: str) -> set[str]:
        """The series an expression reads, a histogram's _bucket/_sum/_count under the histogram's name."""
        found = re.findall(r"\bray_[a-z0-9_]+", expr)
        return {name if name in exported else re.sub(r"_(bucket|sum|count)$", "", name) for name in found}

    panels = [p for top in dashboard["panels"] for p in [top, *top.get("panels", [])] if p["type"] != "row"]
    assert len({p["id"] for p in panels}) == len(panels)
    charted = set()
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            assert names and names <= exported, (panel["title"], target["expr"])
            charted |= names
            if "_bucket" in target["expr"]:
                assert re.search(r"histogram_quantile\(0\.\d+, sum by \(le\b", target["expr"]), target["expr"]
    assert charted == exported, f"exported but on no panel: {sorted(exported - charted)}"
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            assert metric_names(variable["definition"]) <= exported, variable["name"]

    settings = [
        "--set",
        "metrics.grafanaDashboard.label=dashboards",
        "--set",
        "metrics.grafanaDashboard.labelValue=fleet",
    ]
    moved = named(render(helm, CHART / "ci" / "rayservice-values.yaml", *settings), "ConfigMap", "-grafana-dashboard")
    assert (
        moved["metadata"]["labels"]["dashboards"] == "fleet" and "grafana_dashboard" not in moved["metadata"]["labels"]
    )
    assert moved["metadata"]["namespace"] == "monitoring"
    assert moved["metadata"]["annotations"] == {"grafana_folder": "fleet"}
    off = render(helm, None, "--set", "metrics.grafanaDashboard.enabled=false")
    assert not [m for m in off if m["metadata"]["name"].endswith("-grafana-dashboard")]


def test_model_prices_reach_the_code_as_json(helm):
    from fleet_dagster.core.cost import ModelPrice

    prices = {
        "Qwen/Qwen2.5-7B-Instruct": {"prompt": 0.0002, "completion": 0.0006},
        "free": {"prompt": 0, "completion": 0},
    }
    env = env_config(render(helm, None, "--set-json", f"llm.prices={json.dumps(prices)}"))
    assert json.loads(env["FLEET_LLM_PRICES"]) == prices
    for price in json.loads(env["FLEET_LLM_PRICES"]).values():  # what the code reads them into
        ModelPrice.model_validate(price)
    assert "FLEET_LLM_PRICES" not in env_config(render(helm, None))  # unset: no model has a price
    # The CI value set prices each model it serves, by the name its calls send.
    env = env_config(render(helm, CHART / "ci" / "gpu-vllm-values.yaml"))
    assert set(json.loads(env["FLEET_LLM_PRICES"])) == set(json.loads(env["FLEET_LLM_MODEL_URLS"]))


def test_the_chart_renders_every_setting_the_code_reads_and_nothing_it_does_not(helm):
    """What the code reads (FleetSettings.variables(), each declared once as a field's alias) and what the chart
    gives the code location and its runs (the env ConfigMap, credentials by reference), over every value file."""
    from fleet_dagster.fleet_settings import FleetSettings

    rendered: set[str] = set()
    for values in VALUE_FILES:
        manifests = render(helm, values)
        rendered |= set(env_config(manifests))
        code_location = named(manifests, "Deployment", "code-location")
        rendered |= {e["name"] for _, c in containers(code_location) for e in c.get("env", [])}
        # The sandbox workers' own environment (fleet.sandboxEnv): what the code reads where it runs code.
        rendered |= {e["name"] for c in sandbox_group(manifests)["template"]["spec"]["containers"] for e in c["env"]}
    read = FleetSettings.variables()
    fleet = {name for name in rendered if name.startswith(("FLEET_", "NATS_")) or name in read}
    assert fleet - read == set(), "rendered, never read"
    assert read - rendered == set(), "read, never rendered"


def kuberay_start_argument(name: str, value: str) -> str:
    """What `ray start` gets for a rayStartParam: KubeRay writes ` --name=value` into the container's command,
    which bash runs (`bash -lc`), so the value's quotes and backslashes are the shell's to undo."""
    done = subprocess.run(["bash", "-c", f"printf '%s\\n' --{name}={value}"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    [argument] = done.stdout.splitlines()  # one word: the quoting keeps a JSON with spaces together
    return argument.removeprefix(f"--{name}=")


@pytest.mark.parametrize("slots", [4, 1])
def test_only_the_sandbox_workers_offer_the_sandbox_resource_and_they_offer_no_cpu(helm, slots):
    """The sandbox group as Ray's own KubeRay autoscaler reads the rendered RayCluster (its parser), and as `ray
    start` gets it through KubeRay's shell: the resource the code's executions ask for, on that group alone,
    `slots` of it a pod; no CPU there, so no council actor or plain task is ever scheduled on it."""
    from ray.autoscaler._private.kuberay.autoscaling_config import _derive_autoscaling_config_from_ray_cr

    from fleet_dagster.ray_cluster.cluster_settings import SANDBOX_RESOURCE

    rendered = render(helm, None, "--set", f"ray.sandboxWorkers.slots={slots}")
    cluster = named(rendered, "RayCluster", "-ray")
    node_types = _derive_autoscaling_config_from_ray_cr(cluster)["available_node_types"]
    offering = {name: node["resources"] for name, node in node_types.items() if SANDBOX_RESOURCE in node["resources"]}
    assert list(offering) == ["sandbox-workers"]
    assert offering["sandbox-workers"][SANDBOX_RESOURCE] == slots and offering["sandbox-workers"]["CPU"] == 0
    group = sandbox_group(rendered)
    assert (node_types["sandbox-workers"]["min_workers"], node_types["sandbox-workers"]["max_workers"]) == (1, 4)
    assert json.loads(kuberay_start_argument("resources", group["rayStartParams"]["resources"])) == {
        SANDBOX_RESOURCE: slots
    }
    assert kuberay_start_argument("num-cpus", group["rayStartParams"]["num-cpus"]) == "0"

    # Not in the RayService's cluster (it serves the model, never fleet code); none when turned off or when
    # the Ray cluster is managed elsewhere.
    served = render(helm, CHART / "ci" / "rayservice-values.yaml")
    assert [g["cluster"] for g in ray_groups(served) if g.get("groupName") == "sandbox-workers"] == [
        named(served, "RayCluster", "-ray")["metadata"]["name"]
    ]
    for setting in ("ray.sandboxWorkers.enabled=false", "ray.externalAddress=ray://ray-head:10001"):
        elsewhere = render(helm, None, "--set", setting)
        assert not [g for g in ray_groups(elsewhere) if g.get("groupName") == "sandbox-workers"], setting
        assert not [m for m in elsewhere if m["metadata"]["name"].endswith("-sandbox")], setting
