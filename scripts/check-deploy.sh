#!/usr/bin/env bash
# Checks the deployment files offline, with no Docker engine and no Kubernetes cluster:
#
#   docker-compose.yml            loaded and validated by compose-go (the Compose implementation
#                                 docker compose uses: the Compose schema, references between
#                                 services, volumes and mounts), scripts/compose-check/
#   deploy/haproxy/haproxy.cfg    parsed by HAProxy itself (haproxy -c; Debian's 2.6 here, the
#                                 compose file runs the official image's 3.2: the config keeps to
#                                 what both read)
#   deploy/kubernetes/*.yaml      validated against the Kubernetes JSON schemas of the oldest and
#                                 newest versions it targets, strictly (no unknown fields), by
#                                 kubernetes-validate (PyPI, schemas bundled); then their references
#                                 to each other by scripts/check_kubernetes.py
#
# Installs what it needs into ${XDG_CACHE_HOME:-~/.cache}/customer-registry/: the Go module cache,
# build cache and the compose-check binary (rebuilt only when its sources change), a virtualenv
# for kubernetes-validate; HAProxy with apt-get when missing. A second run installs nothing.
# Needs Go (1.24 or newer, for compose-go) and python3 with venv. Exits non-zero on any error.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cache=${XDG_CACHE_HOME:-$HOME/.cache}/customer-registry
kubernetes_validate_version=1.37.0
# The Kubernetes versions the manifests must be valid for.
kubernetes_versions=(1.30.0 1.37.0)
say() { printf 'check-deploy.sh: %s\n' "$*" >&2; }

# --- docker-compose.yml -------------------------------------------------------------------------
command -v go >/dev/null || { say "Go is not installed (compose-check is a Go program using compose-go)"; exit 1; }
export GOMODCACHE=$cache/go/mod GOCACHE=$cache/go/build GOFLAGS="${GOFLAGS:-} -mod=readonly"
checker_sources=$(cat scripts/compose-check/go.mod scripts/compose-check/go.sum scripts/compose-check/*.go |
  sha256sum | cut -c1-16)
compose_check=$cache/compose-check/compose-check-$checker_sources
if [ ! -x "$compose_check" ]; then
  say "building scripts/compose-check (compose-go from the Go module proxy, verified by go.sum)"
  mkdir -p "$(dirname "$compose_check")"
  (cd scripts/compose-check && go build -trimpath -o "$cache/compose-check/building" .)
  rm -f "$cache"/compose-check/compose-check-*
  mv "$cache/compose-check/building" "$compose_check"
fi
# .local/ holds the API key file, which the user creates (the compose file's comments say how).
"$compose_check" -allow-missing .local docker-compose.yml

# --- deploy/haproxy/haproxy.cfg -----------------------------------------------------------------
haproxy=$(command -v haproxy || true)
[ -z "$haproxy" ] && [ -x /usr/sbin/haproxy ] && haproxy=/usr/sbin/haproxy
if [ -z "$haproxy" ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    say "HAProxy is not installed; install Debian's package: sudo apt-get update && sudo apt-get install -y haproxy"
    exit 1
  fi
  say "installing HAProxy (Debian's package haproxy) with apt-get"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q haproxy >/dev/null
  haproxy=$(command -v haproxy || echo /usr/sbin/haproxy)
fi
# The replicas' names resolve only inside Compose's network: the config starts them unresolved
# (init-addr none), and -c reports that as a warning, not an error.
if ! output=$("$haproxy" -c -f deploy/haproxy/haproxy.cfg 2>&1); then
  echo "$output" >&2
  say "HAProxy refuses deploy/haproxy/haproxy.cfg"
  exit 1
fi
echo "deploy/haproxy/haproxy.cfg: valid for $("$haproxy" -v | head -n 1 | cut -d' ' -f1-3)"

# --- deploy/kubernetes/ -------------------------------------------------------------------------
venv=$cache/deploy-check-venv
if ! "$venv/bin/kubernetes-validate" --version 2>/dev/null | grep -qx "$kubernetes_validate_version"; then
  say "installing kubernetes-validate $kubernetes_validate_version from PyPI into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$kubernetes_validate_version"
fi
for version in "${kubernetes_versions[@]}"; do
  "$venv/bin/kubernetes-validate" --strict --quiet -k "$version" deploy/kubernetes/*.yaml
  echo "deploy/kubernetes/: valid for Kubernetes $version (strict)"
done
"$venv/bin/python" scripts/check_kubernetes.py deploy/kubernetes/*.yaml
