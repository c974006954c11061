/**
 * kuik installed on a local control plane the way a user installs it (docs/install.md §2): a copy of deploy/ with
 * the freshly built `dist/pepr-module-kuik.yaml` in `generated/`, under a kustomization of our own that has it as a
 * resource and adds the settings with strategic-merge patches (docs/install.md §4), rendered with
 * `kubectl kustomize` and applied with `kubectl apply --server-side`: every object, CRDs, RBAC, Secrets,
 * Deployments, StatefulSet, DaemonSet, Services, NetworkPolicies and the webhook configuration.
 *
 * No kubelet runs the workloads. The harness reads them back from the API server and runs their containers as
 * local processes; the helpers below do what the kubelet would: resolve a container's environment
 * ({@link containerEnv}) and produce the files of its Secret and ConfigMap mounts ({@link mountedFiles}). What the
 * local processes must change (endpoints, ports, identity, file paths) is recorded as {@link Override}s.
 */
import { copyFileSync, cpSync, existsSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join, posix } from "node:path";
import type { ControlPlane, KubeObject } from "./control-plane";
import { REPO_ROOT } from "./tools";

/** Field manager of the installation's server-side apply. */
export const INSTALL_FIELD_MANAGER = "kuik-install";
/** The module YAML `scripts/build-module.sh` writes. */
export const MODULE_MANIFEST = join(REPO_ROOT, "dist", "pepr-module-kuik.yaml");

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string } } & Record<string, unknown>;
}
export interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  ports?: Array<{ name?: string; containerPort: number; hostPort?: number; hostIP?: string }>;
  volumeMounts?: Array<{ name: string; mountPath: string; subPath?: string }>;
  imagePullPolicy?: string;
  resources?: Record<string, unknown>;
}
export interface Volume {
  name: string;
  secret?: { secretName: string; optional?: boolean; items?: Array<{ key: string; path: string }> };
  configMap?: { name: string; optional?: boolean; items?: Array<{ key: string; path: string }> };
  emptyDir?: unknown;
}
export interface PodSpec {
  containers: Container[];
  volumes?: Volume[];
  serviceAccountName?: string;
}
/** A Deployment, StatefulSet or DaemonSet as the API server returns it. */
export type Workload = KubeObject & { spec: { template: { spec: PodSpec } } };

/** One thing a local process does differently from the installed object, and why. */
export interface Override {
  /** e.g. `Deployment pepr-system/pepr-kuik`, `ConfigMap kuik-system/kube-image-keeper-registry-config`. */
  object: string;
  /** An environment variable, a config key, a file path. */
  setting: string;
  /** What the installed object says (undefined: not set there). */
  installed: string | undefined;
  local: string;
  why: string;
}

/** `Kind namespace/name` of an object, for overrides and messages. */
export function objectRef(o: KubeObject): string {
  const ns = o.metadata?.namespace;
  return `${o.kind} ${ns ? `${ns}/` : ""}${o.metadata?.name}`;
}

/** One line per override, for logs. */
export function formatOverrides(overrides: readonly Override[]): string[] {
  return overrides.map(
    o =>
      `${o.object}: ${o.setting} ${o.installed === undefined ? "(unset)" : JSON.stringify(o.installed)} → ` +
      `${JSON.stringify(o.local)} (${o.why})`,
  );
}

export interface InstallOptions {
  /** Working dir: the deploy/ copy, the overlay and the rendered YAML go there. */
  dir: string;
  /** Environment set on both Pepr Deployments' container (kuik's settings, LOG_LEVEL), merged by name. */
  moduleSettings?: Record<string, string>;
  /** Further strategic-merge patches of the user's kustomization (e.g. a private CA mounted into the Pods). */
  patches?: readonly object[];
  /** deploy/components/ the user's kustomization enables, by name (e.g. "persistence"). */
  components?: readonly string[];
}

export interface Installation {
  dir: string;
  /** The rendered manifest that was applied. */
  file: string;
  /** Its objects, as rendered (before the API server's defaulting). */
  objects: KubeObject[];
  /** The strategic-merge patches of the overlay, by target `Kind namespace/name`. */
  patches: Record<string, object>;
}

/** The objects of a multi-document YAML file, parsed by kubectl (client-side dry run: no YAML library needed). */
export async function readManifest(cp: ControlPlane, file: string): Promise<KubeObject[]> {
  const r = await cp.kubectl(["create", "--dry-run=client", "-o", "json", "-f", file], {
    timeoutMs: 120_000,
  });
  return parseJsonStream(r.stdout).flatMap(o => (o.kind === "List" ? (o.items ?? []) : [o]));
}

