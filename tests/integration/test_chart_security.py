"""The chart's security, from what it renders and from what dagster-k8s builds for a run pod out of it."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.helm_chart import (
    CHART,
    INSTANCE_YAML,
    ROOT,
    VALUE_FILES,
    code_location_env,
    containers,
    generated_secret,
    named,
    pod_templates,
    render,
    render_text,
    run_pod_job,
)

pytestmark = pytest.mark.integration

CREDENTIALS = ("FLEET_LLM_API_KEY", "NATS_TOKEN", "RAY_AUTH_TOKEN")
SKIPS = ROOT / "helm" / "checkov-skips.yaml"


def run_pod(helm: str, values: Path | None, instance, tmp_path: Path) -> tuple[list[dict], dict]:
    rendered = render(helm, values)
    return rendered, run_pod_job(rendered, instance, tmp_path)


@pytest.mark.parametrize("values", VALUE_FILES, ids=lambda v: v.name if v else "defaults")
def test_run_pods_get_the_credentials_by_reference_and_start_without_any_secret_of_ours(
    helm, values, instance, tmp_path
):
    rendered, job = run_pod(helm, values, instance, tmp_path)
    pod = job["spec"]["template"]
    container = pod["spec"]["containers"][0]
    env = {variable["name"]: variable for variable in container["env"]}
    expected = {variable["name"]: variable for variable in code_location_env(rendered)}
    for name in CREDENTIALS:
        assert (name in env) == (name in expected), name
        if name in env:
            assert "value" not in env[name] and env[name]["valueFrom"] == expected[name]["valueFrom"], name
    assert [source["configMapRef"]["name"] for source in container["envFrom"]] == ["fleet-fleet-dagster-env"]
    assert pod["metadata"]["labels"]["fleet-dagster/client"] == "true"
    mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
    assert {"/tmp", "/etc/fleet/resources"} <= mounts
    if "NATS_CREDS" in env:
        assert str(Path(env["NATS_CREDS"]["value"]).parent) in mounts
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["spec"]["automountServiceAccountToken"] is False
    kubernetes_validate.validate(job, "1.33", strict=True)

    # Every Secret a pod needs is one the release renders, one the values file names, or the Dagster chart's
    # database password: with default values nothing has to exist beforehand (no CreateContainerConfigError).
    named_in_values = set(re.findall(r"name: ([\w.-]+)", values.read_text())) if values else set()
    named_in_values.add(yaml.safe_load(INSTANCE_YAML.read_text())["run_launcher"]["config"]["postgres_password_secret"])
    rendered_secrets = {m["metadata"]["name"] for m in rendered if m["kind"] == "Secret"}
    for manifest in [*rendered, job]:
        for _spec, each in containers(manifest):
            for variable in each.get("env", []):
                if reference := variable.get("valueFrom", {}).get("secretKeyRef"):
                    assert reference["name"] in rendered_secrets | named_in_values, (manifest["kind"], variable)
    if values is None:
        assert {m["metadata"]["name"] for m in rendered if m["kind"] == "Secret"} == {"fleet-fleet-dagster-auth"}


@pytest.mark.parametrize("values", VALUE_FILES, ids=lambda v: v.name if v else "defaults")
def test_no_container_command_line_carries_a_secret(helm, values):
    """A process's arguments are readable by anyone on the node (`ps`, /proc/PID/cmdline) and land in
    events and crash reports: a Secret reaches a container as an env variable or a file, never as
    `$(VAR)` expanded into its command or args."""
    rendered = render(helm, values)
    secret_values = list(generated_secret(rendered).values()) if any(m["kind"] == "Secret" for m in rendered) else []
    for manifest in rendered:
        for _, container in containers(manifest):
            from_secrets = {v["name"] for v in container.get("env", []) if "secretKeyRef" in v.get("valueFrom", {})}
            command_line = " ".join([*container.get("command", []), *container.get("args", [])])
            where = f"{manifest['kind']}/{manifest['metadata']['name']}/{container['name']}"
            assert [name for name in from_secrets if f"$({name})" in command_line] == [], where
            assert [value for value in secret_values if value in command_line] == [], where


def test_every_fleet_pod_is_behind_a_network_policy(helm):
    for values in VALUE_FILES:
        rendered = render(helm, values)
        selectors = [p["spec"]["podSelector"]["matchLabels"] for p in rendered if p["kind"] == "NetworkPolicy"]
        for manifest in rendered:
            for template in pod_templates(manifest):
                labels = template["metadata"]["labels"]
                assert any(s.items() <= labels.items() for s in selectors), (values, manifest["metadata"]["name"])
        ray = [p for p in rendered if p["kind"] == "NetworkPolicy" and p["metadata"]["name"].endswith("-ray")]
        for rule in ray[0]["spec"]["ingress"] if ray else []:
            ports = {port["port"] for port in rule.get("ports", [])}
            if 8265 in ports:  # the dashboard (Jobs API): the KubeRay operator's namespace only
                assert all("namespaceSelector" in peer for peer in rule["from"])


# The pod labels the official Dagster chart (helm/dagster-values.yaml, release "dagster") gives its two
# webservers: templates/helpers/_helpers.tpl, "dagster.selectorLabels" and "dagster.webserver.componentName".
DAGSTER_WEBSERVER = {"app.kubernetes.io/name": "dagster", "app.kubernetes.io/instance": "dagster"}
WRITABLE_WEBSERVER = {**DAGSTER_WEBSERVER, "component": "dagster-webserver"}
READ_ONLY_WEBSERVER = {**DAGSTER_WEBSERVER, "component": "dagster-webserver-read-only"}


def test_viewers_get_a_read_only_webserver_and_only_the_proxy_reaches_the_writable_one(helm):
    """The Dagster webserver authenticates no one, and whoever reaches the writable one launches runs with any
    config and tags: it admits only the authenticating proxy's pods; viewers use the read-only one."""
    dagster_values = yaml.safe_load((ROOT / "helm" / "dagster-values.yaml").read_text())
    assert dagster_values["dagsterWebserver"]["enableReadOnly"] is True
    for values in VALUE_FILES:
        rendered = render(helm, values)
        policies = [p["spec"] for p in rendered if p["kind"] == "NetworkPolicy"]
        guarding = [p for p in policies if p["podSelector"]["matchLabels"].items() <= WRITABLE_WEBSERVER.items()]
        assert guarding and all(
            not p["podSelector"]["matchLabels"].items() <= READ_ONLY_WEBSERVER.items() for p in guarding
        )
        proxy = yaml.safe_load((CHART / "values.yaml").read_text())["networkPolicy"]["webserverProxyPods"]
        for policy in guarding:
            assert policy["policyTypes"] == ["Ingress"]
            assert [peer for rule in policy["ingress"] for peer in rule["from"]] == [
                {"podSelector": {"matchLabels": proxy}}
            ]


