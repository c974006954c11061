/**
 * `npm run up` / `npm run down` behind scripts/up.sh and scripts/down.sh: kuik on a real local one-node Kubernetes
 * cluster, every kuik component a Pod, left running in the background. See docs/local-cluster.md.
 *
 *   local-cluster.ts up       start the supervisor (unless it runs), wait until ready, cache the demo image end to
 *                             end, print what runs
 *   local-cluster.ts status   what runs (exit 1 when nothing does)
 *   local-cluster.ts daemon   the supervisor itself (started by `up`, detached): starts the cluster and installs kuik
 *                             from deploy/ through the test harness (test/e2e/cluster.ts), writes .kuik/run/, and
 *                             stops it all on SIGTERM
 *
 * Every process is a child of the supervisor, tied to it with `setpriv --pdeathsig KILL`: killing the supervisor
 * (scripts/down.sh sends SIGTERM, then SIGKILL) never leaves anything behind.
 */
import { spawn } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { cachedImageName } from "../capabilities/shared/object-names";
import { findComponent, type KubeObject } from "../test/harness/control-plane";
import { harnessPki } from "../test/harness/pki";
import { REPO_ROOT, run, sleep } from "../test/harness/tools";
import {
  cachedImageEventReasons,
  DEFAULT_PROXY_PORT,
  listPods,
  podImages,
  scenario,
} from "../test/e2e/stack";
import { startCluster, type Cluster } from "../test/e2e/cluster";

const KUIK_DIR = join(REPO_ROOT, ".kuik");
const RUN_DIR = join(KUIK_DIR, "run");
const LOGS_DIR = join(KUIK_DIR, "logs");
const STACK_DIR = join(KUIK_DIR, "local");
const KUBECONFIG = join(KUIK_DIR, "kubeconfig");
const STATE_FILE = join(RUN_DIR, "state.json");
const SUPERVISOR_PID = join(RUN_DIR, "supervisor.pid");
const SUPERVISOR_LOG = join(LOGS_DIR, "supervisor.log");
const NODE = join(REPO_ROOT, "node_modules", ".bin", "node");
const DEMO_NAMESPACE = "demo";
const DEMO_REPO = "kuik/demo";
const DEMO_TAG = "v1";

interface ProcessInfo {
  name: string;
  pid: number;
  /** Addresses it serves. */
  listen: string[];
  logFile: string;
}

interface State {
  status: "starting" | "ready" | "failed" | "stopped";
  supervisorPid: number;
  startedAt: string;
  error?: string;
  kubernetesVersion?: string;
  server?: string;
  kubeconfig?: string;
  proxyPort?: number;
  /** The node's containerd socket (`ctr -a … -n k8s.io images ls`). */
  containerdSocket?: string;
  origin?: { host: string; username: string; password: string; caFile: string };
  demoImage?: { ref: string; digest: string };
  processes?: ProcessInfo[];
  timings?: Record<string, number>;
  /** The rendered manifest applied and its object count. */
  installation?: { file: string; objects: number };
  /** The air-gapped mirror and the images it serves. */
  mirror?: { host: string; images: string[] };
}

// ---------------------------------------------------------------------------------------------------------------
// helpers

function readState(): State | undefined {
  try {
    return JSON.parse(readFileSync(STATE_FILE, "utf8")) as State;
  } catch {
    return undefined;
  }
}

function writeState(state: State): void {
  mkdirSync(RUN_DIR, { recursive: true });
  // Atomic: `up` polls this file while the supervisor writes it.
  writeFileSync(`${STATE_FILE}.tmp`, `${JSON.stringify(state, null, 2)}\n`);
  renameSync(`${STATE_FILE}.tmp`, STATE_FILE);
}