/** Parse concatenated JSON documents (what `kubectl … -o json` prints for several objects). */
export function parseJsonStream(text: string): KubeObject[] {
  const out: KubeObject[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === "{") {
      if (depth++ === 0) start = i;
    } else if (c === "}" && --depth === 0) {
      out.push(JSON.parse(text.slice(start, i + 1)) as KubeObject);
    }
  }
  return out;
}

/** Copy deploy/ with the built module YAML in generated/, as docs/install.md has the user do. */
export function copyDeploy(target: string): string {
  cpSync(join(REPO_ROOT, "deploy"), target, { recursive: true });
  mkdirSync(join(target, "generated"), { recursive: true });
  copyFileSync(MODULE_MANIFEST, join(target, "generated", "pepr-module-kuik.yaml"));
  return target;
}

/** `kubectl kustomize <dir>` into `<file>`, parsed. */
async function render(cp: ControlPlane, dir: string, file: string): Promise<KubeObject[]> {
  const r = await cp.kubectl(["kustomize", dir], { timeoutMs: 120_000 });
  writeFileSync(file, r.stdout);
  return readManifest(cp, file);
}

/** A strategic-merge patch adding `env` (by name) to every container of a Deployment. */
function envPatch(d: Workload, env: Record<string, string>): object {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: d.metadata?.name, namespace: d.metadata?.namespace },
    spec: {
      template: {
        spec: {
          containers: d.spec.template.spec.containers.map(c => ({
            name: c.name,
            env: Object.entries(env).map(([name, value]) => ({ name, value })),
          })),
        },
      },
    },
  };
}

/** The Pepr Deployments (admission and watcher) among rendered or installed objects. */
export function moduleDeployments(objects: readonly KubeObject[]): Workload[] {
  return objects.filter(
    (o): o is Workload =>
      o.kind === "Deployment" && o.metadata?.labels?.["pepr.dev/controller"] !== undefined,
  );
}

/**
 * Render and apply kuik: deploy/ (with the built module) alone when there are no settings, else under an overlay
 * `install/kustomization.yaml` patching them into both Pepr Deployments. Waits for the CRDs to be Established.
 */
export async function installKuik(cp: ControlPlane, opts: InstallOptions): Promise<Installation> {
  mkdirSync(opts.dir, { recursive: true });
  const deploy = copyDeploy(join(opts.dir, "deploy"));
  let file = join(opts.dir, "deploy.rendered.yaml");
  let objects = await render(cp, deploy, file);
  const patches: Record<string, object> = {};
  const settings = opts.moduleSettings ?? {};
  if (Object.keys(settings).length > 0 || opts.patches?.length || opts.components?.length) {
    if (Object.keys(settings).length > 0) {
      for (const d of moduleDeployments(objects)) patches[objectRef(d)] = envPatch(d, settings);
    }
    for (const [i, p] of (opts.patches ?? []).entries()) patches[`patch ${i}`] = p;
    const overlay = join(opts.dir, "install");
    mkdirSync(overlay, { recursive: true });
    // JSON is YAML: kustomize reads this kustomization as written.
    const kustomization = {
      apiVersion: "kustomize.config.k8s.io/v1beta1",
      kind: "Kustomization",
      resources: ["../deploy"],
      components: (opts.components ?? []).map(c => `../deploy/components/${c}`),
      patches: Object.values(patches).map(p => ({ patch: JSON.stringify(p) })),
    };
    writeFileSync(join(overlay, "kustomization.yaml"), `${JSON.stringify(kustomization, null, 2)}\n`);
    file = join(opts.dir, "install.rendered.yaml");
    objects = await render(cp, overlay, file);
  }
  await cp.kubectl(["apply", "--server-side", `--field-manager=${INSTALL_FIELD_MANAGER}`, "-f", file], {
    timeoutMs: 120_000,
  });
  const crds = objects.filter(o => o.kind === "CustomResourceDefinition").map(o => `crd/${o.metadata?.name}`);
  if (crds.length > 0) await cp.kubectl(["wait", "--for=condition=Established", "--timeout=60s", ...crds]);
  return { dir: opts.dir, file, objects, patches };
}

/** The installed workload of `kind` in `namespace` with `selector` (exactly one), read from the API server. */
export async function installedWorkload(
  cp: ControlPlane,
  kind: "deployment" | "statefulset" | "daemonset",
  namespace: string,
  selector: string,
): Promise<Workload> {
  const list = await cp.kubectlJson<{ items: Workload[] }>(["get", kind, "-n", namespace, "-l", selector]);
  if (list.items.length !== 1) {
    throw new Error(
      `expected one installed ${kind} -l ${selector} in ${namespace}, found ${list.items.length}`,
    );
  }
  const w = list.items[0] as Workload;
  return { ...w, kind: w.kind ?? kind.replace(/^./, c => c.toUpperCase()) };
}

