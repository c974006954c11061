/**
 * The gate: lists the proxy DaemonSet's Pods every few seconds and answers {@link ProxyGate.verdict} from memory, so
 * the admission path pays one Set lookup, never an API call. Runs in the admission Pods (the webhook asks it before
 * rewriting) and in the watcher (which reports the transitions and rescues stuck Pods, rescue.ts).
 *
 * Polling rather than a watch: one small list every {@link DEFAULT_GATE_INTERVAL_MS} per process, and a failed read
 * simply ages the last status until it is {@link GateOptions.staleAfterMs} old, when the gate closes.
 */
import type { Logger } from "pino";
import type { KubePort, ProxyPodLike } from "../kube/ports";
import type { KuikConfig } from "../shared/config";
import { decide, type GateOptions, type GateVerdict, type ProxyStatus } from "./decision";

/** How often the proxy's Pods are listed. */
export const DEFAULT_GATE_INTERVAL_MS = 5_000;
/** A status older than this closes the gate (six missed reads). */
export const DEFAULT_GATE_STALE_AFTER_MS = 30_000;
/**
 * The proxy DaemonSet's Pod selector: its selector labels in deploy/base/proxy.yaml and in the chart (whose
 * `kuik.selector` keeps exactly these, whatever the release's name).
 */
export const PROXY_POD_SELECTOR =
  "app.kubernetes.io/name=kube-image-keeper,app.kubernetes.io/component=proxy";

/** What the gate needs to know where the proxy is. */
export interface ProxyGateDeps {
  kube: Pick<KubePort, "listPods">;
  /** kuik's namespace, where the proxy DaemonSet runs. */
  namespace: string;
  /** Milliseconds since the epoch. */
  now: () => number;
  log: Logger;
  options: GateOptions;
  intervalMs?: number;
  /**
   * Called when the verdict for a Pod whose node is not known yet (most Pods) changes, and once after the first read
   * (the watcher turns it into an Event and a metric).
   */
  onChange?: (verdict: GateVerdict) => void;
}

/**
 * The production gate of kuik's configuration (`KUIK_NAMESPACE`, `KUIK_PROXY_GATE`), on the system clock, with the
 * default interval and staleness; the admission and the watcher each build theirs with it.
 */
export function configuredGate(
  config: Pick<KuikConfig, "namespace" | "proxyGate">,
  kube: ProxyGateDeps["kube"],
  log: Logger,
  onChange?: ProxyGateDeps["onChange"],
): ProxyGate {
  return new ProxyGate({
    kube,
    namespace: config.namespace,
    now: Date.now,
    log,
    options: { enabled: config.proxyGate, staleAfterMs: DEFAULT_GATE_STALE_AFTER_MS },
    ...(onChange ? { onChange } : {}),
  });
}

/** See the file comment. */
export class ProxyGate {
  #status: ProxyStatus | undefined;
  #last: GateVerdict | undefined;
  #timer: NodeJS.Timeout | undefined;
  #reading: Promise<void> | undefined;
  #failing = false;

  constructor(private readonly deps: ProxyGateDeps) {}

  /** The verdict for a Pod on `node` (its `spec.nodeName`), or for a Pod not scheduled yet. */
  verdict(node?: string): GateVerdict {
    return decide(this.#status, node, this.deps.now(), this.deps.options);
  }

  /** Reads the proxy's status once, then every interval; a no-op when the gate is turned off. */
  start(): void {
    if (!this.deps.options.enabled || this.#timer !== undefined) return;
    void this.refresh();
    this.#timer = setInterval(() => void this.refresh(), this.deps.intervalMs ?? DEFAULT_GATE_INTERVAL_MS);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One read of the API (concurrent calls share it); never rejects: a failure only ages the last status. */
  refresh(): Promise<void> {
    this.#reading ??= this.#read().finally(() => (this.#reading = undefined));
    return this.#reading;
  }

  async #read(): Promise<void> {
    const { kube, namespace, now, log } = this.deps;
    try {
      const pods = await kube.listPods(namespace, PROXY_POD_SELECTOR);
      this.#status = { observedAt: now(), ...proxyNodes(pods) };
      if (this.#failing) log.info({ namespace }, "proxy Pods readable again");
      this.#failing = false;
    } catch (err) {
      if (!this.#failing) log.warn({ err, namespace }, "cannot list the proxy Pods");
      this.#failing = true;
    }
    this.#notify();
  }

  #notify(): void {
    const verdict = this.verdict();
    const last = this.#last;
    if (last !== undefined && last.rewrite === verdict.rewrite && last.reason === verdict.reason) return;
    this.#last = verdict;
    if (verdict.rewrite)
      this.deps.log.info({ reason: verdict.reason }, "proxy serving: new Pods are rewritten");
    else
      this.deps.log.warn(
        { reason: verdict.reason, detail: verdict.detail },
        "proxy not serving: new Pods keep their original images",
      );
    this.deps.onChange?.(verdict);
  }
}

/** Nodes with a proxy Pod that is not being deleted, and those of them where it is Ready. */
export function proxyNodes(pods: readonly ProxyPodLike[]): { nodes: Set<string>; readyNodes: Set<string> } {
  const nodes = new Set<string>();
  const readyNodes = new Set<string>();
  for (const pod of pods) {
    const node = pod.spec?.nodeName;
    if (node === undefined || pod.metadata?.deletionTimestamp !== undefined) continue;
    nodes.add(node);
    if (pod.status?.conditions?.some(c => c.type === "Ready" && c.status === "True")) readyNodes.add(node);
  }
  return { nodes, readyNodes };
}
