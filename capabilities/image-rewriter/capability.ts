/**
 * Admission binding table: Pod CREATE/UPDATE (and `pods/ephemeralcontainers`, which Pepr registers with Pod
 * rules) → {@link mutatePod}. No I/O happens here; the watcher creates CachedImages later.
 */
import { Capability, Log, a, type PeprMutateRequest } from "pepr";
import type { Logger } from "pino";
import { mutatePod, type AdmissionGate } from "./mutate";
import type { RewritePolicy } from "./rewrite";

/**
 * The image-rewriter capability, bound to a policy compiled once at startup.
 *
 * Fail-open on three levels: `onError: ignore` (the webhook's `failurePolicy: Ignore`), Pepr catching callback
 * errors, and {@link mutatePod} catching its own, so a kuik bug never blocks a Pod. `gate`: the proxy gate
 * (capabilities/proxy-gate), asked before a Pod is rewritten; none in build mode and in unit tests.
 */
export function createImageRewriter(policy: RewritePolicy, gate?: AdmissionGate): Capability {
  const capability = new Capability({
    name: "image-rewriter",
    description: "Rewrites Pod images to localhost:<proxy port>/<original> and records the originals",
  });
  const { When } = capability;

  // Pods (and their ephemeral containers): rewrite images to the node-local proxy.
  When(a.Pod)
    .IsCreatedOrUpdated()
    .Alias("rewrite-images")
    .Mutate(function rewritePodImages(req: PeprMutateRequest<a.Pod>, logger?: Logger) {
      mutatePod(req, policy, logger ?? Log, gate);
    });

  return capability;
}
