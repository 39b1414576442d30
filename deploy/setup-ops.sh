#!/usr/bin/env bash
# Installs the cluster's ops processes, which the launcher starts itself (cluster/ops.py):
#   - Prometheus + promtool from Debian's package (its own service stays off: 9090 is
#     the gateway daprd's metrics port);
#   - Java (Debian's headless JRE) if missing, and the Zipkin server's exec jar from Maven
#     Central into $ORDERFLOW_RUNTIME_DIR/zipkin/, checked against the SHA-512 pinned
#     here and the one Maven Central serves next to it.
#   - the jar extracted (Spring Boot's jarmode=tools) and a class-data-sharing archive of a
#     training start, which halve Zipkin's start (6 s -> 3 s here); the launcher uses them
#     when present, the plain jar otherwise. Rebuilt when the jar or the JVM changes.
# Idempotent: with everything in place it only checks versions and the jar's checksum.
set -euo pipefail

ZIPKIN_VERSION=3.6.1
ZIPKIN_SHA512=99494fd7c59dd247a7ba4e52826f57fa80addfa790a0ee5735ef27ba6935655e5b9ced8192007ccab54da277506213c4c4def2e286605d2b07b6bbfac14b4b8e
# The launcher's JVM flags (cluster/ops.py ZIPKIN_JVM): a CDS archive needs the same GC.
ZIPKIN_JVM=(-Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1)

here=$(cd "$(dirname "$0")" && pwd)
runtime_dir=${ORDERFLOW_RUNTIME_DIR:-$(cd "$here/.." && pwd)/.runtime}
jar=$runtime_dir/zipkin/zipkin-server-$ZIPKIN_VERSION-exec.jar
url=https://repo1.maven.org/maven2/io/zipkin/zipkin-server/$ZIPKIN_VERSION/zipkin-server-$ZIPKIN_VERSION-exec.jar
sudo=$([ "$(id -u)" = 0 ] || echo sudo)
# shellcheck source=deploy/apt.sh
. "$here/apt.sh"

if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  apt_install prometheus
  # The package enables and starts its own service on :9090 where an init system lets it
  # (here policy-rc.d forbids it). The launcher starts its own Prometheus, and 9090 is
  # the gateway daprd's metrics port: keep Debian's off.
  if [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now prometheus >/dev/null 2>&1 || true
  else
    $sudo invoke-rc.d prometheus stop >/dev/null 2>&1 || true
  fi
fi
echo "[setup] prometheus $(prometheus --version 2>&1 | sed -n 's/^prometheus, version \([^ ]*\).*/\1/p'), promtool $(promtool --version 2>&1 | sed -n 's/^promtool, version \([^ ]*\).*/\1/p')"

command -v java >/dev/null || apt_install default-jre-headless
echo "[setup] java $(java -version 2>&1 | sed -n '1s/.*version "\([^"]*\)".*/\1/p')"

sha512_of() { sha512sum "$1" | cut -d' ' -f1; }
if [ ! -f "$jar" ] || [ "$(sha512_of "$jar")" != "$ZIPKIN_SHA512" ]; then
  echo "[setup] downloading the Zipkin server $ZIPKIN_VERSION (135 MB) from Maven Central"
  mkdir -p "$(dirname "$jar")"
  curl -fsSL --retry 3 -o "$jar.part" "$url"
  served=$(curl -fsSL --retry 3 "$url.sha512" | cut -d' ' -f1)
  got=$(sha512_of "$jar.part")
  if [ "$got" != "$ZIPKIN_SHA512" ] || [ "$served" != "$ZIPKIN_SHA512" ]; then
    rm -f "$jar.part"
    echo "[setup] zipkin-server-$ZIPKIN_VERSION-exec.jar: checksum mismatch (got $got," \
      "Maven Central lists $served, pinned $ZIPKIN_SHA512)" >&2
    exit 1
  fi
  mv "$jar.part" "$jar"
fi

cds=$runtime_dir/zipkin/cds
stamp="$ZIPKIN_SHA512 $(java -version 2>&1 | head -1) ${ZIPKIN_JVM[*]}"
if [ ! -f "$cds/stamp" ] || [ "$(cat "$cds/stamp")" != "$stamp" ]; then
  echo "[setup] extracting the Zipkin jar and recording a class-data-sharing archive (~15 s)"
  rm -rf "$cds"
  java -Djarmode=tools -jar "$jar" extract --destination "$cds" >/dev/null
  # A start that exits once the application context is refreshed: no port is bound.
  java "${ZIPKIN_JVM[@]}" -XX:ArchiveClassesAtExit="$cds/zipkin.jsa" \
    -Dspring.context.exit=onRefresh -jar "$cds/$(basename "$jar")" \
    --zipkin.storage.type=mem >"$cds/training.log" 2>&1
  echo "$stamp" >"$cds/stamp"
fi
echo "[setup] zipkin $ZIPKIN_VERSION ($jar, SHA-512 verified; class-data-sharing archive in $cds)"
