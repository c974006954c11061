/**
 * Convergence benchmark (issue #5): on the real local control plane with kuik's module running (admission +
 * watcher, test/e2e/stack.ts, no proxy), PODS bare Pods are created through the API (so through the webhook) using
 * IMAGES distinct images of the local origin (HTTPS + basic auth, pull secret in each namespace). Measured from the
 * first Pod create: every CachedImage Ready (`status.phase: Ready`, `isCached: true`), every `usedBy.count` right
 * (tracking converged); the watcher's peak RSS (VmHWM, sampled RSS and its anonymous part), its open sockets at the
 * end, and the CPU each process used meanwhile (/proc/<pid>/stat). Stops by itself (CONVERGE_TIMEOUT), and at once
 * when the watcher exits (its log tail is printed).
 *
 * Images: IMAGES distinct OCI images (REPOS repositories × IMAGES/REPOS tags), each one uncompressed layer of a
 * 4 KiB seeded random file and its own config, so every image has its own digests and kuik really copies every
 * blob; pushed with registry-client (not skopeo: 500 skopeo runs would take minutes). Pod j (namespace j mod
 * NAMESPACES) uses image j mod IMAGES: the first IMAGES Pods bring every image in, the rest add users.
 *
 *   npx tsx bench/convergence.ts     PODS=2000 IMAGES=500 REPOS=100 NAMESPACES=10 CREATE_CONCURRENCY=8
 *                                    CONVERGE_TIMEOUT=300 BENCH_TIMEOUT=900 LOG_LEVEL=info
 *                                    WATCHER_NODE_OPTIONS= CPU_PROF=0 HEAP_SNAPSHOT=0
 *
 * The stock run is the shipped configuration: the watcher's own API calls go through one undici Agent
 * (capabilities/kube/http.ts; KFC's per-call Agent, the cause of the 937 MiB of the first
 * measurement, is no longer on that path, so the former PATCH=kfc-agent variant is gone) and its Node flags are
 * package.json `pepr.env` NODE_OPTIONS, which the generated Deployments carry (printed at start).
 * - WATCHER_NODE_OPTIONS: extra Node flags for the watcher, appended to the shipped ones, e.g.
 *   `--max-old-space-size=160`. The run stops if they do not reach the process (checked in /proc/<pid>/environ).
 * - CPU_PROF=1: the watcher runs with `--cpu-prof`; prints where its time went (self time by function and by
 *   file/package, inclusive time by file/package; bundle frames mapped back through dist/pepr-kuik.cjs.map).
 * - HEAP_SNAPSHOT=1: after convergence, a heap snapshot of the watcher (SIGUSR2; hundreds of MB) and its largest
 *   object groups. Profiles and snapshots are kept under .kuik/bench/.
 * - Any KUIK_* setting in the environment reaches the module (e.g. KUIK_MAX_CONCURRENT_CACHED_IMAGE_RECONCILES).
 *
 * The watcher is restarted with NODE_OPTIONS for WATCHER_NODE_OPTIONS and the diagnostics. Goals: convergence
 * ≤ 60 s, watcher RSS ≤ 256 MiB.
 */
import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  statSync,
} from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Pool } from "undici";
import { RegistryClient, putManifest, uploadBlob } from "../registry-client/src";
import { mapLimit } from "../registry-client/src/copy";
import { ORIGIN_PULL_SECRET, startStack, type Stack } from "../test/e2e/stack";
import { REPO_ROOT, sleep } from "../test/harness/tools";
import { type StartedRegistry } from "../test/harness/registries";

