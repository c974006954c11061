// capabilities/bootstrap/: what the bootstrap applies in kuik-system.
/**
 * The kuik-system data plane the watcher's bootstrap applies: deploy/base as rendered (manifests.generated.ts,
 * committed) completed with the proxy bundle (proxy-bundle.generated.json, written by
 * scripts/generate-proxy-bundle.ts at `npm ci`, git-ignored): its immutable ConfigMap, and the DaemonSet naming it
 * (proxy-bundle.ts). `pepr deploy`'s own `pepr build` bundles the JSON into the module.
 *
 * scripts/build-module.sh builds with an empty bundle instead: the kustomize and Helm installs never bootstrap
 * (KUIK_BOOTSTRAP=false), and Helm's release Secret (1 MiB) cannot hold a module carrying it. Such a module, told to
 * bootstrap anyway, applies a DaemonSet whose loader refuses to start with the hash variable below in its message.
 */
import { DATA_PLANE } from "./manifests.generated";
import type { Manifest } from "./plan";
import bundle from "./proxy-bundle.generated.json";
import { PROXY_BUNDLE_PLACEHOLDER, withProxyBundle } from "./proxy-bundle";

/** Whether this module carries the proxy bundle (built by `pepr build`/`pepr deploy`, not scripts/build-module.sh). */
export const HAS_PROXY_BUNDLE = bundle.source !== "";

/** deploy/base with the proxy bundle, in apply order (the ConfigMap before the DaemonSet that mounts it). */
export const BOOTSTRAP_DATA_PLANE: readonly Manifest[] = withProxyBundle(
  DATA_PLANE,
  HAS_PROXY_BUNDLE
    ? bundle
    : { name: PROXY_BUNDLE_PLACEHOLDER, sha256: "none-module-built-by-build-module.sh", source: "" },
);
