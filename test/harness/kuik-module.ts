/**
 * kuik's built Pepr module running against a local control plane (control-plane.ts) as two local processes, the
 * way Pepr's Deployments run it in a cluster (pepr-notes §6, §7.2):
 *
 * 1. build: `scripts/build-module.sh` when it exists, else `npx pepr build`; skipped when the inputs (pepr.ts,
 *    package.json, capabilities/, registry-client/src/) did not change since the last build ({@link buildModule});
 * 2. cluster objects: our CRDs (deploy/crds), Pepr's PeprStore CRD, and from `dist/pepr-module-kuik.yaml` the
 *    Namespace, RBAC, ServiceAccount and webhook configurations, the webhooks rewritten to
 *    `clientConfig.url: https://127.0.0.1:<admission port>/mutate/<api path>` with the harness CA as `caBundle`
 *    (the module serves the harness loopback certificate). The Deployments, Services and module/TLS Secrets are
 *    skipped: the module runs here;
 * 3. `dist/pepr-kuik.js` twice: admission (`PEPR_WATCH_MODE=false`) and watcher (`PEPR_WATCH_MODE=true`), on
 *    their own ports (`KUIK_PEPR_PORT`), authenticated as kuik's ServiceAccount with a token from the TokenRequest
 *    API, so the generated RBAC is exercised for real (`identity: "admin"` uses the admin certificate instead).
 *    Ready when `/healthz` answers 200 on both.
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
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { request as httpsRequest } from "node:https";
import { join, relative } from "node:path";
import { keepTemp, makeTempDir, onProcessExit, removeTempDir, tiedToParent } from "./cleanup";
import type { ControlPlane, KubeObject } from "./control-plane";
import { freePort, LOOPBACK } from "./net";
import { harnessPki } from "./pki";
import { killGroup, REPO_ROOT, run, sleep } from "./tools";

/** The module's uuid (package.json `pepr.uuid`): names the bundle, the YAML and the generated objects. */
export const MODULE_UUID = "kuik";
/** Namespace of Pepr's generated objects. */
export const PEPR_NAMESPACE = "pepr-system";
/** kuik's ServiceAccount, created by the generated YAML. */
export const MODULE_SERVICE_ACCOUNT = `pepr-${MODULE_UUID}`;

const DIST = join(REPO_ROOT, "dist");
const MANIFEST = join(DIST, `pepr-module-${MODULE_UUID}.yaml`);
const STAMP = join(DIST, ".kuik-build-stamp");
const NODE = join(REPO_ROOT, "node_modules", ".bin", "node");

/** Kinds of the generated YAML that make sense with the module running as local processes. */
const CLUSTER_KINDS = new Set([
  "Namespace",
  "ClusterRole",
  "ClusterRoleBinding",
  "Role",
  "RoleBinding",
  "ServiceAccount",
  "MutatingWebhookConfiguration",
  "ValidatingWebhookConfiguration",
]);

/** Pepr's PeprStore CRD, as `runtime/controller.ts` applies it at pod start (pepr 1.1.4 `lib/assets/store.ts`). */
export const PEPR_STORE_CRD = {
  apiVersion: "apiextensions.k8s.io/v1",
  kind: "CustomResourceDefinition",
  metadata: { name: "peprstores.pepr.dev" },
  spec: {
    group: "pepr.dev",
    versions: [
      {
        name: "v1",
        served: true,
        storage: true,
        schema: {
          openAPIV3Schema: {
            type: "object",
            properties: { data: { type: "object", additionalProperties: { type: "string" } } },
          },
        },
      },
    ],
    scope: "Namespaced",
    names: { plural: "peprstores", singular: "peprstore", kind: "PeprStore" },
  },
};

// ---------------------------------------------------------------------------------------------------------------
// build

function listFiles(dir: string, keep: (path: string) => boolean): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== "node_modules" && e.name !== "dist") out.push(...listFiles(p, keep));
    } else if (keep(p)) out.push(p);
  }
  return out;
}

