/**
 * The whole of kuik on one machine, as the e2e tests and `npm run up` use it: a real control plane
 * (control-plane.ts), a cache registry (distribution, plain HTTP), an origin registry (HTTPS + basic auth, harness
 * CA), kuik's module as admission + watcher processes (kuik-module.ts) and the proxy (`proxy/dist/kuik-proxy.mjs`)
 * on `127.0.0.1:<port>` and `[::1]:<port>`, playing the node-local proxy the kubelet pulls `localhost:<port>/…`
 * from.
 *
 * What the kubelet would do is done here: the proxy's credentials file follows the Secret the watcher maintains
 * (in a cluster the kubelet refreshes the mounted Secret), polled every 2 s.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { cachedImageName } from "../../capabilities/shared/names";
import { cacheRepositoryOf } from "../../proxy/src/names";
import { keepTemp, makeTempDir, onProcessExit, removeTempDir, tiedToParent } from "../harness/cleanup";
import { startControlPlane, type ControlPlane, type KubeObject } from "../harness/control-plane";
import { buildImage, pushImage, type ImageSpec, type PushedImage } from "../harness/images";
import { buildModule, startKuikModule, type BuildResult, type KuikModule } from "../harness/kuik-module";
import { freePort, LOOPBACK, simpleRequest } from "../harness/net";
import { harnessPki } from "../harness/pki";
import {
  startCache,
  startOriginBasic,
  stopAll,
  type RegistryConfig,
  type StartedRegistry,
} from "../harness/registries";
import { killGroup, REPO_ROOT, run, sleep } from "../harness/tools";

/** The port kuik v1 and kuik use for the node-local proxy. */
export const DEFAULT_PROXY_PORT = 7439;
/** kuik's namespace (ignored by the webhook). */
export const KUIK_NAMESPACE = "kuik-system";
/** Secret (in {@link KUIK_NAMESPACE}) with the merged origin credentials the watcher maintains for the proxy. */
export const PROXY_CREDENTIALS_SECRET = "kuik-proxy-credentials";
/** Name of the dockerconfigjson Secret tests and the demo put in their namespaces for the origin. */
export const ORIGIN_PULL_SECRET = "origin-pull-secret";

const NODE = join(REPO_ROOT, "node_modules", ".bin", "node");
const PROXY_BUNDLE = join(REPO_ROOT, "proxy", "dist", "kuik-proxy.mjs");
const PROXY_BUILD = join(REPO_ROOT, "proxy", "build.mjs");
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
  /** Extra kuik settings (KUIK_* variables), over {@link kuikEnv}'s. */
  env?: Record<string, string>;
  /** Module identity, see kuik-module.ts; default "service-account". */
  identity?: "service-account" | "admin";
  /** LOG_LEVEL of the module; default "info". */
  logLevel?: string;
  /** Called with progress lines (`npm run up` prints them). */
  progress?: (line: string) => void;
  /** ServiceAccount token lifetime; default "24h". */
  tokenDuration?: string;
}

export interface ProxyProcess {
  pid: number;
  port: number;
  /** Listen addresses, e.g. ["127.0.0.1:7439", "[::1]:7439"]. */
  listen: string[];
  opsUrl: string;
  logFile: string;
  credentialsFile: string;
  readonly running: boolean;
  readLog(): string;
  stop(): Promise<void>;
}

export interface Stack {
  dir: string;
  cp: ControlPlane;
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
  /** Name of the CachedImage of an image, per capabilities/shared/names.ts. */
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
 * Whether the capabilities know {@link LOOPBACK_SETTING}. Without it the webhook refuses every image of a local
 * origin (`loopback-registry`, capabilities/shared/names.ts), so nothing is rewritten or cached: the scenarios that
 * need it are skipped, saying why.
 */
export function loopbackRewriteSupported(): boolean {
  const files = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap(e =>
      e.isDirectory()
        ? files(join(dir, e.name))
        : e.name.endsWith(".ts") && !e.name.endsWith(".test.ts")
          ? [join(dir, e.name)]
          : [],
    );
  return files(join(REPO_ROOT, "capabilities")).some(f => readFileSync(f, "utf8").includes(LOOPBACK_SETTING));
}

/** Why a scenario is skipped when {@link loopbackRewriteSupported} is false. */
export const LOOPBACK_SKIP_REASON =
  `SKIPPED until the capabilities read ${LOOPBACK_SETTING} (issue #5): the webhook refuses images of 127.0.0.1 ` +
  "registries (loopback-registry), and every local origin is one";

/** kuik's settings for a local stack (names from capabilities/shared/config.ts and watcher-config.ts). */
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
    // registry is unreachable from a real cluster's cache). Not read yet: see docs/local-cluster.md.
    [LOOPBACK_SETTING]: "true",
  };
}

