/**
 * kuik's built Pepr module running against a local control plane (control-plane.ts) as two local processes, started
 * from the installed Deployments the way Pepr's controller image starts them:
 *
 * 1. build: `scripts/build-module.sh` when it exists, else `npx pepr build`; skipped when the inputs (pepr.ts,
 *    package.json, capabilities/, registry-client/src/) did not change since the last build ({@link buildModule});
 * 2. install: everything of deploy/ with the built module (kuik-install.ts), unless the caller installed already;
 * 3. per Deployment (`pepr.dev/controller=admission|watcher`), what its container's
 *    `node_modules/pepr/dist/controller.js <hash>` does: apply Pepr's PeprStore CRD as the module's identity, take
 *    `module-<hash>.js.gz` from the installed module Secret (the `/app/load` mount), check its sha256 against the
 *    hash, write `module-<hash>.js` into an `app/` dir (with `node_modules` linked, as in the image) and run it with
 *    the container's environment. Overridden, and listed in {@link KuikModule.overrides}: the identity (`KUBECONFIG`:
 *    a TokenRequest token of the Deployment's ServiceAccount, so the generated RBAC is exercised for real), the
 *    port (`KUIK_PEPR_PORT`), the serving certificate (`SSL_*_PATH`: the harness loopback certificate),
 *    `PEPR_API_PATH` (the value of the mounted api-path Secret) and whatever the caller passes (endpoints);
 * 4. the installed webhook configurations keep everything but `clientConfig`, repointed by a JSON patch from the
 *    Service to `https://127.0.0.1:<admission port><path>` with the harness CA as `caBundle`.
 *
 * Ready when `/healthz` answers 200 on both.
 */
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { request as httpsRequest } from "node:https";
import { join, relative } from "node:path";
import { gunzipSync } from "node:zlib";
import { keepTemp, makeTempDir, removeTempDir } from "./cleanup";
import type { ControlPlane } from "./control-plane";
import {
  containerEnv,
  installedWorkload,
  installKuik,
  mainContainer,
  mountedFiles,
  objectRef,
  type Container,
  type Installation,
  type Override,
  type Workload,
} from "./kuik-install";
import { freePort, LOOPBACK } from "./net";
import { harnessPki } from "./pki";
import { startProcess, type RunningProcess } from "./process";
import { REPO_ROOT, run } from "./tools";

/** The module's uuid (package.json `pepr.uuid`): names the bundle, the YAML and the generated objects. */
export const MODULE_UUID = "kuik";
/** Namespace of Pepr's generated objects. */
export const PEPR_NAMESPACE = "pepr-system";
/** kuik's ServiceAccount, created by the generated YAML. */
export const MODULE_SERVICE_ACCOUNT = `pepr-${MODULE_UUID}`;

const DIST = join(REPO_ROOT, "dist");
const MANIFEST = join(DIST, `pepr-module-${MODULE_UUID}.yaml`);
const STAMP = join(DIST, ".kuik-build-stamp");
/** The proxy bundle's kustomize Component, written by scripts/build-module.sh (scripts/generate-proxy-bundle.ts). */
const PROXY_BUNDLE_COMPONENT = join(REPO_ROOT, "deploy", "generated", "proxy-bundle", "kustomization.yaml");
const NODE = join(REPO_ROOT, "node_modules", ".bin", "node");

export { parseJsonStream, readManifest } from "./kuik-install";

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

/**
 * Hash of every input of the module build (sources without tests, package.json, the build scripts). The proxy's
 * sources are among them: scripts/build-module.sh also builds the proxy bundle and writes its ConfigMap
 * (deploy/generated/proxy-bundle), which the installs apply and the e2e stack runs the proxy from.
 */
