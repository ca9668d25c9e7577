#!/bin/sh
# deps.sh — installs the Debian packages apr needs to build and test, when any is missing, and says so.
set -eu
need="make gcc pkg-config libcjson-dev libhwloc-dev libcriterion-dev libpcre2-dev"
# OpenBLAS is optional: apr-bench compares against it when present.
want="libopenblas0"
missing=""
for p in $need $want; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "apr: installing missing Debian packages:$missing" >&2
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >&2
$sudo apt-get install -y -qq --no-install-recommends $missing >&2
echo "apr: packages installed" >&2
