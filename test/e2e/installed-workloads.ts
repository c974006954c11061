/**
 * kuik's own workloads of kuik-system, run as local processes from what is installed (test/harness/kuik-install.ts):
 *
 * - the cache registry: the StatefulSet's container (`registry serve <config>`, its env) with the `config.yml` of the
 *   installed ConfigMap, through the harness's registry process (test/harness/registries.ts);
 * - the proxy: the DaemonSet's container command (Pepr's controller image's `node` running the loader of
 *   capabilities/bootstrap/proxy-bundle.ts on the bundle its ConfigMap volume holds) and env (`KUIK_PROXY_*`, the
 *   bundle's sha256), with that ConfigMap's files written out as the kubelet mounts them, so the loader checks and
 *   runs the bundle that was installed; its credentials file kept equal to the installed Secret as the kubelet
 *   keeps a mounted Secret.
 *
 * What differs from the installed objects is returned as overrides: listen addresses and ports, the cache
 * registry's Service name, the storage directory, the `node` binary, mounted file paths, and the origin's CA.
 */
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { node24 } from "../../proxy/test/process";
import type { ControlPlane } from "../harness/control-plane";
import {
  containerEnv,
  installedWorkload,
  localPath,
  mainContainer,
  mountedFiles,
  objectRef,
  parseYaml,
  writeMountedFiles,
  type Container,
  type Override,
  type Workload,
} from "../harness/kuik-install";
import { baseProcessEnv } from "../harness/kuik-module";
import { freePort, LOOPBACK, simpleRequest } from "../harness/net";
import { startCache, type RegistryConfig, type StartedRegistry } from "../harness/registries";
import { startProcess } from "../harness/process";
import { sleep } from "../harness/tools";

/** kuik's namespace (ignored by the webhook). */
export const KUIK_NAMESPACE = "kuik-system";

/** Why the origin's CA is trusted: it is the harness's, unknown to a real node. */
export const ORIGIN_CA_WHY = "the origin registry is the harness's: trust its CA";

/**
 * The environment of a workload's container as the kubelet resolves it, and a `set` that overrides a variable and
 * records it (`installed` as written in the object, `$(…)` and `valueFrom` unexpanded).
 */
function envOverrides(w: Workload, c: Container, fields: Record<string, string>) {
  const overrides: Override[] = [];
  const written = Object.fromEntries(
    (c.env ?? []).map(e => [e.name, e.value ?? `valueFrom ${JSON.stringify(e.valueFrom)}`]),
  );
  const env = containerEnv(c, fields);
  const set = (setting: string, local: string, why: string): void => {
    overrides.push({ object: objectRef(w), setting, installed: written[setting], local, why });
    env[setting] = local;
  };
  for (const e of c.env ?? []) {
    const path = e.valueFrom?.fieldRef?.fieldPath;
    if (path && fields[path] !== undefined) {
      overrides.push({
        object: objectRef(w),
        setting: e.name,
        installed: written[e.name],
        local: fields[path],
        why: `${path} of this host`,
      });
    }
  }
  return { env, overrides, set };
}

/** The mount of `c` holding `path` (the longest mountPath that is a prefix). */
function mountOf(c: Container, path: string): string {
  const m = (c.volumeMounts ?? [])
    .filter(v => path === v.mountPath || path.startsWith(`${v.mountPath}/`))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  if (!m) throw new Error(`${c.name}: nothing mounted at ${path}`);
  return m.mountPath;
}

// ---------------------------------------------------------------------------------------------------------------
// cache registry

/**
 * Start the cache registry of the installed StatefulSet: its ConfigMap's `config.yml` is the config, its env the
 * process's; the harness keeps only its listen address, storage directory and the metrics (debug) address.
 */