/**
 * The built bundle. `pepr build` names it `pepr-kuik.cjs` when package.json says `"type": "module"` (a CommonJS
 * `.js` would load as an ES module), `pepr-kuik.js` otherwise; the newer one wins, a stale other may lie around.
 */
export function moduleBundle(): string | undefined {
  const candidates = [".cjs", ".js"]
    .map(ext => join(DIST, `pepr-${MODULE_UUID}${ext}`))
    .filter(f => existsSync(f))
    .sort((x, y) => statSync(y).mtimeMs - statSync(x).mtimeMs);
  return candidates[0];
}

/** Hash of every input of the module build (sources without tests, package.json, the build script). */
export function moduleInputsHash(): string {
  const h = createHash("sha256");
  const source = (p: string): boolean => /\.(ts|json)$/.test(p) && !/\.test\.ts$/.test(p);
  const files = [
    join(REPO_ROOT, "pepr.ts"),
    join(REPO_ROOT, "package.json"),
    join(REPO_ROOT, "scripts", "build-module.sh"),
    ...listFiles(join(REPO_ROOT, "capabilities"), source),
    ...listFiles(join(REPO_ROOT, "registry-client", "src"), source),
  ].sort();
  for (const f of files) {
    if (!existsSync(f)) continue;
    h.update(relative(REPO_ROOT, f)).update("\0").update(readFileSync(f)).update("\0");
  }
  return h.digest("hex");
}

export interface BuildResult {
  /** False when the previous build was still up to date. */
  built: boolean;
  ms: number;
  /** The command that ran (or would have). */
  command: string;
}

/**
 * Builds the module unless dist/ is up to date with its inputs (or `force`): `scripts/build-module.sh` when it
 * exists, else `npx pepr build`.
 */
export async function buildModule(opts: { force?: boolean; timeoutMs?: number } = {}): Promise<BuildResult> {
  const started = Date.now();
  const script = join(REPO_ROOT, "scripts", "build-module.sh");
  const [cmd, args] = existsSync(script)
    ? ["bash", [script]]
    : [join(REPO_ROOT, "node_modules", ".bin", "pepr"), ["build"]];
  const command = [cmd, ...args].join(" ");
  const hash = moduleInputsHash();
  const upToDate =
    moduleBundle() !== undefined &&
    existsSync(MANIFEST) &&
    existsSync(STAMP) &&
    readFileSync(STAMP, "utf8").trim() === hash;
  if (upToDate && !opts.force) return { built: false, ms: Date.now() - started, command };
  rmSync(STAMP, { force: true });
  // one build at a time in dist/ (e2e tests and `npm run up` may overlap)
  const lockDir = join(REPO_ROOT, ".kuik");
  mkdirSync(lockDir, { recursive: true });
  const r = await run("flock", [join(lockDir, "module-build.lock"), cmd, ...args], {
    cwd: REPO_ROOT,
    timeoutMs: opts.timeoutMs ?? 300_000,
    // the pinned Node 24 first, as `npm run` would
    env: { PATH: `${join(REPO_ROOT, "node_modules", ".bin")}:${process.env.PATH ?? ""}` },
  });
  // `pepr build` exits 0 even when it fails ("Error building module: …", e.g. after a type error anywhere in the
  // project, since it runs tsc on tsconfig.json): only a bundle written by this run counts.
  const bundle = moduleBundle();
  const fresh = bundle !== undefined && statSync(bundle).mtimeMs >= started - 1000;
  if (r.code !== 0 || !fresh || !existsSync(MANIFEST) || /Error building module/.test(r.stdout + r.stderr)) {
    throw new Error(
      `module build failed (${command}, exit ${r.code}${fresh ? "" : ", no new bundle"}):\n` +
        (r.stdout + r.stderr).trim().split("\n").slice(-40).join("\n"),
    );
  }
  writeFileSync(STAMP, `${hash}\n`);
  return { built: true, ms: Date.now() - started, command };
}

// ---------------------------------------------------------------------------------------------------------------
// processes

export interface ModuleProcess {
  role: "admission" | "watcher";
  pid: number;
  port: number;
  logFile: string;
  readonly running: boolean;
  readLog(): string;
}

