{{/* Names, labels and the app's environment, shared by every template. */}}

{{- define "fd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Resource-name prefix: the release name, plus the chart name unless the release name holds it. */}}
{{- define "fd.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "fd.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "fd.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "fd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of one component: include "fd.componentLabels" (list . "generator") */}}
{{- define "fd.componentLabels" -}}
{{ include "fd.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "fd.componentSelector" -}}
{{ include "fd.selectorLabels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* image reference: include "fd.image" (list . .Values.images.generator) */}}
{{- define "fd.image" -}}
{{- $root := index . 0 }}{{ $img := index . 1 }}
{{- $repo := $img.repository }}
{{- with $root.Values.images.registry }}{{ $repo = printf "%s/%s" (trimSuffix "/" .) $repo }}{{ end }}
{{- printf "%s:%s" $repo (default $root.Chart.AppVersion $img.tag) }}
{{- end }}

{{/* Strimzi signs a certificate for <kafka>-entity-topic-operator, and a certificate's common name holds at most 64
characters: the prefix is cut to 36 so that name fits for any release. */}}
{{- define "fd.kafkaName" -}}{{ include "fd.fullname" . | trunc 36 | trimSuffix "-" }}-kafka{{- end }}
{{/* Strimzi names broker pods <kafka>-<pool>-<node id>, so the pool name is short; the hash of the prefix keeps it
unique among the releases in one namespace. */}}
{{- define "fd.kafkaPoolName" -}}nodes-{{ include "fd.fullname" . | sha256sum | trunc 6 }}{{- end }}
{{- define "fd.pgName" -}}{{ include "fd.fullname" . }}-pg{{- end }}
{{- define "fd.grafanaName" -}}{{ include "fd.fullname" . }}-grafana{{- end }}

{{/* Grafana's public URL: grafana.ingress.rootUrl, else http(s)://<host>/ (https when the Ingress has TLS). */}}
{{- define "fd.grafanaUrl" -}}
{{- $scheme := ternary "https" "http" (not (empty .Values.grafana.ingress.tlsSecret)) }}
{{- default (printf "%s://%s/" $scheme .Values.grafana.ingress.host) .Values.grafana.ingress.rootUrl }}
{{- end }}
{{- define "fd.detectorName" -}}{{ include "fd.fullname" . }}-detector{{- end }}

{{/* Strimzi names the bootstrap Service <cluster>-kafka-bootstrap; the plain listener is on 9092. */}}
{{- define "fd.kafkaBootstrap" -}}
{{- if .Values.kafka.enabled }}
{{- printf "%s-kafka-bootstrap:9092" (include "fd.kafkaName" .) }}
{{- else }}
{{- required "kafka.external.bootstrapServers is required when kafka.enabled is false" .Values.kafka.external.bootstrapServers }}
{{- end }}
{{- end }}

{{/* The Secret holding the database URI: CNPG's <cluster>-app, or the external one. */}}
{{- define "fd.dbSecret" -}}
{{- if .Values.postgres.enabled }}
{{- printf "%s-app" (include "fd.pgName" .) }}
{{- else }}
{{- required "postgres.external.secretName is required when postgres.enabled is false" .Values.postgres.external.secretName }}
{{- end }}
{{- end }}

{{- define "fd.dbUriKey" -}}
{{- if .Values.postgres.enabled }}uri{{ else }}{{ .Values.postgres.external.uriKey }}{{ end }}
{{- end }}

{{/* Kafka client settings: include "fd.kafkaEnv" (list . topic). FRAUD_KAFKA__TOPIC is `topic`: the transactions
topic everywhere except the helm test that points `check --kafka` (which checks that variable) at the alerts topic. */}}
{{- define "fd.kafkaEnv" -}}
{{- $root := index . 0 }}
{{- $k := $root.Values.kafka }}
{{- if eq $k.topic.name $k.alertsTopic.name }}
{{- fail "kafka.alertsTopic.name must differ from kafka.topic.name: the detector would read alerts as transactions" }}
{{- end -}}
- name: FRAUD_KAFKA__BOOTSTRAP_SERVERS
  value: {{ include "fd.kafkaBootstrap" $root | quote }}
- name: FRAUD_KAFKA__TOPIC
  value: {{ index . 1 | quote }}
- name: FRAUD_KAFKA__ALERTS_TOPIC
  value: {{ $k.alertsTopic.name | quote }}
{{- if not $k.enabled }}
- name: FRAUD_KAFKA__SECURITY_PROTOCOL
  value: {{ $k.external.securityProtocol | quote }}
{{- with $k.external.saslMechanism }}
- name: FRAUD_KAFKA__SASL_MECHANISM
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* Plain (non-secret) settings every app container gets, as name/value pairs. */}}
{{- define "fd.commonEnv" -}}
{{ include "fd.kafkaEnv" (list . .Values.kafka.topic.name) }}
- name: FRAUD_RULE__THRESHOLD
  value: {{ .Values.rule.threshold | quote }}
- name: FRAUD_RULE__WINDOW
  value: {{ .Values.rule.windowSeconds | quote }}
- name: FRAUD_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
{{- end }}

{{/* Secret-backed settings as env entries with secretKeyRef: include "fd.secretEnv" (list . withDatabase) */}}
{{- define "fd.secretEnv" -}}
{{- $root := index . 0 }}
{{- if index . 1 }}
- name: FRAUD_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "fd.dbSecret" $root }}
      key: {{ include "fd.dbUriKey" $root }}
{{- end }}
{{- with $root.Values.kafka.external.credentialsSecret }}
{{- if and (not $root.Values.kafka.enabled) .name }}
- name: FRAUD_KAFKA__SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ .name }}
      key: {{ .usernameKey }}
