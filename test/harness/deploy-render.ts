/**
 * deploy/ as the cluster gets it, for integration tests of the registry's storage modes: an overlay of
 * `deploy/base` plus components rendered with the kustomize built into kubectl, parsed through a real API server,
 * applied server-side (for real, then as a dry run), and the registry's garbage-collection init container run on
 * this machine exactly as rendered (docs/garbage-collection.md).
 */
import { cpSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { makeTempDir } from "./cleanup";
import type { ControlPlane, KubeObject } from "./control-plane";
import { readManifest } from "./kuik-module";
import { findTool, REPO_ROOT, run, type RunResult } from "./tools";

/** The fields of a container the storage tests read. */
export interface RenderedContainer {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: Array<{
    name: string;
    value?: string;
    valueFrom?: { secretKeyRef?: { name: string; key: string } };
  }>;
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
  securityContext?: Record<string, unknown>;
  resources?: Record<string, unknown>;
}

/** A pod template's spec as rendered. */
export interface RenderedPodSpec {
  containers: RenderedContainer[];
  initContainers?: RenderedContainer[];
  volumes?: Array<{ name: string; configMap?: { name: string }; emptyDir?: unknown }>;
  serviceAccountName?: string;
  restartPolicy?: string;
  [k: string]: unknown;
}

/** A rendered overlay: the manifest file and its objects. */
export interface RenderedOverlay {
  dir: string;
  file: string;
  objects: KubeObject[];
}

/** `kubectl kustomize` of a fresh copy of deploy/base + deploy/components/<components> (in that order). */
export async function renderOverlay(
  cp: ControlPlane,
  components: readonly string[],
): Promise<RenderedOverlay> {
  const dir = makeTempDir("overlay");
  for (const d of ["base", "components"])
    cpSync(join(REPO_ROOT, "deploy", d), join(dir, d), { recursive: true });
  mkdirSync(join(dir, "overlay"));
  writeFileSync(
    join(dir, "overlay", "kustomization.yaml"),
    [
      "apiVersion: kustomize.config.k8s.io/v1beta1",
      "kind: Kustomization",
      "resources: [../base]",
      `components: [${components.map(c => `../components/${c}`).join(", ")}]`,
      "",
    ].join("\n"),
  );
  const r = await cp.kubectl(["kustomize", join(dir, "overlay")]);
  const file = join(dir, "rendered.yaml");
  writeFileSync(file, r.stdout);
  return { dir, file, objects: await readManifest(cp, file) };
}

/** Server-side apply of a file for real, then as a server dry run; resolves both results (callers assert). */
export async function applyServerSide(cp: ControlPlane, file: string): Promise<[RunResult, RunResult]> {
  const args = ["apply", "--server-side", "--field-manager=kuik-install", "-f", file];
  const real = await cp.kubectl(args, { allowFailure: true });
  const dry = await cp.kubectl([...args, "--dry-run=server"], { allowFailure: true });
  return [real, dry];
}

/** The one object of a kind and name; throws when absent. */
export function objectOf<T = KubeObject>(objects: readonly KubeObject[], kind: string, name: string): T {
  const o = objects.find(x => x.kind === kind && x.metadata?.name === name);
  if (!o) throw new Error(`${kind}/${name} not rendered`);
  return o as T;
}

/** The pod spec of a workload (StatefulSet, Deployment) or of a CronJob's job template. */
export function podSpecOf(o: KubeObject): RenderedPodSpec {
  const spec = o.spec as
    | {
        template?: { spec: RenderedPodSpec };
        jobTemplate?: { spec: { template: { spec: RenderedPodSpec } } };
      }
    | undefined;
  const pod = spec?.template?.spec ?? spec?.jobTemplate?.spec.template.spec;
  if (!pod) throw new Error(`${o.kind}/${o.metadata?.name}: no pod template`);
  return pod;
}

/** A container (or init container) of a pod spec by name; throws when absent. */
export function containerOf(pod: RenderedPodSpec, name: string): RenderedContainer {
  const c = [...(pod.initContainers ?? []), ...pod.containers].find(x => x.name === name);
  if (!c) throw new Error(`container ${name} not rendered`);
  return c;
}

/** The registry workload of a rendering (StatefulSet, or the Deployment of components/s3). */
export function registryWorkload(objects: readonly KubeObject[]): KubeObject {
  const o = objects.find(
    x =>
      (x.kind === "StatefulSet" || x.kind === "Deployment") &&
      x.metadata?.name === "kube-image-keeper-registry",
  );
  if (!o) throw new Error("no registry workload rendered");
  return o;
}

/** What the garbage-collection init container runs, as rendered. */
export interface GcInvocation {
  /** The script's text, from the rendered ConfigMap mounted at the command's path. */
  script: string;
  /** The init container's args: TIMEOUT_SECONDS CONFIG FLAGS. */
  args: string[];
  /** Plain env values of the init container; secretKeyRef entries resolved through `secrets`. */
  env: Record<string, string>;
}

/**
 * The rendered `garbage-collect` init container of the registry: the script text (the ConfigMap volume mounted at
 * the directory of `command[1]`), its args, and its env (secret references looked up in `secrets[name][key]`).
 */
export function gcInvocation(
  objects: readonly KubeObject[],
  secrets: Record<string, Record<string, string>> = {},
): GcInvocation {
  const pod = podSpecOf(registryWorkload(objects));
  const init = containerOf(pod, "garbage-collect");
  const [shell, scriptPath] = init.command ?? [];
  if (shell !== "sh" || !scriptPath)
    throw new Error(`unexpected init command ${JSON.stringify(init.command)}`);
  const mount = init.volumeMounts?.find(m => scriptPath.startsWith(`${m.mountPath}/`));
  const volume = pod.volumes?.find(v => v.name === mount?.name);
  const cm = objectOf<{ data: Record<string, string> }>(objects, "ConfigMap", volume?.configMap?.name ?? "?");
  const script = cm.data[scriptPath.slice((mount?.mountPath.length ?? 0) + 1)];
  if (script === undefined) throw new Error(`${scriptPath} is not in ConfigMap ${volume?.configMap?.name}`);
  const env: Record<string, string> = {};
  for (const e of init.env ?? []) {
    const ref = e.valueFrom?.secretKeyRef;
    const value = ref ? secrets[ref.name]?.[ref.key] : e.value;
    if (value === undefined) throw new Error(`env ${e.name}: no value (secret not given?)`);
    env[e.name] = value;
  }
  return { script, args: init.args ?? [], env };
}

/**
 * Run a rendered GC invocation here: `sh <script> TIMEOUT CONFIG FLAGS` with `configFile` in place of the pod's
 * config path, the init container's env (plus `envOverride`), and the harness's `registry` binary first on PATH.
 */
export async function runGc(
  gc: GcInvocation,
  configFile: string,
  envOverride: Record<string, string> = {},
): Promise<RunResult> {
  const dir = makeTempDir("gc");
  const scriptFile = join(dir, "garbage-collect.sh");
  writeFileSync(scriptFile, gc.script);
  const bin = makeTempDir("gc-bin");
  // `registry` by that name, as in the image: the harness's binary may be Debian's docker-registry.
  symlinkSync(findTool("registry"), join(bin, "registry"));
  const [timeout, , ...flags] = gc.args;
  return run("sh", [scriptFile, timeout ?? "3600", configFile, ...flags], {
    env: { ...gc.env, ...envOverride, PATH: `${bin}:${process.env.PATH ?? ""}` },
    timeoutMs: 120_000,
  });
}