const PODS = Number(process.env.PODS ?? 2000);
const IMAGES = Number(process.env.IMAGES ?? 500);
const REPOS = Number(process.env.REPOS ?? 100);
const NAMESPACES = Number(process.env.NAMESPACES ?? 10);
const CREATE_CONCURRENCY = Number(process.env.CREATE_CONCURRENCY ?? 8);
const CONVERGE_TIMEOUT_S = Number(process.env.CONVERGE_TIMEOUT ?? 300);
const TIMEOUT_S = Number(process.env.BENCH_TIMEOUT ?? 900);
const LOG_LEVEL = process.env.LOG_LEVEL ?? "info";
const CPU_PROF = process.env.CPU_PROF === "1";
const HEAP_SNAPSHOT = process.env.HEAP_SNAPSHOT === "1";
/** Extra Node options for the watcher, e.g. `--max-semi-space-size=1 --max-old-space-size=160`. */
const WATCHER_NODE_OPTIONS = (process.env.WATCHER_NODE_OPTIONS ?? "").split(/\s+/).filter(Boolean);
const GOAL_S = 60;
const GOAL_RSS_MIB = 256;
const CLK_TCK = Number(spawnSync("getconf", ["CLK_TCK"]).stdout?.toString().trim() || 100);
const BUNDLE_MAP = join(REPO_ROOT, "dist", "pepr-kuik.cjs.map");

// ---------------------------------------------------------------------------------------------------------------
// /proc

function cpuMs(pid: number | undefined): number {
  if (!pid || !existsSync(`/proc/${pid}/stat`)) return NaN;
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
}

function memMiB(pid: number, field: "VmRSS" | "VmHWM" | "RssAnon" | "RssFile"): number {
  if (!existsSync(`/proc/${pid}/status`)) return NaN;
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? 0) / 1024;
}

/**
 * A process's open sockets by peer: `name` of `peers` (remote TCP port → name), `listening`, `other tcp`, and
 * non-TCP (Unix sockets, pipes of the event loop).
 */
function socketsByPeer(pid: number, peers: Record<number, string>): string {
  const inodes = new Set<string>();
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m?.[1]) inodes.add(m[1]);
      } catch {
        // closed meanwhile
      }
    }
  } catch {
    return "?";
  }
  const counts = new Map<string, number>();
  const count = (k: string): void => void counts.set(k, (counts.get(k) ?? 0) + 1);
  for (const table of ["tcp", "tcp6"]) {
    let lines: string[] = [];
    try {
      lines = readFileSync(`/proc/${pid}/net/${table}`, "utf8").trim().split("\n").slice(1);
    } catch {
      continue;
    }
    for (const line of lines) {
      const f = line.trim().split(/\s+/);
      const inode = f[9] ?? "";
      if (!inodes.delete(inode)) continue;
      const port = parseInt((f[2] ?? "").split(":")[1] ?? "0", 16);
      count(f[3] === "0A" ? "listening" : (peers[port] ?? "other tcp"));
    }
  }
  if (inodes.size > 0) counts.set("non-TCP", inodes.size);
  return [...counts].map(([k, n]) => `${k} ${n}`).join(", ");
}

/** NODE_OPTIONS a process was started with (`""` when none). */
function nodeOptionsOf(pid: number): string {
  try {
    const entry = readFileSync(`/proc/${pid}/environ`, "utf8")
      .split("\0")
      .find(e => e.startsWith("NODE_OPTIONS="));
    return entry?.slice("NODE_OPTIONS=".length) ?? "";
  } catch {
    return "";
  }
}

