// capabilities/proxy-gate/: rewrite only while the node-local proxy serves, and rescue the Pods it left stuck.
/**
 * The gate's decision table, as a pure function: may a Pod be rewritten to `localhost:<port>/…` now, given what
 * was last read of the proxy DaemonSet's Pods (one per node it schedules, whatever their state)? kuik v1 rewrote unconditionally, so a proxy that was not
 * installed, could not pull its image or crash-looped left every new Pod in ImagePullBackOff; here such Pods are
 * admitted with their original images instead, and rewriting resumes by itself once the proxy serves again.
 *
 * | status                                   | Pod's node known             | node unknown (most Pods)          |
 * | ---------------------------------------- | ---------------------------- | --------------------------------- |
 * | gate turned off (`KUIK_PROXY_GATE=false`) | rewrite                      | rewrite                           |
 * | never read yet                           | keep original (`not-observed`) | keep original                   |
 * | last read older than `staleAfterMs`      | keep original (`stale`)      | keep original                     |
 * | no proxy Pod at all                      | keep original (`not-installed`) | keep original                  |
 * | a Ready proxy Pod on the node            | rewrite (`ready-on-node`)    | —                                 |
 * | no Ready proxy Pod on the node           | keep original (`not-ready-on-node`) | —                          |
 * | Ready on more than half the proxy's nodes | —                           | rewrite (`majority-ready`)        |
 * | Ready on half of them or fewer           | —                            | keep original (`majority-unavailable`) |
 *
 * Why a majority for Pods not yet scheduled: waiting for every node would stop caching cluster-wide because of one
 * NotReady node (its DaemonSet Pod counts as unavailable) or one node mid-rollout; a Pod that lands on a node whose
 * proxy is down is rescued instead (rescue.ts). An outage on most nodes — image unpullable, a crash-looping release,
 * the DaemonSet deleted, a rollout on a one-node cluster — stops rewriting.
 *
 * The Pods rather than the DaemonSet's status: they tell readiness per node, deleting the DaemonSet deletes them,
 * and reading them needs no right beyond the Pod `list` the watcher already has.
 */

/** What one successful read of the API showed about the proxy. */
export interface ProxyStatus {
  /** When it was read (ms since the epoch). */
  observedAt: number;
  /** Nodes with a proxy Pod that is not being deleted, Ready or not. */
  nodes: ReadonlySet<string>;
  /** Those of {@link nodes} whose proxy Pod is Ready. */
  readyNodes: ReadonlySet<string>;
}

/** Why a Pod may be rewritten. */
export type OpenReason = "gate-off" | "ready-on-node" | "majority-ready";

/** Why a Pod keeps its original images. */
export type ClosedReason =
  | "not-observed"
  | "stale"
  | "not-installed"
  | "not-ready-on-node"
  | "majority-unavailable";

/** The gate's answer for one Pod. */
export type GateVerdict =
  | { rewrite: true; reason: OpenReason }
  | { rewrite: false; reason: ClosedReason; detail: string };

/** Settings of {@link decide}. */
export interface GateOptions {
  /** `false`: always rewrite (the proxy runs outside Kubernetes, e.g. as a node service). */
  enabled: boolean;
  /** A status older than this is not trusted (the API has not answered for that long). */
  staleAfterMs: number;
}

/**
 * The decision table of the file comment.
 *
 * @param status - the last successful read, `undefined` before the first one.
 * @param node - the Pod's `spec.nodeName`, when it is set at admission (DaemonSet Pods, pinned Pods) or known.
 * @param now - the current time (ms since the epoch).
 */
export function decide(
  status: ProxyStatus | undefined,
  node: string | undefined,
  now: number,
  options: GateOptions,
): GateVerdict {
  if (!options.enabled) return { rewrite: true, reason: "gate-off" };
  if (status === undefined)
    return { rewrite: false, reason: "not-observed", detail: "the proxy DaemonSet has not been read yet" };
  const age = now - status.observedAt;
  if (age > options.staleAfterMs) {
    const seconds = Math.round(age / 1000);
    return { rewrite: false, reason: "stale", detail: `the proxy's status is ${seconds}s old` };
  }
  if (status.nodes.size === 0)
    return {
      rewrite: false,
      reason: "not-installed",
      detail: "no proxy Pod exists (is its DaemonSet installed?)",
    };
  if (node !== undefined) {
    return status.readyNodes.has(node)
      ? { rewrite: true, reason: "ready-on-node" }
      : { rewrite: false, reason: "not-ready-on-node", detail: `no Ready proxy Pod on node ${node}` };
  }
  const ready = status.readyNodes.size;
  const nodes = status.nodes.size;
  if (ready * 2 > nodes) return { rewrite: true, reason: "majority-ready" };
  return {
    rewrite: false,
    reason: "majority-unavailable",
    detail: `the proxy is Ready on ${ready} of ${nodes} nodes`,
  };
}
