"""How a run's pod is shaped on Kubernetes (K8sRunLauncher), for every job that talks to the model.

Each run is one pod running the in-process executor; the label lets the chart's NetworkPolicy admit
run pods to vLLM, the resources size the pod for a Ray client.
"""

RUN_POD_TAGS = {
    "dagster-k8s/config": {
        "pod_template_spec_metadata": {"labels": {"fleet-dagster/client": "true"}},
        "container_config": {
            "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}}
        },
    }
}