/** Open sockets of a process (fds pointing at `socket:[…]`). */
function socketCount(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).filter(fd => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith("socket:");
      } catch {
        return false;
      }
    }).length;
  } catch {
    return NaN;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// images

/** A one-file ustar archive: `name` holding `data`. */
function tarOf(name: string, data: Buffer): Buffer {
  const header = Buffer.alloc(512);
  const put = (s: string, off: number, len: number): void => void header.write(s, off, len, "ascii");
  put(name, 0, 100);
  put("0000644\0", 100, 8);
  put("0000000\0", 108, 8);
  put("0000000\0", 116, 8);
  put(`${data.length.toString(8).padStart(11, "0")}\0`, 124, 12);
  put(`${(1_700_000_000).toString(8).padStart(11, "0")}\0`, 136, 12);
  put("        ", 148, 8);
  put("0", 156, 1);
  put("ustar\0", 257, 6);
  put("00", 263, 2);
  let sum = 0;
  for (const b of header) sum += b;
  put(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8);
  const pad = Buffer.alloc((512 - (data.length % 512)) % 512);
  return Buffer.concat([header, data, pad, Buffer.alloc(1024)]);
}

const sha256 = (b: Buffer): string => `sha256:${createHash("sha256").update(b).digest("hex")}`;

interface BenchImage {
  repo: string;
  tag: string;
  ref: string;
}

/** Push IMAGES distinct tiny images to the origin; returns their references. */
async function pushImages(origin: StartedRegistry): Promise<BenchImage[]> {
  const client = new RegistryClient({
    defaultCa: [readFileSync(origin.caFile ?? "", "utf8")],
    credentials: r =>
      r === origin.host
        ? [{ kind: "basic", username: origin.username ?? "", password: origin.password ?? "" }]
        : [],
  });
  const images = Array.from({ length: IMAGES }, (_, i) => {
    const repo = `bench/app-${String(i % REPOS).padStart(3, "0")}`;
    const tag = `v${Math.floor(i / REPOS)}`;
    return { repo, tag, ref: `${origin.host}/${repo}:${tag}` };
  });
  const seed = randomBytes(8).toString("hex");
  try {
    await mapLimit(images, 8, async img => {
      const data = createHash("sha512").update(`${seed}/${img.ref}`).digest();
      const layer = tarOf(
        `data/${img.repo.replace("/", "-")}-${img.tag}.bin`,
        Buffer.concat(Array(64).fill(data)),
      );
      const layerDigest = sha256(layer);
      const config = Buffer.from(
        JSON.stringify({
          architecture: "amd64",
          os: "linux",
          config: { Labels: { "bench.kuik/image": img.ref } },
          rootfs: { type: "layers", diff_ids: [layerDigest] },
        }),
      );
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          config: {
            mediaType: "application/vnd.oci.image.config.v1+json",
            digest: sha256(config),
            size: config.length,
          },
          layers: [
            { mediaType: "application/vnd.oci.image.layer.v1.tar", digest: layerDigest, size: layer.length },
          ],
        }),
      );
      await uploadBlob(client, origin.host, img.repo, layerDigest, layer.length, layer);
      await uploadBlob(client, origin.host, img.repo, sha256(config), config.length, config);
      await putManifest(client, origin.host, img.repo, img.tag, {
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        bytes: manifest,
      });
    });
  } finally {
    await client.close();
  }
  return images;
}

// ---------------------------------------------------------------------------------------------------------------
// CPU profile summary

/** Decoded source map: per generated line, segments [column, source, line, column, name?]. */
class SourceMap {
  readonly #lines: number[][][] = [];
  readonly sources: string[];
  readonly names: string[];

  constructor(file: string) {
    const map = JSON.parse(readFileSync(file, "utf8")) as {
      sources: string[];
      names: string[];
      mappings: string;
    };
    this.sources = map.sources.map(s => s.replace(/^(\.\.\/)+/, ""));
    this.names = map.names;
    const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let src = 0;
    let srcLine = 0;
    let srcCol = 0;
    let name = 0;
    for (const line of map.mappings.split(";")) {
      const segments: number[][] = [];
      let col = 0;
      for (const seg of line.split(",")) {
        if (!seg) continue;
        const values: number[] = [];
        let value = 0;
        let shift = 0;
        for (const ch of seg) {
          const d = B64.indexOf(ch);
          value += (d & 31) << shift;
          if (d & 32) shift += 5;
          else {
            values.push(value & 1 ? -(value >>> 1) : value >>> 1);
            value = 0;
            shift = 0;
          }
        }
        col += values[0] ?? 0;
        if (values.length >= 4) {
          src += values[1] ?? 0;
          srcLine += values[2] ?? 0;
          srcCol += values[3] ?? 0;
          if (values.length >= 5) name += values[4] ?? 0;
          segments.push(values.length >= 5 ? [col, src, srcLine, srcCol, name] : [col, src, srcLine, srcCol]);
        }
      }
      this.#lines.push(segments);
    }
  }

