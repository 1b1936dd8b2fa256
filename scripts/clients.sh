#!/usr/bin/env bash
# The API through generated clients: generates a Python client from docs/openapi.json with each of
# openapi-python-client 0.29 and OpenAPI Generator 7.27 (python), installs both, starts the
# registry (scripts/lib/registry.sh: an admin key, a free port, a topic and data dir of its own)
# against a running broker, and runs the README's flow (scripts/client_flow.py) through each
# client's typed API. Exit status 0 only when both clients were generated and both flows passed.
# Needs a broker: scripts/kafka.sh start (or KAFKA_BOOTSTRAP).
# CLIENTS_DOCUMENT names another document to generate from (default docs/openapi.json), e.g. a
# draft of a fix.
#
# Installed on first use into ${XDG_CACHE_HOME:-~/.cache}/customer-registry/clients (outside the
# clone), then reused: a virtualenv holding scripts/clients-requirements.txt (every version pinned;
# built again when that file changes) and OpenAPI Generator's jar from Maven Central, checked
# against its SHA-256. The generated clients go to a temporary directory, removed at exit
# (CLIENTS_KEEP=1 keeps it and prints where).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cache=${XDG_CACHE_HOME:-$HOME/.cache}/customer-registry/clients
requirements=scripts/clients-requirements.txt
venv=$cache/venv
generator_version=7.27.0
generator_sha256=db9c4b738727698748746144394cb7ee96512fe50166555baaeeca9311ee1dba
generator_jar=$cache/openapi-generator-cli-$generator_version.jar
generator_url=https://repo1.maven.org/maven2/org/openapitools/openapi-generator-cli/$generator_version/openapi-generator-cli-$generator_version.jar
document=${CLIENTS_DOCUMENT:-docs/openapi.json}
started=$SECONDS

say() { echo "clients.sh: $*" >&2; }

