#!/usr/bin/env bash
# The real-cluster e2e (docs/e2e-kind.md): builds the operator and proxy images, creates a
# kind (or k3d) cluster `trellis-e2e`, installs the Helm chart, applies gitops-examples
# with the shop's workloads, and checks what the local-mode e2e checks:
#   1. injection: the shop's pods have a trellis-proxy
#   2. status: the SMI resources are Accepted
#   3. TrafficSplit: api-rollout's 90/10 shares, within tolerance
#   4. TrafficTarget: web may GET/POST /items (200), not GET /healthz (403); another
#      ServiceAccount may not call the API at all (403)
#   5. Canary: v1 -> v2 progresses to Succeeded under load
# The cluster is deleted at the end unless --keep. Needs kind or k3d, docker or podman,
# kubectl and helm (bash .ci/install-helm.sh), and internet access for the node and curl
# images. This project's CI cannot run it (no container runtime, no cluster).
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: e2e/kind/run.sh [options]

  --keep                  leave the cluster (and the release) when done
  --use-current-context   use the cluster of the current kubectl context (also when
                          KUBECONFIG is set) instead of creating one; images are loaded
                          with kind or k3d when the context is theirs, else pushed to
                          --registry
  --tool kind|k3d         the cluster tool (default: kind if installed, else k3d)
  --registry REG          image registry (default trellis.local: images are loaded into
                          the cluster, never pushed); with --use-current-context on
                          another cluster, a registry the cluster pulls from
  --skip-build            use images already built with the tag --tag
  --tag TAG               image tag (default e2e)
  -h, --help              this help

Environment: CONTAINER_RUNTIME=docker|podman (default: docker if installed, else podman),
CURL_IMAGE (default docker.io/curlimages/curl:8.11.1).
EOF
}

cd "$(dirname "$0")/../.."
root=$(pwd)

cluster=trellis-e2e
namespace=trellis-system
keep=0
use_current=0
tool=""
registry=trellis.local
tag=e2e
build=1
curl_image=${CURL_IMAGE:-docker.io/curlimages/curl:8.11.1}
[ -n "${KUBECONFIG:-}" ] && use_current=1

while [ $# -gt 0 ]; do
  case "$1" in
    --keep) keep=1 ;;
    --use-current-context) use_current=1 ;;
    --tool) tool=${2:?--tool needs kind or k3d}; shift ;;
    --registry) registry=${2:?--registry needs a value}; shift ;;
    --tag) tag=${2:?--tag needs a value}; shift ;;
    --skip-build) build=0 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

