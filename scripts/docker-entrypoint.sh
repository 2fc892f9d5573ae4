#!/bin/sh
# Container entrypoint: runs as root only long enough to give the database folder (a volume,
# often mounted root-owned) to the unprivileged user, then runs the relay as that user.
set -eu
run_as="${RUN_AS_USER:-node}"
data_dir="$(dirname "${ROOST_DB:-/data/roost.db}")"
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$data_dir"
  # Only the folder and its own files (the database, WAL, backups): never a recursive walk.
  find "$data_dir" -maxdepth 1 ! -user "$run_as" -exec chown "$run_as:$(id -gn "$run_as")" {} +
  exec setpriv --reuid="$run_as" --regid="$(id -g "$run_as")" --init-groups -- "$@"
fi
exec "$@"
