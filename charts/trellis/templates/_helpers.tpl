{{/*
Names fixed by the operator (see docs/install.md): the operator finds its Service, Secrets,
Lease and webhook configurations by these names, so they do not follow the release name.
*/}}
{{- define "trellis.operatorName" -}}trellis-operator{{- end }}

{{- define "trellis.tag" -}}
{{- .Values.image.tag | default .Chart.AppVersion -}}
{{- end }}

{{- define "trellis.operatorImage" -}}
{{- printf "%s/operator:%s" .Values.image.registry (include "trellis.tag" .) -}}
{{- end }}

{{- define "trellis.proxyImage" -}}
{{- $registry := .Values.proxy.image.registry | default .Values.image.registry -}}
{{- $tag := .Values.proxy.image.tag | default (include "trellis.tag" .) -}}
{{- printf "%s/proxy:%s" $registry $tag -}}
{{- end }}

{{/* The gRPC address injected proxies reach the operator at. */}}
{{- define "trellis.controlPlane" -}}
{{- printf "http://trellis-operator.%s.svc:8090" .Release.Namespace -}}
{{- end }}

{{- define "trellis.selectorLabels" -}}
app.kubernetes.io/name: trellis
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "trellis.labels" -}}
{{ include "trellis.selectorLabels" . }}
app.kubernetes.io/part-of: trellis
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/* The webhook Service reference shared by the webhook configurations. */}}
{{- define "trellis.webhookService" -}}
name: trellis-operator
namespace: {{ .Release.Namespace }}
port: 443
{{- end }}

{{/* inject.yaml: the injection config (camelCase), read by the webhook and `trellis inject`. */}}
{{- define "trellis.injectConfig" -}}
{{- $resources := dict -}}
{{- range $kind := list "requests" "limits" -}}
{{- $set := dict -}}
{{- range $name, $quantity := index $.Values.proxy.resources $kind -}}
{{- if not (kindIs "invalid" $quantity) -}}{{- $_ := set $set $name (toString $quantity) -}}{{- end -}}
{{- end -}}
{{- if $set -}}{{- $_ := set $resources $kind $set -}}{{- end -}}
{{- end -}}
{{- $config := dict
  "image" (include "trellis.proxyImage" .)
  "imagePullPolicy" .Values.proxy.image.pullPolicy
  "controlPlane" (include "trellis.controlPlane" .)
  "trustDomain" .Values.meshConfig.trustDomain
  "sidecarMode" .Values.proxy.sidecarMode
  "proxyUid" .Values.proxy.uid
  "resources" $resources
  "skipOutboundPorts" .Values.proxy.skipOutboundPorts
  "skipInboundPorts" .Values.proxy.skipInboundPorts
  "skipOutboundCidrs" .Values.proxy.skipOutboundCidrs
-}}
{{- toYaml $config -}}
{{- end }}
