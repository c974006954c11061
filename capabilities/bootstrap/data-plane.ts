// capabilities/bootstrap/: what the bootstrap applies in kuik-system.
/**
 * The kuik-system data plane the watcher's bootstrap applies: deploy/base as rendered (manifests.generated.ts,
 * committed) completed with the proxy bundle (proxy-bundle.generated.json, written by
 * scripts/generate-proxy-bundle.ts at `npm ci`, git-ignored): its immutable ConfigMap, and the DaemonSet naming it
 * (proxy-bundle.ts). `pepr deploy`'s own `pepr build` bundles the JSON into the module.
 */
import { DATA_PLANE } from "./manifests.generated";
import type { Manifest } from "./plan";
import bundle from "./proxy-bundle.generated.json";
import { withProxyBundle } from "./proxy-bundle";

/** deploy/base with the proxy bundle, in apply order (the ConfigMap before the DaemonSet that mounts it). */
export const BOOTSTRAP_DATA_PLANE: readonly Manifest[] = withProxyBundle(DATA_PLANE, bundle);
