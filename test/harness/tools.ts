/**
 * Locating the external binaries the harness drives (registry, skopeo, crane, containerd, ctr, …) and running
 * them with a timeout. Every "not found" error names the install step, so a failing test says what to do.
 */
import { spawn, spawnSync } from "node:child_process";
import { statSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Repository root (this file is test/harness/tools.ts). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** `${KUIK_CACHE:-$HOME/.cache/kuik}`: built components (bin/) and synthetic images (images/) live here. */
export function kuikCacheDir(): string {
  return process.env.KUIK_CACHE || join(homedir(), ".cache", "kuik");
}

export interface RunOptions {
  /** Kill the process (SIGKILL on its process group) after this long; default 120 s. */
  timeoutMs?: number;
  cwd?: string;
  /** Extra environment, merged over process.env (a value of `undefined` removes the variable). */
  env?: Record<string, string | undefined>;
  /** Written to stdin, which is then closed. */
  input?: string | Buffer;
}

export interface RunResult {
  command: string;
  /** Exit code; null when killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  durationMs: number;
}

export class RunError extends Error {
  constructor(readonly result: RunResult) {
    const why = result.timedOut
      ? `timed out after ${result.durationMs} ms`
      : result.signal
        ? `killed by ${result.signal}`
        : `exited with ${result.code}`;
    const tail = (result.stderr.trim() || result.stdout.trim()).split("\n").slice(-15).join("\n");
    super(`${result.command} ${why}${tail ? `:\n${tail}` : ""}`);
    this.name = "RunError";
  }
}

function quote(a: string): string {
  return /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

export function mergeEnv(extra?: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [k, v] of Object.entries(extra ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

/** Run a command to completion; never throws for a non-zero exit (see {@link runOk}). */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const command = [cmd, ...args].map(quote).join(" ");
  const started = Date.now();
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: mergeEnv(opts.env),
      stdio: ["pipe", "pipe", "pipe"],
      detached: true, // own process group, so a timeout kills grandchildren too
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.stdin.on("error", () => undefined); // EPIPE if the command does not read stdin
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid, "SIGKILL");
    }, opts.timeoutMs ?? 120_000);
    child.on("error", e => {
      clearTimeout(timer);
      reject(
        (e as NodeJS.ErrnoException).code === "ENOENT"
          ? new Error(`${cmd}: not found (running ${command})`)
          : e,
      );
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolvePromise({
        command,
        code,
        signal,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
        timedOut,
        durationMs: Date.now() - started,
      });
    });
    if (opts.input !== undefined) child.stdin.end(opts.input);
    else child.stdin.end();
  });
}

/** {@link run}, throwing a {@link RunError} (with the stderr tail) unless the command exits 0. */
export async function runOk(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new RunError(r);
  return r;
}

/** Signal a whole process group (negative pid); ignores "no such process". */
export function killGroup(pid: number | undefined, signal: NodeJS.Signals = "SIGTERM"): void {
  if (!pid) return;
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Locating tools

export type ToolName =
  | "registry"
  | "skopeo"
  | "crane"
  | "containerd"
  | "ctr"
  | "htpasswd"
  | "openssl"
  | "curl"
  | "python3-grpc"
  | "python3"
  | "unshare"
  | "tinyproxy"
  | "helm";

const INSTALL: Record<ToolName, string> = {
  registry:
    "set KUIK_REGISTRY_BIN, or build CNCF distribution v3 with scripts/build-components.sh (-> ~/.cache/kuik/bin/registry), or apt-get install docker-registry",
  skopeo: "apt-get install skopeo",
  crane: "scripts/build-components.sh (-> ~/.cache/kuik/bin/crane) or set KUIK_CRANE_BIN",
  containerd: "apt-get install containerd",
  ctr: "apt-get install containerd",
  htpasswd: "apt-get install apache2-utils",
  openssl: "apt-get install openssl",
  curl: "apt-get install curl",
  "python3-grpc": "apt-get install python3-grpcio (used by scripts/cri-pull)",
  python3: "apt-get install python3 (used by scripts/make-image)",
  unshare: "apt-get install util-linux",
  tinyproxy: "apt-get install tinyproxy (HTTP proxy for the HTTP(S)_PROXY tests)",
  helm: "scripts/build-components.sh helm (-> ~/.cache/kuik/bin/helm) or set KUIK_HELM_BIN",
};

export class ToolNotFoundError extends Error {
  constructor(
    readonly tool: ToolName,
    detail = "",
  ) {
    super(`${tool} not found${detail ? ` (${detail})` : ""}; install: ${INSTALL[tool]}`);
    this.name = "ToolNotFoundError";
  }
}

function isExecutable(p: string): boolean {
  try {
    return statSync(p).isFile() && (statSync(p).mode & 0o111) !== 0;
  } catch {
    return false;
  }
}

/** `command -v NAME` in Node. */
export function which(name: string): string | undefined {
  if (name.includes("/")) return isExecutable(name) ? resolve(name) : undefined;
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, name);
    if (isExecutable(p)) return p;
  }
  return undefined;
}