export interface KuikModuleOptions {
  /** Directory for certs, kubeconfig and logs; default a new temp dir (removed on stop). */
  dir?: string;
  /** kuik's settings (capabilities/shared/config.ts `ENV`, watcher-config.ts `WATCHER_ENV`), merged last. */
  env?: Record<string, string>;
  /** Run the build first (skipped when up to date); default true. */
  build?: boolean;
  /**
   * Who the module is: `service-account` (default) uses a TokenRequest token of kuik's ServiceAccount, so only the
   * generated RBAC applies; `admin` uses the control plane's admin certificate.
   */
  identity?: "service-account" | "admin";
  /** Lifetime of the ServiceAccount token; default "24h". */
  tokenDuration?: string;
  /** LOG_LEVEL of both processes; default "info". */
  logLevel?: string;
  /** Fixed ports; default free ones. */
  admissionPort?: number;
  watcherPort?: number;
  /** Readiness timeout per process; default 60 s. */
  readyTimeoutMs?: number;
}

export interface KuikModule {
  dir: string;
  /** The webhook path secret (PEPR_API_PATH). */
  apiPath: string;
  /** The webhook URL the API server calls. */
  webhookUrl: string;
  admission: ModuleProcess;
  watcher: ModuleProcess;
  /** Kubeconfig the module processes use. */
  kubeconfig: string;
  identity: "service-account" | "admin";
  /** The environment given to both processes (without the inherited one). */
  env: Record<string, string>;
  build: BuildResult | undefined;
  /** Milliseconds from start to both /healthz answering (build included). */
  startupMs: number;
  /** Restart one process (same port, same env), e.g. after a crash or to pick up a new token. */
  restart(role: "admission" | "watcher"): Promise<void>;
  /** Stop both processes (SIGTERM, SIGKILL after 10 s); removes the temp dir when it is ours. Idempotent. */
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
onProcessExit(() => {
  for (const c of live) killGroup(c.pid, "SIGKILL");
});

function healthz(port: number, ca: Buffer): Promise<number> {
  return new Promise(resolve => {
    const req = httpsRequest(
      { host: LOOPBACK, port, path: "/healthz", method: "GET", ca, agent: false, timeout: 2000 },
      res => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
        res.on("error", () => resolve(0));
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", () => resolve(0));
    req.end();
  });
}

/** The objects of a multi-document YAML file, parsed by kubectl (client-side dry run: no YAML library needed). */
export async function readManifest(cp: ControlPlane, file: string): Promise<KubeObject[]> {
  const r = await cp.kubectl(["create", "--dry-run=client", "-o", "json", "-f", file]);
  return parseJsonStream(r.stdout).flatMap(o => (o.kind === "List" ? (o.items ?? []) : [o]));
}

/** Parse concatenated JSON documents (what `kubectl … -o json` prints for several objects). */
export function parseJsonStream(text: string): KubeObject[] {
  const out: KubeObject[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === "{") {
      if (depth++ === 0) start = i;
    } else if (c === "}" && --depth === 0) {
      out.push(JSON.parse(text.slice(start, i + 1)) as KubeObject);
    }
  }
  return out;
}

interface WebhookClientConfig {
  url?: string;
  caBundle?: string;
  service?: { name: string; namespace: string; path?: string; port?: number };
}

/**
 * Apply kuik's CRDs, the PeprStore CRD and the cluster objects of the built module YAML, with the webhooks pointed
 * at `https://127.0.0.1:<admissionPort>`. Returns the api path.
 */
export async function applyModuleObjects(
  cp: ControlPlane,
  admissionPort: number,
  caPem: string,
): Promise<{ apiPath: string; webhookUrl: string; objects: KubeObject[] }> {
  const crdDir = join(REPO_ROOT, "deploy", "crds");
  await cp.kubectl(["apply", "--server-side", "-f", crdDir]);
  await cp.apply(PEPR_STORE_CRD);
  const crdNames = [
    "peprstores.pepr.dev",
    ...(await readManifest(cp, crdDir)).map(o => o.metadata?.name ?? "").filter(Boolean),
  ];
  await cp.kubectl([
    "wait",
    "--for=condition=Established",
    "--timeout=60s",
    ...crdNames.map(n => `crd/${n}`),
  ]);

  const all = await readManifest(cp, MANIFEST);
  const secret = all.find(o => o.kind === "Secret" && o.metadata?.name === `pepr-${MODULE_UUID}-api-path`);
  const encoded = (secret?.data as { value?: string } | undefined)?.value;
  if (!encoded) throw new Error(`${MANIFEST}: no pepr-${MODULE_UUID}-api-path Secret`);
  const apiPath = Buffer.from(encoded, "base64").toString("utf8").trim();
  const caBundle = Buffer.from(caPem).toString("base64");
  let webhookUrl = "";
  const objects = all
    .filter(o => CLUSTER_KINDS.has(o.kind ?? ""))
    .map(o => {
      if (!/WebhookConfiguration$/.test(o.kind ?? "")) return o;
      const webhooks = (o.webhooks ?? []) as Array<{ clientConfig: WebhookClientConfig }>;
      for (const w of webhooks) {
        const path =
          w.clientConfig.service?.path ??
          `/${o.kind === "MutatingWebhookConfiguration" ? "mutate" : "validate"}/${apiPath}`;
        const url = `https://${LOOPBACK}:${admissionPort}${path}`;
        if (o.kind === "MutatingWebhookConfiguration") webhookUrl = url;
        w.clientConfig = { url, caBundle };
      }
      return o;
    });
  await cp.apply(objects);
  return { apiPath, webhookUrl, objects };
}

/** Create (or reuse) kuik's namespace. */
async function ensureNamespace(cp: ControlPlane, name: string): Promise<void> {
  await cp.apply({ apiVersion: "v1", kind: "Namespace", metadata: { name } });
}

/** package.json `pepr.env`: copied into both Deployments by Pepr, so into both processes here. */
function peprEnv(): Record<string, string> {
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as {
    pepr?: { env?: Record<string, string> };
  };
  const env = { ...pkg.pepr?.env };
  delete env.PEPR_WATCH_MODE;
  return env;
}

/**
 * Build (if needed), install and start kuik's module against `cp`. Always `await stop()` it (before the control
 * plane's stop()).
 */
export async function startKuikModule(cp: ControlPlane, opts: KuikModuleOptions = {}): Promise<KuikModule> {
  const started = Date.now();
  const ownDir = !opts.dir;
  const dir = opts.dir ?? makeTempDir("kuik-module");
  mkdirSync(dir, { recursive: true });
  const logsDir = join(dir, "logs");
  mkdirSync(logsDir, { recursive: true });
  const build = opts.build === false ? undefined : await buildModule();
  const bundle = moduleBundle();
  if (!bundle) throw new Error(`no dist/pepr-${MODULE_UUID}.cjs or .js: build the module first`);

  const pki = await harnessPki();
  const caPem = readFileSync(pki.caFile, "utf8");
  const admissionPort = opts.admissionPort ?? (await freePort());
  const watcherPort = opts.watcherPort ?? (await freePort());
  const { apiPath, webhookUrl } = await applyModuleObjects(cp, admissionPort, caPem);
  const userEnv = opts.env ?? {};
  await ensureNamespace(cp, userEnv.KUIK_NAMESPACE ?? "kuik-system");

  const identity = opts.identity ?? "service-account";
  let kubeconfig = cp.kubeconfig;
  if (identity === "service-account") {
    const token = await cp.kubectl([
      "create",
      "token",
      MODULE_SERVICE_ACCOUNT,
      "-n",
      PEPR_NAMESPACE,
      `--duration=${opts.tokenDuration ?? "24h"}`,
    ]);
    kubeconfig = cp.writeTokenKubeconfig(
      join(dir, "module.kubeconfig"),
      `system:serviceaccount:${PEPR_NAMESPACE}:${MODULE_SERVICE_ACCOUNT}`,
      token.stdout.trim(),
    );
  }

  const baseEnv: Record<string, string> = {
    ...peprEnv(),
    PEPR_API_PATH: apiPath,
    SSL_KEY_PATH: pki.serverKey,
    SSL_CERT_PATH: pki.serverCert,
    KUBECONFIG: kubeconfig,
    LOG_LEVEL: opts.logLevel ?? "info",
    PEPR_PRETTY_LOGS: "false",
    ...userEnv,
  };
  const ca = Buffer.from(caPem);

  interface Proc extends ModuleProcess {
    child: ChildProcess;
    exited: Promise<void>;
    alive: boolean;
  }
  const procs = new Map<"admission" | "watcher", Proc>();
  const ports = { admission: admissionPort, watcher: watcherPort };

  const launch = (role: "admission" | "watcher"): Proc => {
    const logFile = join(logsDir, `${role}.log`);
    const env: NodeJS.ProcessEnv = { ...process.env, ...baseEnv };
    env.PEPR_WATCH_MODE = role === "watcher" ? "true" : "false";
    env.KUIK_PEPR_PORT = String(ports[role]);
    for (const k of ["KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "PEPR_MODE"]) delete env[k];
    const fd = openSync(logFile, "a");
    let child: ChildProcess;
    try {
      const [c, a] = tiedToParent(NODE, [bundle]);
      child = spawn(c, a, { cwd: REPO_ROOT, env, stdio: ["ignore", fd, fd], detached: true });
    } finally {
      closeSync(fd);
    }
    const p: Proc = {
      role,
      pid: child.pid ?? 0,
      port: ports[role],
      logFile,
      child,
      alive: child.pid !== undefined,
      exited: Promise.resolve(),
      get running() {
        return this.alive;
      },
      readLog: () => (existsSync(logFile) ? readFileSync(logFile, "utf8") : ""),
    };
    p.exited = new Promise<void>(resolve => {
      const done = (): void => {
        p.alive = false;
        live.delete(child);
        resolve();
      };
      child.once("exit", done);
      child.once("error", done);
    });
    live.add(child);
    procs.set(role, p);
    return p;
  };

  const stopProc = async (p: Proc | undefined): Promise<void> => {
    if (!p?.alive) return;
    killGroup(p.pid, "SIGTERM");
    const t = setTimeout(() => killGroup(p.pid, "SIGKILL"), 10_000);
    await p.exited;
    clearTimeout(t);
  };

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await Promise.all([stopProc(procs.get("admission")), stopProc(procs.get("watcher"))]);
    if (ownDir && !keepTemp()) removeTempDir(dir);
  };

  const waitReady = async (p: Proc): Promise<void> => {
    const deadline = Date.now() + (opts.readyTimeoutMs ?? 60_000);
    const offset = statSync(p.logFile).size;
    for (;;) {
      if ((await healthz(p.port, ca)) === 200) return;
      if (!p.alive || Date.now() > deadline) {
        const log = p.readLog().slice(offset).trim().split("\n").slice(-30).join("\n");
        throw new Error(
          `kuik ${p.role} ${p.alive ? "not healthy in time" : "exited"}; ${p.logFile}:\n${log}`,
        );
      }
      await sleep(100);
    }
  };

  try {
    const admission = launch("admission");
    const watcher = launch("watcher");
    await Promise.all([waitReady(admission), waitReady(watcher)]);
  } catch (e) {
    await stop();
    throw e;
  }

  const handle = (role: "admission" | "watcher"): ModuleProcess => ({
    role,
    port: ports[role],
    logFile: join(logsDir, `${role}.log`),
    get pid() {
      return procs.get(role)?.pid ?? 0;
    },
    get running() {
      return procs.get(role)?.alive ?? false;
    },
    readLog: () => procs.get(role)?.readLog() ?? "",
  });

  return {
    dir,
    apiPath,
    webhookUrl,
    admission: handle("admission"),
    watcher: handle("watcher"),
    kubeconfig,
    identity,
    env: baseEnv,
    build,
    startupMs: Date.now() - started,
    async restart(role) {
      await stopProc(procs.get(role));
      const p = launch(role);
      await waitReady(p);
    },
    stop,
  };
}
