#!/usr/bin/env bash
# Builds the Dapr runtime Orderflow runs on, from the Go module proxy, with this
# machine's Go toolchain: daprd (only our components, see runtime/registry.go),
# placement and scheduler at DAPR_VERSION, and the dapr CLI at CLI_VERSION.
#
# Output, laid out as the dapr CLI expects for --runtime-path / DAPR_RUNTIME_PATH:
#   $ORDERFLOW_RUNTIME_DIR/dapr/.dapr/bin/{daprd,placement,scheduler,dapr}
# Idempotent: a stamp records what was built; nothing is rebuilt unless the pinned
# versions or the component registry change.
set -euo pipefail

# Pinned versions. The runtime's minor must match the Python SDK's (pyproject.toml).
# 1.18.2 is the newest 1.18 patch whose whole dependency closure the module proxy
# serves (1.18.3 needs durabletask-go v0.12.4, 1.18.0/1.18.1 need go-etcd-cron
# v0.12.5: both are refused). 1.12.0 is the newest dapr CLI module the proxy serves.
DAPR_VERSION=1.18.2
CLI_VERSION=1.12.0

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
runtime_dir=${ORDERFLOW_RUNTIME_DIR:-$root/.runtime}
bin=$runtime_dir/dapr/.dapr/bin
src=$runtime_dir/src
registry=$here/runtime/registry.go
stamp_file=$bin/.orderflow-build
stamp="dapr=$DAPR_VERSION cli=$CLI_VERSION registry=$(sha256sum "$registry" | cut -c1-16)"

export GOTOOLCHAIN=local GOFLAGS="-trimpath -buildvcs=false"

say() { printf '\033[1m[runtime]\033[0m %s\n' "$*" >&2; }

if [[ -f $stamp_file && "$(cat "$stamp_file")" == "$stamp" ]] \
  && [[ -x $bin/daprd && -x $bin/placement && -x $bin/scheduler && -x $bin/dapr ]]; then
  say "Dapr runtime $DAPR_VERSION and CLI $CLI_VERSION are up to date in $bin"
  exit 0
fi

command -v go >/dev/null || { say "Go is not installed; install Go >= 1.26 first"; exit 1; }
say "building Dapr runtime $DAPR_VERSION and CLI $CLI_VERSION with $(go version | cut -d' ' -f3) (first build: about 7 min on 2 cores)"
mkdir -p "$bin" "$src"

# Copies a module from the module cache into a writable build tree (go build's
# -overlay may not replace files under GOMODCACHE) and prints its path.
module_tree() {
  local path=$1 version=$2 name=$3
  local dir
  dir=$(go mod download -json "$path@v$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [[ -n $dir ]] || { say "could not download $path@v$version from the module proxy"; exit 1; }
  if [[ ! -f $src/$name-$version/go.mod ]]; then
    rm -rf "$src/$name-$version"
    cp -r "$dir" "$src/$name-$version"
    chmod -R u+w "$src/$name-$version"
  fi
  echo "$src/$name-$version"
}

# Runs `go build -v` and turns its package list into a progress line.
build_with_progress() {
  local label=$1 total=$2
  shift 2
  local n=0
  "$@" 2>&1 | while IFS= read -r line; do
    if [[ $line == *" "* || $line == *:* ]]; then
      printf '\n%s\n' "$line"
    else
      n=$((n + 1))
      if ((n % 20 == 0)); then printf '\r[runtime] %s: compiled %d of ~%d packages' "$label" "$n" "$total"; fi
    fi
  done
  local rc=${PIPESTATUS[0]}
  printf '\n'
  return "$rc"
}

say "fetching github.com/dapr/dapr@v$DAPR_VERSION"
dapr_tree=$(module_tree github.com/dapr/dapr "$DAPR_VERSION" dapr)
overlay=$src/overlay.json
printf '{"Replace":{"%s/cmd/daprd/components/zz_notag.go":"%s"}}\n' "$dapr_tree" "$registry" >"$overlay"
cmds=(./cmd/daprd ./cmd/placement ./cmd/scheduler)
(
  cd "$dapr_tree"
  say "resolving dependencies (downloads on first run)"
  total=$(go list -overlay "$overlay" -deps "${cmds[@]}" | wc -l)
  build_with_progress "daprd, placement, scheduler" "$total" \
    go build -v -overlay "$overlay" -o "$bin/" \
      -ldflags "-s -w -X github.com/dapr/dapr/pkg/buildinfo.version=$DAPR_VERSION" "${cmds[@]}"
)

say "fetching github.com/dapr/cli@v$CLI_VERSION"
cli_tree=$(module_tree github.com/dapr/cli "$CLI_VERSION" cli)
(
  cd "$cli_tree"
  total=$(go list -deps . | wc -l)
  build_with_progress "dapr CLI" "$total" \
    go build -v -o "$bin/dapr" -ldflags "-s -w -X main.version=$CLI_VERSION -X main.apiVersion=1.0" .
)

echo "$stamp" >"$stamp_file"
say "done: $("$bin/daprd" --version 2>/dev/null | head -1) in $bin"
