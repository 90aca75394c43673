{{/* The activator's pod labels, also its Deployment's and Service's selector (immutable: keep them stable). */}}
{{- define "kubeserve.activatorSelectorLabels" -}}
app.kubernetes.io/name: kubeserve
app.kubernetes.io/component: activator
{{- end -}}

{{/* Labels on every activator object the chart renders. */}}
{{- define "kubeserve.activatorLabels" -}}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{ include "kubeserve.activatorSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The activator's name: its Service is the one the operator routes idle services to
(config.scaleToZero.activator.name); the Deployment, ServiceAccount and RBAC share it. The chart installs
it in the release namespace, where the operator looks for it unless told another. */}}
{{- define "kubeserve.activatorName" -}}
{{- $ref := .Values.config.scaleToZero.activator | default dict -}}
{{- with $ref.namespace -}}
{{- if ne . $.Release.Namespace -}}
{{- fail (printf "config.scaleToZero.activator.namespace is %s, but the chart installs the activator in the release namespace %s: leave it unset, or set it to %s" . $.Release.Namespace $.Release.Namespace) -}}
{{- end -}}
{{- end -}}
{{- $ref.name | default "kubeserve-activator" -}}
{{- end -}}

{{/* The activator's image: its repository, else the operator's beside it (`<registry>/<org>/activator`),
tagged with its tag, else the chart's appVersion. kubeserve.devcluster.images names its build the same. */}}
{{- define "kubeserve.activatorImage" -}}
{{- $image := .Values.activator.image -}}
{{- $repository := $image.repository | default (printf "%s/activator" (dir .Values.image.repository)) -}}
{{- printf "%s:%s" $repository ($image.tag | default .Chart.AppVersion) -}}
{{- end -}}