step() { printf '\n==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
fail() { printf '\nFAIL: %s\n' "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

# --- prerequisites ------------------------------------------------------------------------
step "checking tools"
runtime=${CONTAINER_RUNTIME:-}
if [ -z "$runtime" ]; then
  if have docker; then runtime=docker; elif have podman; then runtime=podman; fi
fi
if [ -z "$runtime" ] || ! have "$runtime"; then
  fail "no container runtime: install Docker (https://docs.docker.com/engine/install/) or Podman"
fi
"$runtime" info >/dev/null 2>&1 ||
  fail "$runtime is installed but not usable (is the daemon running, may this user use it?)"
if [ "$use_current" = 0 ] && [ -z "$tool" ]; then
  if have kind; then tool=kind; elif have k3d; then tool=k3d; fi
fi
if [ "$use_current" = 0 ]; then
  [ -n "$tool" ] || fail "neither kind nor k3d is installed: see https://kind.sigs.k8s.io/docs/user/quick-start/#installation or https://k3d.io"
  [ "$tool" = kind ] || [ "$tool" = k3d ] || fail "--tool must be kind or k3d, not $tool"
  have "$tool" || fail "$tool is not installed"
fi
have kubectl || fail "kubectl is not installed: https://kubernetes.io/docs/tasks/tools/"
if ! have helm; then
  if [ -x "$HOME/.cache/trellis/tools/bin/helm" ]; then
    PATH="$HOME/.cache/trellis/tools/bin:$PATH"
  else
    fail "helm is not installed: run bash .ci/install-helm.sh (or https://helm.sh/docs/intro/install/)"
  fi
fi
# kind drives podman only when asked to.
[ "$runtime" = podman ] && export KIND_EXPERIMENTAL_PROVIDER=podman
info "runtime $runtime, cluster ${tool:-current context}, helm $(helm version --short)"

operator_image="$registry/operator:$tag"
proxy_image="$registry/proxy:$tag"
work=$(mktemp -d)
created=0
load_pid=""

cleanup() {
  local status=$?
  [ -n "$load_pid" ] && kill "$load_pid" 2>/dev/null || true
  if [ "$status" -ne 0 ] && kubectl version >/dev/null 2>&1; then
    step "diagnostics (the run failed)"
    kubectl get pods -A -o wide || true
    kubectl get ts,tt,canary -A || true
    kubectl -n "$namespace" logs deployment/trellis-operator --tail=80 || true
    kubectl get events -A --sort-by=.lastTimestamp | tail -n 30 || true
  fi
  if [ "$created" = 1 ] && [ "$keep" = 1 ]; then
    step "kept the cluster $cluster"
    info "use it:    export KUBECONFIG=$work/kubeconfig; kubectl get ts,tt,canary -A"
    if [ "$tool" = kind ]; then
      info "delete it: kind delete cluster --name $cluster"
    else
      info "delete it: k3d cluster delete $cluster"
    fi
    return
  fi
  if [ "$created" = 1 ]; then
    step "deleting the cluster $cluster"
    if [ "$tool" = kind ]; then kind delete cluster --name "$cluster"; else k3d cluster delete "$cluster"; fi
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# --- images -------------------------------------------------------------------------------
if [ "$build" = 1 ]; then
  step "building $operator_image and $proxy_image (a first build takes a while)"
  for target in operator proxy; do
    DOCKER_BUILDKIT=1 "$runtime" build -f e2e/kind/Dockerfile --target "$target" \
      -t "$registry/$target:$tag" "$root"
  done
fi

# --- cluster ------------------------------------------------------------------------------
if [ "$use_current" = 0 ]; then
  # A kubeconfig of its own: the user's contexts are left alone.
  export KUBECONFIG="$work/kubeconfig"
  step "creating the $tool cluster $cluster"
  if [ "$tool" = kind ]; then
    kind create cluster --name "$cluster" --wait 180s
  else
    k3d cluster create "$cluster" --wait --timeout 180s --k3s-arg '--disable=traefik@server:0'
  fi
  created=1
  context_tool=$tool
else
  context=$(kubectl config current-context)
  case "$context" in
    kind-*) context_tool=kind; cluster=${context#kind-} ;;
    k3d-*) context_tool=k3d; cluster=${context#k3d-} ;;
    *) context_tool="" ;;
  esac
  step "using the current context $context"
fi
kubectl version

step "loading the images into the cluster"
if [ -n "$context_tool" ]; then
  for image in "$operator_image" "$proxy_image"; do
    "$runtime" save -o "$work/image.tar" "$image"
    if [ "$context_tool" = kind ]; then
      kind load image-archive "$work/image.tar" --name "$cluster"
    else
      k3d image import "$work/image.tar" --cluster "$cluster"
    fi
    rm -f "$work/image.tar"
    info "loaded $image"
  done
else
  [ "$registry" != trellis.local ] ||
    fail "the current context is neither kind nor k3d: pass --registry with a registry the cluster pulls from"
  "$runtime" push "$operator_image"
  "$runtime" push "$proxy_image"
fi

# --- install ------------------------------------------------------------------------------
step "helm install trellis charts/trellis -n $namespace"
# The MeshConfig comes from gitops-examples (as ArgoCD would sync it), not from the chart.
helm install trellis charts/trellis -n "$namespace" --create-namespace --wait --timeout 5m \
  --set image.registry="$registry" --set image.tag="$tag" \
  --set meshConfig.create=false
kubectl -n "$namespace" get pods,svc
kubectl get validatingwebhookconfiguration trellis-validation \
  mutatingwebhookconfiguration trellis-injection

# Retried: right after install the operator may still be putting its CA into the webhook
# configurations, and the validating webhook fails closed.
apply() {
  local attempt
  for attempt in $(seq 1 30); do
    if kubectl apply "$@"; then return 0; fi
    info "kubectl apply failed (attempt $attempt); retrying in 2 s"
    sleep 2
  done
  fail "kubectl apply $* kept failing"
}

step "applying gitops-examples (the shop, injection enabled)"
apply -f gitops-examples/shop/namespace.yaml
kubectl label namespace shop trellis.dev/inject=enabled --overwrite
apply -f gitops-examples/mesh-config.yaml
apply -f gitops-examples/shop/
sed -e "s|OPERATOR_IMAGE|$operator_image|g" -e "s|CURL_IMAGE|$curl_image|g" \
  e2e/kind/manifests/workloads.yaml >"$work/workloads.yaml"
apply -f "$work/workloads.yaml"
for deployment in web api-v1 api-v2; do
  kubectl -n shop rollout status "deployment/$deployment" --timeout=180s
done
kubectl -n shop wait --for=condition=Ready pod/curl-web pod/curl-other --timeout=180s

# --- 1. injection -------------------------------------------------------------------------
step "1. the shop's pods are injected"
for pod in $(kubectl -n shop get pods -o name); do
  containers=$(kubectl -n shop get "$pod" \
    -o jsonpath='{.spec.containers[*].name} {.spec.initContainers[*].name}')
  injected=$(kubectl -n shop get "$pod" -o jsonpath='{.metadata.annotations.trellis\.dev/injected}')
  case " $containers " in
    *" trellis-proxy "*) info "$pod: trellis-proxy, trellis.dev/injected=$injected" ;;
    *) fail "$pod has no trellis-proxy container (containers: $containers)" ;;
  esac
  [ -n "$injected" ] || fail "$pod has no trellis.dev/injected annotation"