export function moduleInputsHash(): string {
  const h = createHash("sha256");
  const source = (p: string): boolean => /\.(ts|json)$/.test(p) && !/\.test\.ts$/.test(p);
  const files = [
    join(REPO_ROOT, "pepr.ts"),
    join(REPO_ROOT, "package.json"),
    join(REPO_ROOT, "scripts", "build-module.sh"),
    join(REPO_ROOT, "scripts", "generate-proxy-bundle.ts"),
    join(REPO_ROOT, "proxy", "build.mjs"),
    join(REPO_ROOT, "proxy", "undici-slim.mjs"),
    ...listFiles(join(REPO_ROOT, "capabilities"), source),
    ...listFiles(join(REPO_ROOT, "registry-client", "src"), source),
    ...listFiles(join(REPO_ROOT, "proxy", "src"), source),
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
    existsSync(PROXY_BUNDLE_COMPONENT) &&
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

export type Role = "admission" | "watcher";

export interface ModuleProcess {
  role: Role;
  pid: number;
  port: number;
  logFile: string;
  readonly running: boolean;
  readLog(): string;
}

/** A local value replacing (or adding) an environment variable of the installed containers, with the reason. */
export interface LocalSetting {
  value: string;
  why: string;
}

export interface KuikModuleOptions {
  /** Directory for the app dir, kubeconfig and logs; default a new temp dir (removed on stop). */
  dir?: string;
  /**
   * kuik's settings (capabilities/shared/config.ts `ENV`, watcher-config.ts `WATCHER_ENV`) installed on both
   * Deployments when this call installs (no `installation`).
   */
  env?: Record<string, string>;
  /** An installation of kuik-install.ts to start from; default: install here (with `env` and `logLevel`). */
  installation?: Installation;
  /** Local values of environment variables (endpoints, ports), each recorded as an override. */
  overrides?: Record<string, LocalSetting>;
  /** Run the build first (skipped when up to date); default true. */
  build?: boolean;
  /**
   * Who the module is: `service-account` (default) uses a TokenRequest token of the Deployments' ServiceAccount, so
   * only the generated RBAC applies; `admin` uses the control plane's admin certificate.
   */
  identity?: "service-account" | "admin";
  /** Lifetime of the ServiceAccount token; default "24h". */
  tokenDuration?: string;
  /** LOG_LEVEL installed on both Deployments when this call installs; default the generated one. */
  logLevel?: string;
  /** Fixed ports; default free ones. */
  admissionPort?: number;
  watcherPort?: number;
  /** Readiness timeout per process; default 60 s. */
  readyTimeoutMs?: number;
}

export interface KuikModule {
  dir: string;
  /** The webhook path secret (the installed api-path Secret). */
  apiPath: string;
  /** The webhook URL the API server calls. */
  webhookUrl: string;
  admission: ModuleProcess;
  watcher: ModuleProcess;
  /** Kubeconfig of the watcher process (the admission process uses its own ServiceAccount's, #13). */
  kubeconfig: string;
  identity: "service-account" | "admin";
  /** The admission process's environment (the installed one with the overrides; nothing inherited). */
  env: Record<string, string>;
  /** What the local processes do differently from the installed objects. */
  overrides: Override[];
  installation: Installation;
  build: BuildResult | undefined;
  /** Milliseconds from start to both /healthz answering (build and install included). */
  startupMs: number;
  /** Restart one process (same port, same env), e.g. after a crash or to pick up a new token. */
  restart(role: Role): Promise<void>;
  /** Stop both processes (SIGTERM, SIGKILL after 10 s); removes the temp dir when it is ours. Idempotent. */
  stop(): Promise<void>;
}

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

/** The environment every local process gets besides its container's: enough to find binaries. */
export function baseProcessEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const k of ["PATH", "HOME", "LANG", "TMPDIR"]) {
    const v = process.env[k];
    if (v !== undefined) env[k] = v;
  }
  return env;
}

/**
 * What `controller.js <hash>` does before running the module: check the hash, take `module-<hash>.js.gz` from the
 * `/app/load` mount (the module Secret), check the content's sha256, write `<appDir>/module-<hash>.js`. Returns
 * its path. `app/` gets the image's layout: `node_modules` (ours, linked) and a CommonJS package.json.
 */
