{{/* Labels of every object the chart makes (never app.kubernetes.io/managed-by=berth: that
     label is the operator's, and admission refuses it to anyone else). */}}
{{- define "berth.labels" -}}
app.kubernetes.io/name: berth
app.kubernetes.io/instance: {{ .Release.Name }}
{{ include "berth.commonLabels" . }}
{{- end -}}

{{- define "berth.commonLabels" -}}
app.kubernetes.io/part-of: berth
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The operator's pods. */}}
{{- define "berth.operatorSelector" -}}
app.kubernetes.io/name: berth-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The operator's objects: its selector, and every common label but the name. */}}
{{- define "berth.operatorLabels" -}}
{{ include "berth.operatorSelector" . }}
app.kubernetes.io/component: operator
{{ include "berth.commonLabels" . }}
{{- end -}}

{{/* An image reference: repository:tag, or repository:tag@digest. Call with
     (dict "image" .Values.images.x "root" $). */}}
{{- define "berth.image" -}}
{{- $tag := .image.tag | default .root.Chart.AppVersion -}}
{{- if .image.digest -}}
{{- printf "%s:%s@%s" .image.repository $tag .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* Whether to make a Prometheus Operator object: `enabled` is true, or auto and the cluster
     serves the kind. Call with (dict "enabled" ... "kind" "monitoring.coreos.com/v1/X" "root" $). */}}
{{- define "berth.monitoring" -}}
{{- $enabled := toString .enabled -}}
{{- if or (eq $enabled "true") (and (eq $enabled "auto") (.root.Capabilities.APIVersions.Has .kind)) -}}
true
{{- end -}}
{{- end -}}

{{/* The name of the Secret with a provider's admin credentials, or "". */}}
{{- define "berth.credentialsSecret" -}}
{{- $credentials := index .root.Values.credentials .provider -}}
{{- if and $credentials.existingSecret $credentials.create -}}
{{- fail (printf "credentials.%s: give existingSecret or create, not both" .provider) -}}
{{- end -}}
{{- if $credentials.existingSecret -}}
{{- $credentials.existingSecret -}}
{{- else if $credentials.create -}}
{{- printf "berth-%s-admin" .provider -}}
{{- end -}}
{{- end -}}
