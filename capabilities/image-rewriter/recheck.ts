/**
 * The admission rules as the watcher re-applies them (docs/security.md "What the watcher trusts"). A pod's labels,
 * annotations and even its proxy images are written by whoever creates it: `kuik.enix.io/managed` and the
 * `original-image-*` annotations can be set by hand, and `localhost:<port>/…` can be written directly. So the
 * watcher never reads an original from an annotation: it decodes each container's proxy image and runs the decoded
 * original through {@link rewritePod} itself (opt-out label, ignored namespaces, pull-policy rules, ignored and
 * accepted images, registries the proxy cannot read back). A container counts as using kuik only when admission
 * would have written exactly the image it has.
 */
import type { PodLike } from "../shared/pods";
import type { AdmittedImage, AdmittedImages } from "../shared/pod-images";
import { fromProxyImage } from "../shared/proxy-image";
import { rewritePod, type RewritePolicy } from "./rewrite";

/**
 * The watcher's view of the admission rules for `policy`: for a pod, the containers (by `kind/name`) whose image is
 * the proxy image kuik's admission gives their decoded original, with that original.
 */
export function admittedImages(policy: RewritePolicy): AdmittedImages {
  return function admitted(pod: PodLike): ReadonlyMap<string, AdmittedImage> {
    const originals = new Map<string, string>();
    const decode = <C extends { name: string; image?: string }>(kind: string, c: C): C => {
      const original = fromProxyImage(c.image ?? "", policy.proxyPort);
      if (original === undefined) return c;
      originals.set(`${kind}/${c.name}`, original);
      return { ...c, image: original };
    };
    const spec = pod.spec ?? {};
    // As a user would have written it: originals in the containers, no recorded annotation to trust.
    const asWritten: PodLike = {
      metadata: { ...pod.metadata, annotations: {} },
      spec: {
        ...spec,
        containers: spec.containers?.map(c => decode("container", c)),
        initContainers: spec.initContainers?.map(c => decode("init", c)),
        ephemeralContainers: spec.ephemeralContainers?.map(c => decode("ephemeral", c)),
      },
    };
    const out = new Map<string, AdmittedImage>();
    for (const r of rewritePod(asWritten, "CREATE", undefined, policy).report) {
      const key = `${r.kind}/${r.container}`;
      const original = originals.get(key);
      if (r.rewritten !== undefined && original !== undefined) out.set(key, { image: r.rewritten, original });
    }
    return out;
  };
}
