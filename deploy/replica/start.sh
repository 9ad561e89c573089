#!/bin/sh
# The `replica` service: a streaming replica of `postgres`. On its first start, a base backup of the
# primary (pg_basebackup -R also writes standby.signal and primary_conninfo); then a hot standby.
set -eu
until pg_isready -h postgres -U "$PRIMARY_USER" -d "$PRIMARY_DB" -q; do sleep 1; done
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pg_basebackup -h postgres -U "$PRIMARY_USER" -D "$PGDATA" -R -X stream
  chmod 0700 "$PGDATA"
fi
exec postgres -c hot_standby=on
