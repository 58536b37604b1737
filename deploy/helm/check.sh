#!/usr/bin/env bash
# Checks the Helm chart offline: helm lint, helm template | kubeconform -strict against the Kubernetes
# JSON schemas, with default values and with every values file in snapswarm/ci/, and the node's real
# config schema against the rendered config file. Called by .ci/run; usable by hand:
#   HELM=… KUBECONFORM=… K8S_SCHEMAS=… bash deploy/helm/check.sh
# K8S_SCHEMAS: a directory holding v<version>-local[-strict]/<kind>-<group>-<version>.json (see .ci/run).
# ServiceMonitor and PrometheusRule (Prometheus Operator CRDs) are skipped by kubeconform: their
# schemas come from no package registry this CI can reach. They are checked for their apiVersion
# and kind by helm's own YAML parse only.
set -euo pipefail
cd "$(dirname "$0")/../.."
chart=deploy/helm/snapswarm
: "${HELM:?}" "${KUBECONFORM:?}" "${K8S_SCHEMAS:?}"
K8S_VERSION="${K8S_VERSION:-1.33.0}"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# The chart ships a copy of the dashboard (.Files.Get cannot read outside the chart): keep it identical.
cmp docs/grafana-dashboard.json "$chart/dashboards/snapswarm.json" \
  || { echo "deploy/helm/snapswarm/dashboards/snapswarm.json differs from docs/grafana-dashboard.json: copy it" >&2; exit 1; }

cases=("default:")
for f in "$chart"/ci/*-values.yaml; do cases+=("$(basename "$f" -values.yaml):$f"); done
for c in "${cases[@]}"; do
  name=${c%%:*} file=${c#*:}
  args=(); [ -n "$file" ] && args=(-f "$file")
  echo "-- $name values"
  "$HELM" lint --strict "$chart" "${args[@]}"
  "$HELM" template snapswarm "$chart" --namespace snapswarm "${args[@]}" > "$out/$name.yaml"
  "$KUBECONFORM" -strict -summary -skip ServiceMonitor,PrometheusRule \
    -kubernetes-version "$K8S_VERSION" \
    -schema-location "$K8S_SCHEMAS/{{ .NormalizedKubernetesVersion }}-local{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
    "$out/$name.yaml"
  # The rendered --config file must pass the node's own schema (src/config/schema.ts).
  "$HELM" template snapswarm "$chart" --namespace snapswarm "${args[@]}" --show-only templates/configmap.yaml \
    | python3 -c 'import sys
lines = sys.stdin.read().split("\n")
i = next(n for n, l in enumerate(lines) if l.strip() == "config.json: |")
body = []
for l in lines[i + 1:]:
    if l and not l.startswith("    "): break
    body.append(l[4:])
open(sys.argv[1], "w").write("\n".join(body))' "$out/$name-config.json"
  env -i PATH="$PATH" node_modules/.bin/node --input-type=module -e '
    const { loadConfig } = await import(process.cwd() + "/src/config/load.ts")
    const c = await loadConfig({ file: process.argv[1], env: {} })
    console.log("config ok: " + Object.keys(c).sort().join(" "))' "$out/$name-config.json"
done
