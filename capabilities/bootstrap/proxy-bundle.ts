/**
 * How the proxy is shipped without an image of its own (issue #12), the way Pepr ships its module: the bundle
 * (proxy/dist/kuik-proxy.mjs) is an immutable ConfigMap whose name carries its content hash, mounted read-only into
 * the DaemonSet, whose container runs Pepr's controller image (Node.js) with {@link PROXY_LOADER}: the loader hashes
 * the file, compares it with `KUIK_PROXY_BUNDLE_SHA256` and only then imports it.
 *
 * A new bundle is a new ConfigMap name, so the DaemonSet's template changes and rolls, and running Pods keep the
 * ConfigMap they started with. Every install path derives the ConfigMap from here: the kustomize install through
 * deploy/generated/proxy-bundle/ and the `npx pepr deploy` bootstrap through proxy-bundle.generated.json (both
 * written by scripts/generate-proxy-bundle.ts); the Helm chart computes the same name with `sha256sum`
 * (deploy/chart/templates/proxy.yaml), and tests compare the three.
 */
import { createHash } from "node:crypto";
import { PROXY_DAEMONSET } from "../shared/object-names";
import type { Manifest } from "./plan";
/** The bundle's ConfigMap is `<prefix>-<first 10 hex of its sha256>`. */
export const PROXY_BUNDLE_PREFIX = "kube-image-keeper-proxy";
/** The ConfigMap deploy/base names: a placeholder the install path replaces with the content-named one. */
export const PROXY_BUNDLE_PLACEHOLDER = "kube-image-keeper-proxy-bundle";
/** The hash deploy/base sets: the loader refuses to start on it (what the placeholder holds is unknown). */
export const PROXY_BUNDLE_PLACEHOLDER_SHA256 = "unset";
/** The ConfigMap key, the file name in the mounted volume. */
export const PROXY_BUNDLE_KEY = "kuik-proxy.mjs";
/** Where the DaemonSet mounts the ConfigMap, and the file the loader is given. */
export const PROXY_BUNDLE_DIR = "/opt/kuik";
export const PROXY_BUNDLE_FILE = `${PROXY_BUNDLE_DIR}/${PROXY_BUNDLE_KEY}`;
/** The DaemonSet's volume of the ConfigMap. */
export const PROXY_BUNDLE_VOLUME = "bundle";
/** The environment variable of the expected sha256 (hex). */
export const PROXY_BUNDLE_SHA256_ENV = "KUIK_PROXY_BUNDLE_SHA256";
/** Labels of the ConfigMap: how to find (and delete) superseded bundles. */
export const PROXY_BUNDLE_LABELS = {
  "app.kubernetes.io/name": "kube-image-keeper",
  "app.kubernetes.io/component": "proxy-bundle",
} as const;

/**
 * The program `node --input-type=module -e` runs: process.argv[1] is the bundle's path and the rest its flags, as
 * with `node <bundle> <flags>`, so the bundle's own argv parsing is unchanged. Exit code 3 and one line on stderr
 * when the file is not the bundle the DaemonSet was made for (a stale or edited ConfigMap).
 */
export const PROXY_LOADER = `import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
const file = process.argv[1];
const want = process.env.${PROXY_BUNDLE_SHA256_ENV};
const got = createHash("sha256").update(readFileSync(file)).digest("hex");
if (got !== want) {
  console.error(\`kuik-proxy: \${file} has sha256 \${got}, not ${PROXY_BUNDLE_SHA256_ENV}=\${want}: refusing to run it\`);
  process.exit(3);
}
await import(file);
`;

/**
 * The container command of the DaemonSet: Node.js flags of the proxy (docs/proxy.md "Memory and throughput": a
 * 1 MiB young generation, and --expose-gc for the GC pacing of proxy/src/gc-pacer.ts), the loader, the bundle.
 */
export const PROXY_COMMAND: readonly string[] = [
  "node",
  "--max-semi-space-size=1",
  "--expose-gc",
  "--input-type=module",
  "-e",
  PROXY_LOADER,
  PROXY_BUNDLE_FILE,
];

/** A built bundle: its ConfigMap name and sha256. */
export interface ProxyBundle {
  name: string;
  sha256: string;
  source: string;
}

/** The bundle of `source` (proxy/dist/kuik-proxy.mjs's text). */
export function describeProxyBundle(source: string): ProxyBundle {
  const sha256 = createHash("sha256").update(source).digest("hex");
  return { name: `${PROXY_BUNDLE_PREFIX}-${sha256.slice(0, 10)}`, sha256, source };
}

/** The immutable ConfigMap of `bundle` in `namespace`. */
export function proxyBundleConfigMap(bundle: ProxyBundle, namespace: string): Manifest {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      name: bundle.name,
      namespace,
      labels: { ...PROXY_BUNDLE_LABELS, "app.kubernetes.io/part-of": "kuik" },
    },
    immutable: true,
    data: { [PROXY_BUNDLE_KEY]: bundle.source },
  };
}

/** Thrown when a data plane has no proxy DaemonSet shaped as deploy/base makes it. */
export class ProxyBundleError extends Error {
  readonly code = "PROXY_BUNDLE_DAEMONSET";
}

interface PodTemplate {
  spec: {
    template: {
      spec: {
        containers: Array<{ name: string; env?: Array<{ name: string; value?: string }> }>;
        volumes?: Array<{ name: string; configMap?: { name: string } }>;
      };
    };
  };
}

/**
 * `dataPlane` (deploy/base as rendered) with the bundle: its ConfigMap inserted before the proxy DaemonSet, whose
 * volume and hash variable now name it. Pure: the input is not changed.
 *
 * @throws ProxyBundleError when the DaemonSet, its volume or its hash variable is missing.
 */
export function withProxyBundle(dataPlane: readonly Manifest[], bundle: ProxyBundle): Manifest[] {
  const at = dataPlane.findIndex(m => m.kind === "DaemonSet" && m.metadata.name === PROXY_DAEMONSET);
  const original = dataPlane[at];
  if (original === undefined) throw new ProxyBundleError(`no DaemonSet ${PROXY_DAEMONSET}`);
  const ds = structuredClone(original) as Manifest & PodTemplate;
  const pod = ds.spec.template.spec;
  const volume = pod.volumes?.find(v => v.name === PROXY_BUNDLE_VOLUME)?.configMap;
  const env = pod.containers.flatMap(c => c.env ?? []).find(e => e.name === PROXY_BUNDLE_SHA256_ENV);
  if (volume === undefined || env === undefined) {
    throw new ProxyBundleError(
      `DaemonSet ${PROXY_DAEMONSET} lacks the ConfigMap volume ${PROXY_BUNDLE_VOLUME} or ${PROXY_BUNDLE_SHA256_ENV}`,
    );
  }
  volume.name = bundle.name;
  env.value = bundle.sha256;
  const namespace = ds.metadata.namespace ?? "default";
  return [...dataPlane.slice(0, at), proxyBundleConfigMap(bundle, namespace), ds, ...dataPlane.slice(at + 1)];
}
