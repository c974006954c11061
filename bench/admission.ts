/**
 * Admission latency benchmark (issue #5): kuik's webhook as it ships (`dist/pepr-kuik.cjs`, PEPR_WATCH_MODE=false,
 * HTTPS) answering realistic Pod CREATE AdmissionReviews (3 containers + 1 init, ≈7 KB) at a
 * FIXED rate, open loop: request i is due at t0 + i/RATE and its latency is measured from that due time, so a slow
 * server is charged for the queue it causes (no coordinated omission). One keep-alive undici Pool per server.
 *
 * Three servers, in the same run, interleaved (the order rotates every round), each pinned to CPU 1 while the
 * load generator is pinned to CPU 0 (PIN=0 to disable):
 *   floor   plain Node 24 HTTPS: parse the JSON, answer a fixed "allowed" review (the ceiling of any webhook);
 *   shipped the module as built, on Pepr 1.1.4 as installed: at start-up it replaces `clone` on Pepr's ramda by
 *           `structuredClone` for JSON data (capabilities/shared/pepr-runtime.ts), as in production;
 *   ramda   the same bundle with KUIK_PEPR_FAST_CLONE=false: Pepr's own per-request `ramda.clone`s (the baseline,
 *           i.e. the module before issue #5).
 * Before timing, shipped and ramda must answer the same review with the same JSON patch (images rewritten), and
 * each must log the clone mode it was asked for.
 *
 * The module needs an API server (Pepr reads its store before serving): a real local control plane is started
 * (test/harness/control-plane.ts, no controller manager) and the module installed as the harness does
 * (test/harness/kuik-module.ts, ServiceAccount token, generated RBAC); its two processes are then replaced by the
 * bench's own admission processes with the same environment.
 *
 *   npx tsx bench/admission.ts     RATE=200 DURATION=20 WARMUP=5 RUNS=3 CONNECTIONS=16 LOG_LEVEL=info PIN=1
 *                                  BENCH_TIMEOUT=900 SERVERS=floor,shipped,ramda CPU_PROF=0
 *                                  MODULE_NODE_OPTIONS=(default: the Deployment's, from package.json pepr.env)
 *
 * CPU_PROF=1 runs the two Pepr servers with `--cpu-prof` (kept under .kuik/bench/) and prints where their CPU went.
 *
 * Per run: p50/p90/p99/max from the due time, errors, and the server's CPU per request from /proc/<pid>/stat
 * (utime+stime over the measured window / requests answered in it); then medians per server and the goal.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Pool } from "undici";
import { startControlPlane, type ControlPlane } from "../test/harness/control-plane";
import { buildModule, moduleBundle, startKuikModule } from "../test/harness/kuik-module";
import { kuikEnv } from "../test/e2e/stack";
import { freePort, LOOPBACK } from "../test/harness/net";
import { harnessPki } from "../test/harness/pki";
import { startProcess, type RunningProcess } from "../test/harness/process";
import { REPO_ROOT, sleep } from "../test/harness/tools";
import { makeTempDir } from "../test/harness/cleanup";
import { summarizeProfile } from "./convergence";
import { FAST_CLONE_ENV } from "../capabilities/shared/pepr-runtime";
import { reviewTemplate } from "./admission-review";

const RATE = Number(process.env.RATE ?? 200);
const DURATION_S = Number(process.env.DURATION ?? 20);
const WARMUP_S = Number(process.env.WARMUP ?? 5);
const RUNS = Number(process.env.RUNS ?? 3);
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 16);
const LOG_LEVEL = process.env.LOG_LEVEL ?? "info"; // what the generated Deployment sets
const PIN = process.env.PIN !== "0";
const TIMEOUT_S = Number(process.env.BENCH_TIMEOUT ?? 900);
const SERVERS = (process.env.SERVERS ?? "floor,shipped,ramda").split(",").map(s => s.trim()) as ServerName[];
const CPU_PROF = process.env.CPU_PROF === "1";
/** Issue #12: kuik's p99 within this of the floor's, measured in the same run. */
const GOAL_P99_OVER_FLOOR_MS = 2;
const NODE = join(REPO_ROOT, "node_modules", ".bin", "node");
const CLK_TCK = Number(spawnSync("getconf", ["CLK_TCK"]).stdout?.toString().trim() || 100);

