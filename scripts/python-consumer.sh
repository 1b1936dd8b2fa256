#!/usr/bin/env bash
# Runs the independent Python consumer of examples/python-consumer/ (written from events/ alone):
#   scripts/python-consumer.sh selftest          its self-test (the examples open and fold as the
#                                                 contract says; no broker needed)
#   scripts/python-consumer.sh consume ARGS...   consume.py ARGS (see its README)
# Its packages (examples/python-consumer/requirements-test.txt, every version pinned) are installed
# on first use into a virtualenv under ${XDG_CACHE_HOME:-~/.cache}/customer-registry/python-consumer
# (outside the clone), built again when that file changes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

consumer=examples/python-consumer
requirements=$consumer/requirements-test.txt
venv=${XDG_CACHE_HOME:-$HOME/.cache}/customer-registry/python-consumer/venv
wanted=$(sha256sum "$requirements" | cut -d' ' -f1)
mkdir -p "$(dirname "$venv")"
# Tests run it in parallel: on a fresh machine the first uses would install into one directory at
# once (one removing what another builds), so the check and the install take turns.
exec 9>"$(dirname "$venv")/install.lock"
flock 9
if [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$wanted" ]; then
  echo "python-consumer.sh: installing its packages into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  echo "$wanted" >"$venv/.requirements.sha256"
fi
exec 9>&-

case "${1:-}" in
  selftest) cd "$consumer" && exec "$venv/bin/python" -m unittest -q test_examples ;;
  consume) shift && exec "$venv/bin/python" "$consumer/consume.py" "$@" ;;
  *) echo "usage: scripts/python-consumer.sh selftest | consume ARGS..." >&2 && exit 2 ;;
esac
