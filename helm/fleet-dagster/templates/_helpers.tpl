{{- define "fleet.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "fleet.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "fleet.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "fleet.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "fleet.rayClusterName" -}}
{{ include "fleet.fullname" . }}-ray
{{- end -}}

{{/* KubeRay names the head service <raycluster>-head-svc; Ray Client listens on 10001. */}}
{{- define "fleet.rayAddress" -}}
{{- if .Values.ray.externalAddress -}}
{{ .Values.ray.externalAddress }}
{{- else -}}
ray://{{ include "fleet.rayClusterName" . }}-head-svc:10001
{{- end -}}
{{- end -}}

{{- define "fleet.natsUrl" -}}
{{- if .Values.nats.enabled -}}
nats://{{ include "fleet.fullname" . }}-nats:4222
{{- else -}}
{{ .Values.nats.externalUrl }}
{{- end -}}
{{- end -}}

{{/* FLEET_RESPONSE_STORE: auto is the NATS bucket when there is a NATS, else a SQLite file per pod (the
empty value: FLEET_HOME/responses.sqlite). */}}
{{- define "fleet.responseStore" -}}
{{- $backend := .Values.responseStore.backend -}}
{{- if eq $backend "auto" -}}{{- $backend = ternary "nats" "sqlite" (ne (include "fleet.natsUrl" .) "") -}}{{- end -}}
{{- if eq $backend "nats" -}}nats{{- else if eq $backend "off" -}}off{{- end -}}
{{- end -}}

{{- define "fleet.vllmUrl" -}}
http://{{ include "fleet.fullname" $.root }}-vllm-{{ .model.name }}:{{ $.root.Values.llm.vllm.port }}/v1
{{- end -}}

{{/* RayService exposes Serve on <rayservice>-serve-svc:8000. */}}
{{- define "fleet.llmUrl" -}}
{{- if eq .Values.llm.backend "external" -}}
{{ .Values.llm.externalUrl }}
{{- else if eq .Values.llm.backend "rayservice" -}}
http://{{ include "fleet.fullname" . }}-llm-serve-svc:8000/v1
{{- else -}}
{{ include "fleet.vllmUrl" (dict "root" . "model" (first .Values.llm.models)) }}
{{- end -}}
{{- end -}}

{{- define "fleet.modelUrls" -}}
{{- $urls := dict -}}
{{- if eq .Values.llm.backend "vllm" -}}
{{- range .Values.llm.models -}}
{{- $_ := set $urls (.servedModelName | default .model) (include "fleet.vllmUrl" (dict "root" $ "model" .)) -}}
{{- end -}}
{{- end -}}
{{ toJson $urls }}
{{- end -}}

