"""How a run's pod is shaped on Kubernetes (K8sRunLauncher), for every job that talks to the model.

Each run is one pod running the in-process executor; the resources size the pod for a Ray client. Its
settings, credentials and the label the NetworkPolicies admit come from the chart (the code location's
container context), not from here.
"""

RUN_POD_TAGS = {
    "dagster-k8s/config": {
        "container_config": {
            "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}}
        },
    }
}