function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function supervisorPid(): number | undefined {
  try {
    const pid = Number(readFileSync(SUPERVISOR_PID, "utf8").trim());
    return alive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

const bold = (s: string): string => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const say = (s: string): void => void process.stdout.write(`${bold("[up]")} ${s}\n`);
const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

// ---------------------------------------------------------------------------------------------------------------
// daemon

async function daemon(): Promise<void> {
  const log = (s: string): void => void process.stdout.write(`${new Date().toISOString()} ${s}\n`);
  const state: State = {
    status: "starting",
    supervisorPid: process.pid,
    startedAt: new Date().toISOString(),
  };
  writeState(state);
  writeFileSync(SUPERVISOR_PID, `${process.pid}\n`);
  let stack: Cluster | undefined;
  let stopping = false;
  const shutdown = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: stopping everything`);
    await stack?.stop().catch((e: unknown) => log(`stop: ${String(e)}`));
    writeState({ ...state, status: "stopped" });
    for (const f of ["supervisor.pid", ...(state.processes ?? []).map(p => `${p.name}.pid`)]) {
      rmSync(join(RUN_DIR, f), { force: true });
    }
    log("stopped");
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
  process.on("SIGHUP", () => undefined); // survive the terminal going away

  try {
    rmSync(STACK_DIR, { recursive: true, force: true });
    stack = await startCluster({ dir: STACK_DIR, kubeconfigPath: KUBECONFIG, progress: log });
    log(`cluster up in ${stack.timings.total} ms: ${JSON.stringify(stack.timings)}`);
    log("building and pushing the demo image");
    const t = Date.now();
    const demo = await stack.pushToOrigin({ size: "8M", layers: 2, seed: "kuik-demo" }, DEMO_REPO, DEMO_TAG);
    stack.timings.demoImage = Date.now() - t;
    await stack.namespaceWithPullSecret(DEMO_NAMESPACE);
    const pki = await harnessPki();
    const processes: ProcessInfo[] = [
      ...stack.cp.processes.map(p => ({
        name: p.name,
        pid: p.pid,
        // etcd is the API server's alone (loopback); the API server listens on the node's address
        listen: p.port
          ? [
              `${p.name === "etcd" ? "127.0.0.1" : new URL(stack?.cp.server ?? "https://x").hostname}:${p.port}`,
            ]
          : [],
        logFile: p.logFile,
      })),
      ...stack.node.processes.map(p => ({ name: p.name, pid: p.pid, listen: [], logFile: p.logFile })),
      {
        name: "containerd",
        pid: stack.node.containerd.pid ?? 0,
        listen: [stack.node.containerd.socket],
        logFile: stack.node.containerd.logFile,
      },
      {
        name: "mirror-registry",
        pid: stack.mirror.registry.pid ?? 0,
        listen: [stack.mirror.host],
        logFile: stack.mirror.registry.logFile,
      },
      {
        name: "origin-registry",
        pid: stack.origin.pid ?? 0,
        listen: [stack.origin.host],
        logFile: stack.origin.logFile,
      },
    ];
    for (const p of processes) {
      writeFileSync(join(RUN_DIR, `${p.name}.pid`), `${p.pid}\n`);
      const link = join(LOGS_DIR, `${p.name}.log`);
      rmSync(link, { force: true });
      symlinkSync(p.logFile, link);
    }
    Object.assign(state, {
      status: "ready",
      kubernetesVersion: stack.cp.version,
      server: stack.cp.server,
      kubeconfig: KUBECONFIG,
      proxyPort: stack.proxyPort,
      containerdSocket: stack.node.containerd.socket,
      origin: {
        host: stack.origin.host,
        username: stack.origin.username ?? "",
        password: stack.origin.password ?? "",
        caFile: pki.caFile,
      },
      demoImage: { ref: demo.ref, digest: demo.digest },
      installation: {
        file: stack.installation?.file ?? "",
        objects: stack.installation?.objects.length ?? 0,
      },
      mirror: { host: stack.mirror.host, images: stack.mirror.images },
      processes,
      timings: stack.timings,
    } satisfies Partial<State>);
    writeState(state);
    log("ready");
  } catch (e) {
    log(`failed: ${e instanceof Error ? e.message : String(e)}`);
    writeState({ ...state, status: "failed", error: e instanceof Error ? e.message : String(e) });
    await stack?.stop().catch(() => undefined);
    rmSync(SUPERVISOR_PID, { force: true });
    process.exit(1);
  }
  // keep running until a signal arrives
  setInterval(() => undefined, 1 << 30);
}

// ---------------------------------------------------------------------------------------------------------------
// client

/** Print the supervisor log from `offset` on; returns the new offset. */
function follow(offset: number): number {
  if (!existsSync(SUPERVISOR_LOG)) return offset;
  const size = statSync(SUPERVISOR_LOG).size;
  if (size <= offset) return offset;
  const fd = openSync(SUPERVISOR_LOG, "r");
  try {
    const buf = Buffer.alloc(size - offset);
    readSync(fd, buf, 0, buf.length, offset);
    for (const line of buf.toString("utf8").split("\n")) {
      const text = line.replace(/^\S+Z /, "").trim();
      if (text) say(text.length > 400 ? `${text.slice(0, 400)}…` : text);
    }
  } finally {
    closeSync(fd);
  }
  return size;
}

async function kubectl(
  args: string[],
  allowFailure = false,
): Promise<{ code: number | null; stdout: string }> {
  const r = await run(findComponent("kubectl"), [`--kubeconfig=${KUBECONFIG}`, ...args], {
    timeoutMs: 60_000,
  });
  if (r.code !== 0 && !allowFailure) throw new Error(`kubectl ${args.join(" ")}: ${r.stderr.trim()}`);
  return r;
}

async function waitUntil<T>(timeoutMs: number, fn: () => Promise<T | undefined>): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined || Date.now() > deadline) return v;
    await sleep(250);
  }
}

/** Pod phase Running with every container ready. */
function podRunning(p: KubeObject): boolean {
  const st = (p.status ?? {}) as { phase?: string; containerStatuses?: Array<{ ready?: boolean }> };
  return st.phase === "Running" && (st.containerStatuses ?? []).every(c => c.ready === true);
}

/**
 * The demo: a Deployment of the demo image (on the origin, private), rewritten to the proxy, Running (pulled by the
 * kubelet through the proxy: the node's containerd has it under the proxy's name), cached with the origin's digest.
 * Returns success.
 */
async function demo(state: State): Promise<boolean> {
  const image = state.demoImage;
  const port = state.proxyPort ?? DEFAULT_PROXY_PORT;
  if (!image || !state.origin || !state.containerdSocket) return false;
  const proxyImage = `localhost:${port}/${image.ref.replace(":", "-")}`;
  say(`demo: Deployment ${DEMO_NAMESPACE}/demo (2 replicas) of ${image.ref}`);
  const manifest = scenario("deployment", {
    NAME: "demo",
    NAMESPACE: DEMO_NAMESPACE,
    IMAGE: image.ref,
    REPLICAS: 2,
  });
  const applied = await run(findComponent("kubectl"), [`--kubeconfig=${KUBECONFIG}`, "apply", "-f", "-"], {
    input: manifest,
    timeoutMs: 60_000,
  });
  if (applied.code !== 0) throw new Error(`kubectl apply: ${applied.stderr}`);
  const kc = {
    kubectlJson: async <T = KubeObject>(args: readonly string[]): Promise<T> =>
      JSON.parse((await kubectl([...args, "-o", "json"])).stdout) as T,
  };
  const pods = await waitUntil(180_000, async () => {
    const p = await listPods(kc, DEMO_NAMESPACE, "app=demo");
    return p.length === 2 && p.every(x => podImages(x)[0] === proxyImage && podRunning(x)) ? p : undefined;
  });
  process.stdout.write(`\n$ kubectl get pods -A\n${(await kubectl(["get", "pods", "-A"], true)).stdout}\n`);
  if (!pods) {
    const now = await listPods(kc, DEMO_NAMESPACE, "app=demo").catch(() => []);
    say(
      `demo: FAILED: the Pods are not Running as ${proxyImage} (${now.map(p => `${podImages(p)[0]} ${String(p.status?.phase)}`).join(", ") || "no pods"})`,
    );
    say(
      "  kubectl describe pods -n demo; logs in .kuik/logs/ (kubelet.log, containerd.log); docs/local-cluster.md",
    );
    return false;
  }
  say(`demo: both Pods Running as ${proxyImage}, pulled by the kubelet through the proxy`);
  const ciName = cachedImageName(image.ref);
  const ready = await waitUntil(90_000, async () => {
    const r = await kubectl(["get", "cachedimage", ciName, "-o", "json"], true);
    if (r.code !== 0) return undefined;
    const ci = JSON.parse(r.stdout) as { status?: { phase?: string; isCached?: boolean; digest?: string } };
    return ci.status?.phase === "Ready" && ci.status.isCached ? ci : undefined;
  });
  // usedBy is counted by the watcher's Pod tracking, a moment after the copy may have finished
  await waitUntil(10_000, async () => {
    const r = await kubectl(["get", "cachedimage", ciName, "-o", "jsonpath={.status.usedBy.count}"], true);
    return r.stdout.trim() === "2" ? true : undefined;
  });
  process.stdout.write(
    `$ kubectl get cachedimages\n${(await kubectl(["get", "cachedimages"], true)).stdout}\n`,
  );
  if (!ready) {
    say(
      `demo: FAILED: CachedImage ${ciName} did not become Ready (kubectl logs -n pepr-system deploy/pepr-kuik-watcher)`,
    );
    return false;
  }
  const digestOk = ready.status?.digest === image.digest;
  say(
    `demo: CachedImage ${ciName} Ready, digest ${ready.status?.digest} (${digestOk ? "= origin" : "≠ origin!"})`,
  );
  const events = await cachedImageEventReasons(kc, ciName).catch(() => []);
  if (events.length > 0) say(`demo: events on the CachedImage: ${events.join(", ")}`);
  const ctr = await run("ctr", ["-a", state.containerdSocket, "-n", "k8s.io", "images", "ls", "-q"], {
    timeoutMs: 30_000,
  });
  const onNode = ctr.stdout.split("\n").includes(proxyImage);
  say(`demo: the node's containerd ${onNode ? "has" : "does NOT have"} ${proxyImage}`);
  return digestOk && onNode;
}

function printStatus(state: State): void {
  const lines = [
    "",
    bold(`kuik local cluster: Kubernetes ${state.kubernetesVersion ?? "?"} at ${state.server ?? "?"}`),
    "",
    "  process                   pid      listens on",
    ...(state.processes ?? []).map(
      p => `  ${p.name.padEnd(25)} ${String(p.pid).padEnd(8)} ${p.listen.join(", ")}`,
    ),
    "",
    `  installed:   ${state.installation?.objects ?? "?"} objects of deploy/ (${state.installation?.file ?? "?"})`,
    `  mirror:      http://${state.mirror?.host ?? "?"} (${state.mirror?.images.length ?? 0} images under their real names)`,
    `  logs:        ${LOGS_DIR}/   (one link per process, plus supervisor.log)`,
    `  pids:        ${RUN_DIR}/`,
    `  origin:      https://${state.origin?.host ?? "?"} (user ${state.origin?.username ?? "?"}, password ${state.origin?.password ?? "?"}, CA ${state.origin?.caFile ?? "?"})`,
    `  node:        ${state.containerdSocket ?? "?"} (ctr -a … -n k8s.io images ls)`,
    `  proxy:       localhost:${state.proxyPort ?? DEFAULT_PROXY_PORT} on the node (the DaemonSet on the node's network, loopback only)`,
    "",
    "Point kubectl at it:",
    `  export KUBECONFIG=${KUBECONFIG}`,
    `  export PATH=${join(findComponent("kubectl"), "..")}:$PATH   # kubectl ${state.kubernetesVersion ?? ""}`,
    "  kubectl get cachedimages",
    "",
    "Stop everything: npm run down",
    "",
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}

async function up(): Promise<number> {
  const started = Date.now();
  const running = supervisorPid();
  const current = readState();
  if (running && current?.status === "ready") {
    say(`already up (supervisor pid ${running}); \`npm run down\` to stop it`);
    printStatus(current);
    return 0;
  }
  if (running) {
    say(
      `a supervisor (pid ${running}) is ${current?.status ?? "starting"}; following its log (\`npm run down\` stops it)`,
    );
  } else {
    for (const d of [RUN_DIR, LOGS_DIR]) {
      rmSync(d, { recursive: true, force: true });
      mkdirSync(d, { recursive: true });
    }
    const fd = openSync(SUPERVISOR_LOG, "a");
    try {
      const child = spawn(
        NODE,
        ["--import", "tsx", join(REPO_ROOT, "scripts", "local-cluster.ts"), "daemon"],
        {
          cwd: REPO_ROOT,
          detached: true,
          stdio: ["ignore", fd, fd],
          env: {
            ...process.env,
            PATH: `${join(REPO_ROOT, "node_modules", ".bin")}:${process.env.PATH ?? ""}`,
          },
        },
      );
      child.unref();
      say(`supervisor started (pid ${child.pid}); log ${SUPERVISOR_LOG}`);
    } finally {
      closeSync(fd);
    }
  }
  let offset = 0;
  let state: State | undefined;
  const deadline = Date.now() + 15 * 60_000;
  for (;;) {
    offset = follow(offset);
    state = readState();
    if (state?.status === "ready" || state?.status === "failed") break;
    if (Date.now() > 5000 + started && !supervisorPid()) {
      follow(offset);
      say("the supervisor died; see the log above");
      return 1;
    }
    if (Date.now() > deadline) {
      say("timed out waiting for the supervisor; `npm run down` and look at .kuik/logs/");
      return 1;
    }
    await sleep(200);
  }
  follow(offset);
  if (state.status === "failed") {
    say("start failed (see above); everything it started is stopped; logs in .kuik/logs/");
    return 1;
  }
  const readyMs = Date.now() - started;
  say(`everything up in ${seconds(readyMs)}`);
  const ok = await demo(state);
  printStatus(state);
  say(
    `${ok ? "demo image cached end to end" : "demo FAILED (everything is left running for inspection)"}; ` +
      `up + demo took ${seconds(Date.now() - started)}`,
  );
  return ok ? 0 : 1;
}

function status(): number {
  const state = readState();
  const pid = supervisorPid();
  if (!pid || !state) {
    process.stdout.write("kuik local cluster: not running\n");
    return 1;
  }
  process.stdout.write(`supervisor pid ${pid}: ${state.status}\n`);
  if (state.status === "ready") printStatus(state);
  return 0;
}

const command = process.argv[2] ?? "up";
const main: Record<string, () => Promise<number> | number> = {
  up,
  status,
  daemon: async () => {
    await daemon();
    return -1; // keeps running
  },
};
const fn = main[command];
if (!fn) {
  process.stderr.write(`usage: local-cluster.ts up|status|daemon\n`);
  process.exit(2);
}
void Promise.resolve(fn()).then(
  code => {
    if (code >= 0) process.exit(code);
  },
  (e: unknown) => {
    process.stderr.write(`local-cluster: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
