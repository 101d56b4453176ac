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
    NAMESPACE,
    ROOT,
    VALUE_FILES,
    code_location_env,
    containers,
    env_config,
    generated_secret,
    named,
    pod_templates,
    ray_groups,
    render,
    render_text,
    run_pod_job,
    sandbox_group,
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


def sandbox_pod(template: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sandbox", **template["metadata"]}, **template}


@pytest.mark.parametrize("values", VALUE_FILES, ids=lambda v: v.name if v else "defaults")
def test_the_sandbox_pods_get_no_credential_no_token_and_no_endpoint(helm, values):
    """Model-written code runs on the sandbox workers: nothing there that it could use if it left bubblewrap. No
    Secret in any form (env, envFrom, volume), no service-account token, no Service addresses, not the fleet's env
    ConfigMap and none of its endpoints; read-only root, no privilege escalation, no capability. (KubeRay adds
    the Ray token itself, as to every Ray pod: the node must join the cluster.)"""
    rendered = render(helm, values)
    group = sandbox_group(rendered)
    pod = group["template"]["spec"]
    assert group["labels"]["app.kubernetes.io/component"] == "sandbox"
    assert pod["automountServiceAccountToken"] is False and pod["enableServiceLinks"] is False
    assert "serviceAccountName" not in pod
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    [container] = pod["containers"]
    context = container["securityContext"]
    assert (context["readOnlyRootFilesystem"], context["allowPrivilegeEscalation"]) == (True, False)
    assert context["capabilities"] == {"drop": ["ALL"]} and not context.get("privileged")
    assert "envFrom" not in container
    for variable in container["env"]:
        assert set(variable) == {"name", "value"}, variable  # a literal: no secretKeyRef, configMapKeyRef, fieldRef
        assert variable["name"] not in (*CREDENTIALS, "NATS_CREDS") and "://" not in variable["value"], variable
    assert pod["volumes"] == [{"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}}]
    assert container["volumeMounts"] == [{"name": "scratch", "mountPath": "/tmp"}]
    endpoints = [v for k, v in env_config(rendered).items() if "://" in v and k != "FLEET_LLM_MODEL_URLS"]
    endpoints += json.loads(env_config(rendered)["FLEET_LLM_MODEL_URLS"]).values()
    assert endpoints and not [e for e in endpoints if e in json.dumps(group["template"])]
    # A council's worker gets the credentials (fleet.secretEnv): the check above would see them.
    cpu = next(g for g in ray_groups(rendered) if g.get("groupName") == "cpu-workers")["template"]["spec"]
    assert {"FLEET_LLM_API_KEY", "NATS_TOKEN", "NATS_CREDS"} & {e["name"] for e in cpu["containers"][0]["env"]}
    kubernetes_validate.validate(sandbox_pod(group["template"]), "1.33", strict=True)


def settings(*sandbox_values: str) -> list[str]:
    """`--set ray.sandboxWorkers.<value>` for each."""
    return [arg for value in sandbox_values for arg in ("--set", f"ray.sandboxWorkers.{value}")]


def test_the_sandbox_runs_under_the_runtime_class_and_profiles_the_values_name(helm):
    default = sandbox_group(render(helm, None))["template"]
    assert "runtimeClassName" not in default["spec"]
    context = default["spec"]["containers"][0]["securityContext"]
    assert context["seccompProfile"] == {"type": "RuntimeDefault"} and "appArmorProfile" not in context

    gvisor = sandbox_group(render(helm, None, *settings(
        "runtimeClassName=gvisor", "seccompProfile.type=Unconfined", "appArmorProfile.type=Unconfined"
    )))["template"]  # fmt: skip
    assert gvisor["spec"]["runtimeClassName"] == "gvisor"
    context = gvisor["spec"]["containers"][0]["securityContext"]
    assert context["seccompProfile"] == {"type": "Unconfined"} and context["appArmorProfile"] == {"type": "Unconfined"}

    # Under runc, profiles of one's own that allow what bubblewrap needs (user namespaces, mount).
    runc = sandbox_group(render(helm, None, *settings(
        "seccompProfile.type=Localhost", "seccompProfile.localhostProfile=profiles/bwrap.json",
        "appArmorProfile.type=Localhost", "appArmorProfile.localhostProfile=bwrap",
    )))["template"]  # fmt: skip
    assert "runtimeClassName" not in runc["spec"]
    context = runc["spec"]["containers"][0]["securityContext"]
    assert context["seccompProfile"] == {"type": "Localhost", "localhostProfile": "profiles/bwrap.json"}
    assert context["appArmorProfile"] == {"type": "Localhost", "localhostProfile": "bwrap"}
    for template in (default, gvisor, runc):
        kubernetes_validate.validate(sandbox_pod(template), "1.33", strict=True)


RELEASE_NAMESPACE = {"kubernetes.io/metadata.name": NAMESPACE}
DNS_POD = ({"k8s-app": "kube-dns"}, {"kubernetes.io/metadata.name": "kube-system"})
# Ray's entry points that run code or answer with the model: Ray Client, Serve, the dashboard (Jobs API), the
# dashboard agent; and the metrics port.
RAY_ENTRY_PORTS = {10001, 8000, 8265, 52365, 8080}


def selected(peer: dict, labels: dict, namespace: dict) -> bool:
    """Does a NetworkPolicy peer (matchLabels only) select a pod with these labels in a namespace with these?"""
    assert "ipBlock" not in peer and all(set(s) == {"matchLabels"} for s in peer.values()), peer
    if "namespaceSelector" in peer:
        in_namespace = peer["namespaceSelector"]["matchLabels"].items() <= namespace.items()
    else:
        in_namespace = namespace == RELEASE_NAMESPACE
    return in_namespace and peer.get("podSelector", {}).get("matchLabels", {}).items() <= labels.items()


def port_numbers(rule: dict) -> set[int]:
    return {n for p in rule["ports"] for n in range(p["port"], p.get("endPort", p["port"]) + 1)}


@pytest.mark.parametrize("values", VALUE_FILES, ids=lambda v: v.name if v else "defaults")
def test_the_sandbox_workers_reach_only_ray_ports_of_the_fleets_ray_pods_and_dns(helm, values):
    """The sandbox NetworkPolicy over every pod of the release (Ray pods with the labels KubeRay gives them, run
    pods with their container context's) and the cluster DNS: only the fleet cluster's Ray pods reach the sandbox
    pods; these reach GCS on the head alone, Ray's own ports (raylet, object manager, workers) on the fleet
    cluster's Ray pods, which every node binds, and DNS; never a Ray entry point, the model servers, NATS, a run
    pod, the code location, the RayService's cluster or another sandbox pod. The Ray policy admits them on Ray's
    own ports alone."""
    rendered = render(helm, values)
    groups = ray_groups(rendered)
    fleet_cluster = named(rendered, "RayCluster", "-ray")["metadata"]["name"]
    location_env = {e["name"]: e.get("value") for e in code_location_env(rendered)}
    run_pod_labels = json.loads(location_env["DAGSTER_CONTAINER_CONTEXT"])["k8s"]["labels"]
    pods = {f"{g['cluster']}/{g.get('groupName', 'head')}": g["labels"] for g in groups}
    others = [m for m in rendered if m["kind"] not in ("RayCluster", "RayService")]
    pods |= {m["metadata"]["name"]: t["metadata"]["labels"] for m in others for t in pod_templates(m)}
    pods["run-pod"] = run_pod_labels
    fleet_ray = {f"{fleet_cluster}/{g}" for g in ("head", "gpu-workers", "cpu-workers")}
    head = {f"{fleet_cluster}/head"}
    sandbox = {f"{fleet_cluster}/sandbox-workers"}

    policy = named(rendered, "NetworkPolicy", "-sandbox")["spec"]
    target = policy["podSelector"]["matchLabels"]
    assert {name for name, labels in pods.items() if target.items() <= labels.items()} == sandbox
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]

    def reached(rule: dict, key: str) -> set[str]:
        return {name for peer in rule[key] for name, pod in pods.items() if selected(peer, pod, RELEASE_NAMESPACE)}

    for rule in policy["ingress"]:
        if "ports" in rule:  # Prometheus, when a monitor is on: the metrics port, from its namespace only
            assert [p["port"] for p in rule["ports"]] == [8080] and reached(rule, "from") == set()
        else:
            assert reached(rule, "from") == fleet_ray

    rules = policy["egress"]
    assert all(rule.get("to") and rule.get("ports") for rule in rules)  # no rule opens a peer or a port wholesale
    dns = [r for r in rules if any(selected(peer, *DNS_POD) for peer in r["to"])]
    assert [(r["to"], sorted((p["port"], p["protocol"]) for p in r["ports"])) for r in dns] == [
        (
            [{"namespaceSelector": {"matchLabels": DNS_POD[1]}, "podSelector": {"matchLabels": DNS_POD[0]}}],
            [(53, "TCP"), (53, "UDP")],
        )
    ]
    reach: dict[str, set[int]] = {}
    for rule in rules:
        if rule not in dns:
            for name in reached(rule, "to"):
                reach.setdefault(name, set()).update(port_numbers(rule))
    node_ports = {8076, 8077, *range(10002, 20000)}
    assert set(reach) == fleet_ray  # no model server, NATS, run pod, code location, RayService pod or sandbox
    assert reach[f"{fleet_cluster}/head"] == {6379} | node_ports
    assert all(reach[name] == node_ports for name in fleet_ray - head)
    assert not [name for name, ports in reach.items() if ports & RAY_ENTRY_PORTS]
    for group in groups:  # where every Ray node listens: the ports named above
        start = group["rayStartParams"]
        assert {int(start["node-manager-port"]), int(start["object-manager-port"])} == {8076, 8077}
        assert range(int(start["min-worker-port"]), int(start["max-worker-port"]) + 1) == range(10002, 20000)

    # The Ray policy's side: the sandbox pods in on Ray's own ports (GCS among them), never an entry point.
    ray_policy = named(rendered, "NetworkPolicy", "-ray")["spec"]
    [sandbox_labels] = [pods[name] for name in sandbox]
    admitting = [
        r for r in ray_policy["ingress"] if any(selected(p, sandbox_labels, RELEASE_NAMESPACE) for p in r["from"])
    ]
    assert admitting and all("ports" in rule for rule in admitting)
    assert set().union(*(port_numbers(rule) for rule in admitting)) == {6379} | node_ports


def install_notes(helm: str, *settings: str) -> str:
    """The notes `helm install` prints (a client-side dry run: no cluster), whitespace made single spaces."""
    command = [helm, "install", "fleet", str(CHART), "--namespace", NAMESPACE, "--dry-run=client"]
    done = subprocess.run([*command, *settings], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return " ".join(done.stdout.split("\nNOTES:\n", 1)[1].split())


RUNC_WARNING = (
    "WARNING: model-written code runs in runc containers guarded only by bubblewrap; "
    "set ray.sandboxWorkers.runtimeClassName to gVisor or Kata"
)
SECCOMP_NOTE = 'every execution then reports the verdict "unavailable"'


def test_the_install_notes_warn_while_the_sandbox_runs_under_runc(helm):
    default = install_notes(helm)
    assert RUNC_WARNING in default and SECCOMP_NOTE in default
    gvisor = ("--set", "ray.sandboxWorkers.runtimeClassName=gvisor")
    assert RUNC_WARNING not in install_notes(helm, *gvisor) and SECCOMP_NOTE in install_notes(helm, *gvisor)
    unconfined = install_notes(helm, *gvisor, "--set", "ray.sandboxWorkers.seccompProfile.type=Unconfined")
    assert RUNC_WARNING not in unconfined and SECCOMP_NOTE not in unconfined
    for setting in ("ray.sandboxWorkers.enabled=false", "ray.externalAddress=ray://ray-head:10001"):
        assert "sandbox" not in install_notes(helm, "--set", setting), setting
    assert "WARNING: networkPolicy.enabled is false" in install_notes(helm, "--set", "networkPolicy.enabled=false")


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
