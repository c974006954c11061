/**
 * The whole of kuik on one machine, as the e2e tests and `npm run up` use it: a real control plane
 * (control-plane.ts) on which kuik is installed as a user installs it (test/harness/kuik-install.ts: `kubectl
 * kustomize` of deploy/ with the built module, `kubectl apply --server-side`, every object), and an origin registry
 * (HTTPS + basic auth, harness CA). No kubelet runs the installed workloads: their containers run here as local
 * processes, started from the installed objects (container env and args, mounted Secrets and ConfigMaps):
 *
 * - the cache registry (StatefulSet + ConfigMap) and the proxy (DaemonSet) by installed-workloads.ts;
 * - the admission and watcher processes (the Pepr Deployments) by kuik-module.ts, which also repoints the installed
 *   webhook's `clientConfig` (only that) at the local admission process.
 *
 * What cannot work without a kubelet and a cluster network is overridden, and only that: listen addresses and
 * ports, Service names (→ the local cache registry), the identity (a ServiceAccount token instead of the mounted
 * one), paths of mounted Secrets (→ local copies kept in sync), the serving certificate, and the origin's CA.
 * Every override is listed in {@link Stack.overrides} and reported through `progress`.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { cachedImageName } from "../../capabilities/shared/object-names";
import { cacheRepositoryOf } from "../../proxy/src/names";
import { keepTemp, makeTempDir, removeTempDir } from "../harness/cleanup";
import { startControlPlane, type ControlPlane, type KubeObject } from "../harness/control-plane";
import { buildImage, pushImage, type ImageSpec, type PushedImage } from "../harness/images";
import { formatOverrides, installKuik, type Installation, type Override } from "../harness/kuik-install";
import {
  buildModule,
  startKuikModule,
  type BuildResult,
  type KuikModule,
  type LocalSetting,
} from "../harness/kuik-module";
import { freePort, LOOPBACK, simpleRequest } from "../harness/net";
import { harnessPki } from "../harness/pki";
import { startOriginBasic, stopAll, type StartedRegistry } from "../harness/registries";
import { REPO_ROOT, sleep } from "../harness/tools";
import {
  KUIK_NAMESPACE,
  ORIGIN_CA_WHY,
  startInstalledCache,
  startInstalledProxy,
  type ProxyProcess,
} from "./installed-workloads";

export { KUIK_NAMESPACE, type ProxyProcess } from "./installed-workloads";

/** The port kuik v1 and kuik use for the node-local proxy. */
export const DEFAULT_PROXY_PORT = 7439;
/** Secret (in {@link KUIK_NAMESPACE}) with the merged origin credentials the watcher maintains for the proxy. */
export const PROXY_CREDENTIALS_SECRET = "kuik-proxy-credentials";
/** Name of the dockerconfigjson Secret tests and the demo put in their namespaces for the origin. */
export const ORIGIN_PULL_SECRET = "origin-pull-secret";

const MANIFEST_ACCEPT = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.docker.distribution.manifest.v2+json",
].join(", ");

export interface StackOptions {
  /** State dir (logs, certs, kubeconfigs); default a temp dir removed on stop (unless KUIK_KEEP_TMP=1). */
  dir?: string;
  /** Where to write the admin kubeconfig; default `<dir>/control-plane/kubeconfig`. */
  kubeconfigPath?: string;
  /** Proxy port; default {@link DEFAULT_PROXY_PORT} when free, else a free port. */
  proxyPort?: number;
  /** Fail instead of falling back to a free port when `proxyPort` is taken. */
  strictProxyPort?: boolean;
  /** Start the proxy (default true; false when proxy/src is missing). */
  proxy?: boolean;
  /**
   * kuik's settings (KUIK_* variables), installed on both Pepr Deployments by the install's kustomization, with
   * {@link LOOPBACK_SETTING}`=true`.
   */
  env?: Record<string, string>;
  /** Module identity, see kuik-module.ts; default "service-account". */
  identity?: "service-account" | "admin";
  /** LOG_LEVEL installed on the Pepr Deployments; default the generated one (info). */
  logLevel?: string;
  /** Called with progress lines (`npm run up` prints them). */
  progress?: (line: string) => void;
  /** ServiceAccount token lifetime; default "24h". */
  tokenDuration?: string;
}

