/**
 * skopeo, run hermetically. Its blob-info cache (root: /var/lib/containers/cache/blob-info-cache-v1.boltdb)
 * remembers which blobs a registry already has and turns later pushes into cross-repository mounts, so every run
 * gets an empty one by default: a private mount namespace (`unshare -m`) with an empty temp dir bind-mounted over
 * /var/lib/containers/cache. Auth files and registries.conf are isolated too (no ambient credentials or mirrors).
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { makeTempDir, removeTempDir } from "./cleanup";
import { findTool, run, runOk, tryFindTool, type RunResult } from "./tools";

/** What skopeo needs to talk to a registry: a StartedRegistry or FaultProxy fits. */
export interface RegistryTarget {
  host: string;
  tls: boolean;
  certDir?: string;
  username?: string;
  password?: string;
}

/** skopeo TLS flags for one side ("src" / "dest"); "" for commands without sides (inspect, delete). */
export function skopeoTlsArgs(target: RegistryTarget, side: "src" | "dest" | ""): string[] {
  const p = side ? `--${side}-` : "--";
  if (!target.tls) return [`${p}tls-verify=false`];
  return [`${p}tls-verify=true`, ...(target.certDir ? [`${p}cert-dir`, target.certDir] : [])];
}

/** skopeo credential flags: explicit creds, else the target's, else anonymous. `null` forces anonymous. */
export function skopeoCredArgs(
  target: RegistryTarget,
  side: "src" | "dest" | "",
  creds?: string | null,
): string[] {
  const p = side ? `--${side}-` : "--";
  const c =
    creds === null
      ? undefined
      : (creds ??
        (target.username !== undefined ? `${target.username}:${target.password ?? ""}` : undefined));
  return c ? [`${p}creds`, c] : [`${p}no-creds`];
}

let isolation: "unshare" | "none" | undefined;

/** Whether skopeo runs can get a private, empty blob-info cache (needs root + unshare -m). */
async function canIsolate(): Promise<boolean> {
  if (isolation === undefined) {
    const unshare = tryFindTool("unshare");
    isolation = "none";
    if (unshare && process.getuid?.() === 0) {
      const r = await run(unshare, ["-m", "sh", "-c", "mount --bind /tmp /mnt && true"], {
        timeoutMs: 10_000,
      }).catch(() => undefined);
      if (r?.code === 0) isolation = "unshare";
    }
  }
  return isolation === "unshare";
}

export interface SkopeoOptions {
  timeoutMs?: number;
  /** Give this run an empty blob-info cache (default true). */
  freshBlobInfoCache?: boolean;
}

/**
 * Run skopeo hermetically: --insecure-policy, no ambient auth file or registries.conf and, by default, an empty
 * blob-info cache. Throws {@link RunError} on failure.
 */
export async function skopeo(args: string[], opts: SkopeoOptions = {}): Promise<RunResult> {
  const bin = findTool("skopeo");
  const dir = makeTempDir("skopeo");
  try {
    const regConf = join(dir, "registries.conf");
    writeFileSync(regConf, "");
    const env = {
      REGISTRY_AUTH_FILE: join(dir, "auth.json"), // does not exist: no credentials but the ones we pass
      CONTAINERS_REGISTRIES_CONF: regConf,
      CONTAINERS_REGISTRIES_CONF_DIR: join(dir, "registries.conf.d"),
      DOCKER_CONFIG: join(dir, "docker"),
      XDG_RUNTIME_DIR: dir,
      TMPDIR: dir,
    };
    const full = ["--insecure-policy", "--tmpdir", dir, ...args];
    const timeoutMs = opts.timeoutMs ?? 10 * 60_000;
    if ((opts.freshBlobInfoCache ?? true) && (await canIsolate())) {
      const cache = join(dir, "blob-info-cache");
      mkdirSync(cache);
      mkdirSync("/var/lib/containers/cache", { recursive: true });
      const script = 'mount --bind "$0" /var/lib/containers/cache && exec "$@"';
      return await runOk(findTool("unshare"), ["-m", "sh", "-c", script, cache, bin, ...full], {
        env,
        timeoutMs,
      });
    }
    return await runOk(bin, full, { env, timeoutMs });
  } finally {
    removeTempDir(dir);
  }
}

/** `skopeo inspect --raw` of "REPO:TAG" or "REPO@DIGEST" on the target: the manifest bytes as served. */
export async function inspectRaw(
  target: RegistryTarget,
  repoRef: string,
  creds?: string | null,
): Promise<Buffer> {
  const r = await skopeo(
    [
      "inspect",
      "--raw",
      "--retry-times",
      "0",
      ...skopeoTlsArgs(target, ""),
      ...skopeoCredArgs(target, "", creds),
      `docker://${target.host}/${repoRef}`,
    ],
    { freshBlobInfoCache: false, timeoutMs: 60_000 },
  );
  return Buffer.from(r.stdout, "utf8");
}

/** Copy between registries with skopeo (e.g. seed a second origin); returns the destination digest. */
export async function copyImage(
  src: RegistryTarget,
  srcRef: string,
  dest: RegistryTarget,
  destRef: string,
  opts: SkopeoOptions & {
    all?: boolean;
    format?: "oci" | "docker";
    srcCreds?: string | null;
    destCreds?: string | null;
  } = {},
): Promise<string> {
  const dir = makeTempDir("copy");
  try {
    const digestFile = join(dir, "digest");
    const args = [
      "copy",
      "--retry-times",
      "0",
      "--digestfile",
      digestFile,
      ...((opts.all ?? true) ? ["--all"] : []),
    ];
    if (opts.format === "docker") args.push("--format", "v2s2");
    if (opts.format === "oci") args.push("--format", "oci");
    args.push(...skopeoTlsArgs(src, "src"), ...skopeoCredArgs(src, "src", opts.srcCreds));
    args.push(...skopeoTlsArgs(dest, "dest"), ...skopeoCredArgs(dest, "dest", opts.destCreds));
    args.push(`docker://${src.host}/${srcRef}`, `docker://${dest.host}/${destRef}`);
    await skopeo(args, opts);
    return readFileSync(digestFile, "utf8").trim();
  } finally {
    removeTempDir(dir);
  }
}