- name: FRAUD_KAFKA__SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .name }}
      key: {{ .passwordKey }}
{{- end }}
{{- end }}
{{- end }}

{{/* A restricted pod security context: include "fd.podSecurityAs" (list user fsGroup); the user's id is
its group's too. */}}
{{- define "fd.podSecurityAs" -}}
runAsNonRoot: true
runAsUser: {{ index . 0 }}
runAsGroup: {{ index . 0 }}
fsGroup: {{ index . 1 }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The pod security context of the app's own images (generator, relay, notify, retention). */}}
{{- define "fd.podSecurity" -}}
{{- include "fd.podSecurityAs" (list .Values.securityContext.runAsUser .Values.securityContext.fsGroup) }}
{{- end }}

{{/* The pod security context of the Spark pods (driver and executors, under the operator or not): the
"spark" user and group of the Apache Spark image, which write the checkpoint. */}}
{{- define "fd.sparkPodSecurity" -}}
{{- include "fd.podSecurityAs" (list 185 185) }}
{{- end }}

{{/* The Spark containers' security context. */}}
{{- define "fd.sparkContainerSecurity" -}}
allowPrivilegeEscalation: false
capabilities:
  drop: [ALL]
{{- end }}

{{/* The init container that applies the schema migrations (idempotent, under an advisory lock) before a
component that needs them: include "fd.migrateContainer" (list . image) */}}
{{- define "fd.migrateContainer" -}}
{{- $root := index . 0 -}}
- name: migrate
  image: {{ index . 1 }}
  imagePullPolicy: {{ $root.Values.images.pullPolicy }}
  command: [fraud-detection, db, migrate]
  env:
    {{- include "fd.commonEnv" $root | nindent 4 }}
    {{- include "fd.secretEnv" (list $root true) | trim | nindent 4 }}
  securityContext:
    {{- include "fd.containerSecurity" $root | nindent 4 }}
  resources:
    requests: {cpu: 50m, memory: 96Mi}
    limits: {memory: 256Mi}
{{- end }}

{{/* Restricted-profile container security context. */}}
{{- define "fd.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The detector's settings, for the SparkApplication's driver and the driver Deployment alike. */}}
{{- define "fd.detectorEnv" -}}
{{- $d := .Values.detector }}
{{- include "fd.commonEnv" . }}
{{ include "fd.secretEnv" (list . true) | trim }}
- name: FRAUD_DETECTOR__STARTING_OFFSETS
  value: {{ $d.startingOffsets | quote }}
- name: FRAUD_DETECTOR__TRIGGER_INTERVAL
  value: {{ $d.triggerIntervalSeconds | quote }}
- name: FRAUD_DETECTOR__ALLOWED_LATENESS
  value: {{ $d.allowedLatenessSeconds | quote }}
{{- if $d.maxOffsetsPerTrigger }}
- name: FRAUD_DETECTOR__MAX_OFFSETS_PER_TRIGGER
  value: {{ $d.maxOffsetsPerTrigger | int64 | quote }}
{{- end }}
- name: FRAUD_DETECTOR__SHUFFLE_PARTITIONS
  value: {{ $d.shufflePartitions | quote }}
- name: FRAUD_DETECTOR__STATE_STORE
  value: {{ $d.stateStore | quote }}
- name: FRAUD_DETECTOR__OPERATOR
  value: {{ $d.operator | quote }}
- name: FRAUD_DETECTOR__SINK
  value: {{ $d.sink | quote }}
{{- end }}

{{/* A ReadWriteOnce checkpoint attaches to one node at a time: the driver's, which mounts it first; executors are
kept there. */}}
{{- define "fd.executorAffinity" -}}
{{- $d := .Values.detector }}
{{- if and (not $d.checkpoint.uri) (eq $d.checkpoint.accessMode "ReadWriteOnce") -}}
affinity:
  podAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      - topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "fd.componentSelector" (list . "detector") | nindent 12 }}
            spark-role: driver  # Spark's label on the driver pod; the driver Deployment's pod carries it too
{{- end }}
{{- end }}

{{/* Egress rules of a NetworkPolicy, shared by the app's policies. */}}
{{/* DNS at any address: the cluster's resolver may be CoreDNS pods or a node-local cache outside the pod network. */}}
{{- define "fd.dnsEgress" -}}
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
{{- end }}

{{/* DNS, and the Kafka brokers and PostgreSQL instances this release runs (an external one has no pod to select).
The bootstrap Service and every broker it hands out are pods Strimzi labels with these (its own selector). */}}
{{- define "fd.dataEgress" -}}
{{ include "fd.dnsEgress" . }}
{{- if .Values.kafka.enabled }}
- to:
    - podSelector:
        matchLabels:
          strimzi.io/cluster: {{ include "fd.kafkaName" . }}
          strimzi.io/kind: Kafka
          strimzi.io/broker-role: "true"
  ports:
    - port: 9092
      protocol: TCP
{{- end }}
{{- if .Values.postgres.enabled }}
{{ include "fd.postgresEgress" . }}
{{- end }}
{{- end }}

{{/* The PostgreSQL instances this release runs. */}}
{{- define "fd.postgresEgress" -}}
- to:
    - podSelector:
        matchLabels:
          cnpg.io/cluster: {{ include "fd.pgName" . }}
  ports:
    - port: 5432
      protocol: TCP
{{- end }}

{{/* One rule per {cidr, ports} of the list: include "fd.ipBlockEgress" .Values.networkPolicies.externalEgress */}}
{{- define "fd.ipBlockEgress" -}}
{{- range . }}
- to:
    - ipBlock:
        cidr: {{ .cidr }}
  ports:
    {{- range .ports }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
{{- end }}
{{- end }}