  /** Original `source:line` (1-based) and name of a generated position (0-based line and column). */
  lookup(line: number, column: number): { source: string; line: number; name?: string } | undefined {
    const segs = this.#lines[line];
    if (!segs || segs.length === 0) return undefined;
    let lo = 0;
    let hi = segs.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((segs[mid]?.[0] ?? 0) <= column) lo = mid;
      else hi = mid - 1;
    }
    const s = segs[lo];
    if (!s) return undefined;
    const out: { source: string; line: number; name?: string } = {
      source: this.sources[s[1] ?? 0] ?? "?",
      line: (s[2] ?? 0) + 1,
    };
    if (s[4] !== undefined) out.name = this.names[s[4]] ?? "";
    return out;
  }
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}

/** Self time by function and by file (bundle frames mapped to their sources), and the hottest call stacks. */
export function summarizeProfile(file: string, top = 25): string {
  const profile = JSON.parse(readFileSync(file, "utf8")) as {
    nodes: ProfileNode[];
    samples: number[];
    timeDeltas: number[];
    startTime: number;
    endTime: number;
  };
  const map = existsSync(BUNDLE_MAP) ? new SourceMap(BUNDLE_MAP) : undefined;
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const byId = new Map(profile.nodes.map(n => [n.id, n]));
  const describe = (n: ProfileNode): { fn: string; file: string } => {
    const { functionName, url, lineNumber, columnNumber } = n.callFrame;
    const name = functionName || "(anonymous)";
    if (!url) return { fn: name, file: name.startsWith("(") ? name : "(native)" };
    if (url.endsWith("pepr-kuik.cjs") && map) {
      const o = map.lookup(lineNumber, columnNumber);
      if (o) {
        const bundled = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(o.source)?.[1];
        return {
          fn: `${o.name || name} ${o.source}:${o.line}`,
          file: bundled ? `node_modules/${bundled} (bundled)` : o.source,
        };
      }
    }
    const path = url.replace(/^file:\/\//, "").replace(`${REPO_ROOT}/`, "");
    const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path)?.[1];
    return { fn: `${name} ${path}:${lineNumber + 1}`, file: pkg ? `node_modules/${pkg}` : path };
  };
  const totalUs = [...self.values()].reduce((a, b) => a + b, 0);
  const idleUs = [...self.entries()]
    .filter(([id]) => byId.get(id)?.callFrame.functionName === "(idle)")
    .reduce((a, [, v]) => a + v, 0);
  const fnSelf = new Map<string, number>();
  const fileSelf = new Map<string, number>();
  const fileTotal = new Map<string, number>();
  for (const [id, us] of self) {
    const n = byId.get(id);
    if (!n || n.callFrame.functionName === "(idle)") continue;
    const d = describe(n);
    fnSelf.set(d.fn, (fnSelf.get(d.fn) ?? 0) + us);
    fileSelf.set(d.file, (fileSelf.get(d.file) ?? 0) + us);
    // inclusive time per file or package: charge each once per sample stack (stacks stop at each await)
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const node = byId.get(cur);
      if (!node) break;
      const f = describe(node).file;
      if (!f.startsWith("(") && !seen.has(f)) {
        seen.add(f);
        fileTotal.set(f, (fileTotal.get(f) ?? 0) + us);
      }
    }
  }
  const busy = totalUs - idleUs;
  const pct = (us: number): string => `${((100 * us) / busy).toFixed(1).padStart(5)}%`;
  const ms = (us: number): string => `${(us / 1000).toFixed(0).padStart(7)} ms`;
  const rows = (m: Map<string, number>, n: number): string[] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, v]) => `  ${ms(v)} ${pct(v)}  ${k}`);
  return [
    `profile ${file}: ${(busy / 1e6).toFixed(1)} s busy of ${((profile.endTime - profile.startTime) / 1e6).toFixed(1)} s`,
    `self time by function (top ${top}):`,
    ...rows(fnSelf, top),
    "self time by file or package:",
    ...rows(fileSelf, 15),
    "inclusive time by file or package (synchronous stacks: a callback after an await starts a new stack):",
    ...rows(fileTotal, 25),
  ].join("\n");
}