export interface Stack {
  dir: string;
  cp: ControlPlane;
  /** What was applied (rendered manifest and objects). */
  installation: Installation;
  /** Every way the local processes differ from the installed objects, with the reason. */
  overrides: Override[];
  cache: StartedRegistry;
  origin: StartedRegistry;
  module: KuikModule;
  proxy: ProxyProcess | undefined;
  proxyPort: number;
  build: BuildResult;
  /** Milliseconds of each start step and the total. */
  timings: Record<string, number>;
  /** Run kubectl as admin (throws on failure). */
  kubectl: ControlPlane["kubectl"];
  kubectlJson: ControlPlane["kubectlJson"];
  /** Build (cached) and push a test image to the origin; `ref` is `127.0.0.1:<port>/<repo>:<tag>`. */
  pushToOrigin(spec: ImageSpec, repo: string, tag: string, format?: "oci" | "docker"): Promise<PushedImage>;
  /** The `localhost:<proxyPort>/…` image the webhook writes for `image`. */
  proxyImage(image: string): string;
  /** The repository the cache registry stores an origin repository under (`127.0.0.1-<port>/<repo>`). */
  cacheRepository(repo: string): string;
  /** Digest of `repo:tagOrDigest` in the cache registry (origin repository name), or undefined when absent. */
  cacheDigest(repo: string, tagOrDigest: string): Promise<string | undefined>;
  /** Name of the CachedImage of an image, per capabilities/shared/object-names.ts. */
  cachedImageName(image: string): string;
  /** The CachedImage, or undefined when it does not exist. */
  getCachedImage(name: string): Promise<KubeObject | undefined>;
  /** Create the namespace (idempotent) with a dockerconfigjson Secret {@link ORIGIN_PULL_SECRET} for the origin. */
  namespaceWithPullSecret(ns: string): Promise<void>;
  /** Tails of every log, for failure messages. */
  diagnostics(lines?: number): string;
  stop(): Promise<void>;
}

/** The setting that lets the webhook rewrite images of 127.0.0.1 registries (the local origins). */
export const LOOPBACK_SETTING = "KUIK_REWRITE_LOOPBACK_REGISTRIES";

/**
 * kuik's settings for a module running on loopback, all in one map (names from capabilities/shared/config.ts and
 * watcher-config.ts): what bench/admission.ts installs. The stack itself splits them: settings into the
 * installation ({@link LOOPBACK_SETTING}), the rest as local overrides.
 */
export function kuikEnv(o: {
  cacheUrl: string;
  proxyPort: number;
  caFile: string;
  metricsPort: number;
}): Record<string, string> {
  return {
    KUIK_NAMESPACE: KUIK_NAMESPACE,
    KUIK_REGISTRY_ENDPOINT: o.cacheUrl,
    KUIK_PROXY_HOST_PORT: String(o.proxyPort),
    KUIK_ROOT_CERTIFICATE_AUTHORITIES: o.caFile,
    KUIK_PROXY_CREDENTIALS_SECRET: PROXY_CREDENTIALS_SECRET,
    KUIK_METRICS_PORT: String(o.metricsPort),
    // The origins of a local stack listen on 127.0.0.1, which the webhook refuses by default (a node-local
    // registry is unreachable from a real cluster's cache); docs/local-cluster.md.
    [LOOPBACK_SETTING]: "true",
    // The watcher refuses to copy from loopback origins unless allow-listed (docs/security.md).
    KUIK_ALLOWED_ORIGINS: "127.0.0.0/8,::1",
  };
}

/** Whether `port` can be bound on 127.0.0.1 right now. */
export function portFree(port: number, host = LOOPBACK): Promise<boolean> {
  return new Promise(resolve => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}
function tailText(text: string, lines: number): string {
  return text.trim().split("\n").slice(-lines).join("\n");
}

function tailFile(file: string, lines: number): string {
  try {
    return tailText(readFileSync(file, "utf8"), lines);
  } catch {
    return "(no log)";
  }
}

/** A dockerconfigjson `auths` entry. */
export function authEntry(username: string, password: string): { auth: string } {
  return { auth: Buffer.from(`${username}:${password}`).toString("base64") };
}

/** A scenario of test/e2e/scenarios/ with its `${VAR}` placeholders replaced; throws on a missing variable. */
export function scenario(name: string, vars: Record<string, string | number>): string {
  const text = readFileSync(join(REPO_ROOT, "test", "e2e", "scenarios", `${name}.yaml`), "utf8");
  const body = text
    .split("\n")
    .filter(l => !/^\s*#/.test(l))
    .join("\n");
  return body.replace(/\$\{(\w+)\}/g, (_, v: string) => {
    const value = vars[v];
    if (value === undefined) throw new Error(`scenario ${name}: no value for \${${v}}`);
    return String(value);
  });
}

/** Poll `fn` until it returns something other than undefined/false; throws `what` + the last value on timeout. */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  opts: { timeoutMs?: number; intervalMs?: number; diagnostics?: () => string } = {},
): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  let lastError: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() > deadline) {
      const why = lastError instanceof Error ? `\nlast error: ${lastError.message}` : "";
      throw new Error(
        `timed out waiting for ${what}${why}${opts.diagnostics ? `\n${opts.diagnostics()}` : ""}`,
      );
    }
    await sleep(opts.intervalMs ?? 250);
  }
}

