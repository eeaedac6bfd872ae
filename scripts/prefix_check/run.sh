#!/usr/bin/env bash
# Issue 11's before/after check: run the tests that pin each defect against the revision
# before the fixes, in a throwaway worktree, with this checkout's virtual environment.
#
#   scripts/prefix_check/run.sh [REV]     (default 3bc677f, main before the ingest, live,
#                                          history and compat merges)
#
# Copies in (as test_*_current.py) the current test files that still import on the old tree,
# and the probes of this folder for the doors whose API changed (ingest, live detection). Every
# selected test is expected to FAIL there; the worktree is removed afterwards.
set -euo pipefail
REV="${1:-3bc677f}"
HERE="$(cd "$(dirname "$0")/../.." && pwd)"
OLD="$(mktemp -d /tmp/pre-fix.XXXXXX)"
LINK="$(dirname "$OLD")/shared"
MADE_LINK=""
cleanup() {
  git -C "$HERE" worktree remove --force "$OLD"
  if [ -n "$MADE_LINK" ]; then rm -f "$LINK"; fi
}
git -C "$HERE" worktree add --detach "$OLD" "$REV" >/dev/null
trap cleanup EXIT
ln -s "$HERE/node_modules" "$OLD/node_modules"
# The tests read the team's sample data from ../shared/data beside the repository.
if [ ! -e "$LINK" ]; then ln -s "$(cd "$HERE/../shared" && pwd)" "$LINK"; MADE_LINK=1; fi
cp "$HERE/tests/unit/multivariate/test_datasets.py" "$OLD/tests/unit/multivariate/test_datasets_current.py"
cp "$HERE/tests/integration/api/test_datasources.py" "$OLD/tests/integration/api/test_datasources_current.py"
cp "$HERE/tests/integration/api/test_storage_outage.py" "$OLD/tests/integration/api/test_storage_outage_current.py"
cp "$HERE/scripts/prefix_check/probe_ingest.py" "$OLD/tests/unit/telemetry/test_prefix_ingest.py"
mkdir -p "$OLD/tests/integration/probe" && touch "$OLD/tests/integration/probe/__init__.py"
cp "$HERE/scripts/prefix_check/probe_live.py" "$OLD/tests/integration/probe/test_prefix_live.py"
cd "$OLD"
export PYTHONPATH="$OLD"
python_file="$("$HERE/.venv/bin/python" -c 'import shared; print(shared.__file__)')"
[ "$python_file" = "$OLD/shared/__init__.py" ] || { echo "imports $python_file, not the old tree" >&2; exit 2; }
"$HERE/.venv/bin/python" -m pytest -p no:cacheprovider -q -rA \
  tests/unit/telemetry/test_prefix_ingest.py \
  tests/integration/probe/test_prefix_live.py \
  "tests/unit/multivariate/test_datasets_current.py::test_many_small_members_are_ratio_checked_too" \
  "tests/integration/api/test_datasources_current.py::test_other_containers_are_refused_without_echoing_their_content" \
  "tests/integration/api/test_datasources_current.py::test_a_sas_url_is_read_with_its_sas_and_the_sas_is_kept_nowhere" \
  "tests/integration/api/test_datasources_current.py::test_the_host_header_is_never_written_into_links" \
  tests/integration/api/test_storage_outage_current.py || true
