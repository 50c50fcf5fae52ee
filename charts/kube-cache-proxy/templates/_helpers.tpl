{{/* Names and labels. */}}
{{- define "kcp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kcp.fullname" -}}
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

{{- define "kcp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kcp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kcp.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "kcp.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "kcp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kcp.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kcp.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "kcp.fullname" .)) .Values.tls.existingSecret }}
{{- end }}

{{- define "kcp.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The cached resources as the proxy reads config.cacheResources (cache/config.ts parseResourceSpec):
`resource[.group][/version]`. Returns JSON: a list of {resource, group}; empty with the cache off
(`[none]` or an empty list). Unset: the proxy's default resources.
*/}}
{{- define "kcp.cachedResources" -}}
{{- $specs := .Values.config.cacheResources }}
{{- if kindIs "invalid" $specs }}
{{- $specs = list "pods" "nodes" "namespaces" "services" "endpointslices.discovery.k8s.io" "configmaps" }}
{{- end }}
{{- $out := list }}
{{- if not (and (eq (len $specs) 1) (eq (first $specs) "none")) }}
{{- range $specs }}
{{- $rg := first (splitList "/" (trim .)) }}
{{- $parts := splitn "." 2 $rg }}
{{- $out = append $out (dict "resource" $parts._0 "group" (default "" $parts._1)) }}
{{- end }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/*
The --config file: the config values without null or empty fields, an empty cacheResources as
`[none]`, plus the ports the chart owns.
*/}}
{{- define "kcp.configFile" -}}
{{- $c := dict }}
{{- range $k, $v := .Values.config }}
{{- if eq $k "cacheResources" }}
{{- if not (kindIs "invalid" $v) }}
{{- $_ := set $c $k (empty $v | ternary (list "none") $v) }}
{{- end }}
{{- else if not (or (kindIs "invalid" $v) (and (or (kindIs "slice" $v) (kindIs "map" $v)) (empty $v))) }}
{{- $_ := set $c $k $v }}
{{- end }}
{{- end }}
{{- $_ := set $c "listen" (printf ":%d" (int .Values.ports.https)) }}
{{- $_ := set $c "metricsListen" (printf ":%d" (int .Values.ports.metrics)) }}
{{- toYaml $c }}
{{- end }}