type ServerName = "floor" | "shipped" | "ramda";

// ---------------------------------------------------------------------------------------------------------------
// processes

/** utime + stime of a process, in ms. */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
}

/** Busy time of all CPUs (everything but idle and iowait), in ms. */
function machineBusyMs(): number {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const busy = v.reduce((a, b) => a + b, 0) - (v[3] ?? 0) - (v[4] ?? 0);
  return (busy * 1000) / CLK_TCK;
}

/** A `VmRSS`/`VmHWM` line of /proc/<pid>/status, in MiB. */
function memMiB(pid: number, field: "VmRSS" | "VmHWM"): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? 0) / 1024;
}

interface Server {
  name: ServerName;
  port: number;
  proc: RunningProcess;
  logFile: string;
  path: string;
}

/** Start a server process (pinned to CPU 1 with PIN=1) through the harness's process runner. */
async function launch(
  name: ServerName,
  args: string[],
  env: NodeJS.ProcessEnv,
  logFile: string,
  port: number,
  path: string,
): Promise<Server> {
  const [cmd, argv] = PIN ? ["taskset", ["-c", "1", NODE, ...args]] : [NODE, args];
  const proc = await startProcess({ name, cmd, args: argv, env, cwd: REPO_ROOT, logFile, stopGraceMs: 5000 });
  return { name, port, proc, logFile, path };
}

async function stopServer(s: Server): Promise<void> {
  await s.proc.stop();
}

/** The floor: what any Node HTTPS webhook costs (TLS, HTTP, JSON.parse of the review, a fixed answer). */
const FLOOR_SERVER = `"use strict";
const https = require("node:https");
const fs = require("node:fs");
const [port, key, cert] = process.argv.slice(2);
https.createServer({ key: fs.readFileSync(key), cert: fs.readFileSync(cert) }, (req, res) => {
  if (req.method === "GET") { res.end("ok"); return; }
  const chunks = [];
  req.on("data", c => chunks.push(c));
  req.on("end", () => {
    const review = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    const body = JSON.stringify({ apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview",
      response: { uid: review.request.uid, allowed: true } });
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
    res.end(body);
  });
}).listen(Number(port), "127.0.0.1");
process.on("SIGTERM", () => process.exit(0));
`;

// ---------------------------------------------------------------------------------------------------------------
// load

interface RunResult {
  server: ServerName;
  sent: number;
  ok: number;
  errors: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
  cpuMsPerReq: number;
  rssMiB: number;
  achievedRate: number;
  otherPct: number;
}

function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] ?? NaN) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
};

/**
 * Sends at RATE for `seconds`, open loop; returns latencies (ms from each request's due time) of the requests due
 * inside [measureFrom, end), and the CPU of `pid` over that window.
 */