/** The module's local values: endpoints and ports that only make sense on this machine. */
function moduleOverrides(o: {
  cacheHost: string;
  caFile: string;
  metricsPort: number;
  proxyPort: number;
}): Record<string, LocalSetting> {
  return {
    KUIK_REGISTRY_ENDPOINT: {
      value: o.cacheHost,
      why: "the cache registry's Service name: the local cache registry",
    },
    KUIK_ROOT_CERTIFICATE_AUTHORITIES: { value: o.caFile, why: ORIGIN_CA_WHY },
    KUIK_METRICS_PORT: {
      value: String(o.metricsPort),
      why: "every process shares this host's ports: a free port",
    },
    ...(o.proxyPort === DEFAULT_PROXY_PORT
      ? {}
      : {
          KUIK_PROXY_HOST_PORT: { value: String(o.proxyPort), why: "the local proxy's port (7439 is taken)" },
        }),
  };
}

/** Settle both, then throw the first failure (after both have been handed to `keep`, so `stop()` reaches them). */
async function bothOrThrow<A, B>(
  a: Promise<A>,
  b: Promise<B>,
  keep: (a?: A, b?: B) => void,
): Promise<[A, B]> {
  const [ra, rb] = await Promise.allSettled([a, b]);
  keep(ra.status === "fulfilled" ? ra.value : undefined, rb.status === "fulfilled" ? rb.value : undefined);
  if (ra.status === "rejected") throw ra.reason;
  if (rb.status === "rejected") throw rb.reason;
  return [ra.value, rb.value];
}

/**
 * Start everything. Steps run in parallel where they can: the module and proxy builds, the control plane and the
 * origin; then the installation; then the cache registry; then the module and the proxy.
 */
