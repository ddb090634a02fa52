{{/*
Names, labels and the URLs every template shares: one definition each, so that a Service
name and the URL that points at it can never drift apart.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "subnetlab.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every object's name: RELEASE-subnetlab (RELEASE alone when it already
says subnetlab). 40 characters at most, so that "-operator-metrics" still fits a DNS label.
*/}}
{{- define "subnetlab.fullname" -}}
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

{{- define "subnetlab.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object; add a component with include "subnetlab.componentLabels". */}}
{{- define "subnetlab.labels" -}}
helm.sh/chart: {{ include "subnetlab.chart" . }}
{{ include "subnetlab.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: subnetlab
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* What a Service or NetworkPolicy selects on: name and instance. */}}
{{- define "subnetlab.selectorLabels" -}}
app.kubernetes.io/name: {{ include "subnetlab.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of one component: (dict "ctx" $ "component" "ledger"). */}}
{{- define "subnetlab.componentLabels" -}}
{{ include "subnetlab.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "subnetlab.componentSelector" -}}
{{ include "subnetlab.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The subnetlab image (operator, ledger, and the neuron pods the operator creates). */}}
{{- define "subnetlab.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "subnetlab.operator.serviceAccountName" -}}
{{- default (printf "%s-operator" (include "subnetlab.fullname" .)) .Values.operator.serviceAccount.name }}
{{- end }}

{{/* The ClusterRole and its binding are cluster-wide: the namespace keeps releases apart. */}}
{{- define "subnetlab.operator.clusterRoleName" -}}
{{- printf "%s-%s-operator" .Release.Namespace (include "subnetlab.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The ledger URL, in-cluster: this chart's Service, or ledger.externalUrl. */}}
{{- define "subnetlab.ledger.url" -}}
{{- if .Values.ledger.enabled }}
{{- printf "http://%s-ledger.%s.svc:%d" (include "subnetlab.fullname" .) .Release.Namespace (int .Values.ledger.service.port) }}
{{- else }}
{{- required "ledger.externalUrl: required when ledger.enabled is false" .Values.ledger.externalUrl }}
{{- end }}
{{- end }}

{{/* Redis: this chart's StatefulSet, or redis.external.url. */}}
{{- define "subnetlab.redis.url" -}}
{{- if .Values.redis.enabled }}
{{- printf "redis://%s-redis.%s.svc:6379/0" (include "subnetlab.fullname" .) .Release.Namespace }}
{{- else }}
{{- required "redis.external.url: required when redis.enabled is false" .Values.redis.external.url }}
{{- end }}
{{- end }}

{{/* The Secret holding the Redis URL (it may carry a password). */}}
{{- define "subnetlab.redis.secretName" -}}
{{- printf "%s-redis-url" (include "subnetlab.fullname" .) }}
{{- end }}

{{/*
Whether to create monitoring.coreos.com objects: (dict "ctx" $ "enabled" VALUE); VALUE
true or false decides, "auto" follows whether the cluster serves the API.
*/}}
{{- define "subnetlab.monitoring.enabled" -}}
{{- if eq (toString .enabled) "auto" }}
{{- if .ctx.Capabilities.APIVersions.Has "monitoring.coreos.com/v1" }}true{{ end }}
{{- else if .enabled }}true{{ end }}
{{- end }}

{{/* The pod-level security context, then the container's. */}}
{{- define "subnetlab.podSecurityContext" -}}
{{ toYaml .Values.podSecurityContext }}
{{- end }}

{{- define "subnetlab.securityContext" -}}
{{ toYaml .Values.securityContext }}
{{- end }}