async function load(
  pool: Pool,
  path: string,
  template: { before: string; after: string },
  warmupS: number,
  seconds: number,
  pid: number,
): Promise<{
  latencies: Float64Array;
  sent: number;
  errors: number;
  cpu: number;
  windowMs: number;
  /** CPU used on the machine by everything but the server and the load generator, in % of one core. */
  otherPct: number;
}> {
  const interval = 1000 / RATE;
  const total = Math.round((warmupS + seconds) * RATE);
  const firstMeasured = Math.round(warmupS * RATE);
  const latencies = new Float64Array(total - firstMeasured);
  let done = 0;
  let measured = 0;
  let errors = 0;
  let cpuStart = 0;
  let cpuEnd = 0;
  let busyStart = 0;
  let busyEnd = 0;
  let genStart = process.cpuUsage();
  let genUs = 0;
  let windowStart = 0;
  let windowEnd = 0;
  let finish: () => void = () => undefined;
  const finished = new Promise<void>(r => (finish = r));
  const t0 = performance.now() + 20;
  let next = 0;

  const send = (i: number): void => {
    const due = t0 + i * interval;
    if (i === firstMeasured) {
      cpuStart = cpuMs(pid);
      busyStart = machineBusyMs();
      genStart = process.cpuUsage();
      windowStart = performance.now();
    }
    const uid = `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`;
    pool
      .request({
        path,
        method: "POST",
        headers: { "content-type": "application/json" },
        body: template.before + uid + template.after,
        headersTimeout: 30_000,
        bodyTimeout: 30_000,
      })
      .then(async res => {
        const text = await res.body.text();
        if (res.statusCode !== 200 || !text.includes('"allowed":true')) throw new Error(`${res.statusCode}`);
      })
      .catch(() => {
        if (i >= firstMeasured) errors++;
      })
      .finally(() => {
        const latency = performance.now() - due;
        if (i >= firstMeasured) latencies[measured++] = latency;
        if (++done === total) {
          cpuEnd = cpuMs(pid);
          busyEnd = machineBusyMs();
          const gen = process.cpuUsage(genStart);
          genUs = gen.user + gen.system;
          windowEnd = performance.now();
          finish();
        }
      });
  };
  const tick = (): void => {
    const now = performance.now();
    while (next < total && t0 + next * interval <= now) send(next++);
    if (next < total) setTimeout(tick, Math.max(0, t0 + next * interval - performance.now()));
  };
  setTimeout(tick, Math.max(0, t0 - performance.now()));
  await finished;
  return {
    latencies: latencies.subarray(0, measured).sort(),
    sent: total - firstMeasured,
    errors,
    cpu: cpuEnd - cpuStart,
    windowMs: windowEnd - windowStart,
    otherPct: (100 * (busyEnd - busyStart - (cpuEnd - cpuStart) - genUs / 1000)) / (windowEnd - windowStart),
  };
}

async function waitHealthy(s: Server, ca: Buffer, timeoutMs: number): Promise<void> {
  const pool = new Pool(`https://${LOOPBACK}:${s.port}`, { connect: { ca } });
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      const status = await pool
        .request({ path: "/healthz", method: "GET", headersTimeout: 2000 })
        .then(async r => {
          await r.body.dump();
          return r.statusCode;
        })
        .catch(() => 0);
      if (status === 200) return;
      if (!s.proc.isRunning() || Date.now() > deadline) {
        const log = readFileSync(s.logFile, "utf8").trim().split("\n").slice(-20).join("\n");
        throw new Error(`${s.name} ${s.proc.isRunning() ? "not healthy" : "exited"}; ${s.logFile}:\n${log}`);
      }
      await sleep(100);
    }
  } finally {
    await pool.close();
  }
}

/** What the module logged at start-up about Pepr's cloning (capabilities/shared/pepr-runtime.ts), if it did. */
function cloneMode(logFile: string): { installed?: boolean; reason?: string } | undefined {
  for (const line of readFileSync(logFile, "utf8").split("\n")) {
    if (!line.includes("Pepr request cloning")) continue;
    return (JSON.parse(line) as { fastClone?: { installed?: boolean; reason?: string } }).fastClone;
  }
  return undefined;
}