async function unpackModule(cp: ControlPlane, w: Workload, c: Container, appDir: string): Promise<string> {
  const [controller, hash] = c.args ?? [];
  if (!controller?.endsWith("/pepr/dist/controller.js") || !hash || !/^[a-f0-9]{64}$/.test(hash)) {
    throw new Error(`${objectRef(w)}: args ${JSON.stringify(c.args)} are not Pepr's controller.js <sha256>`);
  }
  const files = await mountedFiles(cp, w, c, "/app/load");
  const gz = files.get(`/app/load/module-${hash}.js.gz`);
  if (!gz) throw new Error(`${objectRef(w)}: no module-${hash}.js.gz in the module Secret`);
  const code = gunzipSync(gz);
  const actual = createHash("sha256").update(code).digest("hex");
  if (actual !== hash) throw new Error(`${objectRef(w)}: module hash ${actual}, Deployment says ${hash}`);
  mkdirSync(appDir, { recursive: true });
  const file = join(appDir, `module-${hash}.js`);
  writeFileSync(file, code);
  // /app of the controller image: its package.json is not an ES module one (ours is), node_modules beside
  writeFileSync(join(appDir, "package.json"), `${JSON.stringify({ type: "commonjs" })}\n`);
  if (!existsSync(join(appDir, "node_modules")))
    symlinkSync(join(REPO_ROOT, "node_modules"), join(appDir, "node_modules"));
  return file;
}

/** controller.js's first step: server-side apply the PeprStore CRD with force, as the module's identity. */
async function applyStoreCrd(cp: ControlPlane, kubeconfig: string): Promise<void> {
  await cp.kubectl(["apply", "--server-side", "--force-conflicts", "--field-manager=pepr", "-f", "-"], {
    input: JSON.stringify(PEPR_STORE_CRD),
    kubeconfig,
  });
  await cp.kubectl([
    "wait",
    "--for=condition=Established",
    "--timeout=60s",
    `crd/${PEPR_STORE_CRD.metadata.name}`,
  ]);
}

/** The kubeconfig of the module: a TokenRequest token of `sa` (namespace `ns`), or the admin's. */
async function moduleKubeconfig(
  cp: ControlPlane,
  dir: string,
  identity: "service-account" | "admin",
  ns: string,
  sa: string,
  duration: string,
): Promise<string> {
  if (identity === "admin") return cp.kubeconfig;
  const token = await cp.kubectl(["create", "token", sa, "-n", ns, `--duration=${duration}`]);
  return cp.writeTokenKubeconfig(
    join(dir, `${sa}.kubeconfig`),
    `system:serviceaccount:${ns}:${sa}`,
    token.stdout.trim(),
  );
}

interface WebhookClientConfig {
  url?: string;
  caBundle?: string;
  service?: { name: string; namespace: string; path?: string; port?: number };
}

/**
 * Repoint every webhook of the installed webhook configurations from its Service to the local admission process
 * (JSON patch of `clientConfig` only). Returns the mutating webhook's URL and the overrides.
 */
async function repointWebhooks(
  cp: ControlPlane,
  installation: Installation,
  port: number,
  caPem: string,
): Promise<{ url: string; overrides: Override[] }> {
  const overrides: Override[] = [];
  let url = "";
  const configs = installation.objects.filter(o =>
    /^(Mutating|Validating)WebhookConfiguration$/.test(o.kind ?? ""),
  );
  for (const o of configs) {
    const kind = String(o.kind).toLowerCase();
    const live = await cp.kubectlJson(["get", kind, String(o.metadata?.name)]);
    const webhooks = (live.webhooks ?? []) as Array<{ name: string; clientConfig: WebhookClientConfig }>;
    const ops = webhooks.map((w, i) => {
      const svc = w.clientConfig.service;
      if (!svc?.path) throw new Error(`${objectRef(o)}: webhook ${w.name} has no service path`);
      const local = `https://${LOOPBACK}:${port}${svc.path}`;
      if (o.kind === "MutatingWebhookConfiguration") url = local;
      overrides.push({
        object: objectRef(o),
        setting: `webhooks[${i}].clientConfig`,
        installed: `service ${svc.namespace}/${svc.name}:${svc.port ?? 443}${svc.path}`,
        local,
        why: "a Service has no endpoints without a kubelet: the local admission process (caBundle: the harness CA)",
      });
      const clientConfig = { url: local, caBundle: Buffer.from(caPem).toString("base64") };
      return { op: "replace", path: `/webhooks/${i}/clientConfig`, value: clientConfig };
    });
    await cp.kubectl(["patch", kind, String(o.metadata?.name), "--type=json", "-p", JSON.stringify(ops)]);
  }
  if (!url) throw new Error("the installation has no MutatingWebhookConfiguration");
  return { url, overrides };
}

