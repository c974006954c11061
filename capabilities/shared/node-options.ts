/**
 * Node.js flags of kuik's two Pepr Deployments, each fit for its job. Pepr gives both the same environment
 * (package.json `pepr.env`), which carries {@link ADMISSION_NODE_OPTIONS}; the kustomize install
 * (deploy/kustomization.yaml) and the Helm chart (scripts/assemble-chart.ts) give the watcher
 * {@link WATCHER_NODE_OPTIONS}. node-options.test.ts and scripts/assemble-chart-bootstrap.test.ts keep the three in step.
 *
 * - admission answers the API server on its latency path: a 1 MiB young generation makes it scavenge every few
 *   requests, which bench/admission.ts measured as p99 15.6 ms against 5–7 ms without (issue #12);
 * - the watcher holds every Pod and CachedImage in memory and is measured on its peak RSS (bench/convergence.ts):
 *   the small young generation keeps it low;
 * - both cap the old generation at 192 MiB, under the Deployments' memory limit.
 */
export const ADMISSION_NODE_OPTIONS = "--max-old-space-size=192";
export const WATCHER_NODE_OPTIONS = "--max-semi-space-size=1 --max-old-space-size=192";