def test_the_ray_dashboard_listens_on_loopback_unless_kuberay_needs_it(helm):
    head = named(render(helm, None), "RayCluster", "-ray")["spec"]["headGroupSpec"]["rayStartParams"]
    assert head["dashboard-host"] == "127.0.0.1"
    service = named(render(helm, CHART / "ci" / "rayservice-values.yaml"), "RayService", "-llm")
    assert service["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartParams"]["dashboard-host"] == "0.0.0.0"
    for manifest in (named(render(helm, None), "RayCluster", "-ray"), service):
        spec = manifest["spec"].get("rayClusterConfig", manifest["spec"])
        assert spec["authOptions"]["mode"] == "token"


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("llm.externalUrl=https://user:s3cret@llm.example/v1", "/llm/externalUrl"),
        ("nats.externalUrl=nats://fleet:s3cret@nats.example:4222", "/nats/externalUrl"),
    ],
)
def test_a_url_with_credentials_is_refused_by_the_schema(helm, setting, message):
    backend = ["--set", "llm.backend=external"] if setting.startswith("llm") else ["--set", "nats.enabled=false"]
    done = subprocess.run(
        [helm, "template", "fleet", str(CHART), *backend, "--set", setting], capture_output=True, text=True
    )
    assert done.returncode != 0 and message in done.stderr and "s3cret" not in done.stdout, done.stderr


def resource_name(resource: str) -> str:
    """checkov's "Kind.namespace.name[.labels]" as "Kind/name", a run's own id left out."""
    kind, _, name = resource.split(".")[:3]
    return f"{kind}/{re.sub(r'^dagster-run-[0-9a-f-]+$', 'dagster-run', name)}"


def checkov() -> str:
    found = os.environ.get("FLEET_CHECKOV") or shutil.which("checkov")
    if not found:
        pytest.fail("checkov not found: `make test` installs it (FLEET_CHECKOV names the binary)")
    return found


def test_checkov_finds_nothing_but_the_justified_skips(helm, instance, tmp_path):
    """Every rendered manifest and the run pod dagster-k8s builds, scanned by checkov's Kubernetes checks."""
    scanned = tmp_path / "manifests"
    scanned.mkdir()
    for values in VALUE_FILES:
        name = values.stem if values else "defaults"
        (scanned / f"{name}.yaml").write_text(render_text(helm, values))
    _, job = run_pod(helm, None, instance, tmp_path)
    (scanned / "run-pod.yaml").write_text(yaml.safe_dump(job))
    done = subprocess.run(
        [checkov(), "-d", str(scanned), "--framework", "kubernetes", "-o", "json", "--quiet", "--compact"],
        capture_output=True,
        text=True,
    )
    report = json.loads(done.stdout)
    failed = {(f["check_id"], resource_name(f["resource"])) for f in report["results"]["failed_checks"]}
    skips = yaml.safe_load(SKIPS.read_text())
    allowed = {(check, resource) for check, entry in skips.items() for resource in entry["resources"]}
    assert all(entry["why"].strip() for entry in skips.values())
    assert failed <= allowed, f"checkov failed checks without a justified skip: {sorted(failed - allowed)}"
    assert allowed <= failed, f"skips no longer needed (remove them): {sorted(allowed - failed)}"
    assert report["summary"]["passed"] > 0
