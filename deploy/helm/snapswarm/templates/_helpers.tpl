{{/* Chart name. */}}
{{- define "snapswarm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart, unless the release name already contains the chart name. */}}
{{- define "snapswarm.fullname" -}}
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

{{- define "snapswarm.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "snapswarm.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "snapswarm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "snapswarm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "snapswarm.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "snapswarm.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The headless Service that lists every pod (bootstrap). */}}
{{- define "snapswarm.headlessName" -}}
{{- printf "%s-peers" (include "snapswarm.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "snapswarm.clusterKeySecret" -}}
{{- default (printf "%s-cluster-key" (include "snapswarm.fullname" .)) .Values.clusterKey.existingSecret }}
{{- end }}

{{- define "snapswarm.apiTokenSecret" -}}
{{- default (printf "%s-api-token" (include "snapswarm.fullname" .)) .Values.apiToken.existingSecret }}
{{- end }}

{{/* The address the API binds: loopback of the host with hostNetwork, every address of the pod otherwise. */}}
{{- define "snapswarm.apiBind" -}}
{{- if .Values.hostNetwork }}127.0.0.1:{{ .Values.api.port }}{{ else }}0.0.0.0:{{ .Values.api.port }}{{ end }}
{{- end }}

{{/* The config file: only keys of src/config/schema.ts; the deployment-specific ones come as flags. */}}
{{- define "snapswarm.configJson" -}}
{{- $c := .Values.config -}}
{{- $node := dict "uploadRateBytesPerSec" (int64 $c.node.uploadRateBytesPerSec) "pendingGraceMs" (int64 $c.node.pendingGraceMs) -}}
{{- if $c.node.allowPeers }}{{ $_ := set $node "allowPeers" $c.node.allowPeers }}{{ end -}}
{{- $cache := dict "maxBytes" (int64 $c.cache.maxBytes) "frames" (dict "maxBytes" (int64 $c.cache.frames.maxBytes)) -}}
{{- if $c.cache.sharedDir }}{{ $_ := set $cache "sharedDir" $c.cache.sharedDir }}{{ end -}}
{{- $out := dict "logLevel" $c.logLevel "node" $node "cache" $cache -}}
{{- range $k := list "compression" "peers" "http" "switchover" }}
{{- if (get $c $k) }}{{ $_ := set $out $k (get $c $k) }}{{ end }}
{{- end -}}
{{- if .Values.storage.gcsEndpoint }}{{ $_ := set $out "gcsEndpoint" .Values.storage.gcsEndpoint }}{{ end -}}
{{- toPrettyJson $out }}
{{- end }}

{{/*
The AWS SDK environment of an s3:// store (storage.s3): region, endpoint, and credentials from an
existing Secret (a key pair as env vars, or a mounted shared credentials file), never both.
*/}}
{{- define "snapswarm.s3Env" -}}
{{- $s3 := .Values.storage.s3 -}}
{{- $cred := $s3.credentials -}}
{{- if and $cred.existingSecret $cred.fileSecret }}
{{- fail "storage.s3.credentials: set existingSecret (a key pair) or fileSecret (a credentials file), not both" }}
{{- end }}
{{- if $s3.region }}
- name: AWS_REGION
  value: {{ $s3.region | quote }}
{{- end }}
{{- if $s3.endpoint }}
- name: AWS_ENDPOINT_URL_S3
  value: {{ $s3.endpoint | quote }}
{{- end }}
{{- if $cred.existingSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ $cred.existingSecret }}
      key: {{ $cred.accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $cred.existingSecret }}
      key: {{ $cred.secretAccessKeyKey }}
{{- if $cred.sessionTokenKey }}
- name: AWS_SESSION_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $cred.existingSecret }}
      key: {{ $cred.sessionTokenKey }}
{{- end }}
{{- end }}
{{- if $cred.fileSecret }}
- name: AWS_SHARED_CREDENTIALS_FILE
  value: /etc/snapswarm/aws/{{ $cred.fileKey }}
{{- end }}
{{- if $cred.profile }}
- name: AWS_PROFILE
  value: {{ $cred.profile | quote }}
{{- end }}
{{- end }}
