/**
 * A private containerd (root, state and socket under a temp dir; needs root) whose CRI plugin reads registry
 * hosts.toml files from a hosts dir (config_path, re-read on every pull), plus the two pull paths tests use:
 * {@link criPull} (the kubelet's path: runtime.v1.ImageService/PullImage, via scripts/cri-pull) and {@link ctrPull}.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { makeTempDir, removeTempDir } from "./cleanup";
import { startProcess } from "./process";
import { findTool, REPO_ROOT, run, runOk, type RunResult } from "./tools";

export interface ContainerdOptions {
  /** Directory for root/, state/, the socket and the log; default a new temp dir (removed on stop). */
  dir?: string;
  /** CRI registry config_path; default `<dir>/certs.d`. */
  hostsDir?: string;
  /** containerd log level; default "info". */
  logLevel?: "debug" | "info" | "warn" | "error";
  /** Start-up timeout; default 30 s. */
  timeoutMs?: number;
  /** Run Pods for a kubelet (node.ts): the sandbox image and the CNI plugins and their configuration. */
  node?: { sandboxImage: string; cniBinDir: string; cniConfDir: string };
}

export interface StartedContainerd {
  dir: string;
  /** gRPC socket: `ctr -a SOCKET`, CRI clients. */
  socket: string;
  /** CRI config_path: write `<hostsDir>/<host>/hosts.toml` with {@link writeHostsToml}. */
  hostsDir: string;
  configFile: string;
  logFile: string;
  readonly pid: number | undefined;
  readLog(): string;
  /** Kill tasks, stop containerd (SIGTERM, SIGKILL after 10 s), unmount leftovers, remove the temp dir. */
  stop(): Promise<void>;
}

/**
 * The CRI settings a kubelet's containerd needs here. `restrict_oom_score_adj`: this machine's root lacks
 * CAP_SYS_RESOURCE, so the kubelet's `oom_score_adj = -998` for sandboxes would fail every `runc create` ("can't
 * get final child's PID from pipe: EOF"); restricted, containerd never lowers a score below its own. Unprivileged
 * ports, as containerd 2 does by default: CoreDNS runs as non-root on port 53.
 */
function nodeCriConfig(n: NonNullable<ContainerdOptions["node"]>): string {
  return `  sandbox_image = "${n.sandboxImage}"
  restrict_oom_score_adj = true
  enable_unprivileged_ports = true
  enable_unprivileged_icmp = true
  # Pod network namespaces under the state dir, not /run/netns: a stopped node leaves none behind
  netns_mounts_under_state_dir = true
[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = false
[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "${n.cniBinDir}"
  conf_dir = "${n.cniConfDir}"
`;
}

export async function startContainerd(opts: ContainerdOptions = {}): Promise<StartedContainerd> {
  if (process.getuid?.() !== 0) throw new Error("startContainerd: containerd needs root");
  const containerd = findTool("containerd");
  const ctr = findTool("ctr");
  const ownDir = !opts.dir;
  const dir = opts.dir ?? makeTempDir("containerd");
  const hostsDir = opts.hostsDir ?? join(dir, "certs.d");
  for (const d of ["root", "state", "opt"]) mkdirSync(join(dir, d), { recursive: true });
  mkdirSync(hostsDir, { recursive: true });
  const socket = join(dir, "containerd.sock");
  const configFile = join(dir, "config.toml");
  const logFile = join(dir, "containerd.log");
  writeFileSync(
    configFile,
    `version = 2
root = "${dir}/root"
state = "${dir}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.aufs", "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "${socket}"
[ttrpc]
  address = "${socket}.ttrpc"
[debug]
  level = "${opts.logLevel ?? "info"}"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "${dir}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
${opts.node ? nodeCriConfig(opts.node) : ""}[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "${hostsDir}"
`,
  );
  const proc = await startProcess({
    name: "containerd",
    cmd: containerd,
    args: ["--config", configFile],
    logFile,
    ready: async () => (await run(ctr, ["-a", socket, "version"], { timeoutMs: 5000 })).code === 0,
    readyTimeoutMs: opts.timeoutMs ?? 30_000,
  });
  const readLog = (): string => {
    try {
      return readFileSync(logFile, "utf8");
    } catch {
      return "";
    }
  };

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (proc.isRunning()) {
      const ns = await run(ctr, ["-a", socket, "namespaces", "ls", "-q"], { timeoutMs: 10_000 }).catch(
        () => undefined,
      );
      for (const n of (ns?.stdout ?? "").split("\n").filter(Boolean)) {
        const tasks = await run(ctr, ["-a", socket, "-n", n, "tasks", "ls", "-q"], {
          timeoutMs: 10_000,
        }).catch(() => undefined);
        for (const t of (tasks?.stdout ?? "").split("\n").filter(Boolean)) {
          await run(ctr, ["-a", socket, "-n", n, "tasks", "kill", "-s", "SIGKILL", t], {
            timeoutMs: 10_000,
          }).catch(() => undefined);
          await run(ctr, ["-a", socket, "-n", n, "tasks", "delete", "-f", t], { timeoutMs: 10_000 }).catch(
            () => undefined,
          );
        }
      }
      await proc.stop();
    }
    await unmountUnder(dir);
    if (ownDir) removeTempDir(dir);
  };

  return {
    dir,
    socket,
    hostsDir,
    configFile,
    logFile,
    get pid() {
      return proc.isRunning() ? proc.pid : undefined;
    },
    readLog,
    stop,
  };
}

