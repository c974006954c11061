#!/usr/bin/env bash
# down.sh (`npm run down`): stop what `npm run up` started. SIGTERM to the supervisor, which stops every process it
# started (each is also tied to it with setpriv --pdeathsig, so a SIGKILL leaves nothing behind either); SIGKILL
# after 60 s. Logs stay in .kuik/logs/ until the next `npm run up`.
set -uo pipefail
cd "$(dirname "$0")/.."
run=.kuik/run
pid=$(cat "$run/supervisor.pid" 2>/dev/null || true)
if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
  echo "kuik local cluster: not running"
else
  echo "stopping the kuik local cluster (supervisor pid $pid)"
  kill -TERM "$pid"
  for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "still running after 60 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 1
  fi
fi
# Leftovers (none expected: pdeathsig): processes recorded in .kuik/run/*.pid that still run the binary they ran.
for f in "$run"/*.pid; do
  [ -e "$f" ] || continue
  p=$(cat "$f")
  name=$(basename "$f" .pid)
  if [ -n "$p" ] && kill -0 "$p" 2>/dev/null && tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q -e kuik -e kube -e etcd -e registry; then
    echo "killing leftover $name (pid $p)"
    kill -KILL "$p" 2>/dev/null || true
  fi
  rm -f "$f"
done
echo "kuik local cluster: stopped (logs in .kuik/logs/)"