/** The single container of a workload. */
export function mainContainer(w: Workload): Container {
  const c = w.spec.template.spec.containers[0];
  if (!c) throw new Error(`${objectRef(w)}: no container`);
  return c;
}

/**
 * A container's environment as the kubelet resolves it: `value` with `$(VAR)` expanded from the variables before
 * it, `valueFrom.fieldRef` from `fields` (e.g. `{ "status.podIP": "127.0.0.1" }`). Other sources throw.
 */
export function containerEnv(c: Container, fields: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of c.env ?? []) {
    if (e.valueFrom) {
      const path = e.valueFrom.fieldRef?.fieldPath;
      const v = path === undefined ? undefined : fields[path];
      if (v === undefined)
        throw new Error(`${c.name}: env ${e.name}: unsupported valueFrom ${JSON.stringify(e.valueFrom)}`);
      env[e.name] = v;
    } else {
      env[e.name] = (e.value ?? "").replace(/\$\((\w+)\)/g, (m, name: string) => env[name] ?? m);
    }
  }
  return env;
}

/**
 * The files the kubelet would put under `mountPath` of a container: the Secret or ConfigMap volume mounted there,
 * read now from the API server (keys, or `items` renamed). An absent optional source gives no files.
 */
export async function mountedFiles(
  cp: ControlPlane,
  w: Workload,
  c: Container,
  mountPath: string,
): Promise<Map<string, Buffer>> {
  const mount = c.volumeMounts?.find(m => m.mountPath === mountPath);
  const volume = w.spec.template.spec.volumes?.find(v => v.name === mount?.name);
  const source = volume?.secret ?? volume?.configMap;
  if (!mount || !source) throw new Error(`${objectRef(w)}: no Secret or ConfigMap mounted at ${mountPath}`);
  const [kind, name] = volume?.secret
    ? ["secret", volume.secret.secretName]
    : ["configmap", volume?.configMap?.name];
  const r = await cp.kubectl(["get", kind, String(name), "-n", String(w.metadata?.namespace), "-o", "json"], {
    allowFailure: true,
    timeoutMs: 15_000,
  });
  const files = new Map<string, Buffer>();
  if (r.code !== 0) {
    if (source.optional && /NotFound|not found/.test(r.stderr)) return files;
    throw new Error(`${objectRef(w)}: ${kind} ${name}: ${r.stderr.trim()}`);
  }
  const obj = JSON.parse(r.stdout) as { data?: Record<string, string>; binaryData?: Record<string, string> };
  const decode = (key: string): Buffer | undefined => {
    const v = obj.data?.[key];
    if (v !== undefined) return volume?.secret ? Buffer.from(v, "base64") : Buffer.from(v);
    const b = obj.binaryData?.[key];
    return b === undefined ? undefined : Buffer.from(b, "base64");
  };
  const keys =
    source.items ?? Object.keys({ ...obj.data, ...obj.binaryData }).map(key => ({ key, path: key }));
  for (const { key, path } of keys) {
    const v = decode(key);
    if (v !== undefined) files.set(posix.join(mountPath, path), v);
  }
  return files;
}

/** Where the harness materializes container paths: `<root>/<absolute path>`. */
export function localPath(root: string, containerPath: string): string {
  return join(root, ...containerPath.split("/").filter(Boolean));
}

/** Write mounted files under `root` (atomically, each through a rename); returns whether anything changed. */
export function writeMountedFiles(
  root: string,
  files: Map<string, Buffer>,
  previous?: Map<string, string>,
): boolean {
  let changed = false;
  for (const [path, content] of files) {
    const target = localPath(root, path);
    const text = content.toString("base64");
    if (previous?.get(path) === text && existsSync(target)) continue;
    mkdirSync(join(target, ".."), { recursive: true });
    writeFileSync(`${target}.tmp`, content, { mode: 0o600 });
    renameSync(`${target}.tmp`, target);
    previous?.set(path, text);
    changed = true;
  }
  return changed;
}

/**
 * YAML → JSON with the YAML parser we already run: `kubectl patch --local` reads its patch as YAML and prints the
 * patched object as JSON (no server involved). Used for the registry's `config.yml` of the installed ConfigMap.
 */
export async function parseYaml(cp: ControlPlane, dir: string, text: string): Promise<unknown> {
  const holder = join(dir, "yaml-holder.json");
  writeFileSync(holder, JSON.stringify({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "yaml" } }));
  const indented = text
    .split("\n")
    .map(l => `  ${l}`)
    .join("\n");
  const r = await cp.kubectl([
    "patch",
    "--local",
    "-f",
    holder,
    "--type",
    "merge",
    "-p",
    `parsed:\n${indented}`,
    "-o",
    "json",
  ]);
  return (JSON.parse(r.stdout) as { parsed?: unknown }).parsed;
}
