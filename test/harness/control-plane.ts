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
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { request as httpRequest } from "node:http";
import { join } from "node:path";
import { keepTemp, makeTempDir, removeTempDir } from "./cleanup";
import { freePort, LOOPBACK } from "./net";
import { startProcess, type RunningProcess } from "./process";
import { findTool, kuikCacheDir, run, RunError, which, type RunResult } from "./tools";

/** Binaries of the control plane. */
export type ComponentName =
  | "etcd"
  | "kube-apiserver"
  | "kube-controller-manager"
  | "kube-scheduler"
  | "kubectl"
  | "kubelet"
  | "kube-proxy"
  | "coredns";

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
  /**
   * Address the API server binds and advertises; default 127.0.0.1. A real node's Pods reach the API server through
   * the `kubernetes` Service, whose endpoint is this address: the node's address (node.ts), not loopback.
   */
  bindAddress?: string;
  /** Start kube-scheduler (Pods get a node); default false: without a kubelet nothing would run them. */
  scheduler?: boolean;
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
  name: "etcd" | "kube-apiserver" | "kube-controller-manager" | "kube-scheduler";
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
  /** Cluster CA key: a node signs its kubelet's client certificate with it (node.ts). */
  caKeyFile: string;
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

/** The Service ClusterIP range; the `kubernetes` Service is its first address (in the API server certificate). */
export const SERVICE_CIDR = "10.96.0.0/16";

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
  schedulerCert: string;
  schedulerKey: string;
  kubeletClientCert: string;
  kubeletClientKey: string;
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
    // a random serial: leaves are signed in parallel, and -CAcreateserial's shared serial file races
    "x509", "-req", "-in", csr, "-CA", pki.caFile, "-CAkey", pki.caKey, "-set_serial", `0x${randomBytes(16).toString("hex")}`,
    "-days", "3650", "-sha256", "-extfile", extFile, "-out", join(pki.dir, `${base}.crt`),
  ]); // prettier-ignore
  rmSync(csr);
  rmSync(extFile);
}

/** Create a leaf certificate signed by a control plane's CA (node.ts: the kubelet's client certificate). */
export async function signLeaf(
  o: { dir: string; caFile: string; caKey: string },
  base: string,
  subj: string,
  ext: string[],
): Promise<{ cert: string; key: string }> {
  await leaf(o as ControlPlanePki, base, subj, ext);
  return { cert: join(o.dir, `${base}.crt`), key: join(o.dir, `${base}.key`) };
}

async function createPki(dir: string, extraIps: readonly string[]): Promise<ControlPlanePki> {
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
    schedulerCert: f("scheduler.crt"),
    schedulerKey: f("scheduler.key"),
    kubeletClientCert: f("apiserver-kubelet-client.crt"),
    kubeletClientKey: f("apiserver-kubelet-client.key"),
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
      `subjectAltName=IP:127.0.0.1,IP:::1,IP:10.96.0.1,${extraIps.map(ip => `IP:${ip},`).join("")}` +
        "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default," +
        "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local",
      "basicConstraints=CA:FALSE",
      "keyUsage=critical,digitalSignature,keyEncipherment",
      "extendedKeyUsage=serverAuth",
    ]),
    leaf(pki, "admin", "/O=system:masters/CN=kuik-admin", client),
    leaf(pki, "controller-manager", "/CN=system:kube-controller-manager", client),
    leaf(pki, "scheduler", "/CN=system:kube-scheduler", client),
    // what the API server shows the kubelet for `kubectl logs/exec` (kubeadm's apiserver-kubelet-client)
    leaf(pki, "apiserver-kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client", client),
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

// start

/**
 * Start etcd, kube-apiserver and (unless disabled) kube-controller-manager and kube-scheduler on free ports, wait
 * until the API server is ready (and the `default` ServiceAccount exists when the controller manager runs), write the
 * admin kubeconfig. Always `await stop()` it.
 */
