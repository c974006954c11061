/**
 * The local node's images, as in an air-gapped cluster: nothing is pulled from the internet. Every image the node
 * and kuik's install run is built here from real software, pushed to a local mirror (a CNCF distribution registry
 * on loopback) under its real repository, and containerd is pointed at the mirror for the registries those names
 * live on (`hosts.toml`: `docker.io`, `ghcr.io`, `registry.k8s.io` → the mirror, nothing else), so that Pods and
 * kuik's manifests keep the image names a user's cluster has.
 *
 * No Docker: a layer is a tar of a staged directory (GNU tar, numeric owners, fixed mtime, sorted: reproducible),
 * `crane append` makes the image from scratch and `crane mutate` sets its entrypoint, user, env and platform.
 *
 * | image | from |
 * | --- | --- |
 * | `registry.k8s.io/pause:3.10.2` | `build/pause/linux/pause.c` of the Kubernetes module, compiled static |
 * | `registry.k8s.io/coredns/coredns:v1.14.2` | CoreDNS built from its Go module |
 * | `registry.k8s.io/kubectl:v1.36.3` | kubectl built from the Kubernetes module |
 * | `docker.io/library/registry:3.0.0` | distribution v3.0.0 built from its Go module, Debian's busybox-static as its shell (the upstream image is Alpine's) |
 * | `ghcr.io/defenseunicorns/pepr/controller:v1.1.4` | Node 24 (the `node` npm package) + Debian's glibc, `/app/node_modules` = `npm ci --omit=dev` of kuik's lockfile (pepr 1.1.4 and the modules the module bundle leaves external); it runs the proxy too, whose bundle comes from a ConfigMap |
 *
 * Built images are kept in the mirror's storage under `${KUIK_CACHE}/mirror`; an image is rebuilt only when what it
 * is made of changed (a stamp of its inputs).
 */
