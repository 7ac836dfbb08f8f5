#!/usr/bin/env bash
# The test command of README.md: installs what the tests need and runs them.
#   * Debian packages (as root, or through sudo): PostgreSQL 15 with pgTAP,
#     sqitch with its Postgres driver.
#   * Python packages: tenantdb with its [test] extra, in .venv.
# Extra arguments go to pytest (e.g. scripts/test.sh -k isolation).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(postgresql-15 postgresql-15-pgtap sqitch libdbd-pg-perl)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
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
exec .venv/bin/python -m pytest "$@"
