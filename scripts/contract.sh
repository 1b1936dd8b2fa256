#!/usr/bin/env bash
# The API against its contract: starts the registry (with an admin API key, on a free port, its
# own topic and data dir) against a running broker, and runs schemathesis (from PyPI, installed
# into a virtualenv in the cache on first use) over the OpenAPI document the registry serves
# (built by src/http/openapi/; docs/openapi.json is a copy a unit test holds to it): every
# response must conform to the document, and none may be a 5xx. Needs a broker:
# scripts/kafka.sh start (or KAFKA_BOOTSTRAP). Extra arguments go to `schemathesis run`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cache=${XDG_CACHE_HOME:-$HOME/.cache}/customer-registry
venv=$cache/schemathesis-venv
schemathesis_version=4.32.5
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$schemathesis_version"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "schemathesis==$schemathesis_version"
fi

# shellcheck source=scripts/lib/registry.sh
. scripts/lib/registry.sh
build_registry
work=$(mktemp -d /tmp/customer-registry-contract.XXXXXX)
cleanup() {
  stop_registry
  rm -rf "$work"
}
trap cleanup EXIT
start_registry "$work" contract || exit 1
key=$registry_key
address=$registry_address

# Every check but the two that hold the server's input rules to the document's schemas
# (negative_data_rejection, positive_data_acceptance): the rules trim and NFC-normalise before
# they count characters, and a blank value is no value, which JSON Schema's maxLength and
# pattern describe only approximately (the document says so in prose); and a well-formed If-Match
# naming a version the customer is not at is rightly a 412, which positive_data_acceptance
# counts as refusing valid data. Those rules have unit, property and fuzz tests of their own
# (src/domain, src/http/fuzz.rs), and src/http/openapi/ checks its patterns against the rules.
#
# use_after_free is left out too: a deleted customer's history stays readable by design (GET
# /api/v01/customers/{id}/events lists every record that built it, the delete included), which
# that check counts as a deleted resource still available; get and find answering 404 after a
# delete are held by tests/it/lifecycle.rs.
#
# X-Min-Log-Position is left to the fuzz targets (src/http/fuzz.rs): a well-formed position
# ahead of the log is rightly answered 503 replica-behind after a wait, which schemathesis would
# count as a server error.
export SCHEMATHESIS_HOOKS=scripts/contract_hooks.py
export CONTRACT_API_KEY=$key
status=0
"$venv/bin/schemathesis" --config-file scripts/schemathesis.toml run "http://$address/api/v01/openapi.json" \
  --url "http://$address" --checks all \
  --exclude-checks negative_data_rejection,positive_data_acceptance,use_after_free \
  --max-examples "${CONTRACT_EXAMPLES:-25}" --seed "${CONTRACT_SEED:-1}" "$@" || status=$?
if [ "$status" != 0 ]; then
  echo "contract.sh: the registry's log:" >&2
  tail -n 40 "$registry_log" >&2
fi
exit "$status"
