/**
 * A real, local Kubernetes control plane on loopback: etcd, kube-apiserver and (by default) kube-controller-manager,
 * built by scripts/build-components.sh into `${KUIK_CACHE:-~/.cache/kuik}/bin`. No kubelet and no scheduler: Pods
 * are admitted (webhooks included), stored and watched, never run; Deployments become ReplicaSets and Pods through
 * the controller manager.
 *
 * - TLS everywhere on the API server: its own CA (openssl, EC P-256), a serving certificate for 127.0.0.1/::1/
 *   localhost, an admin client certificate in group `system:masters`, one for the controller manager
 *   (`system:kube-controller-manager`, with `--use-service-account-credentials` as kubeadm does) and a
 *   service-account signing key (TokenRequest works: `kubectl create token`).
 * - `--authorization-mode=Node,RBAC`, the default admission plugins (MutatingAdmissionWebhook included).
 * - etcd speaks plain HTTP on loopback with `--unsafe-no-fsync` (a throwaway store).
 *
 * Processes run in their own process group, logs in `<dir>/logs/`, tied to this Node process (`setpriv --pdeathsig
 * KILL`, plus an exit hook): they never outlive it. `npm run up` keeps them running by keeping a supervisor
 * process alive (scripts/local-cluster.ts).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { request as httpRequest } from "node:http";
import { join } from "node:path";
import { keepTemp, makeTempDir, onProcessExit, removeTempDir, tiedToParent } from "./cleanup";
import { freePort, LOOPBACK } from "./net";
import { findTool, killGroup, kuikCacheDir, run, RunError, sleep, which, type RunResult } from "./tools";

/** Binaries of the control plane. */
export type ComponentName = "etcd" | "kube-apiserver" | "kube-controller-manager" | "kubectl";

/**
 * Path of a control-plane binary: `$KUIK_<NAME>_BIN` (e.g. `KUIK_KUBE_APISERVER_BIN`), then
 * `${KUIK_CACHE:-~/.cache/kuik}/bin/<name>`, then PATH. Throws naming the build step.
 */
export function findComponent(name: ComponentName): string {
  const envName = `KUIK_${name.toUpperCase().replaceAll("-", "_")}_BIN`;
  for (const c of [process.env[envName] ?? "", join(kuikCacheDir(), "bin", name), name]) {
    if (!c) continue;
    const p = which(c);
    if (p) return p;
  }
  throw new Error(
    `${name} not found; build it with scripts/build-components.sh ${name} (-> ${join(kuikCacheDir(), "bin", name)}) or set ${envName}`,
  );
}

export interface ControlPlaneOptions {
  /**
   * State directory (pki/, etcd/, logs/, kubeconfig). Default: a new temp dir, removed by stop() (unless
   * KUIK_KEEP_TMP=1). A given dir is emptied of previous state (etcd data, PKI) first and kept on stop.
   */
  dir?: string;
  /** Where to write the admin kubeconfig; default `<dir>/kubeconfig`. */
  kubeconfigPath?: string;
  /** Start kube-controller-manager (Deployments → ReplicaSets → Pods, default ServiceAccounts, GC); default true. */
  controllerManager?: boolean;
  /** Controllers run by kube-controller-manager; default {@link DEFAULT_CONTROLLERS}. */
  controllers?: readonly string[];
  /** klog verbosity of the API server and controller manager; default 1. */
  verbosity?: number;
  /** Extra kube-apiserver flags (`--name=value`), appended last. */
  apiserverArgs?: readonly string[];
  /** Readiness timeout of the whole start; default 90 s. */
  readyTimeoutMs?: number;
}

/**
 * What the e2e tests need: Deployments and ReplicaSets create Pods; the default ServiceAccount of each namespace
 * (the ServiceAccount admission plugin rejects Pods without it); the garbage collector deletes the ReplicaSets and
 * Pods of a deleted Deployment; namespace deletion; `kube-root-ca.crt` ConfigMaps.
 */
export const DEFAULT_CONTROLLERS: readonly string[] = [
  "deployment-controller",
  "replicaset-controller",
  "serviceaccount-controller",
  "serviceaccount-token-controller",
  "garbage-collector-controller",
  "namespace-controller",
  "root-ca-certificate-publisher-controller",
];

/** One process of the control plane. */
export interface ControlPlaneProcess {
  name: "etcd" | "kube-apiserver" | "kube-controller-manager";
  pid: number;
  /** Main port: etcd client, API server secure port; 0 for the controller manager (it serves nothing). */
  port: number;
  logFile: string;
}