/** Count and self size of the heap's objects by constructor (or type), largest first. */
export function summarizeHeap(file: string, top = 25): string {
  const snap = JSON.parse(readFileSync(file, "utf8")) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
    nodes: number[];
    strings: string[];
  };
  const fields = snap.snapshot.meta.node_fields;
  const width = fields.length;
  const fType = fields.indexOf("type");
  const fName = fields.indexOf("name");
  const fSize = fields.indexOf("self_size");
  const types = snap.snapshot.meta.node_types[0];
  const groups = new Map<string, { count: number; size: number }>();
  let total = 0;
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + fType] as number] ?? "?";
    const name = snap.strings[snap.nodes[i + fName] as number] ?? "?";
    const size = snap.nodes[i + fSize] as number;
    total += size;
    const key = type === "object" || type === "native" ? `${name} (${type})` : `(${type})`;
    const g = groups.get(key) ?? { count: 0, size: 0 };
    g.count++;
    g.size += size;
    groups.set(key, g);
  }
  const rows = [...groups.entries()]
    .sort((a, b) => b[1].size - a[1].size)
    .slice(0, top)
    .map(
      ([k, g]) =>
        `  ${(g.size / 2 ** 20).toFixed(1).padStart(7)} MiB ${g.count.toString().padStart(8)} ×  ${k}`,
    );
  return [
    `heap snapshot ${file}: ${(total / 2 ** 20).toFixed(0)} MiB of objects; largest groups:`,
    ...rows,
  ].join("\n");
}

/** Waits for a file matching `match` in `dir` to appear and stop growing; returns its path. */
async function settledFile(dir: string, match: (f: string) => boolean, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let lastSize = -1;
  for (;;) {
    const f = readdirSync(dir).find(match);
    if (f) {
      const size = statSync(join(dir, f)).size;
      if (size > 0 && size === lastSize) return join(dir, f);
      lastSize = size;
    }
    if (Date.now() > deadline) throw new Error(`no settled file in ${dir}`);
    await sleep(1000);
  }
}

// ---------------------------------------------------------------------------------------------------------------

interface CachedImageLike {
  metadata?: { name?: string };
  status?: { phase?: string; isCached?: boolean; usedBy?: { count?: number } };
}

