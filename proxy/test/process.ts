/**
 * The proxy as it ships, for tests and benches: the esbuild bundle run as a child process by Node 24 with the
 * image's Node flags and environment (proxy/Dockerfile), plus memory readings from /proc.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { freePort } from "../../test/harness/net";
import { startProcess } from "../../test/harness/process";
import { killGroup, REPO_ROOT, runOk } from "../../test/harness/tools";
import { makeTempDir } from "../../test/harness/cleanup";
import { httpGet } from "./fixtures";

/** Builds the bundle into a temp dir (what the image ships) and returns its path. */
export async function buildBundle(): Promise<string> {
  const dir = makeTempDir("proxy-bundle");
  const outfile = join(dir, "kuik-proxy.mjs");
  await runOk(process.execPath, [join(REPO_ROOT, "proxy", "build.mjs"), "--outfile", outfile], {
    timeoutMs: 60_000,
  });
  return outfile;
}

/** The proxy as a child process (for RSS and signal tests). */
export interface ProxyProcess {
  readonly pid: number;
  readonly host: string;
  readonly opsUrl: string;
  /** ms from spawn to the first 200 of /readyz. */
  readonly startupMs: number;
  readonly output: () => string;
  /** Resident set size now, in bytes (from /proc). */
  rss(): number;
  /** Private (anonymous) resident memory now, in bytes: RSS minus the node binary's shared file pages. */
  rssAnon(): number;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

/** The Node 24 binary the project pins (plain `node` may be older). */
export function node24(): string {
  return join(REPO_ROOT, "node_modules", ".bin", "node");
}

/** Options of {@link spawnProxy}. */
export interface SpawnOptions {
  /** Node.js flags before the bundle (the image's entrypoint passes some, see proxy/Dockerfile). */
  nodeArgs?: string[];
  env?: Record<string, string>;
  timeoutMs?: number;
}

/** Node flags of the proxy image (proxy/Dockerfile), so tests and benches measure what ships. */
export const IMAGE_NODE_ARGS: readonly string[] = ["--max-semi-space-size=1", "--expose-gc"];
/** Environment of the proxy image (proxy/Dockerfile). */
export const IMAGE_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: "2" };

/** Spawns the bundle with `args` (listen/ops chosen here) and waits for it to be ready. */
export async function spawnProxy(
  bundle: string,
  args: string[],
  opts: SpawnOptions = {},
): Promise<ProxyProcess> {
  const port = await freePort();
  const opsPort = await freePort();
  const opsUrl = `http://127.0.0.1:${opsPort}`;
  const logFile = join(makeTempDir("proxy-process"), "proxy.log");
  const output = (): string => (existsSync(logFile) ? readFileSync(logFile, "utf8") : "");
  const started = performance.now();
  const proc = await startProcess({
    name: "proxy",
    cmd: node24(),
    args: [
      ...(opts.nodeArgs ?? IMAGE_NODE_ARGS),
      bundle,
      ...args,
      "--listen",
      `127.0.0.1:${port}`,
      "--ops-listen",
      `127.0.0.1:${opsPort}`,
    ],
    env: { ...process.env, ...(opts.env ?? IMAGE_ENV) },
    logFile,
    ready: async () => (await httpGet(`${opsUrl}/readyz`)).status === 200,
    readyTimeoutMs: opts.timeoutMs ?? 10_000,
    pollMs: 5,
  });
  const startupMs = performance.now() - started;
  return {
    pid: proc.pid,
    host: `127.0.0.1:${port}`,
    opsUrl,
    startupMs,
    output,
    rss: () => rssOf(proc.pid),
    rssAnon: () => rssOf(proc.pid, "RssAnon"),
    exited: proc.exited,
    // a test's proxy needs no graceful stop: SIGKILL at once
    stop: async () => {
      killGroup(proc.pid, "SIGKILL");
      await proc.exited;
    },
  };
}

/** VmRSS (or another /proc/PID/status memory line) of a process, in bytes; 0 once it is gone. */
export function rssOf(pid: number, field: "VmRSS" | "RssAnon" | "VmHWM" = "VmRSS"): number {
  let status = "";
  try {
    status = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return 0;
  }
  const match = new RegExp(`${field}:\\s+(\\d+) kB`).exec(status);
  return match?.[1] ? Number(match[1]) * 1024 : 0;
}