export async function startInstalledCache(
  cp: ControlPlane,
  dir: string,
): Promise<{ registry: StartedRegistry; overrides: Override[] }> {
  const sts = await installedWorkload(
    cp,
    "statefulset",
    KUIK_NAMESPACE,
    "app.kubernetes.io/component=registry",
  );
  const c = mainContainer(sts);
  const argv = [...(c.command ?? []), ...(c.args ?? [])];
  const configPath = argv[argv.length - 1] ?? "";
  if (argv[0] !== "registry" || argv[1] !== "serve" || !configPath.startsWith("/")) {
    throw new Error(`${objectRef(sts)}: expected registry serve <config>, got ${JSON.stringify(argv)}`);
  }
  const configText = (await mountedFiles(cp, sts, c, mountOf(c, configPath))).get(configPath);
  if (!configText) throw new Error(`${objectRef(sts)}: no ${configPath} in its ConfigMap`);
  mkdirSync(dir, { recursive: true });
  const installed = (await parseYaml(cp, dir, configText.toString("utf8"))) as RegistryConfig;
  const debugPort = await freePort();
  const debug = installed.http.debug as Record<string, unknown> | undefined;
  const configPatch = (config: RegistryConfig): void => {
    const addr = config.http.addr;
    const root = (config.storage.filesystem as { rootdirectory: string }).rootdirectory;
    for (const k of Object.keys(config)) delete config[k];
    Object.assign(config, structuredClone(installed), { version: String(installed.version) });
    config.http = {
      ...config.http,
      addr,
      ...(debug ? { debug: { ...debug, addr: `${LOOPBACK}:${debugPort}` } } : {}),
    };
    config.storage.filesystem = { ...(config.storage.filesystem as object), rootdirectory: root };
  };
  const registry = await startCache({ name: "kuik-cache", env: containerEnv(c), configPatch });
  const ref = objectRef(sts);
  const fs = installed.storage.filesystem as { rootdirectory?: string } | undefined;
  const overrides: Override[] = [
    {
      object: ref,
      setting: "config file",
      installed: configPath,
      local: registry.configFile,
      why: "the ConfigMap's config.yml with the lines below",
    },
    {
      object: ref,
      setting: "http.addr",
      installed: String(installed.http.addr),
      local: registry.host,
      why: "a free loopback port",
    },
    {
      object: ref,
      setting: "storage.filesystem.rootdirectory",
      installed: fs?.rootdirectory,
      local: registry.dataDir,
      why: "the emptyDir volume: a temp dir",
    },
  ];
  if (debug)
    overrides.push({
      object: ref,
      setting: "http.debug.addr",
      installed: String(debug.addr),
      local: `${LOOPBACK}:${debugPort}`,
      why: "a free loopback port",
    });
  return { registry, overrides };
}

// ---------------------------------------------------------------------------------------------------------------
// proxy

export interface ProxyProcess {
  pid: number;
  port: number;
  /** Listen addresses, e.g. ["127.0.0.1:7439", "[::1]:7439"]. */
  listen: string[];
  opsUrl: string;
  logFile: string;
  credentialsFile: string;
  readonly running: boolean;
  readLog(): string;
  stop(): Promise<void>;
}

/** Whether this machine has an IPv6 loopback. */
async function hasIpv6Loopback(): Promise<boolean> {
  return (await freePort("::1").catch(() => 0)) > 0;
}

/**
 * Keep the files of a workload's Secret/ConfigMap mount under `root` equal to the installed object, polled every
 * `intervalMs`, as the kubelet refreshes a mounted Secret. Returns a stop function.
 */
export function syncMount(
  cp: ControlPlane,
  w: Workload,
  mountPath: string,
  root: string,
  intervalMs = 2000,
): () => Promise<void> {
  const c = mainContainer(w);
  const seen = new Map<string, string>();
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      await mountedFiles(cp, w, c, mountPath)
        .then(files => writeMountedFiles(root, files, seen))
        .catch(() => undefined);
      for (let waited = 0; waited < intervalMs && !stopped; waited += 100) await sleep(100);
    }
  })();
  return async () => {
    stopped = true;
    await loop;
  };
}

/**
 * The proxy container's command line as the kubelet starts it: `node` of Pepr's controller image is this project's
 * Node 24, and the files of its ConfigMap volumes (the proxy bundle) are written once under `mountRoot` (immutable
 * ConfigMaps: no sync) and their container paths replaced by the local copies.
 */
async function proxyCommand(
  cp: ControlPlane,
  ds: Workload,
  c: Container,
  mountRoot: string,
): Promise<{ cmd: string; args: string[]; overrides: Override[] }> {
  const [program, ...rest] = [...(c.command ?? []), ...(c.args ?? [])];
  if (program !== "node") {
    throw new Error(
      `${objectRef(ds)}: expected Pepr's image running \`node\` (deploy/base), got ${JSON.stringify(c.command)}` +
        " (an image of its own, components/proxy-image, is not run here)",
    );
  }
  const overrides: Override[] = [
    {
      object: objectRef(ds),
      setting: "command[0]",
      installed: program,
      local: node24(),
      why: "the Node.js of Pepr's controller image: the project's Node 24",
    },
  ];
  const volumes = ds.spec.template.spec.volumes ?? [];
  const mounts = (c.volumeMounts ?? []).filter(m => volumes.some(v => v.name === m.name && v.configMap));
  for (const m of mounts) {
    writeMountedFiles(mountRoot, await mountedFiles(cp, ds, c, m.mountPath));
    const name = volumes.find(v => v.name === m.name)?.configMap?.name;
    overrides.push({
      object: objectRef(ds),
      setting: `volume ${m.name} (${m.mountPath})`,
      installed: `ConfigMap ${name}`,
      local: localPath(mountRoot, m.mountPath),
      why: "the mounted ConfigMap: its files, written once",
    });
  }
  const local = (a: string): string =>
    mounts.some(m => a.startsWith(`${m.mountPath}/`)) ? localPath(mountRoot, a) : a;
  return { cmd: node24(), args: rest.map(local), overrides };
}

