#!/bin/sh
# ctest fixture of the isolation tests (test_isolation): the agent user
# they run agents as. Idempotent and safe to run from both build trees at
# once (flock). Never creates multicad-agent: other tests rely on its
# absence (the default agent_user then falls back). Exit 77 (skip) when
# not root: the isolation tests then skip too, saying they need root.
set -eu
U=multicad-test-agent
H=/var/lib/$U
if [ "$(id -u)" != 0 ]; then
	echo "agent_users.sh: not root: the isolation tests need root (they skip)"
	exit 77
fi
exec 9>/run/multicad-test-agent-users.lock
flock 9
if ! getent passwd "$U" >/dev/null; then
	useradd --system --user-group --home-dir "$H" --no-create-home \
		--shell /usr/sbin/nologin "$U"
fi
mkdir -p "$H"
chown "$U:$U" "$H"
chmod 0700 "$H"
echo "agent_users.sh: $U uid $(id -u "$U") home $H"
