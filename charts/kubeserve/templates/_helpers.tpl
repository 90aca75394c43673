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

{{/* The ConfigMap the operator reads its configuration from (and follows); the Role names it. */}}
{{- define "kubeserve.configMapName" -}}
kubeserve-config
{{- end -}}

{{/* Replicas beyond one are safe only with leader election: refuse the combination. */}}
{{- define "kubeserve.replicas" -}}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElection.enabled) -}}
{{- fail "replicas > 1 needs leaderElection.enabled: without a Lease every replica would reconcile" -}}
{{- end -}}
{{- .Values.replicas -}}
{{- end -}}

{{/* Namespaces the operator refuses to reconcile in unless reconcileSystemNamespaces (a JSON list): the
cluster's own and the operator's. Whoever may create an InferenceService in a namespace has pods run there
under that namespace's ServiceAccounts. */}}
{{- define "kubeserve.refusedNamespaces" -}}
{{- if .Values.reconcileSystemNamespaces -}}
[]
{{- else -}}
{{- list "kube-system" .Release.Namespace | uniq | toJson -}}
{{- end -}}
{{- end -}}
