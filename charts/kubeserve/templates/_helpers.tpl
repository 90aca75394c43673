{{/* Labels on every object the chart renders. */}}
{{- define "kubeserve.labels" -}}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{ include "kubeserve.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The operator pod's labels, also its Deployment's selector (immutable: keep them stable). */}}
{{- define "kubeserve.selectorLabels" -}}
app.kubernetes.io/name: kubeserve
app.kubernetes.io/component: operator
{{- end -}}

{{/* The operator's configuration file; its hash rolls the pod when it changes. */}}
{{- define "kubeserve.config" -}}
{{ toYaml .Values.config }}
{{- end -}}
