{{/* Names: the usual Helm fullname; "kube-image-keeper" for a release named so (deploy/base's names). */}}
{{- define "kuik.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kuik.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* A StatefulSet's pods get a controller-revision-hash label of <name>-<10 chars>: 52 keeps it a label. */}}
{{- define "kuik.registry.fullname" -}}
{{- printf "%s-registry" (include "kuik.fullname" . | trunc 43 | trimSuffix "-") }}
{{- end }}

{{- define "kuik.proxy.fullname" -}}
{{- printf "%s-proxy" (include "kuik.fullname" . | trunc 57 | trimSuffix "-") }}
{{- end }}

{{/* CronJob names are limited to 52 characters (v1 #425): "-registry-garbage-collection" is 28. */}}
{{- define "kuik.gc.fullname" -}}
{{- printf "%s-registry-garbage-collection" (include "kuik.fullname" . | trunc 24 | trimSuffix "-") }}
{{- end }}

{{- define "kuik.gc.restarter" -}}
{{- printf "%s-registry-restart" (include "kuik.fullname" . | trunc 46 | trimSuffix "-") }}
{{- end }}

{{- define "kuik.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: kuik
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{/*
Selector labels of a component: exactly deploy/base's (name + component), so that a kustomize install can be taken
over by the chart (selectors are immutable). kuik runs once per cluster: no instance label is needed to tell
releases apart.
*/}}
{{- define "kuik.selector" -}}
app.kubernetes.io/name: {{ include "kuik.name" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Storage mode of the registry: "s3", "rwx" (standalone PVC), "rwo" (volumeClaimTemplate) or "ephemeral". */}}
{{- define "kuik.registry.mode" -}}
{{- $p := .Values.registry.persistence }}
{{- if $p.s3 }}s3
{{- else if and $p.enabled (eq (include "kuik.accessMode" .) "ReadWriteMany") }}rwx
{{- else if $p.enabled }}rwo
{{- else }}ephemeral
{{- end }}
{{- end }}

{{/* accessModes may be a string (v1) or a list. */}}
{{- define "kuik.accessMode" -}}
{{- $m := .Values.registry.persistence.accessModes }}
{{- if kindIs "slice" $m }}{{ first $m }}{{ else }}{{ $m }}{{ end }}
{{- end }}

{{/* The registry is a Deployment when its storage is shared (S3, RWX PVC), a StatefulSet otherwise. */}}
{{- define "kuik.registry.kind" -}}
{{- if has (include "kuik.registry.mode" .) (list "s3" "rwx") }}Deployment{{ else }}StatefulSet{{ end }}
{{- end }}

{{/* Garbage collection: a schedule and a storage that outlives the pod (as v1: an emptyDir dies with the pod). */}}
{{- define "kuik.gc.enabled" -}}
{{- if and (include "kuik.gc.schedule" .) (ne (include "kuik.registry.mode" .) "ephemeral") }}true{{ end }}
{{- end }}

{{/* registry.garbageCollectionSchedule (the name in kuik's issue and docs) wins over v1's registry.garbageCollection.schedule when set. */}}
{{- define "kuik.gc.schedule" -}}
{{- .Values.registry.garbageCollectionSchedule | default .Values.registry.garbageCollection.schedule }}
{{- end }}

{{- define "kuik.s3.secretName" -}}
{{- if .Values.registry.persistence.s3ExistingSecret }}{{ .Values.registry.persistence.s3ExistingSecret }}
{{- else }}{{ printf "%s-s3-registry-keys" (include "kuik.fullname" .) }}{{ end }}
{{- end }}

{{- define "kuik.registryUI.enabled" -}}
{{- $v1 := index .Values "docker-registry-ui" | default dict }}
{{- if or .Values.registryUI.enabled $v1.enabled }}true{{ end }}
{{- end }}

{{/* Paths of the root CAs inside the pods. */}}
{{- define "kuik.caPaths" -}}
{{- $paths := list }}
{{- with .Values.rootCertificateAuthorities }}
{{- range .keys }}{{ $paths = append $paths (printf "/etc/kuik/ca/%s" .) }}{{ end }}
{{- end }}
{{- toJson $paths }}
{{- end }}

{{/* The env of both Pepr Deployments: kuik's settings (capabilities/shared/config.ts, watcher-config.ts). */}}
{{- define "kuik.operatorEnv" -}}
- name: KUIK_NAMESPACE
  value: {{ .Release.Namespace | quote }}
- name: KUIK_REGISTRY_ENDPOINT
  value: {{ printf "%s.%s.svc:5000" (include "kuik.registry.fullname" .) .Release.Namespace | quote }}
- name: KUIK_PROXY_HOST_PORT
  value: {{ .Values.proxy.hostPort | quote }}
- name: KUIK_CACHED_IMAGES_EXPIRY_DELAY
  value: {{ .Values.cachedImagesExpiryDelay | quote }}
- name: KUIK_WEBHOOK_IGNORED_NAMESPACES
  value: {{ .Values.controllers.webhook.ignoredNamespaces | default list | toJson | quote }}
- name: KUIK_WEBHOOK_IGNORED_IMAGES
  value: {{ .Values.controllers.webhook.ignoredImages | default list | toJson | quote }}
- name: KUIK_WEBHOOK_ACCEPTED_IMAGES
  value: {{ .Values.controllers.webhook.acceptedImages | default list | toJson | quote }}
- name: KUIK_WEBHOOK_IGNORE_PULL_POLICY_ALWAYS
  value: {{ .Values.controllers.webhook.ignorePullPolicyAlways | quote }}
- name: KUIK_ARCHITECTURES
  value: {{ .Values.architectures | default list | toJson | quote }}
- name: KUIK_INSECURE_REGISTRIES
  value: {{ .Values.insecureRegistries | default list | toJson | quote }}
- name: KUIK_ROOT_CERTIFICATE_AUTHORITIES
  value: {{ include "kuik.caPaths" . | quote }}
- name: KUIK_MAX_CONCURRENT_CACHED_IMAGE_RECONCILES
  value: {{ .Values.controllers.maxConcurrentCachedImageReconciles | quote }}
{{- with .Values.controllers.env }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "kuik.caVolumeMounts" -}}
{{- with .Values.rootCertificateAuthorities }}{{ if .secretName }}
- name: kuik-root-cas
  mountPath: /etc/kuik/ca
  readOnly: true
{{- end }}{{ end }}
{{- end }}

{{- define "kuik.caVolumes" -}}
{{- with .Values.rootCertificateAuthorities }}{{ if .secretName }}
- name: kuik-root-cas
  secret:
    secretName: {{ .secretName }}
    items:
      {{- range .keys }}
      - key: {{ . }}
        path: {{ . }}
      {{- end }}
{{- end }}{{ end }}
{{- end }}

{{/* Registry env shared by the registry and its garbage-collection init container (same storage, same view). */}}
{{- define "kuik.registry.storageEnv" -}}
- name: REGISTRY_STORAGE_DELETE_ENABLED
  value: "true"
# distribution v3 exports OpenTelemetry traces by default and logs an error per export without a collector.
- name: OTEL_TRACES_EXPORTER
  value: none
{{- if eq (include "kuik.registry.mode" .) "s3" }}
{{- $p := .Values.registry.persistence }}
- name: REGISTRY_STORAGE
  value: s3
{{- range $k, $v := $p.s3 }}
{{- if not (has $k (list "accessKey" "secretKey")) }}
- name: {{ printf "REGISTRY_STORAGE_S3_%s" (upper $k) }}
  value: {{ $v | toString | quote }}
{{- end }}
{{- end }}
- name: REGISTRY_STORAGE_S3_ACCESSKEY
  valueFrom:
    secretKeyRef:
      name: {{ include "kuik.s3.secretName" . }}
      key: accessKey
- name: REGISTRY_STORAGE_S3_SECRETKEY
  valueFrom:
    secretKeyRef:
      name: {{ include "kuik.s3.secretName" . }}
      key: secretKey
{{- if $p.disableS3Redirections }}
- name: REGISTRY_STORAGE_REDIRECT_DISABLE
  value: "true"
{{- end }}
{{- end }}
{{- end }}

{{/* ServiceAccount of the Pepr Deployments: serviceAccount.name, else Pepr's (pepr-<uuid>). */}}
{{- define "kuik.peprServiceAccount" -}}
{{- .Values.serviceAccount.name | default .Values.uuid | default "pepr-kuik" }}
{{- end }}

{{/* What the registry container and its garbage-collection init container share: image, env, resources, securityContext. */}}
{{- define "kuik.registry.container" -}}
image: "{{ .Values.registry.image.repository }}:{{ .Values.registry.image.tag }}"
imagePullPolicy: {{ .Values.registry.image.pullPolicy }}
env:
  {{- include "kuik.registry.storageEnv" . | nindent 2 }}
  {{- if eq (include "kuik.registry.kind" .) "Deployment" }}
  # Shared by the replicas: an upload started on one can finish on another.
  - name: REGISTRY_HTTP_SECRET
    valueFrom:
      secretKeyRef:
        name: {{ include "kuik.registry.fullname" . }}-http-secret
        key: secret
  {{- end }}
  {{- with .Values.registry.env }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
resources:
  {{- toYaml .Values.registry.resources | nindent 2 }}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: [ALL]
{{- end }}

{{/* The garbage-collection CronJob's two kubectl steps. */}}
{{- define "kuik.gc.kubectl" -}}
{{- $gc := .Values.registry.garbageCollection -}}
image: "{{ $gc.image.repository }}:{{ $gc.image.tag }}"
imagePullPolicy: {{ $gc.image.pullPolicy }}
command: ["/bin/kubectl"]
env:
  - name: HOME # kubectl's discovery cache
    value: /tmp
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: [ALL]
resources:
  {{- toYaml $gc.resources | nindent 2 }}
volumeMounts:
  - name: tmp
    mountPath: /tmp
{{- end }}