# --- tools, installed once ------------------------------------------------------------------------
mkdir -p "$cache"
wanted=$(sha256sum "$requirements" | cut -d' ' -f1)
if [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$wanted" ]; then
  say "installing the generator and the clients' packages into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  echo "$wanted" >"$venv/.requirements.sha256"
fi
if ! echo "$generator_sha256  $generator_jar" | sha256sum --check --status 2>/dev/null; then
  say "downloading OpenAPI Generator $generator_version from Maven Central"
  curl --fail --silent --show-error --location --retry 3 -o "$generator_jar.part" "$generator_url"
  if ! echo "$generator_sha256  $generator_jar.part" | sha256sum --check --status; then
    say "$generator_url does not have the SHA-256 this script expects ($generator_sha256)"
    rm -f "$generator_jar.part"
    exit 1
  fi
  mv "$generator_jar.part" "$generator_jar"
fi
say "tools ready ($((SECONDS - started)) s)"

# --- the registry and a work dir, stopped and removed however this ends ----------------------------
# shellcheck source=scripts/lib/registry.sh
. scripts/lib/registry.sh
work=$(mktemp -d /tmp/customer-registry-clients.XXXXXX)
cleanup() {
  stop_registry
  if [ "${CLIENTS_KEEP:-0}" = 1 ]; then
    say "kept $work"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

failures=()

# --- generate ---------------------------------------------------------------------------------------
# openapi-python-client: package registry_opc. Its warnings (the XML media types it skips) go to
# the log; a document it cannot read at all is a failure.
printf 'project_name_override: registry-opc\npackage_name_override: registry_opc\n' >"$work/opc.yaml"
opc_generated=0
if PATH=$venv/bin:$PATH "$venv/bin/openapi-python-client" generate --path "$document" \
  --output-path "$work/opc" --meta setup --config "$work/opc.yaml" >"$work/opc-generate.log" 2>&1 &&
  [ -d "$work/opc/registry_opc" ]; then
  opc_generated=1
else
  cat "$work/opc-generate.log" >&2
  failures+=("openapi-python-client could not generate a client from $document (log above)")
fi

# OpenAPI Generator: package registry_ogen. It runs on the JVM's default thread stack first, as
# anyone would run it (with the whole stack trace kept, to say where it broke); when that overflows
# (its python generator matches a parameter's pattern against a regular expression that recurses
# once per character), that is a failure of the document, and the generation is tried again with a
# larger stack so that the flow still runs and reports every other defect.
generate_with_openapi_generator() {
  java "$@" -jar "$generator_jar" generate -g python -i "$document" -o "$work/ogen" \
    --package-name registry_ogen --additional-properties=projectName=registry-ogen \
    >"$work/ogen-generate.log" 2>&1
}
ogen_generated=0
if generate_with_openapi_generator -XX:MaxJavaStackTraceDepth=100000; then
  ogen_generated=1
elif grep -q StackOverflowError "$work/ogen-generate.log"; then
  frames=$(grep -o 'at org\.openapitools[^(]*' "$work/ogen-generate.log" | head -n 4 | sed 's/^at //' | paste -sd '<' || true)
  # The longest pattern the failing step looks at: a parameter's when the generator broke while
  # processing parameters, any otherwise.
  longest=$(python3 - "$document" "$frames" <<'PY'
import json, sys
document, frames = json.load(open(sys.argv[1])), sys.argv[2]
parameters_only = "postProcessParameter" in frames
found = []
def walk(node, path, in_parameter):
    if isinstance(node, dict):
        in_parameter = in_parameter or node.get("in") in ("query", "header", "path", "cookie")
        if isinstance(node.get("pattern"), str) and (in_parameter or not parameters_only):
            found.append((len(node["pattern"]), path))
        for key, value in node.items():
            walk(value, f"{path}.{key}" if path else key, in_parameter)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            walk(value, f"{path}[{index}]", in_parameter)
walk(document, "", False)
length, path = max(found)
print(f"{path}, {length} characters")
PY
)
  failures+=("OpenAPI Generator $generator_version crashed with StackOverflowError on the JVM's default stack, in ${frames:-?}: the longest pattern it was processing is $longest (a JSON Schema enum, or a shorter pattern, would not overflow it)")
  say "OpenAPI Generator overflowed its stack; generating again with -Xss64m to run the flow"
  rm -rf "$work/ogen"
  if generate_with_openapi_generator -Xss64m; then
    ogen_generated=1
  fi
fi
if [ "$ogen_generated" = 0 ]; then
  tail -n 40 "$work/ogen-generate.log" >&2
  failures+=("OpenAPI Generator $generator_version could not generate a client from $document (log above)")
fi
say "clients generated ($((SECONDS - started)) s)"

# Both packages into a directory of this run's own (the cached virtualenv stays as it is, so two
# runs never see each other's clients); their dependencies are in the virtualenv already.
installs=()
[ "$opc_generated" = 1 ] && installs+=("$work/opc")
[ "$ogen_generated" = 1 ] && installs+=("$work/ogen")
if [ ${#installs[@]} -gt 0 ]; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --no-build-isolation \
    --no-index --target "$work/site" "${installs[@]}"
fi

# --- the flows ---------------------------------------------------------------------------------------
build_registry
start_registry "$work" clients || exit 1
say "registry ready on $registry_address ($((SECONDS - started)) s)"
echo "$registry_key" >"$work/api-key"

run_flow() {
  local client=$1 label=$2
  if PYTHONPATH=$work/site "$venv/bin/python" scripts/client_flow.py "$client" \
    --base-url "http://$registry_address" --api-key-file "$work/api-key" \
    --document "$document" --generated "$work/ogen"; then
    return 0
  fi
  failures+=("the README's flow failed through $label client (steps above)")
}
[ "$opc_generated" = 1 ] && run_flow opc "openapi-python-client's"
[ "$ogen_generated" = 1 ] && run_flow openapi-generator "OpenAPI Generator's"

if [ ${#failures[@]} -gt 0 ]; then
  say "FAILED ($((SECONDS - started)) s):"
  for failure in "${failures[@]}"; do
    echo "  - $failure" >&2
  done
  if grep -q ' ERROR ' "$registry_log"; then
    echo "clients.sh: the registry's log ends:" >&2
    tail -n 40 "$registry_log" >&2
  fi
  exit 1
fi
say "both clients passed the README's flow ($((SECONDS - started)) s)"
