{{/* The pod template shared by the Deployment and the DaemonSet. */}}
{{- define "kcp.podTemplate" -}}
{{- $ds := eq .Values.kind "DaemonSet" -}}
metadata:
  labels:
    {{- include "kcp.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    # A new configuration rolls the pods (flow control alone would be reloaded in place).
    checksum/config: {{ include "kcp.configFile" . | sha256sum }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "kcp.serviceAccountName" . }}
  # The proxy's own credentials towards the apiservers are its ServiceAccount's token.
  automountServiceAccountToken: true
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- if and $ds .Values.daemonSet.hostNetwork }}
  hostNetwork: true
  dnsPolicy: ClusterFirstWithHostNet
  {{- end }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  containers:
    - name: kube-cache-proxy
      image: {{ include "kcp.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - --config
        - /etc/kube-cache-proxy/config.yaml
        - --tls-cert-file
        - /etc/kube-cache-proxy/tls/tls.crt
        - --tls-private-key-file
        - /etc/kube-cache-proxy/tls/tls.key
        {{- if .Values.clientCa.enabled }}
        - --client-ca-file
        - /etc/kube-cache-proxy/client-ca/ca.crt
        {{- end }}
      {{- if .Values.maxOldSpaceSizeMiB }}
      env:
        - name: NODE_OPTIONS
          value: --max-old-space-size={{ int .Values.maxOldSpaceSizeMiB }}
      {{- end }}
      ports:
        - name: https
          containerPort: {{ .Values.ports.https }}
          protocol: TCP
        - name: metrics
          containerPort: {{ .Values.ports.metrics }}
          protocol: TCP
      livenessProbe:
        httpGet:
          path: /livez
          port: metrics
          {{- if ne (.Values.config.metricsMode | default "plain") "plain" }}
          scheme: HTTPS
          {{- end }}
        {{- toYaml .Values.livenessProbe | nindent 8 }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: metrics
          {{- if ne (.Values.config.metricsMode | default "plain") "plain" }}
          scheme: HTTPS
          {{- end }}
        {{- toYaml .Values.readinessProbe | nindent 8 }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/kube-cache-proxy
          readOnly: true
        - name: tmp
          mountPath: /tmp
  volumes:
    # One projected volume (no subPath): a changed ConfigMap reaches the running proxy.
    - name: config
      projected:
        sources:
          - configMap:
              name: {{ include "kcp.fullname" . }}
              items:
                - key: config.yaml
                  path: config.yaml
          - secret:
              name: {{ include "kcp.tlsSecretName" . }}
              items:
                - key: tls.crt
                  path: tls/tls.crt
                - key: tls.key
                  path: tls/tls.key
          {{- if .Values.clientCa.enabled }}
          - configMap:
              name: {{ .Values.clientCa.configMap }}
              items:
                - key: {{ .Values.clientCa.key }}
                  path: client-ca/ca.crt
          {{- end }}
    - name: tmp
      emptyDir:
        sizeLimit: 64Mi
  {{- $nodeSelector := .Values.nodeSelector }}
  {{- $tolerations := .Values.tolerations }}
  {{- if $ds }}
  {{- $nodeSelector = merge (deepCopy .Values.nodeSelector) .Values.daemonSet.nodeSelector }}
  {{- $tolerations = concat .Values.tolerations .Values.daemonSet.tolerations }}
  {{- end }}
  {{- with $nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if .Values.affinity }}
  affinity:
    {{- toYaml .Values.affinity | nindent 4 }}
  {{- else if and (not $ds) (ne .Values.podAntiAffinity "none") }}
  affinity:
    podAntiAffinity:
      {{- if eq .Values.podAntiAffinity "hard" }}
      requiredDuringSchedulingIgnoredDuringExecution:
        - topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- include "kcp.selectorLabels" . | nindent 14 }}
      {{- else }}
      preferredDuringSchedulingIgnoredDuringExecution:
        - weight: 100
          podAffinityTerm:
            topologyKey: kubernetes.io/hostname
            labelSelector:
              matchLabels:
                {{- include "kcp.selectorLabels" . | nindent 16 }}
      {{- end }}
  {{- end }}
  {{- if and (not $ds) .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- range .Values.topologySpreadConstraints }}
    {{- $c := deepCopy . }}
    {{- if not $c.labelSelector }}
    {{- $_ := set $c "labelSelector" (dict "matchLabels" (include "kcp.selectorLabels" $ | fromYaml)) }}
    {{- end }}
    - {{ toYaml $c | indent 6 | trim }}
    {{- end }}
  {{- end }}
{{- end }}