export interface KubectlOptions {
  /** Written to stdin (e.g. a manifest for `apply -f -`). */
  input?: string;
  /** Default 60 s. */
  timeoutMs?: number;
  /** Return the result instead of throwing on a non-zero exit. */
  allowFailure?: boolean;
  /** Another kubeconfig (e.g. a ServiceAccount's) instead of the admin one. */
  kubeconfig?: string;
}

export interface ControlPlane {
  dir: string;
  /** Admin kubeconfig (client certificate in group system:masters, CA embedded). */
  kubeconfig: string;
  /** `https://127.0.0.1:<port>`. */
  server: string;
  /** PEM of the cluster CA (API server serving certificate and client certificates). */
  caFile: string;
  /** Admin client certificate and key (PEM files). */
  adminCertFile: string;
  adminKeyFile: string;
  /** `gitVersion` of the API server, e.g. `v1.36.3`. */
  version: string;
  processes: ControlPlaneProcess[];
  logsDir: string;
  /** Milliseconds from start() to ready (API server /readyz and, with the controller manager, default SA). */
  startupMs: number;
  /** Run kubectl against this control plane; throws a RunError with the stderr tail unless `allowFailure`. */
  kubectl(args: readonly string[], opts?: KubectlOptions): Promise<RunResult>;
  /** `kubectl … -o json`, parsed. */
  kubectlJson<T = KubeObject>(args: readonly string[], opts?: KubectlOptions): Promise<T>;
  /** `kubectl apply -f -` of objects (JSON) or YAML text. */
  apply(manifest: string | readonly object[] | object, opts?: KubectlOptions): Promise<RunResult>;
  /** Write a kubeconfig for a bearer token (e.g. `kubectl create token`); returns its path. */
  writeTokenKubeconfig(path: string, user: string, token: string): string;
  /** Stop every process (SIGTERM, SIGKILL after 10 s), and remove the temp dir when it is ours. Idempotent. */
  stop(): Promise<void>;
}

/** The shape of objects kubectl prints. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    creationTimestamp?: string;
    deletionTimestamp?: string;
    finalizers?: string[];
    ownerReferences?: Array<{ kind: string; name: string; uid: string }>;
    [k: string]: unknown;
  };
  spec?: Record<string, unknown> & { [k: string]: unknown };
  status?: Record<string, unknown> & { [k: string]: unknown };
  items?: KubeObject[];
  [k: string]: unknown;
}

const live = new Set<ChildProcess>();
onProcessExit(() => {
  for (const c of live) killGroup(c.pid, "SIGKILL");
});

// ---------------------------------------------------------------------------------------------------------------
// PKI

interface ControlPlanePki {
  dir: string;
  caFile: string;
  caKey: string;
  apiserverCert: string;
  apiserverKey: string;
  adminCert: string;
  adminKey: string;
  kcmCert: string;
  kcmKey: string;
  saKey: string;
  saPub: string;
}

async function openssl(args: string[]): Promise<void> {
  const r = await run(findTool("openssl"), args, { timeoutMs: 30_000 });
  if (r.code !== 0) throw new RunError(r);
}

/** A leaf certificate signed by the CA: EC P-256, `ext` lines in an extfile. */
async function leaf(pki: ControlPlanePki, base: string, subj: string, ext: string[]): Promise<void> {
  const key = join(pki.dir, `${base}.key`);
  const csr = join(pki.dir, `${base}.csr`);
  const extFile = join(pki.dir, `${base}.ext`);
  writeFileSync(extFile, `${ext.join("\n")}\n`);
  await openssl([
    "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-sha256",
    "-subj", subj, "-keyout", key, "-out", csr,
  ]); // prettier-ignore
  await openssl([
    "x509", "-req", "-in", csr, "-CA", pki.caFile, "-CAkey", pki.caKey, "-CAcreateserial",
    "-days", "3650", "-sha256", "-extfile", extFile, "-out", join(pki.dir, `${base}.crt`),
  ]); // prettier-ignore
  rmSync(csr);
  rmSync(extFile);
}

