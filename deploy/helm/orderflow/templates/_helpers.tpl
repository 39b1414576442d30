{{/*
Names and labels, then the one Deployment every app is rendered from.
*/}}

{{/* The chart's name, overridable. */}}
{{- define "orderflow.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
"<release>-<chart>", or just the release name when it already contains the chart's name.
Kubernetes names are at most 63 characters; app suffixes ("-actor-host") are added after,
so leave room for them.
*/}}
{{- define "orderflow.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* "<chart>-<version>" for the helm.sh/chart label. */}}
{{- define "orderflow.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The image tag: the value, else the chart's appVersion. */}}
{{- define "orderflow.imageTag" -}}
{{- .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* Labels on every object of the release. */}}
{{- define "orderflow.labels" -}}
helm.sh/chart: {{ include "orderflow.chart" . }}
app.kubernetes.io/name: {{ include "orderflow.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ include "orderflow.imageTag" . | replace "+" "_" | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Selector labels of one app: (dict "root" $ "component" "gateway"). Never change these
on an installed release: a Deployment's selector is immutable.
*/}}
{{- define "orderflow.selectorLabels" -}}
app.kubernetes.io/name: {{ include "orderflow.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* All labels of one app's objects: (dict "root" $ "component" "gateway"). */}}
{{- define "orderflow.componentLabels" -}}
{{ include "orderflow.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The ServiceAccount the pods run as. */}}
{{- define "orderflow.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "orderflow.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The app ids the components are scoped to (components/statestore.yaml and pubsub.yaml list
the same five). They are fixed, not values: the apps use them as consumer-group names and
actor state keys start with the actor host's app id.
*/}}
{{- define "orderflow.scopes" -}}
scopes:
  - actor-host
  - gateway
  - projector
  - shipping
  - console
{{- end }}

{{/*
The Redis entries of a component's metadata: redisHost as a plain value (components/
takes it from ORDERFLOW_REDIS_HOST through the local env secret store, which is not
rendered here), and redisPassword from the Kubernetes Secret redis.passwordSecret names,
when it names one (the apps read the same key: ORDERFLOW_REDIS_PASSWORD).
*/}}
{{- define "orderflow.redisMetadata" -}}
- name: redisHost
  value: {{ required "redis.host (host:port) is required" .Values.redis.host | quote }}
{{- with .Values.redis.passwordSecret }}
{{- if .name }}
- name: redisPassword
  secretKeyRef:
    name: {{ .name | quote }}
    key: {{ required "redis.passwordSecret.key is required with redis.passwordSecret.name" .key | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The Secret holding one of Dapr's two tokens (under key "token", the key Dapr's injector
reads): (dict "root" $ "token" "daprApiToken") or "appApiToken". security.<token>.secretName
when set, else the one templates/api-tokens.yaml creates: "<fullname>-dapr-api-token",
"<fullname>-app-api-token".
*/}}
{{- define "orderflow.tokenSecretName" -}}
{{- $named := dig .token "secretName" "" (.root.Values.security | default dict) }}
{{- $named | default (printf "%s-%s" (include "orderflow.fullname" .root) (kebabcase .token)) }}
{{- end }}

{{/*
The pod annotations by which Dapr's injector gives daprd both tokens: DAPR_API_TOKEN (it
then refuses calls to its API without it, bar /v1.0/healthz) and APP_API_TOKEN (it sends
it on every call to its app).
*/}}
{{- define "orderflow.tokenAnnotations" -}}
dapr.io/api-token-secret: {{ include "orderflow.tokenSecretName" (dict "root" . "token" "daprApiToken") | quote }}
dapr.io/app-token-secret: {{ include "orderflow.tokenSecretName" (dict "root" . "token" "appApiToken") | quote }}
{{- end }}

{{/*
The same two tokens as an app container's EnvVars (the injector sets them on daprd only):
the app sends DAPR_API_TOKEN to its daprd and answers 401 on the routes daprd calls
without APP_API_TOKEN (actors/toolkit/apitoken.py).
*/}}
{{- define "orderflow.tokenEnv" -}}
- name: DAPR_API_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "orderflow.tokenSecretName" (dict "root" . "token" "daprApiToken") | quote }}
      key: token
- name: APP_API_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "orderflow.tokenSecretName" (dict "root" . "token" "appApiToken") | quote }}
      key: token
{{- end }}

{{/*
The Secret holding the gateway's clients file (values: gateway.clientsSecret), or "" when
gateway.allowAnonymous says the API is open. Required: without either, rendering fails
with how to make the file and the Secret; with both, it fails too (which one was meant?).
*/}}
{{- define "orderflow.gatewayClientsSecret" -}}
{{- $gateway := .Values.gateway | default dict }}
{{- $name := dig "clientsSecret" "name" "" $gateway }}
{{- $anonymous := dig "allowAnonymous" false $gateway }}
{{- if and $name $anonymous }}
{{- fail (printf "gateway.clientsSecret.name (%q) and gateway.allowAnonymous=true: choose one (a clients file, or an open API for a trial)" $name) }}
{{- end }}
{{- if not (or $name $anonymous) }}
{{- fail (printf `gateway.clientsSecret.name is required: the Secret holding the gateway's clients file (apps/gateway/auth.py), which lists who may call the API. Make the file and the Secret, then name it:
  python -m apps.gateway.auth add --file clients.json --id storefront --scope customer   # prints the client's key once; repeat per client (scopes: customer, service, operator)
  kubectl -n %s create secret generic orderflow-gateway-clients --from-file=clients.json
  helm ... --set gateway.clientsSecret.name=orderflow-gateway-clients
For a trial only, --set gateway.allowAnonymous=true runs the gateway without it: anyone who reaches it may call every route.` .Release.Namespace) }}
{{- end }}
{{- $name }}
{{- end }}

{{/*
The clients file (actors/toolkit/clientkeys.py) mounted into an app that reads it: the
gateway (its clients) and the ops console (its operators). A Secret volume of the named
Secret (no subPath, so the kubelet keeps it current), read-only at "dir"/clients.json, and
the variable "env" naming that path. The files of a Secret volume belong to root: with the
pods' fsGroup they get that group and mode 0440, which uid 10001 in group 10001 reads;
without an fsGroup, 0444 (the file holds key digests, never a key). As YAML with "env",
"volumes" and "volumeMounts" lists, empty without a Secret (gateway.allowAnonymous).
Call with (dict "root" . "dir" ... "volume" ... "env" ...).
*/}}
{{- define "orderflow.clientsFile" -}}
{{- $root := .root }}
{{- $secret := include "orderflow.gatewayClientsSecret" $root }}
{{- if $secret }}
{{- $fsGroup := dig "fsGroup" nil ($root.Values.podSecurityContext | default dict) }}
{{- $item := dict "key" (required "gateway.clientsSecret.key is required with gateway.clientsSecret.name" $root.Values.gateway.clientsSecret.key) "path" "clients.json" }}
{{- $source := dict "secretName" $secret "items" (list $item) "defaultMode" (ternary 0440 0444 (not (kindIs "invalid" $fsGroup))) }}
{{- toYaml (dict
      "env" (list (dict "name" .env "value" (printf "%s/clients.json" .dir)))
      "volumes" (list (dict "name" .volume "secret" $source))
      "volumeMounts" (list (dict "name" .volume "mountPath" .dir "readOnly" true))) }}
{{- else }}
{{- toYaml (dict "env" list "volumes" list "volumeMounts" list) }}
{{- end }}
{{- end }}

{{/*
A digest of the Dapr resources the sidecars load at start (components, resiliency,
configuration): a pod annotation, so changing one of them restarts the pods.
*/}}
{{- define "orderflow.daprChecksum" -}}
{{- $files := list "/dapr-components.yaml" "/dapr-resiliency.yaml" "/dapr-configuration.yaml" }}
{{- $rendered := "" }}
{{- range $files }}
{{- $rendered = print $rendered (include (print $.Template.BasePath .) $) }}
{{- end }}
{{- $rendered | sha256sum }}
{{- end }}

{{/*
One app's Deployment. Called as
  include "orderflow.deployment" (dict "root" $ "appId" "gateway" "module" "apps.gateway.main:create_app" "app" .Values.gateway "env" list-of-extra-EnvVar)
appId is the Dapr app id, the component label and the object-name suffix; "env" (extra
EnvVars, after the common ones), "volumes" and "volumeMounts" (extra Volumes of the pod
and VolumeMounts of the app container) and "strategy" (a Deployment strategy) are optional.
"kind" "StatefulSet" makes it a StatefulSet behind the headless Service of that name
(stable pod names: the actor hosts'); "strategy" is then its updateStrategy.
*/}}
{{- define "orderflow.deployment" -}}
{{- $root := .root }}
{{- $app := .app }}
{{- $port := int $app.port }}
{{- $ctx := dict "root" $root "component" .appId }}
{{- $kind := .kind | default "Deployment" }}
apiVersion: apps/v1
kind: {{ $kind }}
metadata:
  name: {{ include "orderflow.fullname" $root }}-{{ .appId }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "orderflow.componentLabels" $ctx | nindent 4 }}
spec:
  replicas: {{ int $app.replicas }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "orderflow.selectorLabels" $ctx | nindent 6 }}
  {{- if eq $kind "StatefulSet" }}
  serviceName: {{ include "orderflow.fullname" $root }}-{{ .appId }}
  # the pods start and stop side by side (their order means nothing to placement)
  podManagementPolicy: Parallel
  {{- end }}
  {{- with .strategy }}
  {{ if eq $kind "StatefulSet" }}updateStrategy{{ else }}strategy{{ end }}:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  template:
    metadata:
      labels:
        {{- include "orderflow.componentLabels" $ctx | nindent 8 }}
        {{- with $root.Values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        # Dapr's sidecar injector adds daprd to the pod from these.
        dapr.io/enabled: "true"
        # Every replica of an app shares its app id (actor-host's replicas form one
        # actor-host app that placement spreads the actors over).
        dapr.io/app-id: {{ .appId | quote }}
        dapr.io/app-port: {{ $port | quote }}
        dapr.io/app-protocol: "http"
        dapr.io/config: {{ $root.Values.dapr.configName | quote }}
        dapr.io/enable-metrics: "true"
        dapr.io/metrics-port: {{ $root.Values.dapr.metricsPort | quote }}
        dapr.io/sidecar-image: {{ $root.Values.dapr.sidecarImage | quote }}
        dapr.io/log-as-json: "true"
        dapr.io/log-level: {{ $root.Values.dapr.logLevel | quote }}
        dapr.io/graceful-shutdown-seconds: {{ $root.Values.dapr.gracefulShutdownSeconds | quote }}
        # the release's two tokens (values: security), from their Secrets
        {{- include "orderflow.tokenAnnotations" $root | nindent 8 }}
        {{- with $root.Values.dapr.sidecarResources }}
        {{- if .cpuRequest }}
        dapr.io/sidecar-cpu-request: {{ .cpuRequest | quote }}
        {{- end }}
        {{- if .memoryRequest }}
        dapr.io/sidecar-memory-request: {{ .memoryRequest | quote }}
        {{- end }}
        {{- if .cpuLimit }}
        dapr.io/sidecar-cpu-limit: {{ .cpuLimit | quote }}
        {{- end }}
        {{- if .memoryLimit }}
        dapr.io/sidecar-memory-limit: {{ .memoryLimit | quote }}
        {{- end }}
        {{- end }}
        # HotReload is off (an actor state store cannot be hot-reloaded): a changed
        # component or Configuration reaches the sidecars only when the pods restart, so
        # a helm upgrade that changes them rolls the pods.
        checksum/dapr: {{ include "orderflow.daprChecksum" $root }}
        {{- with $root.Values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "orderflow.serviceAccountName" $root }}
      # No app talks to the Kubernetes API; daprd brings its own Sentry token.
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: {{ int $app.terminationGracePeriodSeconds }}
      # The apps take their settings from ORDERFLOW_* and DAPR_* only; no Docker-link
      # variables for every Service of the namespace.
      enableServiceLinks: false
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      containers:
        - name: {{ .appId }}
          image: "{{ $root.Values.image.repository }}:{{ include "orderflow.imageTag" $root }}"
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          # As docker-compose.yml: the app's factory under uvicorn, with the toolkit's
          # one-write HTTP protocol (actors/toolkit/onewrite.py).
          command:
            - uvicorn
            - {{ .module | quote }}
            - --factory
            - --host
            - "0.0.0.0"
            - --port
            - {{ $port | quote }}
            - --http
            - actors.toolkit.onewrite:OneWriteHttpToolsProtocol
          ports:
            - name: http
              containerPort: {{ $port }}
              protocol: TCP
          env:
            # daprd's ports inside the pod (the injector's defaults; the apps call their
            # sidecar on localhost).
            - name: DAPR_HTTP_PORT
              value: "3500"
            - name: DAPR_GRPC_PORT
              value: "50001"
            # the same two tokens as the pod's daprd (values: security)
            {{- include "orderflow.tokenEnv" $root | nindent 12 }}
            # The apps read and write Redis themselves (actor state, streams, read models).
            - name: ORDERFLOW_REDIS_HOST
              value: {{ $root.Values.redis.host | quote }}
            {{- with $root.Values.redis.passwordSecret }}
            {{- if .name }}
            # the same Secret the components' redisPassword reads
            - name: ORDERFLOW_REDIS_PASSWORD
              valueFrom:
                secretKeyRef:
                  name: {{ .name | quote }}
                  key: {{ .key | quote }}
            {{- end }}
            {{- end }}
            - name: ORDERFLOW_TRACE_SAMPLING
              value: {{ $root.Values.tracing.samplingRate | quote }}
            {{- with $root.Values.tracing.zipkinEndpoint }}
            # the apps' own spans go to the same Zipkin as daprd's
            - name: ORDERFLOW_ZIPKIN_URL
              value: {{ . | quote }}
            {{- end }}
            {{- with .env }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
            {{- with $app.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          # Every app answers GET /healthz/app while its process serves.
          livenessProbe:
            httpGet:
              path: /healthz/app
              port: http
            {{- toYaml $root.Values.probes.liveness | nindent 12 }}
          readinessProbe:
            httpGet:
              path: /healthz/app
              port: http
            {{- toYaml $root.Values.probes.readiness | nindent 12 }}
          resources:
            {{- toYaml $app.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          volumeMounts:
            # The root filesystem is read-only; anything that needs scratch space gets /tmp.
            - name: tmp
              mountPath: /tmp
            {{- with .volumeMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: 64Mi
        {{- with .volumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with $root.Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}

{{/*
A ClusterIP (or other type) Service for an app with a public port:
(dict "root" $ "appId" "gateway" "app" .Values.gateway)
*/}}
{{- define "orderflow.service" -}}
{{- $ctx := dict "root" .root "component" .appId }}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "orderflow.fullname" .root }}-{{ .appId }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "orderflow.componentLabels" $ctx | nindent 4 }}
spec:
  type: {{ .app.service.type }}
  selector:
    {{- include "orderflow.selectorLabels" $ctx | nindent 4 }}
  ports:
    - name: http
      port: {{ int .app.service.port }}
      targetPort: http
      protocol: TCP
{{- end }}