/**
 * With KUIK_ARCHITECTURES set, kuik caches a multi-arch index whole but only those platforms' manifests, and
 * distribution v3 refuses an index whose children are missing unless told which platforms must be there
 * (docs/proxy.md): the cache registry of such an install needs this.
 */
export function sparseIndexes(architectures: readonly string[]): (config: RegistryConfig) => void {
  return config => {
    config.validation = {
      manifests: {
        indexes: {
          platforms: "list",
          platformlist: architectures.map(architecture => ({ architecture, os: "linux" })),
        },
      },
    };
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

/** Whether this machine has an IPv6 loopback. */
async function hasIpv6Loopback(): Promise<boolean> {
  return new Promise(resolve => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen({ host: "::1", port: 0 }, () => srv.close(() => resolve(true)));
  });
}

/** Build proxy/dist/kuik-proxy.mjs when missing or older than a proxy source file. */
export async function buildProxyBundle(): Promise<boolean> {
  const src = join(REPO_ROOT, "proxy", "src");
  if (!existsSync(PROXY_BUILD)) return false;
  const newest = (
    await run(
      "find",
      [src, join(REPO_ROOT, "registry-client", "src"), "-name", "*.ts", "-newer", PROXY_BUNDLE],
      {
        timeoutMs: 10_000,
      },
    ).catch(() => undefined)
  )?.stdout.trim();
  if (existsSync(PROXY_BUNDLE) && !newest) return false;
  const r = await run(NODE, [PROXY_BUILD], { cwd: REPO_ROOT, timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`proxy build failed:\n${r.stderr || r.stdout}`);
  return true;
}

const liveProxies = new Set<ChildProcess>();
onProcessExit(() => {
  for (const c of liveProxies) killGroup(c.pid, "SIGKILL");
});

/** Start the bundled proxy; ready when its /readyz answers 200. */
export async function startProxy(o: {
  dir: string;
  port: number;
  cacheUrl: string;
  caFile: string;
  logLevel?: string;
  timeoutMs?: number;
}): Promise<ProxyProcess> {
  const opsPort = await freePort();
  const listen = [`${LOOPBACK}:${o.port}`];
  if (await hasIpv6Loopback()) listen.push(`[::1]:${o.port}`);
  const credentialsFile = join(o.dir, "proxy-credentials.json");
  if (!existsSync(credentialsFile)) writeFileSync(credentialsFile, `${JSON.stringify({ auths: {} })}\n`);
  const logFile = join(o.dir, "proxy.log");
  const args = [
    PROXY_BUNDLE,
    ...listen.flatMap(l => ["--listen", l]),
    "--ops-listen",
    `${LOOPBACK}:${opsPort}`,
    "--cache-registry",
    o.cacheUrl,
    "--root-ca",
    o.caFile,
    "--credentials-file",
    credentialsFile,
    "--credentials-poll-interval",
    "1s",
    "--log-level",
    o.logLevel ?? "info",
  ];
  const fd = openSync(logFile, "a");
  let child: ChildProcess;
  try {
    const [c, a] = tiedToParent(NODE, args);
    child = spawn(c, a, { cwd: REPO_ROOT, stdio: ["ignore", fd, fd], detached: true });
  } finally {
    closeSync(fd);
  }
  liveProxies.add(child);
  let alive = child.pid !== undefined;
  const exited = new Promise<void>(resolve => {
    const done = (): void => {
      alive = false;
      liveProxies.delete(child);
      resolve();
    };
    child.once("exit", done);
    child.once("error", done);
  });
  const readLog = (): string => (existsSync(logFile) ? readFileSync(logFile, "utf8") : "");
  const stop = async (): Promise<void> => {
    if (!alive) return;
    killGroup(child.pid, "SIGTERM");
    const t = setTimeout(() => killGroup(child.pid, "SIGKILL"), 10_000);
    await exited;
    clearTimeout(t);
  };
  const opsUrl = `http://${LOOPBACK}:${opsPort}`;
  const deadline = Date.now() + (o.timeoutMs ?? 20_000);
  for (;;) {
    const status = await simpleRequest(`${opsUrl}/readyz`, { timeoutMs: 1000 }).then(
      r => r.status,
      () => 0,
    );
    if (status === 200) break;
    if (!alive || Date.now() > deadline) {
      await stop();
      throw new Error(
        `kuik-proxy ${alive ? "not ready in time" : "exited"}; ${logFile}:\n${tailText(readLog(), 20)}`,
      );
    }
    await sleep(50);
  }
  return {
    pid: child.pid ?? 0,
    port: o.port,
    listen,
    opsUrl,
    logFile,
    credentialsFile,
    get running() {
      return alive;
    },
    readLog,
    stop,
  };
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

/**
 * Keep the proxy's credentials file equal to the Secret the watcher maintains (merged over `seed`), as the kubelet
 * does for a mounted Secret. Returns a stop function.
 */
export function syncProxyCredentials(
  cp: ControlPlane,
  file: string,
  seed: Record<string, { auth: string }> = {},
  intervalMs = 2000,
): () => Promise<void> {
  let stopped = false;
  let last = "";
  const once = async (): Promise<void> => {
    const r = await cp.kubectl(
      ["get", "secret", "-n", KUIK_NAMESPACE, PROXY_CREDENTIALS_SECRET, "-o", "json"],
      {
        allowFailure: true,
        timeoutMs: 10_000,
      },
    );
    let auths: Record<string, unknown> = {};
    if (r.code === 0) {
      const data = (JSON.parse(r.stdout) as { data?: Record<string, string> }).data ?? {};
      const value = data[".dockerconfigjson"] ?? Object.values(data)[0];
      if (value) {
        try {
          auths =
            (JSON.parse(Buffer.from(value, "base64").toString("utf8")) as { auths?: Record<string, unknown> })
              .auths ?? {};
        } catch {
          auths = {};
        }
      }
    }
    const text = `${JSON.stringify({ auths: { ...seed, ...auths } }, null, 2)}\n`;
    if (text !== last) {
      writeFileSync(`${file}.tmp`, text, { mode: 0o600 });
      await run("mv", ["-f", `${file}.tmp`, file], { timeoutMs: 5000 });
      last = text;
    }
  };
  const loop = (async () => {
    while (!stopped) {
      await once().catch(() => undefined);
      for (let waited = 0; waited < intervalMs && !stopped; waited += 100) await sleep(100);
    }
  })();
  return async () => {
    stopped = true;
    await loop;
  };
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

/**
 * Start everything. Steps run in parallel where they can: the module build, the proxy build, the control plane
 * and the registries; then the module and the proxy.
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
    // Only some platforms of an index cached: the cache registry must accept the partial index.
    const architectures = (opts.env?.KUIK_ARCHITECTURES ?? "")
      .split(",")
      .map(a => a.trim())
      .filter(Boolean);
    say("building the module (skipped when up to date), starting the control plane and registries");
    const [build, , c, reg] = await Promise.all([
      timed("moduleBuild", buildModule()),
      withProxy ? timed("proxyBuild", buildProxyBundle()) : Promise.resolve(false),
      timed(
        "controlPlane",
        startControlPlane({
          dir: join(dir, "control-plane"),
          ...(opts.kubeconfigPath ? { kubeconfigPath: opts.kubeconfigPath } : {}),
        }),
      ),
      timed(
        "registries",
        Promise.all([
          startCache({
            name: "kuik-cache",
            logLevel: "warn",
            ...(architectures.length > 0 ? { configPatch: sparseIndexes(architectures) } : {}),
          }),
          startOriginBasic({ name: "origin", logLevel: "warn" }),
        ]),
      ),
    ]);
    cp = c;
    [cache, origin] = reg;
    const pki = await harnessPki();
    say(`control plane ${cp.version} ready in ${timings.controlPlane} ms; starting kuik's module`);
    const metricsPort = await freePort();
    module = await timed(
      "module",
      startKuikModule(cp, {
        dir: join(dir, "module"),
        build: false,
        identity: opts.identity ?? "service-account",
        logLevel: opts.logLevel ?? "info",
        tokenDuration: opts.tokenDuration ?? "24h",
        env: {
          ...kuikEnv({ cacheUrl: cache.url, proxyPort, caFile: pki.caFile, metricsPort }),
          ...opts.env,
        },
      }),
    );
    if (withProxy) {
      say("starting the proxy");
      const proxyDir = join(dir, "proxy");
      mkdirSync(proxyDir, { recursive: true });
      proxy = await timed(
        "proxy",
        startProxy({ dir: proxyDir, port: proxyPort, cacheUrl: cache.url, caFile: pki.caFile }),
      );
      stopSync = syncProxyCredentials(cp, proxy.credentialsFile);
    }
    timings.total = Date.now() - t0;

    const cpx = cp;
    const cachex = cache;
    const originx = origin;
    const modx = module;
    const proxyx = proxy;
    const cacheRepository = (repo: string): string => cacheRepositoryOf(originx.host, repo);
    const diagnostics = (lines = 25): string => {
      const parts: string[] = [];
      const add = (name: string, file: string): void => {
        parts.push(`--- ${name} (${file}) ---\n${tailFile(file, lines)}`);
      };
      add("admission", modx.admission.logFile);
      add("watcher", modx.watcher.logFile);
      if (proxyx) add("proxy", proxyx.logFile);
      add("cache registry", cachex.logFile);
      for (const p of cpx.processes) if (p.name !== "etcd") add(p.name, p.logFile);
      return parts.join("\n");
    };
    return {
      dir,
      cp: cpx,
      cache: cachex,
      origin: originx,
      module: modx,
      proxy: proxyx,
      proxyPort,
      build,
      timings,
      kubectl: cpx.kubectl,
      kubectlJson: cpx.kubectlJson,
      pushToOrigin: async (spec, repo, tag, format = "oci") =>
        pushImage(await buildImage(spec), originx, { repo, tag, format }),
      proxyImage: image => {
        const slash = image.indexOf("/");
        return `localhost:${proxyPort}/${image.slice(0, slash).replace(":", "-")}${image.slice(slash)}`;
      },
      cacheRepository,
      cacheDigest: async (repo, ref) => {
        const r = await simpleRequest(`${cachex.url}/v2/${cacheRepository(repo)}/manifests/${ref}`, {
          headers: { accept: MANIFEST_ACCEPT },
        });
        if (r.status !== 200) return undefined;
        return `sha256:${createHash("sha256").update(r.body).digest("hex")}`;
      },
      cachedImageName: image => cachedImageName(image),
      getCachedImage: async name => {
        const r = await cpx.kubectl(["get", "cachedimages.kuik.enix.io", name, "-o", "json"], {
          allowFailure: true,
        });
        if (r.code !== 0) {
          if (/NotFound|not found/.test(r.stderr)) return undefined;
          throw new Error(r.stderr);
        }
        return JSON.parse(r.stdout) as KubeObject;
      },
      namespaceWithPullSecret: async ns => {
        await cpx.apply({ apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
        const config = {
          auths: { [originx.host]: authEntry(originx.username ?? "", originx.password ?? "") },
        };
        await cpx.apply({
          apiVersion: "v1",
          kind: "Secret",
          type: "kubernetes.io/dockerconfigjson",
          metadata: { name: ORIGIN_PULL_SECRET, namespace: ns },
          data: { ".dockerconfigjson": Buffer.from(JSON.stringify(config)).toString("base64") },
        });
        // the ServiceAccount admission plugin refuses Pods until the controller manager made `default`
        await waitFor(`ServiceAccount ${ns}/default`, async () => {
          const r = await cpx.kubectl(["get", "serviceaccount", "default", "-n", ns], { allowFailure: true });
          return r.code === 0;
        });
      },
      diagnostics,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
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