async function createPki(dir: string): Promise<ControlPlanePki> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const f = (n: string): string => join(dir, n);
  const pki: ControlPlanePki = {
    dir,
    caFile: f("ca.crt"),
    caKey: f("ca.key"),
    apiserverCert: f("apiserver.crt"),
    apiserverKey: f("apiserver.key"),
    adminCert: f("admin.crt"),
    adminKey: f("admin.key"),
    kcmCert: f("controller-manager.crt"),
    kcmKey: f("controller-manager.key"),
    saKey: f("sa.key"),
    saPub: f("sa.pub"),
  };
  await openssl([
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-sha256",
    "-days", "3650", "-subj", "/CN=kuik-local-kubernetes-ca",
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    "-keyout", pki.caKey, "-out", pki.caFile,
  ]); // prettier-ignore
  const client = [
    "basicConstraints=CA:FALSE",
    "keyUsage=critical,digitalSignature",
    "extendedKeyUsage=clientAuth",
  ];
  await Promise.all([
    leaf(pki, "apiserver", "/CN=kube-apiserver", [
      "subjectAltName=IP:127.0.0.1,IP:::1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default," +
        "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local",
      "basicConstraints=CA:FALSE",
      "keyUsage=critical,digitalSignature,keyEncipherment",
      "extendedKeyUsage=serverAuth",
    ]),
    leaf(pki, "admin", "/O=system:masters/CN=kuik-admin", client),
    leaf(pki, "controller-manager", "/CN=system:kube-controller-manager", client),
    openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", pki.saKey]),
  ]);
  await openssl(["pkey", "-in", pki.saKey, "-pubout", "-out", pki.saPub]);
  return pki;
}

// ---------------------------------------------------------------------------------------------------------------
// kubeconfig

function b64File(path: string): string {
  return readFileSync(path).toString("base64");
}

/** A kubeconfig with one cluster `kuik-local`, one user and one context; JSON, which kubeconfig loaders accept. */
export function kubeconfigText(
  server: string,
  caFile: string,
  user: string,
  auth: { certFile: string; keyFile: string } | { token: string },
): string {
  const userEntry =
    "token" in auth
      ? { token: auth.token }
      : {
          "client-certificate-data": b64File(auth.certFile),
          "client-key-data": b64File(auth.keyFile),
        };
  const config = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "kuik-local", cluster: { server, "certificate-authority-data": b64File(caFile) } }],
    users: [{ name: user, user: userEntry }],
    contexts: [{ name: `${user}@kuik-local`, context: { cluster: "kuik-local", user } }],
    "current-context": `${user}@kuik-local`,
    preferences: {},
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}

// ---------------------------------------------------------------------------------------------------------------
// processes

interface Spawned {
  child: ChildProcess;
  exited: Promise<void>;
  isRunning(): boolean;
  logFile: string;
}

function spawnLogged(cmd: string, args: string[], logFile: string): Spawned {
  const fd = openSync(logFile, "a");
  let child: ChildProcess;
  try {
    const [c, a] = tiedToParent(cmd, args);
    child = spawn(c, a, { stdio: ["ignore", fd, fd], detached: true, env: process.env });
  } finally {
    closeSync(fd);
  }
  let running = child.pid !== undefined;
  const exited = new Promise<void>(resolve => {
    child.once("exit", () => {
      running = false;
      live.delete(child);
      resolve();
    });
    child.once("error", () => {
      running = false;
      live.delete(child);
      resolve();
    });
  });
  live.add(child);
  return { child, exited, isRunning: () => running, logFile };
}

