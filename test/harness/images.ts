/**
 * Synthetic images: built by scripts/make-image (seeded random layers, so the same spec gives the same digests on
 * every machine), cached as OCI layouts under `${KUIK_CACHE:-~/.cache/kuik}/images/`, and pushed with skopeo
 * (hermetic, with an empty blob-info cache per run so pushes really upload: see skopeo.ts).
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { kuikCacheDir, REPO_ROOT, findTool, runOk } from "./tools";
import { makeTempDir, removeTempDir } from "./cleanup";
import {
  inspectRaw,
  skopeo,
  skopeoCredArgs,
  skopeoTlsArgs,
  type RegistryTarget,
  type SkopeoOptions,
} from "./skopeo";

export {
  copyImage,
  inspectRaw,
  skopeo,
  skopeoCredArgs,
  skopeoTlsArgs,
  type RegistryTarget,
  type SkopeoOptions,
} from "./skopeo";

export interface ImageSpec {
  /** Layer payload per architecture: bytes, or "1M", "100M", "1G" (binary units). Default "1M". */
  size?: number | string;
  /** Number of layers the payload is split into; default 1. */
  layers?: number;
  /** One platform ("amd64") or several (["amd64", "arm64", "arm/v7"]: an index). Default "amd64". */
  arch?: string | string[];
  /** Seed of the random content; default "0". Different seeds give different blobs. */
  seed?: string;
  /** Tag inside the OCI layout; default "latest". */
  tag?: string;
  /** gzip level of the layers, 0 (stored, fast; the default) to 9. */
  gzipLevel?: number;
  /** Extra files in a first layer: host path -> absolute path in the image. */
  addFiles?: Array<{ src: string; dst: string }>;
  /** Image config Cmd (space-separated). */
  cmd?: string;
}

export interface BuiltImage {
  /** OCI layout directory (shared cache: do not modify). */
  dir: string;
  tag: string;
  /** skopeo source reference "oci:DIR:TAG". */
  ociRef: string;
  /** Digest of the top-level OCI manifest or index in the layout (an OCI push keeps it; a Docker push does not). */
  digest: string;
  multiArch: boolean;
  /** Per-platform OCI manifest digests, keyed by the --arch spelling ("amd64", "arm/v7"). */
  manifests: Record<string, string>;
  /** Every blob in the layout (layers, configs, manifests, index). */
  blobs: string[];
  /** Total layer bytes over all platforms. */
  bytes: number;
  /** Whether this call found the layout already built. */
  cached: boolean;
  spec: Required<Omit<ImageSpec, "addFiles" | "cmd" | "size" | "arch">> & {
    size: number;
    arch: string[];
    addFiles: Array<{ src: string; dst: string }>;
    cmd?: string;
  };
}

/** Parse "1M" / "100MiB" / "1G" / 1234 to bytes (binary units). */
export function parseSize(s: number | string): number {
  if (typeof s === "number") return s;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$/i.exec(s);
  if (!m?.[1]) throw new Error(`bad size ${s}`);
  const mult: Record<string, number> = { "": 1, K: 1 << 10, M: 1 << 20, G: 1 << 30, T: 2 ** 40 };
  return Math.floor(Number(m[1]) * (mult[(m[2] ?? "").toUpperCase()] ?? 1));
}

function humanSize(n: number): string {
  for (const [u, v] of [
    ["G", 1 << 30],
    ["M", 1 << 20],
    ["K", 1 << 10],
  ] as const)
    if (n >= v && n % v === 0) return `${n / v}${u}`;
  return String(n);
}

/** Bump when make-image's output for the same parameters changes (invalidates every cached layout). */
const IMAGE_FORMAT_VERSION = 1;

function normalize(spec: ImageSpec): BuiltImage["spec"] {
  const arch = Array.isArray(spec.arch) ? spec.arch : (spec.arch ?? "amd64").split(",").filter(Boolean);
  const out: BuiltImage["spec"] = {
    size: parseSize(spec.size ?? "1M"),
    layers: spec.layers ?? 1,
    arch,
    seed: spec.seed ?? "0",
    tag: spec.tag ?? "latest",
    gzipLevel: spec.gzipLevel ?? 0,
    addFiles: spec.addFiles ?? [],
  };
  if (spec.cmd !== undefined) out.cmd = spec.cmd;
  return out;
}

/** Directory name of a spec in the image cache: readable prefix + hash of every parameter. */
export function imageCacheKey(spec: ImageSpec): string {
  const n = normalize(spec);
  const files = n.addFiles.map(f => [f.dst, createHash("sha256").update(readFileSync(f.src)).digest("hex")]);
  const hash = createHash("sha256")
    .update(JSON.stringify({ v: IMAGE_FORMAT_VERSION, ...n, addFiles: files }))
    .digest("hex")
    .slice(0, 16);
  return `${humanSize(n.size)}-${n.arch.join("+").replace(/\//g, "")}-l${n.layers}-${hash}`;
}

/** Where built layouts are kept: `${KUIK_CACHE:-~/.cache/kuik}/images`. */
export function imageCacheDir(): string {
  return join(kuikCacheDir(), "images");
}

const MAKE_IMAGE = join(REPO_ROOT, "scripts", "make-image");