/** Lazily unmount everything mounted under `dir` (deepest first): what containerd, runc or a kubelet left. */
export async function unmountUnder(dir: string): Promise<void> {
  const mounts = readFileSync("/proc/self/mounts", "utf8")
    .split("\n")
    .map(l => l.split(" ")[1] ?? "")
    .filter(m => m.startsWith(`${dir}/`))
    .sort()
    .reverse();
  for (const m of mounts) await run("umount", ["-l", m], { timeoutMs: 10_000 }).catch(() => undefined);
}

export interface HostEntry {
  /** "http://127.0.0.1:5001" or "https://127.0.0.1:5443" (optionally with a path prefix). */
  url: string;
  /** PEM CA for an https host. */
  caFile?: string;
  skipVerify?: boolean;
  /** Default ["pull", "resolve"]. */
  capabilities?: Array<"pull" | "resolve" | "push">;
  /** Send /v2 requests to url's path as-is (containerd override_path). */
  overridePath?: boolean;
  /** Extra headers sent to this host. */
  headers?: Record<string, string>;
}

/**
 * Write `<hostsDir>/<registry>/hosts.toml`: pulls of `<registry>/…` try `hosts` in order, then `server`
 * (default `https://<registry>`; pass e.g. "http://127.0.0.1:5000" for a plain-HTTP registry). Returns the path.
 */
export function writeHostsToml(
  hostsDir: string,
  registry: string,
  hosts: HostEntry[],
  server?: string,
): string {
  const d = join(hostsDir, registry);
  mkdirSync(d, { recursive: true });
  const lines = [`server = "${server ?? `https://${registry}`}"`];
  for (const h of hosts) {
    lines.push(
      "",
      `[host."${h.url}"]`,
      `  capabilities = [${(h.capabilities ?? ["pull", "resolve"]).map(c => `"${c}"`).join(", ")}]`,
    );
    if (h.caFile) lines.push(`  ca = "${h.caFile}"`);
    if (h.skipVerify) lines.push("  skip_verify = true");
    if (h.overridePath) lines.push("  override_path = true");
    if (h.headers) {
      lines.push(`  [host."${h.url}".header]`);
      for (const [k, v] of Object.entries(h.headers))
        lines.push(`    ${JSON.stringify(k)} = ${JSON.stringify(v)}`);
    }
  }
  const file = join(d, "hosts.toml");
  writeFileSync(file, `${lines.join("\n")}\n`);
  return file;
}

export interface CriPullResult {
  /** The image id containerd reports (image_ref: "sha256:<config digest>"). */
  imageRef: string;
  seconds: number;
}

/**
 * Pull through the CRI ImageService, as the kubelet does (scripts/cri-pull: python3-grpcio, hand-encoded
 * protobuf). Registry config comes from the hosts dir (config_path). Throws with containerd's message on failure.
 */
export async function criPull(
  socket: string,
  image: string,
  opts: { creds?: string; timeoutMs?: number } = {},
): Promise<CriPullResult> {
  findTool("python3-grpc");
  const timeoutMs = opts.timeoutMs ?? 600_000;
  const args = ["--sock", socket, image, "--timeout", String(Math.ceil(timeoutMs / 1000))];
  if (opts.creds) args.push("--creds", opts.creds);
  const r = await runOk(join(REPO_ROOT, "scripts", "cri-pull"), args, { timeoutMs: timeoutMs + 10_000 });
  const m = /ok in ([\d.]+)s image_ref=(\S+)/.exec(r.stdout);
  if (!m?.[1] || !m[2]) throw new Error(`cri-pull: unexpected output ${r.stdout}`);
  return { imageRef: m[2], seconds: Number(m[1]) };
}

export interface CtrPullOptions {
  /** Default "default" (the CRI uses "k8s.io"). */
  namespace?: string;
  plainHttp?: boolean;
  /** --hosts-dir (ctr >= 1.5): use hosts.toml files like the CRI does. */
  hostsDir?: string;
  /** "user:pass". */
  user?: string;
  skipVerify?: boolean;
  platform?: string;
  allPlatforms?: boolean;
  timeoutMs?: number;
}

/** `ctr -a SOCKET -n NS images pull …`; throws RunError on failure. */
export async function ctrPull(socket: string, image: string, opts: CtrPullOptions = {}): Promise<RunResult> {
  const args = ["-a", socket, "-n", opts.namespace ?? "default", "images", "pull"];
  if (opts.plainHttp) args.push("--plain-http");
  if (opts.hostsDir) args.push("--hosts-dir", opts.hostsDir);
  if (opts.user) args.push("--user", opts.user);
  if (opts.skipVerify) args.push("--skip-verify");
  if (opts.platform) args.push("--platform", opts.platform);
  if (opts.allPlatforms) args.push("--all-platforms");
  args.push(image);
  return runOk(findTool("ctr"), args, { timeoutMs: opts.timeoutMs ?? 600_000 });
}

/** Image names known to containerd in a namespace ("k8s.io" for CRI pulls). */
export async function ctrImages(socket: string, namespace = "k8s.io"): Promise<string[]> {
  const r = await runOk(findTool("ctr"), ["-a", socket, "-n", namespace, "images", "ls", "-q"], {
    timeoutMs: 30_000,
  });
  return r.stdout.split("\n").filter(Boolean);
}

/** Remove images (and let containerd's GC drop their content) so the next pull downloads again. */
export async function ctrRemoveImages(socket: string, names: string[], namespace = "k8s.io"): Promise<void> {
  if (names.length === 0) return;
  await runOk(findTool("ctr"), ["-a", socket, "-n", namespace, "images", "rm", "--sync", ...names], {
    timeoutMs: 60_000,
  });
}