export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  const t0 = Date.now();
  const timings: Record<string, number> = {};
  const say = opts.progress ?? ((): void => undefined);
  const ownDir = !opts.dir;
  const dir = opts.dir ?? makeTempDir("stack");
  mkdirSync(dir, { recursive: true });
  const timed = async <T>(name: string, p: Promise<T>): Promise<T> => {
    const s = Date.now();
    const v = await p;
    timings[name] = Date.now() - s;
    return v;
  };

  let cp: ControlPlane | undefined;
  let cache: StartedRegistry | undefined;
  let origin: StartedRegistry | undefined;
  let module: KuikModule | undefined;
  let proxy: ProxyProcess | undefined;
  let stopSync: (() => Promise<void>) | undefined;
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await stopSync?.();
    await Promise.all([proxy?.stop(), module?.stop()]);
    await Promise.all([cp?.stop(), stopAll(cache, origin)]);
    if (ownDir && !keepTemp()) removeTempDir(dir);
  };

  try {
    const withProxy = (opts.proxy ?? true) && existsSync(join(REPO_ROOT, "proxy", "src", "main.ts"));
    let proxyPort = opts.proxyPort ?? DEFAULT_PROXY_PORT;
    if (withProxy && !(await portFree(proxyPort))) {
      if (opts.strictProxyPort) throw new Error(`port ${proxyPort} is in use (is \`npm run up\` running?)`);
      proxyPort = await freePort();
    }
    // scripts/build-module.sh also builds the proxy bundle and its ConfigMap (deploy/generated/proxy-bundle), which
    // the install applies and the proxy is started from.
    say(
      "building the module and the proxy (skipped when up to date), starting the control plane and the origin",
    );
    const [build, c, o] = await Promise.all([
      timed("moduleBuild", buildModule()),
      timed(
        "controlPlane",
        startControlPlane({
          dir: join(dir, "control-plane"),
          ...(opts.kubeconfigPath ? { kubeconfigPath: opts.kubeconfigPath } : {}),
        }),
      ),
      timed("origin", startOriginBasic({ name: "origin", logLevel: "warn" })),
    ]);
    cp = c;
    origin = o;
    say(`control plane ${cp.version} ready in ${timings.controlPlane} ms; installing kuik from deploy/`);
    const moduleSettings = {
      [LOOPBACK_SETTING]: "true",
      // The proxy runs here as a local process, not as the DaemonSet's Pods (no kubelet in this stack): the gate
      // would never open. It is proven on the real node (test/e2e/real-node-gate.e2e.test.ts).
      KUIK_PROXY_GATE: "false",
      // The origins listen on the loopback, which the watcher refuses to copy from unless allow-listed.
      KUIK_ALLOWED_ORIGINS: "127.0.0.0/8,::1",
      ...(opts.logLevel ? { LOG_LEVEL: opts.logLevel } : {}),
      ...opts.env,
    };
    const installation = await timed(
      "install",
      installKuik(cp, { dir: join(dir, "install"), moduleSettings }),
    );
    say(
      `installed ${installation.objects.length} objects (kubectl apply --server-side -f ${installation.file}); ` +
        "starting the cache registry, the module and the proxy from them",
    );
    const installedCache = await timed("cache", startInstalledCache(cp, join(dir, "cache")));
    cache = installedCache.registry;
    const { caFile } = await harnessPki();
    const [m, p] = await bothOrThrow(
      timed(
        "module",
        startKuikModule(cp, {
          dir: join(dir, "module"),
          installation,
          build: false,
          identity: opts.identity ?? "service-account",
          tokenDuration: opts.tokenDuration ?? "24h",
          overrides: moduleOverrides({
            cacheHost: cache.host,
            caFile,
            metricsPort: await freePort(),
            proxyPort,
          }),
        }),
      ),
      withProxy
        ? timed(
            "proxy",
            startInstalledProxy(cp, {
              dir: join(dir, "proxy"),
              port: proxyPort,
              cacheUrl: cache.url,
              caFile,
            }),
          )
        : Promise.resolve(undefined),
      (mm, pp) => {
        module = mm;
        proxy = pp?.proxy;
        stopSync = pp?.stopSync;
      },
    );
    const overrides = [...installedCache.overrides, ...m.overrides, ...(p?.overrides ?? [])];
    const lines = formatOverrides(overrides);
    writeFileSync(join(dir, "overrides.txt"), `${lines.join("\n")}\n`);
    say(`${overrides.length} local overrides of the installed objects (${join(dir, "overrides.txt")}):`);
    for (const l of lines) say(`  ${l}`);
    timings.total = Date.now() - t0;
    return assemble({
      dir,
      cp,
      installation,
      overrides,
      cache,
      origin,
      module: m,
      proxy,
      proxyPort,
      build,
      timings,
      stop,
    });
  } catch (e) {
    await stop();
    throw e;
  }
}

/** The {@link Stack} handle over started parts. */
function assemble(
  s: Pick<
    Stack,
    | "dir"
    | "cp"
    | "installation"
    | "overrides"
    | "cache"
    | "origin"
    | "module"
    | "proxy"
    | "proxyPort"
    | "build"
    | "timings"
    | "stop"
  >,
): Stack {
  const { cp, cache, origin, module, proxy, proxyPort } = s;
  const cacheRepository = (repo: string): string => cacheRepositoryOf(origin.host, repo);
  const diagnostics = (lines = 25): string => {
    const parts: string[] = [];
    const add = (name: string, file: string): void => {
      parts.push(`--- ${name} (${file}) ---\n${tailFile(file, lines)}`);
    };
    add("admission", module.admission.logFile);
    add("watcher", module.watcher.logFile);
    if (proxy) add("proxy", proxy.logFile);
    add("cache registry", cache.logFile);
    for (const p of cp.processes) if (p.name !== "etcd") add(p.name, p.logFile);
    return parts.join("\n");
  };
  return {
    ...s,
    kubectl: cp.kubectl,
    kubectlJson: cp.kubectlJson,
    pushToOrigin: async (spec, repo, tag, format = "oci") =>
      pushImage(await buildImage(spec), origin, { repo, tag, format }),
    proxyImage: image => {
      const slash = image.indexOf("/");
      return `localhost:${proxyPort}/${image.slice(0, slash).replace(":", "-")}${image.slice(slash)}`;
    },
    cacheRepository,
    cacheDigest: async (repo, ref) => {
      const r = await simpleRequest(`${cache.url}/v2/${cacheRepository(repo)}/manifests/${ref}`, {
        headers: { accept: MANIFEST_ACCEPT },
      });
      if (r.status !== 200) return undefined;
      return `sha256:${createHash("sha256").update(r.body).digest("hex")}`;
    },
    cachedImageName: image => cachedImageName(image),
    getCachedImage: name => getCachedImage(cp, name),
    namespaceWithPullSecret: ns => createNamespaceWithPullSecret(cp, ns, origin),
    diagnostics,
  };
}