done

# --- 2. status ----------------------------------------------------------------------------
step "2. the SMI resources are Accepted"
kubectl -n shop wait --for=condition=Accepted --timeout=120s \
  trafficsplit/api-rollout traffictarget/web-to-api httproutegroup/api-routes
kubectl wait --for=condition=Accepted --timeout=120s meshconfig/default
kubectl get ts,tt -A

# curl from a shop pod: prints the HTTP status, then the x-demo-version header if any.
call() {
  local pod=$1 method=$2 path=$3
  kubectl -n shop exec "$pod" -c curl -- curl -s -o /dev/null -X "$method" \
    -w '%{http_code} %header{x-demo-version}\n' "http://api.shop:8080$path"
}

# --- 3. TrafficSplit ----------------------------------------------------------------------
step "3. TrafficSplit api-rollout sends ~10 % of web's calls to v2"
requests=300
kubectl -n shop exec curl-web -c curl -- sh -c \
  "for i in \$(seq $requests); do curl -s -o /dev/null -w '%{http_code} %header{x-demo-version}\n' http://api.shop:8080/items; done" \
  >"$work/split.txt"
v1=$(grep -c '^200 v1$' "$work/split.txt" || true)
v2=$(grep -c '^200 v2$' "$work/split.txt" || true)
info "$requests calls: v1 $v1, v2 $v2, other $((requests - v1 - v2))"
[ $((v1 + v2)) -eq "$requests" ] || fail "not every call answered 200: $(sort "$work/split.txt" | uniq -c | tr '\n' ' ')"
# 10 % of 300 = 30, standard deviation ~5.2: 4 deviations either side.
[ "$v2" -ge 10 ] && [ "$v2" -le 51 ] || fail "v2 got $v2 of $requests calls, expected 30 (10..51)"

# --- 4. TrafficTarget ---------------------------------------------------------------------
step "4. TrafficTarget web-to-api: allowed routes 200, the rest 403"
expect() {
  local pod=$1 method=$2 path=$3 want=$4 got
  got=$(call "$pod" "$method" "$path" | cut -d' ' -f1)
  [ "$got" = "$want" ] || fail "$pod $method $path: $got, expected $want"
  info "$pod $method $path -> $got"
}
expect curl-web GET /items 200
expect curl-web POST /items 200
expect curl-web GET /healthz 403
expect curl-other GET /items 403

# --- 5. Canary ----------------------------------------------------------------------------
step "5. a Canary moves the API from v1 to v2"
kubectl delete -f gitops-examples/shop/split.yaml
apply -f e2e/kind/manifests/canary.yaml
kubectl -n shop wait --for=condition=Accepted canary/api --timeout=120s
# The builtin metrics provider needs requests in every analysis window. (The loop runs in
# the pod: its $(seq) is not this shell's.)
# shellcheck disable=SC2016
kubectl -n shop exec curl-web -c curl -- sh -c \
  'for i in $(seq 12000); do curl -s -o /dev/null http://api.shop:8080/items; sleep 0.05; done' \
  >/dev/null 2>&1 &
load_pid=$!
deadline=$((SECONDS + 300))
last=""
while :; do
  phase=$(kubectl -n shop get canary api -o jsonpath='{.status.phase}')
  weight=$(kubectl -n shop get canary api -o jsonpath='{.status.canaryWeight}')
  now="phase=${phase:-none} canaryWeight=${weight:-0}"
  [ "$now" = "$last" ] || info "$now"
  last=$now
  case "$phase" in
    Succeeded) break ;;
    Failed) fail "the Canary failed: $(kubectl -n shop get canary api -o jsonpath='{.status.message}')" ;;
  esac
  [ "$SECONDS" -lt "$deadline" ] ||
    fail "the Canary did not succeed within 5 minutes: $(kubectl -n shop get canary api -o jsonpath='{.status.message}')"
  sleep 2
done
kill "$load_pid" 2>/dev/null || true
load_pid=""
split=$(kubectl -n shop get canary api -o jsonpath='{.status.trafficSplit}')
info "generated TrafficSplit: ${split:-api}"
kubectl -n shop get trafficsplit "${split:-api}" -o wide
kubectl get ts,tt,canary -A

step "the real-cluster e2e passed"