/** The proxy process: spawn, wait until /readyz answers 200. */
async function spawnProxy(
  command: { cmd: string; args: string[] },
  env: Record<string, string>,
  dir: string,
  opsUrl: string,
  timeoutMs: number,
) {
  const logFile = join(dir, "proxy.log");
  const p = await startProcess({
    name: "kuik-proxy",
    cmd: command.cmd,
    args: command.args,
    cwd: dir,
    env: { ...baseProcessEnv(), ...env },
    logFile,
    ready: async () => (await simpleRequest(`${opsUrl}/readyz`, { timeoutMs: 1000 })).status === 200,
    readyTimeoutMs: timeoutMs,
    pollMs: 50,
  });
  const readLog = (): string => (existsSync(logFile) ? readFileSync(logFile, "utf8") : "");
  return { pid: p.pid, logFile, readLog, stop: p.stop, running: p.isRunning };
}

/**
 * Start the proxy of the installed DaemonSet on `port` of the loopback (the node's loopback, which it binds in the
 * node's network namespace), with the container's command and environment and these overrides: `node`, the
 * bundle's ConfigMap (a local copy), listen and ops addresses, the cache registry, the credentials file (a local
 * copy of the mounted Secret, kept in sync) and the origin's CA.
 */
export async function startInstalledProxy(
  cp: ControlPlane,
  o: { dir: string; port: number; cacheUrl: string; caFile: string; timeoutMs?: number },
): Promise<{ proxy: ProxyProcess; overrides: Override[]; stopSync: () => Promise<void> }> {
  const ds = await installedWorkload(cp, "daemonset", KUIK_NAMESPACE, "app.kubernetes.io/component=proxy");
  const c = mainContainer(ds);
  const { env, overrides, set } = envOverrides(ds, c, { "status.podIP": LOOPBACK });
  const registryPort = c.ports?.find(p => p.name === "registry");
  const listen = [`${LOOPBACK}:${o.port}`, ...((await hasIpv6Loopback()) ? [`[::1]:${o.port}`] : [])];
  set(
    "KUIK_PROXY_LISTEN",
    listen.join(","),
    "the node's loopback: this host's" +
      (registryPort?.hostPort === o.port ? "" : ` (port ${registryPort?.hostPort} is taken)`),
  );
  const opsPort = await freePort();
  set("KUIK_PROXY_OPS_LISTEN", `${LOOPBACK}:${opsPort}`, "the pod IP (the node's): a free loopback port");
  set("KUIK_PROXY_CACHE_REGISTRY", o.cacheUrl, "the Service name: the local cache registry");
  const credentials = env.KUIK_PROXY_CREDENTIALS_FILE;
  const mountRoot = join(o.dir, "mounts");
  const command = await proxyCommand(cp, ds, c, mountRoot);
  overrides.push(...command.overrides);
  let stopSync = async (): Promise<void> => undefined;
  if (credentials) {
    const mountPath = mountOf(c, credentials);
    mkdirSync(localPath(mountRoot, mountPath), { recursive: true });
    set(
      "KUIK_PROXY_CREDENTIALS_FILE",
      localPath(mountRoot, credentials),
      "the mounted Secret: a copy kept in sync every 2 s",
    );
    stopSync = syncMount(cp, ds, mountPath, mountRoot);
  }
  set("KUIK_PROXY_ROOT_CA", o.caFile, ORIGIN_CA_WHY);
  set(
    "KUIK_PROXY_ALLOWED_ORIGIN",
    "127.0.0.0/8,::1",
    "the origins listen on the loopback, which the proxy refuses unless allow-listed (docs/security.md)",
  );
  const opsUrl = `http://${LOOPBACK}:${opsPort}`;
  try {
    const p = await spawnProxy(command, env, o.dir, opsUrl, o.timeoutMs ?? 20_000);
    const proxy: ProxyProcess = {
      pid: p.pid,
      port: o.port,
      listen,
      opsUrl,
      logFile: p.logFile,
      credentialsFile: env.KUIK_PROXY_CREDENTIALS_FILE ?? "",
      get running() {
        return p.running();
      },
      readLog: p.readLog,
      stop: p.stop,
    };
    return { proxy, overrides, stopSync };
  } catch (e) {
    await stopSync();
    throw e;
  }
}
