{{/* The release's full name, cut to the 63 characters a Kubernetes name may have. */}}
{{- define "llmgate.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "llmgate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "llmgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Labels that select the gateway's pods. */}}
{{- define "llmgate.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "llmgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "llmgate.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The gateway's config file: the values' config with the listeners and data_dir the pod needs. */}}
{{- define "llmgate.config" -}}
{{- $fixed := dict "listen" ":8080" "admin_listen" ":8081" "data_dir" "/data" -}}
{{- toYaml (merge $fixed (deepCopy .Values.config)) -}}
{{- end -}}