import { createHash } from "node:crypto";
import {
  chmodSync,
  chownSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { writeHostsToml } from "./containerd";
import { findComponent } from "./control-plane";
import { simpleRequest } from "./net";
import { startCache } from "./registries";
import type { StartedRegistry } from "./registries";
import { findTool, kuikCacheDir, REPO_ROOT, runOk } from "./tools";

/** Where the mirror keeps its storage and the image stamps (kept across runs). */
export function mirrorDir(): string {
  return join(kuikCacheDir(), "mirror");
}

/** The registries whose images the mirror serves, as containerd names them. */
export const MIRRORED_REGISTRIES = ["docker.io", "ghcr.io", "registry.k8s.io"] as const;

/** A file of an image: `src` on this machine, `dst` in the image. */
interface ImageFile {
  src: string;
  dst: string;
  mode?: number;
}

/** One layer: files (copied), empty directories with their owner and mode, symlinks. */
interface LayerSpec {
  /** Stable name, for the cache dir and messages. */
  name: string;
  files?: ImageFile[];
  /** Whole directory trees copied in: `src` → `dst`. */
  trees?: ImageFile[];
  dirs?: Array<{ path: string; uid?: number; mode?: number }>;
  links?: Array<{ path: string; target: string }>;
}

/** An image: its name (upstream registry included), layers, and config. */
export interface NodeImageSpec {
  ref: string;
  layers: LayerSpec[];
  entrypoint: string[];
  cmd?: string[];
  env?: Record<string, string>;
  user?: string;
  workdir?: string;
}

/** The repository path of `ref` in the mirror: the name without its registry (`docker.io/library/x:1` → `library/x:1`). */
export function mirrorPath(ref: string): string {
  const slash = ref.indexOf("/");
  return ref.slice(slash + 1);
}

/** The shared libraries of a dynamically linked binary, per `ldd` (the loader included). */
async function sharedLibraries(binary: string): Promise<string[]> {
  const r = await runOk("ldd", [binary]);
  return r.stdout
    .split("\n")
    .map(l => /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(l)?.[1])
    .filter((p): p is string => p !== undefined);
}

/** Node 24 of the `node` devDependency with the glibc it links, laid out like distroless' `/nodejs/bin/node`. */
async function nodeRuntimeLayer(): Promise<LayerSpec> {
  const node = realpathSync(join(REPO_ROOT, "node_modules", ".bin", "node"));
  const libs = await sharedLibraries(node);
  return {
    name: "node-runtime",
    files: [
      { src: node, dst: "/nodejs/bin/node", mode: 0o755 },
      ...libs.map(l => ({ src: realpathSync(l), dst: l, mode: 0o755 })),
      { src: join(mirrorDir(), "etc", "passwd"), dst: "/etc/passwd" },
      { src: join(mirrorDir(), "etc", "group"), dst: "/etc/group" },
    ],
    dirs: [{ path: "/tmp", mode: 0o1777 }],
  };
}

/** `npm ci --omit=dev` of kuik's lockfile in a cache dir (what the Pepr controller image has in /app). */
async function productionNodeModules(): Promise<string> {
  const lock = readFileSync(join(REPO_ROOT, "package-lock.json"));
  const key = createHash("sha256").update(lock).digest("hex").slice(0, 16);
  const dir = join(mirrorDir(), "pepr-app", key);
  if (existsSync(join(dir, ".done"))) return join(dir, "node_modules");
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  copyFileSync(join(REPO_ROOT, "package.json"), join(dir, "package.json"));
  copyFileSync(join(REPO_ROOT, "package-lock.json"), join(dir, "package-lock.json"));
  await runOk("npm", ["ci", "--omit=dev", "--no-audit", "--no-fund", "--prefer-offline"], {
    cwd: dir,
    timeoutMs: 600_000,
  });
  writeFileSync(join(dir, ".done"), "");
  return join(dir, "node_modules");
}

/** Every image the node and kuik's install need. */
export async function nodeImageSpecs(): Promise<NodeImageSpec[]> {
  const bin = (name: string): string => join(kuikCacheDir(), "bin", name);
  const runtime = await nodeRuntimeLayer();
  const nodeModules = await productionNodeModules();
  return [
    {
      ref: "registry.k8s.io/pause:3.10.2",
      layers: [{ name: "pause", files: [{ src: bin("pause"), dst: "/pause", mode: 0o755 }] }],
      entrypoint: ["/pause"],
      user: "65535:65535",
    },
    {
      ref: "registry.k8s.io/coredns/coredns:v1.14.2",
      layers: [{ name: "coredns", files: [{ src: findComponent("coredns"), dst: "/coredns", mode: 0o755 }] }],
      entrypoint: ["/coredns"],
      user: "65532:65532",
    },
    {
      ref: "registry.k8s.io/kubectl:v1.36.3",
      layers: [
        { name: "kubectl", files: [{ src: findComponent("kubectl"), dst: "/bin/kubectl", mode: 0o755 }] },
      ],
      entrypoint: ["kubectl"],
      env: { PATH: "/bin" },
      user: "65532:65532",
    },
    {
      ref: "docker.io/library/registry:3.0.0",
      layers: [
        {
          name: "registry-3.0.0",
          // the upstream image is Alpine's: a busybox shell (the garbage-collection init container runs a script)
          files: [
            { src: bin("registry-v3.0"), dst: "/bin/registry", mode: 0o755 },
            { src: "/bin/busybox", dst: "/bin/busybox", mode: 0o755 },
          ],
          links: ["sh", "timeout", "cat", "ls", "echo"].map(c => ({ path: `/bin/${c}`, target: "busybox" })),
          dirs: [{ path: "/var/lib/registry", mode: 0o777 }],
        },
      ],
      entrypoint: ["registry"],
      cmd: ["serve", "/etc/distribution/config.yml"],
      env: { PATH: "/bin" },
    },
    {
      ref: "ghcr.io/defenseunicorns/pepr/controller:v1.1.4",
      layers: [
        runtime,
        {
          name: "pepr-app",
          trees: [{ src: nodeModules, dst: "/app/node_modules" }],
          // the controller writes the decompressed module into /app as the Deployment's user
          dirs: [{ path: "/app", uid: 65532, mode: 0o755 }],
        },
      ],
      entrypoint: ["/nodejs/bin/node"],
      workdir: "/app",
      env: { PATH: "/nodejs/bin:/bin" },
      user: "65532:65532",
    },
  ];
}

/** What an image is made of: the stamp that decides a rebuild. */
function imageStamp(spec: NodeImageSpec): string {
  const h = createHash("sha256").update(JSON.stringify({ ...spec, layers: undefined, v: 1 }));
  for (const l of spec.layers) {
    h.update(JSON.stringify({ ...l, files: undefined, trees: undefined }));
    for (const f of [...(l.files ?? []), ...(l.trees ?? [])]) {
      // small files by content; binaries and trees by size and mtime (hashing 100 MB on every start is too slow)
      const st = statSync(f.src);
      const id =
        st.isFile() && st.size < 1 << 20
          ? createHash("sha256").update(readFileSync(f.src)).digest("hex")
          : `${st.size}:${st.mtimeMs}`;
      h.update(`${f.src}\0${f.dst}\0${f.mode ?? ""}\0${id}\n`);
    }
  }
  return h.digest("hex");
}

/** Stage a layer's files under `stage/` and tar it reproducibly; returns the tar's path. */
async function buildLayer(layer: LayerSpec, work: string): Promise<string> {
  const stage = join(work, layer.name);
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(stage, { recursive: true });
  for (const d of layer.dirs ?? []) {
    const p = join(stage, d.path);
    mkdirSync(p, { recursive: true });
    chmodSync(p, d.mode ?? 0o755);
    if (d.uid !== undefined) chownSync(p, d.uid, d.uid);
  }
  for (const f of layer.files ?? []) {
    const p = join(stage, f.dst);
    mkdirSync(dirname(p), { recursive: true });
    copyFileSync(f.src, p);
    chmodSync(p, f.mode ?? 0o644);
  }
  for (const t of layer.trees ?? [])
    cpSync(t.src, join(stage, t.dst), { recursive: true, verbatimSymlinks: true });
  for (const l of layer.links ?? []) {
    mkdirSync(dirname(join(stage, l.path)), { recursive: true });
    symlinkSync(l.target, join(stage, l.path));
  }
  const tar = join(work, `${layer.name}.tar`);
  await runOk(
    "tar",
    [
      "--sort=name",
      "--numeric-owner",
      "--mtime=@0",
      "--format=pax",
      "--pax-option=delete=atime,delete=ctime",
      "-C",
      stage,
      "-cf",
      tar,
      ".",
    ],
    { timeoutMs: 300_000 },
  );
  return tar;
}

/** Build `spec` and push it to the mirror (`host` = 127.0.0.1:port) unless the mirror has it with the same stamp. */
async function ensureImage(spec: NodeImageSpec, host: string, say: (l: string) => void): Promise<boolean> {
  const stampFile = join(mirrorDir(), "stamps", spec.ref.replaceAll("/", "_"));
  const stamp = imageStamp(spec);
  const target = `${host}/${mirrorPath(spec.ref)}`;
  const [repo, tag] = [mirrorPath(spec.ref).split(":")[0], spec.ref.split(":").pop()];
  const have = await simpleRequest(`http://${host}/v2/${repo}/manifests/${tag}`, {
    method: "HEAD",
    headers: {
      accept:
        "application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json",
    },
  });
  if (have.status === 200 && existsSync(stampFile) && readFileSync(stampFile, "utf8") === stamp) return false;
  say(`building ${spec.ref}`);
  const crane = findTool("crane");
  const work = join(mirrorDir(), "work");
  mkdirSync(work, { recursive: true });
  const tars: string[] = [];
  for (const l of spec.layers) tars.push(await buildLayer(l, work));
  await runOk(
    crane,
    ["append", "--insecure", "--oci-empty-base", ...tars.flatMap(t => ["-f", t]), "-t", target],
    {
      timeoutMs: 600_000,
    },
  );
  const mutate = ["mutate", "--insecure", target, "-t", target, "--set-platform", "linux/amd64"];
  mutate.push(`--entrypoint=${spec.entrypoint.join(",")}`);
  if (spec.cmd) mutate.push(`--cmd=${spec.cmd.join(",")}`);
  for (const [k, v] of Object.entries(spec.env ?? {})) mutate.push("--env", `${k}=${v}`);
  if (spec.user) mutate.push("--user", spec.user);
  if (spec.workdir) mutate.push("--workdir", spec.workdir);
  await runOk(crane, mutate, { timeoutMs: 120_000 });
  for (const l of spec.layers) rmSync(join(work, l.name), { recursive: true, force: true });
  mkdirSync(dirname(stampFile), { recursive: true });
  writeFileSync(stampFile, stamp);
  return true;
}

/** Write a file only when its content changes (its mtime is part of an image's stamp). */
function writeUnlessSame(file: string, text: string): void {
  if (existsSync(file) && readFileSync(file, "utf8") === text) return;
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text);
}