/** One review through a server; the decoded JSON patch (empty for the floor). */
async function probe(s: Server, ca: Buffer, template: { before: string; after: string }): Promise<string> {
  const pool = new Pool(`https://${LOOPBACK}:${s.port}`, { connect: { ca } });
  try {
    const res = await pool.request({
      path: s.path,
      method: "POST",
      headers: { "content-type": "application/json" },
      body: `${template.before}11111111-2222-4333-8444-555555555555${template.after}`,
    });
    const body = (await res.body.json()) as { response?: { allowed?: boolean; patch?: string } };
    if (res.statusCode !== 200 || body.response?.allowed !== true) {
      throw new Error(`${s.name}: ${res.statusCode} ${JSON.stringify(body).slice(0, 300)}`);
    }
    return body.response.patch ? Buffer.from(body.response.patch, "base64").toString("utf8") : "";
  } finally {
    await pool.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const timer = setTimeout(() => {
    console.error(`bench timed out after ${TIMEOUT_S} s`);
    process.exit(2);
  }, TIMEOUT_S * 1000);
  timer.unref();
  if (PIN) spawnSync("taskset", ["-a", "-p", "-c", "0", String(process.pid)], { stdio: "ignore" });

  const template = reviewTemplate();
  console.log(
    `admission bench: Pod CREATE review ${template.bytes} bytes (3 containers + 1 init), ` +
      `${RATE} req/s open loop, ${WARMUP_S} s warm-up + ${DURATION_S} s measured, ${RUNS} interleaved rounds, ` +
      `${CONNECTIONS} keep-alive connections, LOG_LEVEL=${LOG_LEVEL}, ${PIN ? "servers on CPU 1, load on CPU 0" : "unpinned"}`,
  );
  const build = await buildModule();
  const bundle = moduleBundle();
  if (!bundle) throw new Error("no module bundle");
  const dir = makeTempDir("bench-admission");
  const profDir = join(
    REPO_ROOT,
    ".kuik",
    "bench",
    `admission-${new Date().toISOString().replace(/[:.]/g, "-")}`,
  );
  const pki = await harnessPki();
  const ca = readFileSync(pki.caFile);
  let cp: ControlPlane | undefined;
  const servers: Server[] = [];
  try {
    cp = await startControlPlane({ dir: join(dir, "control-plane"), controllerManager: false });
    const module = await startKuikModule(cp, {
      dir: join(dir, "module"),
      build: false,
      logLevel: LOG_LEVEL,
      env: kuikEnv({
        cacheUrl: "http://127.0.0.1:5000",
        proxyPort: 7439,
        caFile: pki.caFile,
        metricsPort: 0,
      }),
    });
    // Keep its install (RBAC, token, store), replace its processes by ours (pinned, one per variant).
    const env = module.env;
    await openProxyGate(cp);
    const apiPath = module.apiPath;
    await module.stop();
    console.log(
      `control plane ${cp.version} up; module ${build.built ? "built" : "up to date"} (${bundle.replace(`${REPO_ROOT}/`, "")})`,
    );

    const baseEnv: NodeJS.ProcessEnv = { ...process.env, ...env, PEPR_WATCH_MODE: "false" };
    for (const k of ["KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "PEPR_MODE", "NODE_OPTIONS"]) {
      delete baseEnv[k];
    }
    // The Deployment's own Node flags (package.json pepr.env) are part of what ships; the caller's (tsx) are not.
    if (env.NODE_OPTIONS !== undefined) baseEnv.NODE_OPTIONS = env.NODE_OPTIONS;
    if (process.env.MODULE_NODE_OPTIONS !== undefined) baseEnv.NODE_OPTIONS = process.env.MODULE_NODE_OPTIONS;
    console.log(`module NODE_OPTIONS: ${baseEnv.NODE_OPTIONS ?? "(none)"}`);
    const mutatePath = `/mutate/${apiPath}`;
    for (const name of SERVERS) {
      const port = await freePort();
      const logFile = join(dir, `${name}.log`);
      if (name === "floor") {
        const script = join(dir, "floor.cjs");
        writeFileSync(script, FLOOR_SERVER);
        servers.push(
          await launch(
            name,
            [script, String(port), pki.serverKey, pki.serverCert],
            baseEnv,
            logFile,
            port,
            "/",
          ),
        );
      } else {
        const e = { ...baseEnv, KUIK_PEPR_PORT: String(port), [FAST_CLONE_ENV]: String(name === "shipped") };
        const prof = CPU_PROF ? ["--cpu-prof", `--cpu-prof-dir=${join(profDir, name)}`] : [];
        servers.push(await launch(name, [...prof, bundle], e, logFile, port, mutatePath));
      }
    }
    await Promise.all(servers.map(s => waitHealthy(s, ca, 60_000)));

    // Correctness first: both module variants must answer exactly the same, each in the clone mode asked for.
    const patches = new Map<ServerName, string>();
    for (const s of servers) {
      // The module's gate opens at its first read of the proxy Pods, just after start: give it a few seconds.
      const deadline = Date.now() + 15_000;
      let patch = await probe(s, ca, template);
      while (s.name !== "floor" && !patch.includes("localhost:7439/") && Date.now() < deadline) {
        await sleep(500);
        patch = await probe(s, ca, template);
      }
      patches.set(s.name, patch);
    }
    for (const s of servers) {
      if (s.name === "floor") continue;
      const p = patches.get(s.name) ?? "";
      if (!p.includes("localhost:7439/"))
        throw new Error(`${s.name}: images not rewritten: ${p.slice(0, 300)}`);
      const mode = cloneMode(s.logFile);
      if (mode?.installed !== (s.name === "shipped")) {
        throw new Error(`${s.name}: unexpected clone mode ${JSON.stringify(mode)}`);
      }
      console.log(`${s.name}: ${JSON.stringify(mode)}`);
    }
    if (patches.has("shipped") && patches.has("ramda") && patches.get("shipped") !== patches.get("ramda")) {
      throw new Error(
        `shipped and ramda answer differently:\n${patches.get("shipped")}\n${patches.get("ramda")}`,
      );
    }
    const shippedPatch = patches.get("shipped");
    if (shippedPatch && patches.has("ramda"))
      console.log(`shipped and ramda answer the same JSON patch (${JSON.parse(shippedPatch).length} ops)`);

    const results: RunResult[] = [];
    const pools = new Map(
      servers.map(s => [
        s.name,
        new Pool(`https://${LOOPBACK}:${s.port}`, {
          connect: { ca },
          connections: CONNECTIONS,
          pipelining: 1,
          keepAliveTimeout: 60_000,
        }),
      ]),
    );
    for (let round = 0; round < RUNS; round++) {
      const order = servers.map((_, i) => servers[(i + round) % servers.length] as Server);
      for (const s of order) {
        const pid = s.proc.pid;
        const r = await load(pools.get(s.name) as Pool, s.path, template, WARMUP_S, DURATION_S, pid);
        const ok = r.latencies.length - r.errors;
        const sum = r.latencies.reduce((a, b) => a + b, 0);
        const result: RunResult = {
          server: s.name,
          sent: r.sent,
          ok,
          errors: r.errors,
          p50: quantile(r.latencies, 0.5),
          p90: quantile(r.latencies, 0.9),
          p99: quantile(r.latencies, 0.99),
          max: r.latencies[r.latencies.length - 1] ?? NaN,
          mean: sum / r.latencies.length,
          cpuMsPerReq: r.cpu / r.sent,
          rssMiB: memMiB(pid, "VmRSS"),
          achievedRate: (r.sent / r.windowMs) * 1000,
          otherPct: r.otherPct,
        };
        results.push(result);
        console.log(
          `round ${round + 1} ${s.name.padEnd(7)} p50 ${result.p50.toFixed(2)}  p90 ${result.p90.toFixed(2)}  ` +
            `p99 ${result.p99.toFixed(2)}  max ${result.max.toFixed(1)} ms  mean ${result.mean.toFixed(2)} ms  ` +
            `CPU ${result.cpuMsPerReq.toFixed(3)} ms/req  ${result.achievedRate.toFixed(0)} req/s  ` +
            `errors ${result.errors}  RSS ${result.rssMiB.toFixed(0)} MiB  other load ${result.otherPct.toFixed(0)}%`,
        );
      }
    }
    await Promise.all([...pools.values()].map(p => p.close()));

    console.log("\nmedians over rounds (latency from the due time, ms):");
    console.log("server    p50     p90     p99     max      CPU ms/req  RSS MiB (peak)");
    const med = new Map<ServerName, RunResult>();
    for (const s of servers) {
      const rs = results.filter(r => r.server === s.name);
      const m = (f: (r: RunResult) => number): number => median(rs.map(f));
      const row: RunResult = {
        server: s.name,
        sent: m(r => r.sent),
        ok: m(r => r.ok),
        errors: rs.reduce((a, r) => a + r.errors, 0),
        p50: m(r => r.p50),
        p90: m(r => r.p90),
        p99: m(r => r.p99),
        max: m(r => r.max),
        mean: m(r => r.mean),
        cpuMsPerReq: m(r => r.cpuMsPerReq),
        rssMiB: memMiB(s.proc.pid, "VmHWM"),
        achievedRate: m(r => r.achievedRate),
        otherPct: m(r => r.otherPct),
      };
      med.set(s.name, row);
      console.log(
        `${s.name.padEnd(8)}  ${row.p50.toFixed(2).padStart(5)}  ${row.p90.toFixed(2).padStart(6)}  ` +
          `${row.p99.toFixed(2).padStart(6)}  ${row.max.toFixed(1).padStart(7)}  ` +
          `${row.cpuMsPerReq.toFixed(3).padStart(10)}  ${row.rssMiB.toFixed(0).padStart(7)}` +
          `${row.errors ? `   ${row.errors} errors` : ""}`,
      );
    }
    const baseline = med.get("ramda");
    const shipped = med.get("shipped");
    const floor = med.get("floor");
    if (baseline && shipped) {
      console.log(
        `ramda/shipped: p99 ×${(baseline.p99 / shipped.p99).toFixed(1)}, CPU/req ×${(baseline.cpuMsPerReq / shipped.cpuMsPerReq).toFixed(1)}`,
      );
    }
    if (floor) {
      for (const row of [shipped, baseline]) {
        if (!row) continue;
        const over = row.p99 - floor.p99;
        const pass = over <= GOAL_P99_OVER_FLOOR_MS && row.errors === 0;
        console.log(
          `goal p99 ≤ floor + ${GOAL_P99_OVER_FLOOR_MS} ms at ${RATE} req/s, ${row.server}: ${pass ? "PASS" : "FAIL"} ` +
            `(${row.p99.toFixed(2)} ms, floor ${floor.p99.toFixed(2)} ms, +${over.toFixed(2)} ms)`,
        );
      }
    }
  } finally {
    await Promise.all(servers.map(stopServer));
    await cp?.stop();
  }
  if (CPU_PROF) {
    for (const name of SERVERS.filter(n => n !== "floor")) {
      const d = join(profDir, name);
      const f = existsSync(d) ? readdirSync(d).find(x => x.endsWith(".cpuprofile")) : undefined;
      if (f) console.log(`\n${name}: ${summarizeProfile(join(d, f), 20)}`);
    }
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}

/**
 * The proxy gate (capabilities/proxy-gate) opens only while a proxy Pod is Ready: this control plane has no kubelet,
 * so the bench writes one, Ready, as a kubelet would report it. The module then takes the path of production, the
 * gate asked and open, and the correctness check below fails if it is not.
 */
async function openProxyGate(cp: ControlPlane): Promise<void> {
  const pod = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: "kube-image-keeper-proxy-bench",
      namespace: "kuik-system",
      labels: { "app.kubernetes.io/name": "kube-image-keeper", "app.kubernetes.io/component": "proxy" },
    },
    spec: { nodeName: "bench-node", containers: [{ name: "proxy", image: "kuik-proxy:bench" }] },
  };
  await cp.kubectl(["create", "namespace", "kuik-system"]).catch(() => undefined);
  // no controller manager here: the namespace's default ServiceAccount, which the Pod needs, is ours to make
  await cp.kubectl(["create", "serviceaccount", "default", "-n", "kuik-system"]).catch(() => undefined);
  await cp.apply(JSON.stringify(pod));
  const status = { status: { phase: "Running", conditions: [{ type: "Ready", status: "True" }] } };
  await cp.kubectl([
    "patch",
    "pod",
    pod.metadata.name,
    "-n",
    "kuik-system",
    "--subresource=status",
    "--type=merge",
    "-p",
    JSON.stringify(status),
  ]);
}
