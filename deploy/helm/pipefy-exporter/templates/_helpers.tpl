{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "pipefy-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name. */}}
{{- define "pipefy-exporter.fullname" -}}
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

{{- define "pipefy-exporter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "pipefy-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pipefy-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "pipefy-exporter.labels" -}}
helm.sh/chart: {{ include "pipefy-exporter.chart" . }}
{{ include "pipefy-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: pipefy-exporter
{{- end }}

{{- define "pipefy-exporter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "pipefy-exporter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "pipefy-exporter.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{- /*
  A probe from its value (livenessProbe / readinessProbe: httpGet plus timings), adapted
  to webConfig: HTTPS with TLS; with basic authentication an Authorization header when
  webConfig.basicAuth.probeAuthorization is set, else a tcpSocket probe of the same port
  (every endpoint answers 401 without credentials, and the kubelet cannot read them from
  a Secret). Called with (dict "probe" <value> "web" .Values.webConfig).
*/}}
{{- define "pipefy-exporter.probe" -}}
{{- $web := .web }}
{{- $on := ne (toString $web.existingSecret) "" }}
{{- $timing := omit .probe "httpGet" "tcpSocket" "exec" "grpc" }}
{{- if and $on $web.basicAuth.enabled (not $web.basicAuth.probeAuthorization) }}
tcpSocket:
  port: {{ .probe.httpGet.port }}
{{- else }}
{{- $http := deepCopy .probe.httpGet }}
{{- if and $on $web.tls.enabled }}
{{- $_ := set $http "scheme" "HTTPS" }}
{{- end }}
{{- if and $on $web.basicAuth.enabled }}
{{- $_ := set $http "httpHeaders" (list (dict "name" "Authorization" "value" $web.basicAuth.probeAuthorization)) }}
{{- end }}
httpGet:
  {{- toYaml $http | nindent 2 }}
{{- end }}
{{- with $timing }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- /*
  Fails the install when the exporter would have no credential: it would crash-loop,
  and only NOTES.txt would say why. A credential is the Secret of existingSecret, or
  PIPEFY_TOKEN / PIPEFY_CLIENT_SECRET in extraEnv; demo=true needs none.
*/}}
{{- define "pipefy-exporter.requireCredential" -}}
{{- if not (or .Values.demo .Values.existingSecret) }}
{{- $fromEnv := false }}
{{- range .Values.extraEnv }}
{{- if has .name (list "PIPEFY_TOKEN" "PIPEFY_CLIENT_SECRET") }}{{ $fromEnv = true }}{{ end }}
{{- end }}
{{- if not $fromEnv }}
{{- fail (printf "existingSecret is required: the name of a Secret holding the Pipefy credential, e.g.\n  kubectl -n %s create secret generic pipefy-exporter --from-file=token=./pipefy-token\nthen --set existingSecret=pipefy-exporter (or give PIPEFY_TOKEN / PIPEFY_CLIENT_SECRET in extraEnv); --set demo=true tries the chart without one" .Release.Namespace) }}
{{- end }}
{{- end }}
{{- end }}
