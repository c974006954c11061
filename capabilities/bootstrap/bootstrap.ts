// capabilities/bootstrap/: the optional start-up install of kuik's CRDs and data plane.
/**
 * The watcher's bootstrap (KUIK_BOOTSTRAP=true, `KuikConfig.bootstrap`, the `npx pepr deploy` install, docs/install.md §3): once at start,
 * server-side apply kuik's CRDs (waiting until they are Established), then the kuik-system data plane of
 * deploy/base with the proxy bundle's ConfigMap (data-plane.ts; that ConfigMap is created, never patched), then give Pepr's webhook kuik's objectSelector and reinvocationPolicy. Every step is idempotent; a
 * failed attempt is logged and the whole sequence retried with exponential backoff until it succeeds or the
 * watcher stops: it never stops the rest of kuik.
 */
import type { Logger } from "pino";
import { PATCH_TYPES, resourcePath, type KubeTransport } from "../kube/http";
import { KubeApiError } from "../kube/ports";
import { BOOTSTRAP_DATA_PLANE, HAS_PROXY_BUNDLE } from "./data-plane";
import { CRDS } from "./manifests.generated";
import {
  applyRequest,
  BootstrapError,
  BOOTSTRAP_FIELD_MANAGER,
  createRequest,
  describe,
  isCreatedOnce,
  isEstablished,
  webhookPatch,
  webhookRef,
  type Manifest,
  type WebhookView,
} from "./plan";

/** What the bootstrap runs against. */
export interface BootstrapDeps {
  kube: KubeTransport;
  log: Logger;
  /** Resolves after `ms` (or earlier, when stopped). */
  sleep(ms: number): Promise<void>;
  crds?: readonly Manifest[];
  dataPlane?: readonly Manifest[];
  /** Between two reads of a CRD's Established condition; default 500 ms. */
  pollMs?: number;
  /** Longest wait for a CRD to be Established in one attempt; default 30 s. */
  establishTimeoutMs?: number;
  /** First retry delay of a failed attempt, doubled up to {@link maxBackoffMs}; default 1 s. */
  baseBackoffMs?: number;
  /** Default 60 s. */
  maxBackoffMs?: number;
}

/** The running bootstrap. */
export interface Bootstrap {
  /** Resolves once the CRDs are Established (never rejects; never resolves if they never are). */
  readonly crdsEstablished: Promise<void>;
  /** Resolves once every step succeeded, or when stopped. */
  readonly done: Promise<void>;
  /** Attempts so far (1 when the first succeeded). */
  attempts(): number;
  /** Stops retrying (an attempt in flight finishes its current request). */
  stop(): void;
}

/** Starts the bootstrap at once; see {@link Bootstrap}. */
export function startBootstrap(deps: BootstrapDeps): Bootstrap {
  const crds = deps.crds ?? CRDS;
  const dataPlane = deps.dataPlane ?? BOOTSTRAP_DATA_PLANE;
  const log = deps.log;
  if (deps.dataPlane === undefined && !HAS_PROXY_BUNDLE) {
    log.error(
      "bootstrap: this module was built without the proxy bundle (scripts/build-module.sh, for the kustomize and Helm " +
        "installs): the proxy will not start. Install with `npx pepr deploy` (or `npm run build`), or with kustomize/Helm",
    );
  }
  let stopped = false;
  let attempts = 0;
  let markEstablished!: () => void;
  const crdsEstablished = new Promise<void>(resolve => (markEstablished = resolve));

  const attempt = async (): Promise<void> => {
    if (!(await applyCrds(deps, crds, () => stopped))) return;
    log.info({ crds: crds.map(c => c.metadata.name) }, "bootstrap: CRDs applied and Established");
    markEstablished();
    for (const m of dataPlane) {
      if (stopped) return;
      await (isCreatedOnce(m) ? createOnce(deps.kube, m) : deps.kube.request(applyRequest(m)));
    }
    log.info({ objects: dataPlane.map(describe) }, "bootstrap: kuik-system data plane applied");
    if (!stopped) await patchWebhook(deps.kube, log);
  };

  const done = (async () => {
    let backoff = deps.baseBackoffMs ?? 1000;
    const maxBackoff = deps.maxBackoffMs ?? 60_000;
    while (!stopped) {
      attempts++;
      try {
        await attempt();
        if (!stopped) log.info({ attempts }, "bootstrap complete");
        return;
      } catch (err) {
        log.error(
          { err, attempt: attempts, retryInMs: backoff },
          "bootstrap failed (KUIK_BOOTSTRAP=true: applying kuik's CRDs, kuik-system and the webhook settings); " +
            "retrying. Check the watcher's RBAC or install with kustomize/Helm (docs/install.md)",
        );
        await deps.sleep(backoff);
        backoff = Math.min(backoff * 2, maxBackoff);
      }
    }
  })();

  return {
    crdsEstablished,
    done,
    attempts: () => attempts,
    stop() {
      stopped = true;
    },
  };
}

/**
 * Applies every CRD, then re-applies (a no-op write whose response has the status) until each is Established.
 * Resolves `true` once all are, `false` when stopped first.
 */
async function applyCrds(
  deps: BootstrapDeps,
  crds: readonly Manifest[],
  stopped: () => boolean,
): Promise<boolean> {
  const pollMs = deps.pollMs ?? 500;
  const establishTimeoutMs = deps.establishTimeoutMs ?? 30_000;
  for (const crd of crds) {
    const deadline = Date.now() + establishTimeoutMs;
    let live = await deps.kube.request(applyRequest(crd));
    while (!isEstablished(live)) {
      if (stopped()) return false;
      if (Date.now() >= deadline) {
        throw new BootstrapError(
          "BOOTSTRAP_NOT_ESTABLISHED",
          `${describe(crd)} not Established after ${establishTimeoutMs} ms`,
        );
      }
      await deps.sleep(pollMs);
      live = await deps.kube.request(applyRequest(crd));
    }
  }
  return true;
}

/** Creates `m` unless it exists: a content-named, immutable object exists only with this content. */
async function createOnce(kube: KubeTransport, m: Manifest): Promise<void> {
  try {
    await kube.request(createRequest(m));
  } catch (err) {
    if (!(err instanceof KubeApiError && err.status === 409)) throw err;
  }
}

/** Gives Pepr's webhook kuik's objectSelector and reinvocationPolicy, when it does not have them yet. */
async function patchWebhook(kube: KubeTransport, log: Logger): Promise<void> {
  const path = resourcePath(webhookRef());
  let config: { webhooks?: WebhookView[] };
  try {
    config = await kube.request<{ webhooks?: WebhookView[] }>({ method: "GET", path, read: true });
  } catch (err) {
    throw new BootstrapError("BOOTSTRAP_WEBHOOK", `reading ${path}: ${(err as Error).message}`);
  }
  const ops = webhookPatch(config);
  if (ops.length === 0) return;
  await kube.request({
    method: "PATCH",
    path,
    query: { fieldManager: BOOTSTRAP_FIELD_MANAGER },
    body: ops,
    contentType: PATCH_TYPES.json,
  });
  log.info({ ops: ops.filter(o => o.op !== "test").map(o => o.path) }, "bootstrap: webhook patched");
}