function tail(file: string, lines = 25): string {
  try {
    return readFileSync(file, "utf8").trim().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

async function stopSpawned(s: Spawned): Promise<void> {
  if (!s.isRunning()) return;
  killGroup(s.child.pid, "SIGTERM");
  const t = setTimeout(() => killGroup(s.child.pid, "SIGKILL"), 10_000);
  await s.exited;
  clearTimeout(t);
  killGroup(s.child.pid, "SIGKILL");
}

/** GET over HTTPS with a client certificate (or plain HTTP); resolves the status and body, 0 on error. */
function probe(
  url: string,
  tls?: { ca: Buffer; cert: Buffer; key: Buffer },
  timeoutMs = 2000,
): Promise<{ status: number; body: string }> {
  return new Promise(resolve => {
    const u = new URL(url);
    const fn = u.protocol === "https:" ? httpsRequest : httpRequest;
    const req = fn(u, { method: "GET", agent: false, timeout: timeoutMs, ...(tls ?? {}) }, res => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      res.on("error", () => resolve({ status: 0, body: "" }));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", () => resolve({ status: 0, body: "" }));
    req.end();
  });
}

// ---------------------------------------------------------------------------------------------------------------
// start

/**
 * Start etcd, kube-apiserver and (unless disabled) kube-controller-manager on free loopback ports, wait until the
 * API server is ready (and the `default` ServiceAccount exists when the controller manager runs), write the admin
 * kubeconfig. Always `await stop()` it.
 */
export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const started = Date.now();
  const ownDir = !opts.dir;
  const dir = opts.dir ?? makeTempDir("control-plane");
  const withKcm = opts.controllerManager ?? true;
  const bins = {
    etcd: findComponent("etcd"),
    apiserver: findComponent("kube-apiserver"),
    kubectl: findComponent("kubectl"),
    kcm: withKcm ? findComponent("kube-controller-manager") : "",
  };
  for (const d of ["pki", "etcd"]) rmSync(join(dir, d), { recursive: true, force: true });
  const logsDir = join(dir, "logs");
  mkdirSync(logsDir, { recursive: true });
  const pki = await createPki(join(dir, "pki"));
  const kubeconfig = opts.kubeconfigPath ?? join(dir, "kubeconfig");
  const verbosity = String(opts.verbosity ?? 1);
  const deadline = started + (opts.readyTimeoutMs ?? 90_000);
  const spawned: Spawned[] = [];
  const processes: ControlPlaneProcess[] = [];
  let stopped = false;

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    // controller manager first, etcd last: the API server must not lose its store while others still talk to it
    for (const s of [...spawned].reverse()) await stopSpawned(s);
    if (ownDir && !keepTemp()) removeTempDir(dir);
  };

  const fail = async (what: string, s: Spawned): Promise<never> => {
    const state = s.isRunning() ? "not ready in time" : "exited";
    const msg = `${what} ${state}; ${s.logFile}:\n${tail(s.logFile)}`;
    await stop();
    throw new Error(msg);
  };

  try {
    // etcd
    const etcdPort = await freePort();
    const peerPort = await freePort();
    const etcdUrl = `http://${LOOPBACK}:${etcdPort}`;
    const peerUrl = `http://${LOOPBACK}:${peerPort}`;
    const etcd = spawnLogged(
      bins.etcd,
      [
        "--name=kuik",
        `--data-dir=${join(dir, "etcd")}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=kuik=${peerUrl}`,
        "--initial-cluster-state=new",
        "--unsafe-no-fsync",
        "--log-level=warn",
      ],
      join(logsDir, "etcd.log"),
    );
    spawned.push(etcd);
    processes.push({ name: "etcd", pid: etcd.child.pid ?? 0, port: etcdPort, logFile: etcd.logFile });
    for (;;) {
      const r = await probe(`${etcdUrl}/health`);
      if (r.status === 200 && r.body.includes("true")) break;
      if (!etcd.isRunning() || Date.now() > deadline) await fail("etcd", etcd);
      await sleep(50);
    }

    // kube-apiserver
    const apiPort = await freePort();
    const server = `https://${LOOPBACK}:${apiPort}`;
    const apiserver = spawnLogged(
      bins.apiserver,
      [
        `--etcd-servers=${etcdUrl}`,
        `--bind-address=${LOOPBACK}`,
        `--advertise-address=${LOOPBACK}`,
        `--secure-port=${apiPort}`,
        `--tls-cert-file=${pki.apiserverCert}`,
        `--tls-private-key-file=${pki.apiserverKey}`,
        `--client-ca-file=${pki.caFile}`,
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        `--service-account-key-file=${pki.saPub}`,
        `--service-account-signing-key-file=${pki.saKey}`,
        "--service-account-max-token-expiration=8760h",
        "--service-cluster-ip-range=10.96.0.0/16",
        "--authorization-mode=Node,RBAC",
        "--allow-privileged=true",
        // no Node object backs 127.0.0.1; Endpoints validation refuses loopback IPs anyway
        "--endpoint-reconciler-type=none",
        "--profiling=false",
        `--v=${verbosity}`,
        ...(opts.apiserverArgs ?? []),
      ],
      join(logsDir, "kube-apiserver.log"),
    );
    spawned.push(apiserver);
    processes.push({
      name: "kube-apiserver",
      pid: apiserver.child.pid ?? 0,
      port: apiPort,
      logFile: apiserver.logFile,
    });
    const tls = {
      ca: readFileSync(pki.caFile),
      cert: readFileSync(pki.adminCert),
      key: readFileSync(pki.adminKey),
    };
    for (;;) {
      const r = await probe(`${server}/readyz`, tls);
      if (r.status === 200) break;
      if (!apiserver.isRunning() || Date.now() > deadline) await fail("kube-apiserver", apiserver);
      await sleep(100);
    }
    writeFileSync(
      kubeconfig,
      kubeconfigText(server, pki.caFile, "kuik-admin", { certFile: pki.adminCert, keyFile: pki.adminKey }),
      { mode: 0o600 },
    );
    const version = JSON.parse((await probe(`${server}/version`, tls)).body) as { gitVersion?: string };

    // kube-controller-manager
    if (withKcm) {
      const kcmKubeconfig = join(dir, "controller-manager.kubeconfig");
      writeFileSync(
        kcmKubeconfig,
        kubeconfigText(server, pki.caFile, "system:kube-controller-manager", {
          certFile: pki.kcmCert,
          keyFile: pki.kcmKey,
        }),
        { mode: 0o600 },
      );
      const kcm = spawnLogged(
        bins.kcm,
        [
          `--kubeconfig=${kcmKubeconfig}`,
          `--authentication-kubeconfig=${kcmKubeconfig}`,
          `--authorization-kubeconfig=${kcmKubeconfig}`,
          "--secure-port=0",
          "--leader-elect=false",
          "--use-service-account-credentials=true",
          `--service-account-private-key-file=${pki.saKey}`,
          `--root-ca-file=${pki.caFile}`,
          `--controllers=${(opts.controllers ?? DEFAULT_CONTROLLERS).join(",")}`,
          // quick reactions for tests: the defaults are tuned for big clusters
          "--concurrent-deployment-syncs=5",
          "--concurrent-replicaset-syncs=5",
          "--concurrent-gc-syncs=5",
          `--v=${verbosity}`,
        ],
        join(logsDir, "kube-controller-manager.log"),
      );
      spawned.push(kcm);
      processes.push({
        name: "kube-controller-manager",
        pid: kcm.child.pid ?? 0,
        port: 0,
        logFile: kcm.logFile,
      });
      // The ServiceAccount admission plugin refuses Pods until their namespace's `default` SA exists.
      for (;;) {
        const r = await probe(`${server}/api/v1/namespaces/default/serviceaccounts/default`, tls);
        if (r.status === 200) break;
        if (!kcm.isRunning() || Date.now() > deadline) await fail("kube-controller-manager", kcm);
        await sleep(100);
      }
    }

    const kubectl = async (args: readonly string[], o: KubectlOptions = {}): Promise<RunResult> => {
      const r = await run(bins.kubectl, [`--kubeconfig=${o.kubeconfig ?? kubeconfig}`, ...args], {
        timeoutMs: o.timeoutMs ?? 60_000,
        ...(o.input !== undefined ? { input: o.input } : {}),
      });
      if (r.code !== 0 && !o.allowFailure) throw new RunError(r);
      return r;
    };
    const kubectlJson = async <T = KubeObject>(
      args: readonly string[],
      o: KubectlOptions = {},
    ): Promise<T> => {
      const r = await kubectl([...args, "-o", "json"], o);
      return JSON.parse(r.stdout) as T;
    };
    const apply = (
      manifest: string | readonly object[] | object,
      o: KubectlOptions = {},
    ): Promise<RunResult> => {
      const text =
        typeof manifest === "string"
          ? manifest
          : JSON.stringify(
              Array.isArray(manifest) ? { apiVersion: "v1", kind: "List", items: manifest } : manifest,
            );
      return kubectl(["apply", "--server-side", "--force-conflicts", "-f", "-"], { ...o, input: text });
    };
    const writeTokenKubeconfig = (path: string, user: string, token: string): string => {
      writeFileSync(path, kubeconfigText(server, pki.caFile, user, { token }), { mode: 0o600 });
      return path;
    };

    return {
      dir,
      kubeconfig,
      server,
      caFile: pki.caFile,
      adminCertFile: pki.adminCert,
      adminKeyFile: pki.adminKey,
      version: version.gitVersion ?? "unknown",
      processes,
      logsDir,
      startupMs: Date.now() - started,
      kubectl,
      kubectlJson,
      apply,
      writeTokenKubeconfig,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** Whether every binary the control plane needs is built (for `describe.skipIf`). */
export function controlPlaneAvailable(withControllerManager = true): boolean {
  const names: ComponentName[] = ["etcd", "kube-apiserver", "kubectl"];
  if (withControllerManager) names.push("kube-controller-manager");
  return names.every(n => {
    try {
      return existsSync(findComponent(n));
    } catch {
      return false;
    }
  });
}