export interface Mirror {
  registry: StartedRegistry;
  /** `127.0.0.1:<port>`. */
  host: string;
  /** The images it serves, by their real names. */
  images: string[];
  stop(): Promise<void>;
}

/**
 * Start the mirror on its kept storage, build what is missing or stale, and write containerd's `hosts.toml` for
 * every mirrored registry into `hostsDir` (the mirror is both the host and the server: nothing falls back to the
 * internet).
 */
export async function startMirror(o: {
  dir: string;
  hostsDir: string;
  progress?: (line: string) => void;
}): Promise<Mirror> {
  const say = o.progress ?? ((): void => undefined);
  writeUnlessSame(
    join(mirrorDir(), "etc", "passwd"),
    "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
  );
  writeUnlessSame(join(mirrorDir(), "etc", "group"), "root:x:0:\nnonroot:x:65532:\n");
  const registry = await startCache({
    name: "mirror",
    dataDir: join(mirrorDir(), "data"),
    logLevel: "warn",
    tls: false,
  });
  try {
    const specs = await nodeImageSpecs();
    let built = 0;
    for (const s of specs) if (await ensureImage(s, registry.host, say)) built++;
    say(`mirror ${registry.host}: ${specs.length} images (${built} built now)`);
    // A host entry as well as the server: containerd 1.6 refuses a hosts.toml without one ("invalid `host` tree")
    // and then falls back to the registry's real address.
    const mirror = `http://${registry.host}`;
    for (const r of MIRRORED_REGISTRIES) writeHostsToml(o.hostsDir, r, [{ url: mirror }], mirror);
    return {
      registry,
      host: registry.host,
      images: specs.map(s => s.ref),
      stop: () => registry.stop(),
    };
  } catch (e) {
    await registry.stop();
    throw e;
  }
}