interface RoleSetup {
  workload: Workload;
  container: Container;
  script: string;
  env: Record<string, string>;
  overrides: Override[];
}

/** The container's environment with the local values, each recorded as an override. */
async function roleSetup(
  cp: ControlPlane,
  w: Workload,
  o: { dir: string; port: number; kubeconfig: string; identity: string; extra: Record<string, LocalSetting> },
): Promise<RoleSetup> {
  const c = mainContainer(w);
  const script = await unpackModule(cp, w, c, join(o.dir, "app"));
  const installed = containerEnv(c);
  const env = { ...installed };
  const overrides: Override[] = [];
  const set = (setting: string, local: string, why: string): void => {
    overrides.push({ object: objectRef(w), setting, installed: installed[setting], local, why });
    env[setting] = local;
  };
  const spec = w.spec.template.spec;
  set(
    "KUBECONFIG",
    o.kubeconfig,
    o.identity === "admin"
      ? "identity admin: the control plane's admin certificate"
      : `no kubelet to mount a token: a TokenRequest token of ServiceAccount ${w.metadata?.namespace}/` +
          `${spec.serviceAccountName}, so its RBAC applies`,
  );
  const containerPort = c.ports?.[0]?.containerPort ?? 3000;
  set(
    "KUIK_PEPR_PORT",
    String(o.port),
    `containerPort ${containerPort}: every process shares this host's ports`,
  );
  const pki = await harnessPki();
  const certs = spec.volumes?.find(
    v => v.name === c.volumeMounts?.find(m => m.mountPath === "/etc/certs")?.name,
  );
  const tlsWhy = `Secret ${certs?.secret?.secretName ?? "?"} (/etc/certs) is for the Service name; the webhook is called at 127.0.0.1`;
  set("SSL_CERT_PATH", pki.serverCert, tlsWhy);
  set("SSL_KEY_PATH", pki.serverKey, tlsWhy);
  if (c.volumeMounts?.some(m => m.mountPath === "/app/api-path")) {
    const value = (await mountedFiles(cp, w, c, "/app/api-path")).get("/app/api-path/value");
    if (!value) throw new Error(`${objectRef(w)}: the api-path Secret has no value`);
    set(
      "PEPR_API_PATH",
      value.toString("utf8").trim(),
      "Pepr reads /app/api-path/value (mounted Secret): its value",
    );
  }
  for (const [name, s] of Object.entries(o.extra)) set(name, s.value, s.why);
  return { workload: w, container: c, script, env, overrides };
}

/**
 * Build (if needed), install (unless given an installation) and start kuik's module against `cp`. Always
 * `await stop()` it (before the control plane's stop()).
 */