{{/* The fleet image's user is uid 1000 (Ray's base image); images without a user of their own run as 10001. */}}
{{- define "fleet.podSecurityContext" -}}
{{- $uid := . | default 1000 -}}
runAsNonRoot: true
runAsUser: {{ $uid }}
runAsGroup: {{ $uid }}
fsGroup: {{ $uid }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "fleet.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* Ray writes its session files and object spill under /tmp: a writable root would be needed otherwise. */}}
{{- define "fleet.rayContainerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: false
capabilities:
  drop: ["ALL"]
{{- end -}}

{{- define "fleet.authSecretName" -}}
{{ include "fleet.fullname" . }}-auth
{{- end -}}

{{/* Does Prometheus scrape the Ray pods (a PodMonitor or a ServiceMonitor, on a rendered KubeRay cluster)? */}}
{{- define "fleet.rayMetricsScraped" -}}
{{- if and (include "fleet.kuberay" .) (or .Values.metrics.podMonitor.enabled .Values.metrics.serviceMonitor.enabled) }}true{{ end -}}
{{- end -}}

{{/* Where Prometheus finds the Ray pods' metrics (PodMonitor podMetricsEndpoints, ServiceMonitor endpoints):
Ray's cluster label as ray_io_cluster, the label Ray's own dashboards group by. */}}
{{- define "fleet.rayMetricsEndpoint" -}}
- port: metrics
  path: /metrics
  interval: {{ .Values.metrics.interval }}
  relabelings:
    - sourceLabels: [__meta_kubernetes_pod_label_ray_io_cluster]
      targetLabel: ray_io_cluster
{{- end -}}

{{/* Is a KubeRay cluster rendered (the fleet's RayCluster, or the RayService's)? */}}
{{- define "fleet.kuberay" -}}
{{- if or (and .Values.ray.enabled (not .Values.ray.externalAddress)) (eq .Values.llm.backend "rayservice") }}true{{ end -}}
{{- end -}}

{{/* Where each credential lives, decided once: an existing Secret named in values, else the generated
"-auth" Secret for the services this chart runs itself, else nothing. */}}
{{- define "fleet.credentials" -}}
{{- $generated := include "fleet.authSecretName" . -}}
{{- if .Values.llm.apiKeySecret.name }}
llmApiKey: {name: {{ .Values.llm.apiKeySecret.name }}, key: {{ .Values.llm.apiKeySecret.key }}}
{{- else if eq .Values.llm.backend "vllm" }}
llmApiKey: {name: {{ $generated }}, key: llm-api-key}
{{- end }}
{{- if .Values.nats.tokenSecret.name }}
natsToken: {name: {{ .Values.nats.tokenSecret.name }}, key: {{ .Values.nats.tokenSecret.key }}}
{{- else if .Values.nats.enabled }}
natsToken: {name: {{ $generated }}, key: nats-token}
{{- end }}
{{- if .Values.ray.authSecretName }}
rayToken: {name: {{ .Values.ray.authSecretName }}, key: auth_token}
{{- else if include "fleet.kuberay" . }}
rayToken: {name: {{ $generated }}, key: auth_token}
{{- end }}
{{- end -}}

{{/* The credentials every process that calls the model or NATS reads, by reference (never a value). */}}
{{- define "fleet.secretEnv" -}}
{{- $credentials := include "fleet.credentials" . | fromYaml -}}
{{- with $credentials.llmApiKey }}
- name: FLEET_LLM_API_KEY
  valueFrom:
    secretKeyRef: {name: {{ .name }}, key: {{ .key }}}
{{- end }}
{{- with $credentials.natsToken }}
- name: NATS_TOKEN
  valueFrom:
    secretKeyRef: {name: {{ .name }}, key: {{ .key }}}
{{- end }}
{{- if .Values.nats.credsSecret.name }}
- name: NATS_CREDS
  value: /etc/fleet/nats/{{ .Values.nats.credsSecret.key }}
{{- end }}
{{- end -}}

{{/* Ray clients (code location, run pods) also carry the Ray token; KubeRay gives it to Ray's own pods. */}}
{{- define "fleet.clientEnv" -}}
{{- include "fleet.secretEnv" . }}
{{- with (include "fleet.credentials" . | fromYaml).rayToken }}
- {name: RAY_AUTH_MODE, value: token}
- name: RAY_AUTH_TOKEN
  valueFrom:
    secretKeyRef: {name: {{ .name }}, key: {{ .key }}}
{{- end }}
{{- end -}}

{{/* What K8sRunLauncher adds to every run pod of this code location (its container context): the
settings, the credentials by reference, the role files, and the label the NetworkPolicies admit. */}}
{{- define "fleet.runPodContext" -}}
{{- $k8s := dict
  "env_config_maps" (list (printf "%s-env" (include "fleet.fullname" .)))
  "env" (include "fleet.clientEnv" . | fromYamlArray)
  "volumes" (include "fleet.resourcesVolume" . | fromYamlArray)
  "volume_mounts" (include "fleet.resourcesMounts" . | fromYamlArray)
  "labels" (dict "fleet-dagster/client" "true") -}}
{{ dict "k8s" $k8s | toJson }}
{{- end -}}

{{/* Only the fleet's own pods: code location, Ray, and run pods (labelled by their container context). */}}
{{- define "fleet.clientPeers" -}}
- podSelector:
    matchLabels: {{- include "fleet.selector" . | nindent 6 }}
      app.kubernetes.io/component: code-location
- podSelector:
    matchLabels: {{- include "fleet.selector" . | nindent 6 }}
      app.kubernetes.io/component: ray
- podSelector:
    matchLabels:
      fleet-dagster/client: "true"
{{- end -}}

{{- define "fleet.resourcesVolume" -}}
- name: fleet-resources
  configMap:
    name: {{ include "fleet.fullname" . }}-resources
    items:
{{- range $path, $_ := .Files.Glob "resources/roles/*.yaml" }}
      - {key: roles__{{ base $path }}, path: roles/{{ base $path }}}
{{- end }}
{{- range $path, $_ := .Files.Glob "resources/prompts/*.j2" }}
      - {key: prompts__{{ base $path }}, path: prompts/{{ base $path }}}
{{- end }}
{{- if .Values.nats.credsSecret.name }}
- name: nats-creds
  secret: {secretName: {{ .Values.nats.credsSecret.name }}}
{{- end }}
- name: tmp
  emptyDir: {}
{{- end -}}

{{- define "fleet.resourcesMounts" -}}
- {name: fleet-resources, mountPath: /etc/fleet/resources, readOnly: true}
{{- if .Values.nats.credsSecret.name }}
- {name: nats-creds, mountPath: /etc/fleet/nats, readOnly: true}
{{- end }}
- {name: tmp, mountPath: /tmp}
{{- end -}}

{{/* Ray's ports between nodes. GCS is the head's; the raylet (node manager), the object manager and the
range that workers and drivers bind are every node's, set here on every node (Ray picks the first two at
random otherwise; the range is its default, named so that Ray and the policy cannot drift apart) so that a
NetworkPolicy can name them: the sandbox workers reach the other Ray pods on these and on nothing else (not
Ray Client 10001, the dashboard 8265, Serve 8000 nor the agents' 52365). */}}
{{- define "fleet.rayPorts" -}}
{gcs: 6379, objectManager: 8076, nodeManager: 8077, minWorker: 10002, maxWorker: 19999}
{{- end -}}

{{/* rayStartParams binding a node's ports where fleet.rayPorts says. */}}
{{- define "fleet.rayNodePorts" -}}
{{- $ports := include "fleet.rayPorts" . | fromYaml -}}
node-manager-port: {{ $ports.nodeManager | quote }}
object-manager-port: {{ $ports.objectManager | quote }}
min-worker-port: {{ $ports.minWorker | quote }}
max-worker-port: {{ $ports.maxWorker | quote }}
{{- end -}}

{{/* NetworkPolicy ports: every node's Ray ports (fleet.rayPorts), GCS apart (the head's alone). */}}
{{- define "fleet.rayNodePolicyPorts" -}}
{{- $ports := include "fleet.rayPorts" . | fromYaml -}}
- {port: {{ $ports.nodeManager }}, protocol: TCP}
- {port: {{ $ports.objectManager }}, protocol: TCP}
- {port: {{ $ports.minWorker }}, endPort: {{ $ports.maxWorker }}, protocol: TCP}
{{- end -}}

{{/* The Ray custom resource that only the sandbox workers offer: code executions ask for one unit each. */}}
{{- define "fleet.sandboxResource" -}}
sandbox
{{- end -}}

{{/* Are the sandbox workers rendered? They join the fleet's own RayCluster only (fleet.rayClusterSpec leaves
them out of the RayService's cluster, which serves the model and never runs fleet code). */}}
{{- define "fleet.sandboxWorkers" -}}
{{- if and .Values.ray.enabled (not .Values.ray.externalAddress) .Values.ray.sandboxWorkers.enabled }}true{{ end -}}
{{- end -}}

{{/* The sandbox workers' whole environment (with what KubeRay adds for Ray itself): no credential, no
endpoint, not the fleet's env ConfigMap. Model-written code must learn nothing it could use from here. */}}
{{- define "fleet.sandboxEnv" -}}
# The root filesystem is read-only: anything the fleet writes goes under the scratch volume at /tmp.
- {name: FLEET_HOME, value: /tmp/fleet}
# The sandbox's own settings (fleet_dagster/sandbox/settings.py): the image's distribution Python and bubblewrap.
- {name: FLEET_SANDBOX_PYTHON, value: {{ .Values.ray.sandboxWorkers.python | quote }}}
- {name: FLEET_SANDBOX_BWRAP, value: {{ .Values.ray.sandboxWorkers.bwrap | quote }}}
- {name: FLEET_SANDBOX_UID, value: {{ .Values.ray.sandboxWorkers.uid | quote }}}
{{- end -}}

{{/* The KubeRay cluster spec, shared by the RayCluster and the RayService's cluster. */}}
{{- define "fleet.rayClusterSpec" -}}
{{- $root := .root -}}
{{- $values := $root.Values.ray -}}
rayVersion: "2.60.0"
enableInTreeAutoscaling: true
# Every Ray API (GCS, Ray Client, dashboard, Jobs) requires the token; KubeRay gives it to Ray's pods.
authOptions:
  mode: token
  secretName: {{ (include "fleet.credentials" $root | fromYaml).rayToken.name }}
headGroupSpec:
  rayStartParams:
    num-cpus: "0"
    dashboard-host: {{ .dashboardHost }}
    metrics-export-port: {{ $root.Values.metrics.port | quote }}
    {{- include "fleet.rayNodePorts" $root | nindent 4 }}
  template:
    metadata:
      labels: {{- include "fleet.selector" $root | nindent 8 }}
        app.kubernetes.io/component: ray
        fleet-dagster/ray-metrics: "true"  # what the metrics monitors select: every Ray node
    spec:
      # The head keeps its service account token: the in-tree autoscaler calls the Kubernetes API.
      securityContext: {{- include "fleet.podSecurityContext" nil | nindent 8 }}
      containers:
        - name: ray-head
          image: {{ .image }}
          ports:
            - {name: gcs, containerPort: 6379}
            - {name: dashboard, containerPort: 8265}
            - {name: client, containerPort: 10001}
            - {name: serve, containerPort: 8000}
            - {name: metrics, containerPort: {{ $root.Values.metrics.port }}}
          envFrom:
            - configMapRef: {name: {{ include "fleet.fullname" $root }}-env}
          {{- with include "fleet.secretEnv" $root }}
          env: {{- . | nindent 12 }}
          {{- end }}
          resources: {{- toYaml $values.head.resources | nindent 12 }}
          securityContext: {{- include "fleet.rayContainerSecurityContext" $root | nindent 12 }}
          volumeMounts: {{- include "fleet.resourcesMounts" $root | nindent 12 }}
      volumes: {{- include "fleet.resourcesVolume" $root | nindent 8 }}
workerGroupSpecs:
  - groupName: gpu-workers
    replicas: {{ $values.gpuWorkers.replicas }}
    minReplicas: {{ $values.gpuWorkers.minReplicas }}
    maxReplicas: {{ $values.gpuWorkers.maxReplicas }}
    rayStartParams:
      num-gpus: {{ $values.gpuWorkers.gpus | quote }}
      metrics-export-port: {{ $root.Values.metrics.port | quote }}
      {{- include "fleet.rayNodePorts" $root | nindent 6 }}
    template:
      metadata:
        labels: {{- include "fleet.selector" $root | nindent 10 }}
          app.kubernetes.io/component: ray
          fleet-dagster/ray-metrics: "true"  # what the metrics monitors select: every Ray node
      spec:
        automountServiceAccountToken: false
        securityContext: {{- include "fleet.podSecurityContext" nil | nindent 10 }}
        {{- with $values.gpuWorkers.nodeSelector }}
        nodeSelector: {{- toYaml . | nindent 10 }}
        {{- end }}
        {{- with $values.gpuWorkers.tolerations }}
        tolerations: {{- toYaml . | nindent 10 }}
        {{- end }}
        containers:
          - name: ray-worker
            image: {{ .image }}
            ports:
              - {name: metrics, containerPort: {{ $root.Values.metrics.port }}}
            envFrom:
              - configMapRef: {name: {{ include "fleet.fullname" $root }}-env}
            {{- with include "fleet.secretEnv" $root }}
            env: {{- . | nindent 14 }}
            {{- end }}
            resources:
              requests:
                {{- toYaml $values.gpuWorkers.resources.requests | nindent 16 }}
                nvidia.com/gpu: {{ $values.gpuWorkers.gpus }}
              limits:
                {{- toYaml $values.gpuWorkers.resources.limits | nindent 16 }}
                nvidia.com/gpu: {{ $values.gpuWorkers.gpus }}
            securityContext: {{- include "fleet.rayContainerSecurityContext" $root | nindent 14 }}
            volumeMounts: {{- include "fleet.resourcesMounts" $root | nindent 14 }}
        volumes: {{- include "fleet.resourcesVolume" $root | nindent 10 }}
  - groupName: cpu-workers
    replicas: {{ $values.cpuWorkers.replicas }}
    minReplicas: {{ $values.cpuWorkers.minReplicas }}
    maxReplicas: {{ $values.cpuWorkers.maxReplicas }}
    rayStartParams:
      metrics-export-port: {{ $root.Values.metrics.port | quote }}
      {{- include "fleet.rayNodePorts" $root | nindent 6 }}
    template:
      metadata:
        labels: {{- include "fleet.selector" $root | nindent 10 }}
          app.kubernetes.io/component: ray
          fleet-dagster/ray-metrics: "true"  # what the metrics monitors select: every Ray node
      spec:
        automountServiceAccountToken: false
        securityContext: {{- include "fleet.podSecurityContext" nil | nindent 10 }}
        containers:
          - name: ray-worker
            image: {{ .image }}
            ports:
              - {name: metrics, containerPort: {{ $root.Values.metrics.port }}}
            envFrom:
              - configMapRef: {name: {{ include "fleet.fullname" $root }}-env}
            {{- with include "fleet.secretEnv" $root }}
            env: {{- . | nindent 14 }}
            {{- end }}
            resources: {{- toYaml $values.cpuWorkers.resources | nindent 14 }}
            securityContext: {{- include "fleet.rayContainerSecurityContext" $root | nindent 14 }}
            volumeMounts: {{- include "fleet.resourcesMounts" $root | nindent 14 }}
        volumes: {{- include "fleet.resourcesVolume" $root | nindent 10 }}
  {{- /* Base name of the including template: the RayCluster's file, not the RayService's (fleet.sandboxWorkers). */}}
  {{- if and (include "fleet.sandboxWorkers" $root) (eq (base $root.Template.Name) "raycluster.yaml") }}
  {{- $sandbox := $values.sandboxWorkers }}
  # Model-written code runs here and on no other pod: each execution is a Ray task asking for one unit of
  # the sandbox resource, which only this group offers, and runs inside bubblewrap in the pod. These pods
  # get no credential, no service account token, no endpoint; their NetworkPolicy lets them reach the
  # other Ray pods' Ray ports and DNS, nothing else.
  - groupName: sandbox-workers
    replicas: {{ $sandbox.replicas }}
    minReplicas: {{ $sandbox.minReplicas }}
    maxReplicas: {{ $sandbox.maxReplicas }}
    rayStartParams:
      # No CPU for Ray to hand out, as on the head: council actors and plain tasks (which ask for CPU)
      # never land here, and the slots alone bound the executions at once.
      num-cpus: "0"
      # KubeRay's quoting, which the autoscaler parses too: '"{\"sandbox\": 4}"'.
      resources: {{ dict (include "fleet.sandboxResource" $root) (int $sandbox.slots) | toJson | printf "%q" | squote }}
      metrics-export-port: {{ $root.Values.metrics.port | quote }}
      {{- include "fleet.rayNodePorts" $root | nindent 6 }}
    template:
      metadata:
        labels: {{- include "fleet.selector" $root | nindent 10 }}
          app.kubernetes.io/component: sandbox
          fleet-dagster/ray-metrics: "true"  # what the metrics monitors select: every Ray node
      spec:
        automountServiceAccountToken: false
        # No Service's address in the environment either (Kubernetes' service links).
        enableServiceLinks: false
        {{- with $sandbox.runtimeClassName }}
        runtimeClassName: {{ . }}
        {{- end }}
        securityContext: {{- include "fleet.podSecurityContext" nil | nindent 10 }}
        {{- with $sandbox.nodeSelector }}
        nodeSelector: {{- toYaml . | nindent 10 }}
        {{- end }}
        {{- with $sandbox.tolerations }}
        tolerations: {{- toYaml . | nindent 10 }}
        {{- end }}
        containers:
          - name: ray-worker
            image: {{ .image }}
            ports:
              - {name: metrics, containerPort: {{ $root.Values.metrics.port }}}
            env: {{- include "fleet.sandboxEnv" $root | nindent 14 }}
            resources: {{- toYaml $sandbox.resources | nindent 14 }}
            # Read-only root (Ray writes only under /tmp); bubblewrap creates its user namespace without
            # privileges, which the seccomp and AppArmor profiles below must allow (values.yaml).
            securityContext:
              {{- include "fleet.containerSecurityContext" $root | nindent 14 }}
              seccompProfile: {{- toYaml $sandbox.seccompProfile | nindent 16 }}
              {{- with $sandbox.appArmorProfile }}
              appArmorProfile: {{- toYaml . | nindent 16 }}
              {{- end }}
            volumeMounts:
              - {name: scratch, mountPath: /tmp}
        volumes:
          # Ray's session files, logs and object spill (a run's own files are on tmpfs in its sandbox):
          # bounded, the pod is evicted past it.
          - name: scratch
            emptyDir: {sizeLimit: {{ $sandbox.scratchSizeLimit }}}
  {{- end }}
{{- end -}}
