#!/bin/sh
# Runs once, when the primary's data directory is created: lets the `replica` service stream from it
# (the image's own pg_hba.conf line matches databases, and replication connections match no database).
set -eu
echo "host replication all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