function makeImageArgs(out: string, n: BuiltImage["spec"]): string[] {
  const args = [
    "--out",
    out,
    "--size",
    String(n.size),
    "--arch",
    n.arch.join(","),
    "--layers",
    String(n.layers),
  ];
  args.push("--seed", n.seed, "--tag", n.tag, "--gzip-level", String(n.gzipLevel));
  for (const f of n.addFiles) args.push("--add-file", `${f.src}:${f.dst}`);
  if (n.cmd !== undefined) args.push("--cmd", n.cmd);
  return args;
}

interface Stamp {
  top: string;
  blobs: string[];
  manifests: Record<string, string>;
  bytes?: number;
}

/**
 * Build (or reuse from the cache) the OCI layout for `spec`. A 1 GiB image takes ~6 s once per machine; later calls
 * return at once. Concurrent builders of the same spec are safe (build in a temp dir, then rename).
 */
export async function buildImage(
  spec: ImageSpec = {},
  opts: { force?: boolean; timeoutMs?: number } = {},
): Promise<BuiltImage> {
  findTool("python3");
  const n = normalize(spec);
  const root = imageCacheDir();
  mkdirSync(root, { recursive: true });
  const final = join(root, imageCacheKey(spec));
  const timeoutMs = opts.timeoutMs ?? 30 * 60_000;
  let cached = existsSync(join(final, ".make-image.json")) && !opts.force;
  if (existsSync(final)) {
    // make-image checks its stamp and the blobs' presence: a no-op when up to date, an in-place rebuild otherwise.
    const r = await runOk(MAKE_IMAGE, [...makeImageArgs(final, n), ...(opts.force ? ["--force"] : [])], {
      timeoutMs,
    });
    cached &&= /up to date/.test(r.stderr);
  } else {
    const tmp = `${final}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
    try {
      await runOk(MAKE_IMAGE, makeImageArgs(tmp, n), { timeoutMs });
      try {
        renameSync(tmp, final);
      } catch (e) {
        if (!existsSync(join(final, ".make-image.json"))) throw e; // someone else won the race: use theirs
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
    cached = false;
  }
  const stamp = JSON.parse(readFileSync(join(final, ".make-image.json"), "utf8")) as Stamp;
  return {
    dir: final,
    tag: n.tag,
    ociRef: `oci:${final}:${n.tag}`,
    digest: stamp.top,
    multiArch: n.arch.length > 1,
    manifests: stamp.manifests,
    blobs: stamp.blobs,
    bytes: stamp.bytes ?? 0,
    cached,
    spec: n,
  };
}

export interface PushOptions extends SkopeoOptions {
  /** Destination repository, e.g. "library/app". */
  repo: string;
  /** Default "latest". */
  tag?: string;
  /** "oci" keeps the layout's OCI media types (and digests); "docker" converts to Docker v2 schema 2 / manifest list. */
  format?: "oci" | "docker";
  /** "user:pass"; default the target's; null = anonymous. */
  creds?: string | null;
}

export interface PushedImage {
  /** "HOST/REPO:TAG". */
  ref: string;
  /** "HOST/REPO@DIGEST". */
  digestRef: string;
  repo: string;
  tag: string;
  /** Digest of the top-level manifest as stored in the registry. */
  digest: string;
  mediaType: string;
  /** Raw top-level manifest as served by the registry. */
  manifest: Buffer;
  format: "oci" | "docker";
  durationMs: number;
}

/** Push a built image with `skopeo copy [--all] [--format v2s2]`; returns what the registry now holds. */
export async function pushImage(
  image: BuiltImage,
  target: RegistryTarget,
  opts: PushOptions,
): Promise<PushedImage> {
  const tag = opts.tag ?? "latest";
  const format = opts.format ?? "oci";
  const dir = makeTempDir("push");
  try {
    const digestFile = join(dir, "digest");
    const ref = `${target.host}/${opts.repo}:${tag}`;
    const args = ["copy", "--retry-times", "0", "--digestfile", digestFile];
    if (image.multiArch) args.push("--all");
    if (format === "docker") args.push("--format", "v2s2");
    args.push(...skopeoTlsArgs(target, "dest"), ...skopeoCredArgs(target, "dest", opts.creds));
    args.push(image.ociRef, `docker://${ref}`);
    const started = Date.now();
    await skopeo(args, opts);
    const durationMs = Date.now() - started;
    const digest = readFileSync(digestFile, "utf8").trim();
    const raw = await inspectRaw(target, `${opts.repo}@${digest}`, opts.creds);
    const got = `sha256:${createHash("sha256").update(raw).digest("hex")}`;
    if (got !== digest) throw new Error(`pushImage: registry serves ${got} for ${digest}`);
    const mediaType = (JSON.parse(raw.toString("utf8")) as { mediaType?: string }).mediaType ?? "";
    return {
      ref,
      digestRef: `${target.host}/${opts.repo}@${digest}`,
      repo: opts.repo,
      tag,
      digest,
      mediaType,
      manifest: raw,
      format,
      durationMs,
    };
  } finally {
    removeTempDir(dir);
  }
}

/** Build (cached) and push in one go. */
export async function buildAndPush(
  spec: ImageSpec,
  target: RegistryTarget,
  opts: PushOptions,
): Promise<{ image: BuiltImage; pushed: PushedImage }> {
  const image = await buildImage(spec);
  return { image, pushed: await pushImage(image, target, opts) };
}
