#!/usr/bin/env bash
# Regenerates the results fixtures of this directory with real JMeter (see
# README.txt). Needs Java 17+, Maven, Maven Central (or a warm ~/.m2) and a
# debug build of bfgg (`cargo build`). Usage, from anywhere:
#   node/src/engine/jmeter/testdata/regenerate.sh [VERSION]
# Writes jmeter-VERSION-forced.csv (bfgg's forced columns, read from
# ../results.rs) and jmeter-VERSION-default.csv (JMeter's own defaults), each
# with JMeter's summary line in a .summary.txt beside it.
set -euo pipefail
version=${1:-5.6.3}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../../../.." && pwd)
work=$(mktemp -d)
trap 'kill "${target_pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

# JMeter's home, laid out as bfgg's install.rs does it.
mkdir -p "$work/install/src/test/jmeter"
cat >"$work/install/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
  <groupId>bfgg</groupId><artifactId>jmeter-install</artifactId><version>1</version><packaging>pom</packaging>
  <build><plugins><plugin><groupId>com.lazerycode.jmeter</groupId><artifactId>jmeter-maven-plugin</artifactId><version>3.7.0</version>
    <configuration><jmeterVersion>$version</jmeterVersion></configuration></plugin></plugins></build></project>
POM
(cd "$work/install" && mvn -B -q -ntp com.lazerycode.jmeter:jmeter-maven-plugin:3.7.0:configure)
home=$(ls -d "$work"/install/target/*/jmeter)

"$root/target/debug/bfgg" target --listen 127.0.0.1:0 --error-rate 0.1 >"$work/target.out" &
target_pid=$!
for _ in $(seq 50); do grep -q listening "$work/target.out" && break; sleep 0.1; done
port=$(sed -n 's/.*"listening":"127.0.0.1:\([0-9]*\)".*/\1/p' "$work/target.out")

# bfgg's FORCED_PROPERTIES, as -J arguments.
mapfile -t forced < <(sed -n 's/^    ("\(\(jmeter\|sampleresult\)\.[a-z_.]*\)", "\([^"]*\)"),$/-J\1=\3/p' "$here/../results.rs")
if [ "${#forced[@]}" -lt 20 ]; then
  echo "could not read FORCED_PROPERTIES from results.rs (${#forced[@]} found)" >&2
  exit 1
fi

run() {
  local name=$1
  shift
  (cd "$work" && java -jar "$home/bin/ApacheJMeter-$version.jar" -n -t "$here/plan.jmx" \
    -l "$work/$name.csv" -j "$work/$name.log" -Jport="$port" "$@") | tee "$work/$name.console.txt"
  cp "$work/$name.csv" "$here/jmeter-$version-$name.csv"
  grep '^summary =' "$work/$name.console.txt" >"$here/jmeter-$version-$name.summary.txt"
}
run forced "${forced[@]}"
run default
ls -l "$here"/jmeter-"$version"-*
