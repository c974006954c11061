#!/bin/sh
# kuik: garbage collection of the cache registry, run by the registry pod's init container before `registry serve`
# (docs/garbage-collection.md). Single source: kustomize puts this file in a ConfigMap; the Helm chart ships a
# copy; test/integration/registry-gc.test.ts runs it against a real registry.
#
# Usage: garbage-collect.sh TIMEOUT_SECONDS CONFIG [registry garbage-collect flags...]
#
# It ALWAYS exits 0. kube-image-keeper v1 put the registry in read-only mode around its collection and a failed run
# left it there: every push answered 405 and caching failed until someone noticed (v1 issues #209, #482, #124).
# Here nothing is ever made read-only: a failed or timed-out collection is reported on stderr with the prefix
# "kuik-gc: FAILED" and the registry starts as usual; the blobs it did not reclaim wait for the next run. Killing a
# collection halfway is safe: it only deletes blobs no manifest references (the mark phase comes first).
set -u
timeout_seconds=$1
shift
echo "kuik-gc: registry garbage-collect $* (timeout ${timeout_seconds}s)"
if command -v timeout >/dev/null 2>&1; then
  set -- timeout "$timeout_seconds" registry garbage-collect "$@"
else
  set -- registry garbage-collect "$@"
fi
# The collection's progress (stdout) streams to the log as it goes; its error message (stderr) is kept to classify.
{ err=$("$@" 2>&1 1>&3 3>&-); status=$?; } 3>&1
case "$status:$err" in
  0:*)
    echo "kuik-gc: done"
    if [ -n "$err" ]; then printf '%s\n' "$err" >&2; fi ;;
  # A new storage (empty volume or bucket) has no repositories directory yet: nothing to collect.
  *"Path not found"*"/docker/registry/v2/repositories"*)
    echo "kuik-gc: empty storage, nothing to collect" ;;
  124:*)
    printf 'kuik-gc: FAILED: timed out after %ss; the registry starts anyway, read-write. %s\n' \
      "$timeout_seconds" "$err" >&2 ;;
  *)
    printf 'kuik-gc: FAILED (exit %s); the registry starts anyway, read-write: %s\n' "$status" "$err" >&2 ;;
esac
exit 0
