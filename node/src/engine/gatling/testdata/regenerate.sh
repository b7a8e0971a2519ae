#!/usr/bin/env bash
# Regenerates the simulation.log fixtures of this directory with real Gatling
# (see README.txt). Needs Java 17+, Maven, Maven Central (or a warm ~/.m2) and
# a debug build of bfgg (`cargo build`). Usage, from anywhere:
#   node/src/engine/gatling/testdata/regenerate.sh VERSION OUT_NAME [ARGS...]
# e.g. regenerate.sh 3.15.1 gatling-3.15.1-binary.log
# Extra ARGS go to the JVM as system properties (-Dduration=20 ...).
set -euo pipefail
version=$1 out=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../../../.." && pwd)
project=$root/scenarios/gatling
work=$(mktemp -d)
trap 'kill "${target_pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

"$root/target/debug/bfgg" target --listen 127.0.0.1:0 --error-rate 0.2 --latency 1ms..5ms >"$work/target.out" &
target_pid=$!
for _ in $(seq 50); do grep -q listening "$work/target.out" && break; sleep 0.1; done
addr=$(sed -n 's/.*"listening":"\([^"]*\)".*/\1/p' "$work/target.out")

# Prepare: resolve and compile into a build directory of this version's own.
(cd "$project" && mvn -B -q -Dgatling.version="$version" -Dbuild.dir="target/gatling-$version" \
  test-compile dependency:build-classpath \
  -Dmdep.outputFile="target/gatling-$version/classpath.txt" -Dmdep.includeScope=test)

# Run: the JVM directly, with the JVM options gatling-maven-plugin 4.x passes.
(cd "$project" && java -XX:+HeapDumpOnOutOfMemoryError -XX:MaxInlineLevel=20 -XX:MaxTrivialSize=12 -Xmx1G \
  --add-opens=java.base/java.lang=ALL-UNNAMED --add-opens=java.base/jdk.internal.misc=ALL-UNNAMED \
  -cp "target/gatling-$version/test-classes:$(cat "target/gatling-$version/classpath.txt")" \
  -Dusers=10 -Drate=40 -Dduration=5 -DanonymousPercent=20 -DmaxFailedPercent=60 \
  -DbaseUrl="http://$addr" -Dbfgg.agent.index=0 -Dbfgg.agent.count=1 "$@" \
  io.gatling.app.Gatling -s example.DemoSimulation -rf "$work/results" -nr) | tee "$work/console.txt"

cp "$work"/results/*/simulation.log "$here/$out"
grep -v 'Failed to build request' "$work/console.txt" > "$here/${out%.log}.console.txt"
ls -l "$here/$out"