const found = new Map<ToolName, string>();

/** Candidate paths for a tool, in order of preference. */
function candidates(tool: ToolName): string[] {
  const bin = join(kuikCacheDir(), "bin");
  switch (tool) {
    case "registry":
      return [process.env.KUIK_REGISTRY_BIN ?? "", join(bin, "registry"), "docker-registry", "registry"];
    case "crane":
      return [process.env.KUIK_CRANE_BIN ?? "", join(bin, "crane"), "crane"];
    case "helm":
      return [process.env.KUIK_HELM_BIN ?? "", join(bin, "helm"), "helm"];
    case "python3-grpc":
      // pyenv shims usually lack the Debian python3-grpcio package: prefer the system interpreter.
      return ["/usr/bin/python3", "python3", "python3.11"];
    default:
      return [tool];
  }
}

/** Absolute path of a tool, or throws {@link ToolNotFoundError} naming the install step. */
export function findTool(tool: ToolName): string {
  const hit = found.get(tool);
  if (hit) return hit;
  if (tool === "registry" && process.env.KUIK_REGISTRY_BIN && !isExecutable(process.env.KUIK_REGISTRY_BIN)) {
    throw new ToolNotFoundError(tool, `KUIK_REGISTRY_BIN=${process.env.KUIK_REGISTRY_BIN} is not executable`);
  }
  for (const c of candidates(tool)) {
    if (!c) continue;
    const p = which(c);
    if (!p) continue;
    if (tool === "python3-grpc" && spawnSync(p, ["-c", "import grpc"], { stdio: "ignore" }).status !== 0)
      continue;
    found.set(tool, p);
    return p;
  }
  throw new ToolNotFoundError(tool);
}

/** Like {@link findTool} but returns undefined instead of throwing. */
export function tryFindTool(tool: ToolName): string | undefined {
  try {
    return findTool(tool);
  } catch {
    return undefined;
  }
}

export interface RegistryBinaryInfo {
  path: string;
  /** e.g. "2.8.2+ds1", "v3.1.2". */
  version: string;
  major: number;
  minor: number;
}

const registryInfos = new Map<string, RegistryBinaryInfo>();

/** The distribution binary the harness runs (KUIK_REGISTRY_BIN > ~/.cache/kuik/bin/registry > docker-registry). */
export function registryBinary(path = findTool("registry")): RegistryBinaryInfo {
  const cached = registryInfos.get(path);
  if (cached) return cached;
  const r = spawnSync(path, ["--version"], { encoding: "utf8", timeout: 10_000 });
  const text = `${r.stdout ?? ""} ${r.stderr ?? ""}`;
  // "docker-registry github.com/docker/distribution 2.8.2+ds1" / "registry github.com/distribution/distribution/v3 v3.1.2"
  const m = /\bv?(\d+)\.(\d+)\.\d+\S*/.exec(text.replace(/distribution\/v\d+/g, ""));
  if (!m?.[1] || !m[2]) {
    // A `go build` of a module tool may report "(devel)"; the module path still says v3.
    const major = /distribution\/v3/.test(text) ? 3 : 2;
    const info = { path, version: text.trim() || "unknown", major, minor: 0 };
    registryInfos.set(path, info);
    return info;
  }
  const info = { path, version: m[0], major: Number(m[1]), minor: Number(m[2]) };
  registryInfos.set(path, info);
  return info;
}

/** `sleep(ms)` as a promise. */
export function sleep(ms: number): Promise<void> {
  return new Promise(r => setTimeout(r, ms));
}