/** The CachedImage `name`, or undefined when it does not exist. */
export async function getCachedImage(cp: ControlPlane, name: string): Promise<KubeObject | undefined> {
  const r = await cp.kubectl(["get", "cachedimages.kuik.enix.io", name, "-o", "json"], {
    allowFailure: true,
  });
  if (r.code !== 0) {
    if (/NotFound|not found/.test(r.stderr)) return undefined;
    throw new Error(r.stderr);
  }
  return JSON.parse(r.stdout) as KubeObject;
}

/** Create the namespace (idempotent) with a dockerconfigjson Secret {@link ORIGIN_PULL_SECRET} for `origin`. */
export async function createNamespaceWithPullSecret(
  cp: ControlPlane,
  ns: string,
  origin: Pick<StartedRegistry, "host" | "username" | "password">,
): Promise<void> {
  await cp.apply({ apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
  const config = { auths: { [origin.host]: authEntry(origin.username ?? "", origin.password ?? "") } };
  await cp.apply({
    apiVersion: "v1",
    kind: "Secret",
    type: "kubernetes.io/dockerconfigjson",
    metadata: { name: ORIGIN_PULL_SECRET, namespace: ns },
    data: { ".dockerconfigjson": Buffer.from(JSON.stringify(config)).toString("base64") },
  });
  // the ServiceAccount admission plugin refuses Pods until the controller manager made `default`
  await waitFor(`ServiceAccount ${ns}/default`, async () => {
    const r = await cp.kubectl(["get", "serviceaccount", "default", "-n", ns], { allowFailure: true });
    return r.code === 0;
  });
}

/** Whether the Pod is Running with every container ready. */
export function podRunning(pod: KubeObject): boolean {
  const st = (pod.status ?? {}) as { phase?: string; containerStatuses?: Array<{ ready?: boolean }> };
  return st.phase === "Running" && (st.containerStatuses ?? []).every(c => c.ready === true);
}

/** The Pods of a namespace matching a label selector. */
export async function listPods(
  stack: Pick<Stack, "kubectlJson">,
  ns: string,
  selector?: string,
): Promise<KubeObject[]> {
  const list = await stack.kubectlJson(["get", "pods", "-n", ns, ...(selector ? ["-l", selector] : [])]);
  return list.items ?? [];
}

/** The images of a Pod's containers, in order. */
export function podImages(pod: KubeObject): string[] {
  const containers = (pod.spec?.containers ?? []) as Array<{ image?: string }>;
  return containers.map(c => c.image ?? "");
}

/** Wait until the CachedImage `name` exists and satisfies `ok`; returns it. */
export function waitForCachedImage(
  stack: Stack,
  name: string,
  what: string,
  ok: (ci: KubeObject) => boolean,
  timeoutMs = 30_000,
): Promise<KubeObject> {
  return waitFor(
    `CachedImage ${name}: ${what}`,
    async () => {
      const ci = await stack.getCachedImage(name);
      return ci && ok(ci) ? ci : undefined;
    },
    { timeoutMs, diagnostics: () => stack.diagnostics(15) },
  );
}

/** Whether a CachedImage says it is cached and Ready. */
export function isCachedAndReady(ci: KubeObject): boolean {
  return ci.status?.isCached === true && ci.status.phase === "Ready";
}

/** The reasons of the Events about a CachedImage (any namespace). */
export async function cachedImageEventReasons(
  stack: Pick<Stack, "kubectlJson">,
  name: string,
): Promise<string[]> {
  const list = await stack.kubectlJson([
    "get",
    "events",
    "-A",
    "--field-selector",
    `involvedObject.kind=CachedImage,involvedObject.name=${name}`,
  ]);
  return (list.items ?? []).map(e => String(e.reason ?? ""));
}