export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const started = Date.now();
  const ownDir = !opts.dir;
  const dir = opts.dir ?? makeTempDir("control-plane");
  const withKcm = opts.controllerManager ?? true;
  const bindAddress = opts.bindAddress ?? LOOPBACK;
  const bins = {
    etcd: findComponent("etcd"),
    apiserver: findComponent("kube-apiserver"),
    kubectl: findComponent("kubectl"),
    kcm: withKcm ? findComponent("kube-controller-manager") : "",
    scheduler: opts.scheduler ? findComponent("kube-scheduler") : "",
  };
  for (const d of ["pki", "etcd"]) rmSync(join(dir, d), { recursive: true, force: true });
  const logsDir = join(dir, "logs");
  mkdirSync(logsDir, { recursive: true });
  const pki = await createPki(join(dir, "pki"), bindAddress === LOOPBACK ? [] : [bindAddress]);
  const kubeconfig = opts.kubeconfigPath ?? join(dir, "kubeconfig");
  const verbosity = String(opts.verbosity ?? 1);
  const deadline = started + (opts.readyTimeoutMs ?? 90_000);
  const left = (): number => Math.max(1000, deadline - Date.now());
  const running: RunningProcess[] = [];
  const processes: ControlPlaneProcess[] = [];
  let stopped = false;

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    // scheduler and controller manager first, etcd last: the API server must not lose its store while others
    // still talk to it
    for (const p of [...running].reverse()) await p.stop();
    if (ownDir && !keepTemp()) removeTempDir(dir);
  };
  const start = async (
    name: ControlPlaneProcess["name"],
    port: number,
    cmd: string,
    args: string[],
    ready: () => Promise<boolean>,
  ): Promise<void> => {
    const p = await startProcess({
      name,
      cmd,
      args,
      logFile: join(logsDir, `${name}.log`),
      ready,
      readyTimeoutMs: left(),
    });
    running.push(p);
    processes.push({ name, pid: p.pid, port, logFile: p.logFile });
  };
  const componentKubeconfig = (name: string, user: string, cert: string, key: string): string => {
    const file = join(dir, `${name}.kubeconfig`);
    writeFileSync(file, kubeconfigText(server, pki.caFile, user, { certFile: cert, keyFile: key }), {
      mode: 0o600,
    });
    return file;
  };

  const apiPort = await freePort();
  const server = `https://${bindAddress}:${apiPort}`;
  try {
    // etcd
    const etcdPort = await freePort();
    const peerPort = await freePort();
    const etcdUrl = `http://${LOOPBACK}:${etcdPort}`;
    const peerUrl = `http://${LOOPBACK}:${peerPort}`;
    await start(
      "etcd",
      etcdPort,
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
      async () => {
        const r = await probe(`${etcdUrl}/health`);
        return r.status === 200 && r.body.includes("true");
      },
    );

    // kube-apiserver
    const tls = {
      ca: readFileSync(pki.caFile),
      cert: readFileSync(pki.adminCert),
      key: readFileSync(pki.adminKey),
    };
    await start(
      "kube-apiserver",
      apiPort,
      bins.apiserver,
      [
        `--etcd-servers=${etcdUrl}`,
        `--bind-address=${bindAddress}`,
        `--advertise-address=${bindAddress}`,
        `--secure-port=${apiPort}`,
        `--tls-cert-file=${pki.apiserverCert}`,
        `--tls-private-key-file=${pki.apiserverKey}`,
        `--client-ca-file=${pki.caFile}`,
        `--kubelet-client-certificate=${pki.kubeletClientCert}`,
        `--kubelet-client-key=${pki.kubeletClientKey}`,
        // `kubectl logs/exec` reach a kubelet at its address, never by a name the machine's resolver would be asked
        "--kubelet-preferred-address-types=InternalIP,Hostname",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        `--service-account-key-file=${pki.saPub}`,
        `--service-account-signing-key-file=${pki.saKey}`,
        "--service-account-max-token-expiration=8760h",
        `--service-cluster-ip-range=${SERVICE_CIDR}`,
        "--authorization-mode=Node,RBAC",
        "--allow-privileged=true",
        // On loopback no Pod could reach the `kubernetes` Service (and Endpoints refuse loopback IPs): no endpoint.
        // On a node's address, the usual lease reconciler publishes it.
        `--endpoint-reconciler-type=${bindAddress === LOOPBACK ? "none" : "lease"}`,
        "--profiling=false",
        `--v=${verbosity}`,
        ...(opts.apiserverArgs ?? []),
      ],
      async () => (await probe(`${server}/readyz`, tls)).status === 200,
    );
    writeFileSync(
      kubeconfig,
      kubeconfigText(server, pki.caFile, "kuik-admin", { certFile: pki.adminCert, keyFile: pki.adminKey }),
      { mode: 0o600 },
    );
    const version = JSON.parse((await probe(`${server}/version`, tls)).body) as { gitVersion?: string };

    // kube-controller-manager: the ServiceAccount admission plugin refuses Pods until their namespace's `default`
    // SA exists, so it is ready once `default/default` is there.
    if (withKcm) {
      const kcmKubeconfig = componentKubeconfig(
        "controller-manager",
        "system:kube-controller-manager",
        pki.kcmCert,
        pki.kcmKey,
      );
      await start(
        "kube-controller-manager",
        0,
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
        async () =>
          (await probe(`${server}/api/v1/namespaces/default/serviceaccounts/default`, tls)).status === 200,
      );
    }

    // kube-scheduler: ready once it serves nothing and has not exited (no port: --secure-port=0)
    if (opts.scheduler) {
      const schedKubeconfig = componentKubeconfig(
        "scheduler",
        "system:kube-scheduler",
        pki.schedulerCert,
        pki.schedulerKey,
      );
      await start(
        "kube-scheduler",
        0,
        bins.scheduler,
        [
          `--kubeconfig=${schedKubeconfig}`,
          `--authentication-kubeconfig=${schedKubeconfig}`,
          `--authorization-kubeconfig=${schedKubeconfig}`,
          "--secure-port=0",
          "--leader-elect=false",
          `--v=${verbosity}`,
        ],
        async () => true,
      );
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
      caKeyFile: pki.caKey,
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