async function main(): Promise<void> {
  const timer = setTimeout(() => {
    console.error(`bench timed out after ${TIMEOUT_S} s`);
    process.exit(2);
  }, TIMEOUT_S * 1000);
  timer.unref();
  const usersPerImage = PODS / IMAGES;
  console.log(
    `convergence bench: ${PODS} Pods, ${IMAGES} distinct images (${REPOS} repositories), ${NAMESPACES} namespaces, ` +
      `created ${CREATE_CONCURRENCY} at a time through the webhook; LOG_LEVEL=${LOG_LEVEL}`,
  );
  const runDir = join(
    REPO_ROOT,
    ".kuik",
    "bench",
    `convergence-${new Date().toISOString().replace(/[:.]/g, "-")}`,
  );
  let stack: Stack | undefined;
  let api: Pool | undefined;
  try {
    const t = performance.now();
    stack = await startStack({ proxy: false, logLevel: LOG_LEVEL });
    console.log(
      `stack up in ${((performance.now() - t) / 1000).toFixed(1)} s (control plane ${stack.cp.version})`,
    );
    const s = stack;
    // Extra flags and diagnostics: restart the watcher with NODE_OPTIONS after the shipped ones.
    const diagnostics = [
      ...(CPU_PROF ? [`--cpu-prof`, `--cpu-prof-dir=${runDir}`] : []),
      ...(HEAP_SNAPSHOT ? [`--heapsnapshot-signal=SIGUSR2`, `--diagnostic-dir=${runDir}`] : []),
    ];
    if (diagnostics.length > 0) mkdirSync(runDir, { recursive: true });
    const shipped = nodeOptionsOf(s.module.watcher.pid);
    console.log(`watcher NODE_OPTIONS (package.json pepr.env): ${shipped || "(none)"}`);
    const extra = [...WATCHER_NODE_OPTIONS, ...diagnostics];
    if (extra.length > 0) {
      process.env.NODE_OPTIONS = [shipped, ...extra].filter(Boolean).join(" ");
      try {
        await s.module.restart("watcher");
      } finally {
        delete process.env.NODE_OPTIONS;
      }
      const now = nodeOptionsOf(s.module.watcher.pid);
      if (!extra.every(o => now.split(/\s+/).includes(o)))
        throw new Error(
          `the watcher runs with NODE_OPTIONS "${now}": the harness did not pass ${extra.join(" ")}`,
        );
      console.log(`watcher restarted with NODE_OPTIONS ${now} (pid ${s.module.watcher.pid})`);
    }

    const t1 = performance.now();
    const images = await pushImages(s.origin);
    console.log(
      `${images.length} images pushed to the origin in ${((performance.now() - t1) / 1000).toFixed(1)} s`,
    );
    const namespaces = Array.from({ length: NAMESPACES }, (_, i) => `bench-${i}`);
    await Promise.all(namespaces.map(ns => s.namespaceWithPullSecret(ns)));

    api = new Pool(s.cp.server, {
      connect: {
        ca: readFileSync(s.cp.caFile),
        cert: readFileSync(s.cp.adminCertFile),
        key: readFileSync(s.cp.adminKeyFile),
      },
      connections: CREATE_CONCURRENCY + 2,
    });
    const pool = api;
    const listCachedImages = async (): Promise<CachedImageLike[]> => {
      const r = await pool.request({ path: "/apis/kuik.enix.io/v1alpha1/cachedimages", method: "GET" });
      const body = (await r.body.json()) as { items?: CachedImageLike[] };
      if (r.statusCode !== 200) throw new Error(`list cachedimages: ${r.statusCode}`);
      return body.items ?? [];
    };

    const pids = {
      watcher: s.module.watcher.pid,
      admission: s.module.admission.pid,
      "kube-apiserver": s.cp.processes.find(p => p.name === "kube-apiserver")?.pid,
      etcd: s.cp.processes.find(p => p.name === "etcd")?.pid,
      "kube-controller-manager": s.cp.processes.find(p => p.name === "kube-controller-manager")?.pid,
      "cache registry": s.cache.pid,
      "origin registry": s.origin.pid,
    };
    const cpu0 = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuMs(pid)]));
    const rss0 = memMiB(s.module.watcher.pid, "VmRSS");
    let peakRss = rss0;
    let peakAnon = memMiB(s.module.watcher.pid, "RssAnon");
    let hwm = 0;
    let watcherDied = 0;
    let lastWatcherCpu = NaN;

    // create the Pods
    const start = performance.now();
    let created = 0;
    let createErrors = 0;
    let podsDoneAt = 0;
    const creation = mapLimit(
      Array.from({ length: PODS }, (_, j) => j),
      CREATE_CONCURRENCY,
      async j => {
        const ns = namespaces[j % NAMESPACES] as string;
        const pod = {
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name: `pod-${String(j).padStart(5, "0")}`, namespace: ns, labels: { app: "bench" } },
          spec: {
            imagePullSecrets: [{ name: ORIGIN_PULL_SECRET }],
            containers: [
              { name: "app", image: (images[j % IMAGES] as BenchImage).ref, imagePullPolicy: "IfNotPresent" },
            ],
          },
        };
        const r = await pool.request({
          path: `/api/v1/namespaces/${ns}/pods`,
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(pod),
        });
        const text = await r.body.text();
        if (r.statusCode !== 201) {
          createErrors++;
          if (createErrors <= 3) console.error(`pod create ${r.statusCode}: ${text.slice(0, 300)}`);
          return;
        }
        if (j === 0 && !text.includes(`localhost:${s.proxyPort}/`)) {
          throw new Error(`the webhook did not rewrite the first Pod: ${text.slice(0, 500)}`);
        }
        created++;
      },
    ).then(() => {
      podsDoneAt = performance.now();
    });

    // watch the CachedImages
    const at = (): number => (performance.now() - start) / 1000;
    let firstSeen = 0;
    let allExist = 0;
    let allReady = 0;
    let tracked = 0;
    let lastLine = 0;
    const deadline = start + CONVERGE_TIMEOUT_S * 1000;
    let last = { total: 0, ready: 0, failed: 0, usedByRight: 0 };
    for (;;) {
      const items = await listCachedImages().catch(() => undefined);
      const rss = memMiB(s.module.watcher.pid, "VmRSS");
      if (!Number.isNaN(rss)) {
        lastWatcherCpu = cpuMs(s.module.watcher.pid);
        peakRss = Math.max(peakRss, rss);
        peakAnon = Math.max(peakAnon, memMiB(s.module.watcher.pid, "RssAnon"));
        hwm = Math.max(hwm, memMiB(s.module.watcher.pid, "VmHWM") || 0);
      }
      if (items) {
        last = {
          total: items.length,
          ready: items.filter(ci => ci.status?.phase === "Ready" && ci.status.isCached === true).length,
          failed: items.filter(ci => ci.status?.phase === "ErrImagePull").length,
          usedByRight: items.filter(ci => ci.status?.usedBy?.count === usersPerImage).length,
        };
        if (!firstSeen && last.total > 0) firstSeen = at();
        if (!allExist && last.total >= IMAGES) allExist = at();
        if (!allReady && last.ready >= IMAGES) allReady = at();
        if (!tracked && podsDoneAt && last.usedByRight >= IMAGES) tracked = at();
      }
      if (at() - lastLine >= 5) {
        lastLine = at();
        console.log(
          `  t=${at().toFixed(1).padStart(5)} s  pods ${created}/${PODS}  cachedimages ${last.total}  ` +
            `ready ${last.ready}  ErrImagePull ${last.failed}  usedBy right ${last.usedByRight}  ` +
            `watcher RSS ${memMiB(s.module.watcher.pid, "VmRSS").toFixed(0)} MiB`,
        );
      }
      if (!s.module.watcher.running) {
        watcherDied = at();
        const tail = s.module.watcher.readLog().trim().split("\n").slice(-12).join("\n");
        console.log(`  t=${at().toFixed(1)} s  THE WATCHER EXITED; its log ends with:\n${tail}`);
        break;
      }
      if ((allReady && tracked) || performance.now() > deadline) break;
      await sleep(250);
    }
    await creation;
    const elapsed = at();
    const cpu = Object.entries(pids).map(([k, pid]) => {
      const now = cpuMs(pid);
      return [k, (Number.isNaN(now) && k === "watcher" ? lastWatcherCpu : now) - (cpu0[k] ?? 0)] as const;
    });
    if (s.module.watcher.running) hwm = Math.max(hwm, memMiB(s.module.watcher.pid, "VmHWM"));
    const sockets = socketCount(s.module.watcher.pid);
    const apiPort = s.cp.processes.find(p => p.name === "kube-apiserver")?.port ?? 0;
    const byPeer = socketsByPeer(s.module.watcher.pid, {
      [apiPort]: "kube-apiserver",
      [s.cache.port]: "cache registry",
      [s.origin.port]: "origin registry",
    });
    const apiserverPid = pids["kube-apiserver"] ?? 0;

    console.log(`\nresults (${PODS} Pods, ${IMAGES} images; times from the first Pod create):`);
    console.log(
      `  pods created          ${((podsDoneAt - start) / 1000).toFixed(1)} s (${created} ok, ${createErrors} failed, ` +
        `${(created / ((podsDoneAt - start) / 1000)).toFixed(0)} Pods/s)`,
    );
    console.log(`  first CachedImage     ${firstSeen ? `${firstSeen.toFixed(1)} s` : "never"}`);
    console.log(`  all CachedImages exist ${allExist ? `${allExist.toFixed(1)} s` : "no"}`);
    console.log(
      `  all Ready             ${allReady ? `${allReady.toFixed(1)} s` : `NOT within ${CONVERGE_TIMEOUT_S} s (${last.ready}/${IMAGES})`}`,
    );
    console.log(
      `  usedBy.count = ${usersPerImage} everywhere ${tracked ? `${tracked.toFixed(1)} s` : `no (${last.usedByRight}/${IMAGES})`}`,
    );
    console.log(
      `  watcher RSS           ${rss0.toFixed(0)} MiB before, peak ${hwm.toFixed(0)} MiB (VmHWM; sampled ` +
        `${peakRss.toFixed(0)}, of which anonymous ${peakAnon.toFixed(0)}; file-backed now ` +
        `${memMiB(s.module.watcher.pid, "RssFile").toFixed(0)})`,
    );
    console.log(
      `  watcher sockets open  ${sockets} at the end (${byPeer}; kube-apiserver RSS peak ${memMiB(apiserverPid, "VmHWM").toFixed(0)} MiB)`,
    );
    console.log(`  CPU over the ${elapsed.toFixed(1)} s (s of CPU, % of one core):`);
    for (const [k, v] of cpu) {
      console.log(
        `    ${k.padEnd(24)} ${(v / 1000).toFixed(1).padStart(6)} s  ${((v / 10 / elapsed) | 0).toString().padStart(4)}%`,
      );
    }
    if (watcherDied)
      console.log(`  the watcher EXITED at ${watcherDied.toFixed(1)} s (peak figures up to then)`);
    const converged = allReady ? allReady : Infinity;
    console.log(
      `goal convergence ≤ ${GOAL_S} s: ${converged <= GOAL_S ? "PASS" : "FAIL"} (${allReady ? `${allReady.toFixed(1)} s` : "not converged"})`,
    );
    console.log(
      `goal watcher RSS ≤ ${GOAL_RSS_MIB} MiB: ${hwm <= GOAL_RSS_MIB ? "PASS" : "FAIL"} (${hwm.toFixed(0)} MiB)`,
    );
    if (HEAP_SNAPSHOT) {
      const pid = s.module.watcher.pid;
      const before = memMiB(pid, "VmRSS");
      process.kill(pid, "SIGUSR2");
      const snapshot = await settledFile(runDir, f => f.endsWith(".heapsnapshot"), 120_000);
      console.log(
        `\nwatcher RSS ${before.toFixed(0)} MiB before the snapshot (a full GC), ` +
          `${memMiB(pid, "VmRSS").toFixed(0)} MiB after, ${socketCount(pid)} sockets`,
      );
      console.log(summarizeHeap(snapshot));
    }
  } finally {
    await api?.close();
    const watcherPid = stack?.module.watcher.pid;
    await stack?.stop();
    if (CPU_PROF && watcherPid) {
      const file = readdirSync(runDir).find(f => f.includes(`.${watcherPid}.`) && f.endsWith(".cpuprofile"));
      if (file) {
        const kept = join(runDir, "watcher.cpuprofile");
        renameSync(join(runDir, file), kept);
        console.log(`\n${summarizeProfile(kept)}`);
      } else console.log(`no CPU profile of the watcher (pid ${watcherPid}) in ${runDir}`);
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