export async function startKuikModule(cp: ControlPlane, opts: KuikModuleOptions = {}): Promise<KuikModule> {
  const started = Date.now();
  const ownDir = !opts.dir;
  const dir = opts.dir ?? makeTempDir("kuik-module");
  const logsDir = join(dir, "logs");
  mkdirSync(logsDir, { recursive: true });
  const build = opts.build === false ? undefined : await buildModule();
  const installation =
    opts.installation ??
    (await installKuik(cp, {
      dir: join(dir, "install"),
      moduleSettings: { ...(opts.logLevel ? { LOG_LEVEL: opts.logLevel } : {}), ...opts.env },
    }));
  const ca = readFileSync((await harnessPki()).caFile);
  const ports: Record<Role, number> = {
    admission: opts.admissionPort ?? (await freePort()),
    watcher: opts.watcherPort ?? (await freePort()),
  };
  const roles = ["admission", "watcher"] as const;
  const [wa, ww] = await Promise.all(
    roles.map(r => installedWorkload(cp, "deployment", PEPR_NAMESPACE, `pepr.dev/controller=${r}`)),
  );
  if (!wa || !ww) throw new Error("no Pepr Deployments installed");
  const identity = opts.identity ?? "service-account";
  // Each process as its own Deployment's ServiceAccount (admission and watcher have different ones, #13).
  const kubeconfigOf = (w: typeof wa): Promise<string> =>
    moduleKubeconfig(
      cp,
      dir,
      identity,
      PEPR_NAMESPACE,
      w.spec.template.spec.serviceAccountName ?? "default",
      opts.tokenDuration ?? "24h",
    );
  const [admissionKubeconfig, kubeconfig] = [await kubeconfigOf(wa), await kubeconfigOf(ww)];
  for (const k of new Set([admissionKubeconfig, kubeconfig])) await applyStoreCrd(cp, k);
  const common = { dir, identity, extra: opts.overrides ?? {} };
  const setups: Record<Role, RoleSetup> = {
    admission: await roleSetup(cp, wa, { ...common, kubeconfig: admissionKubeconfig, port: ports.admission }),
    watcher: await roleSetup(cp, ww, { ...common, kubeconfig, port: ports.watcher }),
  };

  const procs = new Map<Role, RunningProcess>();
  const logFile = (role: Role): string => join(logsDir, `${role}.log`);
  const readLog = (role: Role): string =>
    existsSync(logFile(role)) ? readFileSync(logFile(role), "utf8") : "";
  /** Start one role's process and wait until its /healthz answers. */
  const launch = async (role: Role): Promise<void> => {
    const s = setups[role];
    procs.set(
      role,
      await startProcess({
        name: `kuik ${role}`,
        // controller.js forks module-<hash>.js with its own environment: the container's
        cmd: NODE,
        args: [s.script],
        cwd: join(dir, "app"),
        env: { ...baseProcessEnv(), ...s.env },
        logFile: logFile(role),
        ready: async () => (await healthz(ports[role], ca)) === 200,
        readyTimeoutMs: opts.readyTimeoutMs ?? 60_000,
      }),
    );
  };

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await Promise.all([procs.get("admission")?.stop(), procs.get("watcher")?.stop()]);
    if (ownDir && !keepTemp()) removeTempDir(dir);
  };

  let webhook: { url: string; overrides: Override[] };
  try {
    await Promise.all(roles.map(r => launch(r)));
    webhook = await repointWebhooks(cp, installation, ports.admission, ca.toString("utf8"));
  } catch (e) {
    await stop();
    throw e;
  }

  const handle = (role: Role): ModuleProcess => ({
    role,
    port: ports[role],
    logFile: logFile(role),
    get pid() {
      return procs.get(role)?.pid ?? 0;
    },
    get running() {
      return procs.get(role)?.isRunning() ?? false;
    },
    readLog: () => readLog(role),
  });

  return {
    dir,
    apiPath: setups.admission.env.PEPR_API_PATH ?? "",
    webhookUrl: webhook.url,
    admission: handle("admission"),
    watcher: handle("watcher"),
    kubeconfig,
    identity,
    env: setups.admission.env,
    overrides: [...setups.admission.overrides, ...setups.watcher.overrides, ...webhook.overrides],
    installation,
    build,
    startupMs: Date.now() - started,
    async restart(role) {
      await procs.get(role)?.stop();
      await launch(role);
    },
    stop,
  };
}
