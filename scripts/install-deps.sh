#!/bin/sh
# Installs the Debian packages multicad needs to build, test and demo.
# As root it runs apt-get; otherwise it prints the exact command and fails.
set -eu

PKGS="cmake make gcc pkg-config
libcurl4-openssl-dev libssl-dev libcjson-dev libsodium-dev libbsd-dev libinih-dev
libmicrohttpd-dev libcriterion-dev libsystemd-dev libwslay-dev
clang-14 libclang-rt-14-dev
python3 git
${MC_EXTRA_PKGS:-}"

# The real-CLI tests install claude and codex with npm
# (scripts/install-agent-clis.sh). A node/npm the machine already has (say
# from nodesource, whose nodejs carries npm and conflicts with Debian's npm)
# is used as it is; Debian's only when there is none.
command -v node >/dev/null 2>&1 || PKGS="$PKGS nodejs"
command -v npm >/dev/null 2>&1 || PKGS="$PKGS npm"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" -ne 0 ]; then
	echo "multicad: missing Debian packages:$missing" >&2
	echo "run as root:  $cmd" >&2
	exit 1
fi
echo "installing:$missing" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
