/**
 * The install manifests of deploy/ (docs/install.md), rendered with the kustomize built into kubectl and applied
 * for real, server-side, to a real local API server (test/harness/control-plane.ts; no kubelet: objects are
 * stored and validated, pods never run). Each rendering is applied twice: for real, then `--dry-run=server`.
 *
 * Order matters, as on a cluster: base (the proxy DaemonSet naming a placeholder bundle ConfigMap), base with the
 * proxy bundle's generated Component (the content-named, immutable ConfigMap, which the API server then refuses to
 * change), the full kustomization (CRDs + base + bundle + the Pepr module of `scripts/build-module.sh`), the
 * persistence overlay, which an installed StatefulSet refuses (volumeClaimTemplates are immutable) until it is
 * deleted, components/proxy-image (the proxy from an image of your own: no bundle), then every other component
 * together with a ServiceMonitor CRD fixture.
 */
import { copyFileSync, cpSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  PROXY_BUNDLE_KEY,
  PROXY_BUNDLE_PLACEHOLDER,
  PROXY_BUNDLE_PLACEHOLDER_SHA256,
  PROXY_COMMAND,
} from "../../capabilities/bootstrap/proxy-bundle";
import { loadKuikConfig } from "../../capabilities/shared/watcher-config";
import { generatedBundle } from "../../scripts/generate-proxy-bundle";
import { makeTempDir, removeTempDir } from "../harness/cleanup";
import {
  controlPlaneAvailable,
  startControlPlane,
  type ControlPlane,
  type KubeObject,
} from "../harness/control-plane";
import { buildModule, readManifest } from "../harness/kuik-module";
import { REPO_ROOT } from "../harness/tools";
import { monitoringCrd } from "../harness/monitoring-crds";

const NS = "kuik-system";
const FIELD_MANAGER = "kuik-install";
const MODULE_YAML = join(REPO_ROOT, "dist", "pepr-module-kuik.yaml");
const PROXY_BUNDLE = join(REPO_ROOT, "proxy", "dist", "kuik-proxy.mjs");
/** Pepr's controller image (package.json's pepr version), which runs the bundle. */
const PEPR_IMAGE = "ghcr.io/defenseunicorns/pepr/controller:v1.1.4";

interface Container {
  name: string;
  image?: string;
  command?: string[];
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
  env?: Array<{ name: string; value?: string; valueFrom?: unknown }>;
  ports?: Array<{ name?: string; containerPort: number; hostPort?: number; hostIP?: string }>;
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  securityContext?: Record<string, unknown>;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
}
interface PodSpec {
  containers: Container[];
  volumes?: Array<{
    name: string;
    emptyDir?: unknown;
    secret?: { secretName: string; optional?: boolean };
    configMap?: { name: string };
  }>;
  priorityClassName?: string;
  tolerations?: Array<Record<string, unknown>>;
  hostNetwork?: boolean;
  dnsPolicy?: string;
  securityContext?: Record<string, unknown>;
}
type Workload = KubeObject & {
  spec: {
    template: { spec: PodSpec };
    volumeClaimTemplates?: Array<{
      metadata: { name: string };
      spec: { resources: { requests: { storage: string } } };
    }>;
  };
};

let cp: ControlPlane;
let work: string;
const timings: Record<string, number> = {};

async function timed<T>(name: string, f: () => Promise<T>): Promise<T> {
  const t = Date.now();
  try {
    return await f();
  } finally {
    timings[name] = Date.now() - t;
  }
}

/** `kubectl kustomize <dir>` of the working copy of deploy/, written to a file and parsed. */
async function render(dir: string): Promise<{ file: string; objects: KubeObject[] }> {
  const r = await cp.kubectl(["kustomize", join(work, dir)]);
  const file = join(work, `${dir.replaceAll("/", "_") || "root"}.rendered.yaml`);
  writeFileSync(file, r.stdout);
  return { file, objects: await readManifest(cp, file) };
}

/** Server-side apply for real, then again as a server dry run; both must exit 0. */
async function applyTwice(file: string): Promise<void> {
  const args = ["apply", "--server-side", `--field-manager=${FIELD_MANAGER}`, "-f", file];
  const real = await cp.kubectl(args, { allowFailure: true });
  expect(real.code, real.stderr).toBe(0);
  const dry = await cp.kubectl([...args, "--dry-run=server"], { allowFailure: true });
  expect(dry.code, dry.stderr).toBe(0);
}

const kindsOf = (objects: KubeObject[]): string[] =>
  objects
    .map(o => `${o.kind}/${o.metadata?.namespace ? `${o.metadata.namespace}/` : ""}${o.metadata?.name}`)
    .sort();

const get = <T = KubeObject>(kind: string, name: string, ns: string | undefined = NS): Promise<T> =>
  cp.kubectlJson<T>(["get", kind, name, ...(ns ? ["-n", ns] : [])]);

/** The first container of a pod spec (each workload here has one). */
function main(pod: PodSpec): Container {
  const c = pod.containers[0];
  if (!c) throw new Error("no container");
  return c;
}

const envOf = (c: Container): Record<string, string | undefined> =>
  Object.fromEntries((c.env ?? []).map(e => [e.name, e.value]));

/** The proxy DaemonSet's pod as installed. */
const proxyPod = async (): Promise<PodSpec> =>
  (await get<Workload>("daemonset", "kube-image-keeper-proxy")).spec.template.spec;

/** The ConfigMap name and sha256 the proxy DaemonSet's pod names. */
const bundleOf = (pod: PodSpec): { name?: string; sha256?: string } => ({
  name: pod.volumes?.find(v => v.name === "bundle")?.configMap?.name,
  sha256: envOf(main(pod)).KUIK_PROXY_BUNDLE_SHA256,
});

/** A kustomization of our own under the working copy: deploy/base with these components. */
function overlay(name: string, components: readonly string[], extra: readonly string[] = []): string {
  const dir = join("overlays", name);
  mkdirSync(join(work, dir));
  writeFileSync(
    join(work, dir, "kustomization.yaml"),
    [
      "apiVersion: kustomize.config.k8s.io/v1beta1",
      "kind: Kustomization",
      "resources: [../../base]",
      `components: [${components.map(c => `../../${c}`).join(", ")}]`,
      ...extra,
      "",
    ].join("\n"),
  );
  return dir;
}

const BASE_OBJECTS = [
  "ConfigMap/kuik-system/kube-image-keeper-registry-config",
  "DaemonSet/kuik-system/kube-image-keeper-proxy",
  "Namespace/kuik-system",
  "NetworkPolicy/kuik-system/kube-image-keeper-registry",
  "Service/kuik-system/kube-image-keeper-registry",
  "ServiceAccount/kuik-system/kube-image-keeper-proxy",
  "ServiceAccount/kuik-system/kube-image-keeper-registry",
  "StatefulSet/kuik-system/kube-image-keeper-registry",
];

describe.skipIf(!controlPlaneAvailable(false))("deploy/ manifests on a real API server", () => {
  beforeAll(async () => {
    const [plane] = await Promise.all([
      timed("control plane", () => startControlPlane({ controllerManager: false })),
      // dist/pepr-module-kuik.yaml, rebuilt only when the module's sources changed
      timed("module build", () => buildModule()),
    ]);
    cp = plane;
    // A copy of deploy/ with the generated module in place, as docs/install.md has the user do: the repository's
    // deploy/generated/ is left alone.
    work = makeTempDir("deploy");
    cpSync(join(REPO_ROOT, "deploy"), work, { recursive: true });
    copyFileSync(MODULE_YAML, join(work, "generated", "pepr-module-kuik.yaml"));
    // The CRDs first, as the install does.
    await timed("CRDs", async () => {
      await cp.kubectl([
        "apply",
        "--server-side",
        `--field-manager=${FIELD_MANAGER}`,
        "-f",
        join(work, "crds"),
      ]);
      await cp.kubectl(["wait", "--for=condition=Established", "--timeout=30s", "crd", "--all"]);
    });
  });

  afterAll(async () => {
    await cp?.stop();
    if (work) removeTempDir(work);
    console.info(
      `deploy.e2e.test.ts timings (ms): ${Object.entries(timings)
        .map(([k, v]) => `${k} ${v}`)
        .join(", ")}`,
    );
  });

  it("base: registry StatefulSet, proxy DaemonSet, policies; applies server-side", async () => {
    const { file, objects } = await timed("base", () => render("base"));
    expect(kindsOf(objects)).toEqual(BASE_OBJECTS);
    await timed("base apply", () => applyTwice(file));

    const ds = await get<Workload>("daemonset", "kube-image-keeper-proxy");
    const pod = ds.spec.template.spec;
    const proxy = main(pod);
    expect(pod.priorityClassName).toBe("system-node-critical");
    expect(pod.tolerations).toEqual([{ operator: "Exists" }]);
    // The node's network namespace, bound to its loopback only; ops on the node's address (7440: 8080 is often
    // taken on a node).
    expect(pod.hostNetwork).toBe(true);
    expect(pod.dnsPolicy).toBe("ClusterFirstWithHostNet");
    expect(proxy.ports).toEqual([
      { name: "registry", containerPort: 7439, hostPort: 7439, hostIP: "127.0.0.1", protocol: "TCP" },
      { name: "ops", containerPort: 7440, hostPort: 7440, protocol: "TCP" },
    ]);
    expect(proxy.readinessProbe?.httpGet).toMatchObject({ path: "/readyz", port: "ops" });
    expect(proxy.livenessProbe?.httpGet).toMatchObject({ path: "/healthz", port: "ops" });
    expect(proxy.securityContext).toMatchObject({
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["ALL"] },
    });
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65532 });
    expect(proxy.resources).toMatchObject({ requests: { memory: "64Mi" }, limits: { memory: "128Mi" } });
    // No image of its own: Pepr's controller image runs the loader, which checks the bundle's hash and imports it.
    expect(proxy.image).toBe(PEPR_IMAGE);
    expect(proxy.command).toEqual(PROXY_COMMAND);
    expect(proxy.volumeMounts).toContainEqual({ name: "bundle", mountPath: "/opt/kuik", readOnly: true });
    // base alone names a placeholder no install creates, and a hash the loader refuses
    expect(bundleOf(pod)).toEqual({
      name: PROXY_BUNDLE_PLACEHOLDER,
      sha256: PROXY_BUNDLE_PLACEHOLDER_SHA256,
    });
    // The Secret the watcher writes: same name as its default, optional so the proxy starts before it exists.
    const { watcher, config } = loadKuikConfig({});
    const credentials = pod.volumes?.find(v => v.name === "credentials");
    expect(credentials?.secret).toMatchObject({ secretName: watcher.credentialsSecret, optional: true });
    // $(POD_IP) expands only from variables defined before it.
    const names = (proxy.env ?? []).map(e => e.name);
    expect(names.indexOf("POD_IP")).toBeLessThan(names.indexOf("KUIK_PROXY_OPS_LISTEN"));
    expect(envOf(proxy)).toMatchObject({
      KUIK_PROXY_LISTEN: "127.0.0.1:7439,[::1]:7439",
      KUIK_PROXY_OPS_LISTEN: "$(POD_IP):7440",
      KUIK_PROXY_CACHE_REGISTRY: "http://kube-image-keeper-registry:5000",
      KUIK_PROXY_CREDENTIALS_FILE: "/etc/kuik/credentials/config.json",
    });

    // The operator's default endpoint is this Service, namespace-qualified (the watcher runs in pepr-system).
    const svc = await get<KubeObject & { spec: { ports: Array<{ name: string; port: number }> } }>(
      "service",
      "kube-image-keeper-registry",
    );
    const registryPort = svc.spec.ports.find(p => p.name === "docker-registry")?.port;
    expect(config.registryEndpoint).toBe(
      `${svc.metadata?.name}.${svc.metadata?.namespace}.svc:${registryPort}`,
    );

    const sts = await get<Workload>("statefulset", "kube-image-keeper-registry");
    const registry = main(sts.spec.template.spec);
    expect(sts.spec.volumeClaimTemplates).toBeUndefined();
    expect(sts.spec.template.spec.volumes?.find(v => v.name === "data")?.emptyDir).toEqual({});
    expect(envOf(registry)).toMatchObject({
      REGISTRY_STORAGE_DELETE_ENABLED: "true",
      OTEL_TRACES_EXPORTER: "none",
    });
    expect(registry.readinessProbe?.httpGet).toMatchObject({ path: "/v2/", port: "registry" });
    expect(registry.livenessProbe?.httpGet).toMatchObject({ path: "/v2/", port: "registry" });
    expect(sts.spec.template.spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65532 });
    expect(registry.securityContext).toMatchObject({ readOnlyRootFilesystem: true });

    const cm = await get<KubeObject & { data: Record<string, string> }>(
      "configmap",
      "kube-image-keeper-registry-config",
    );
    expect(cm.data["config.yml"]).toMatch(/indexes:\n\s+# [^\n]*\n(\s+#[^\n]*\n)*\s+platforms: none\n/);
    expect(cm.data["config.yml"]).toMatch(/delete:\n\s+enabled: true/);

    // The registry: Pepr's watcher by label; the host-network proxies come from node addresses, which no selector
    // matches, so any source is admitted until narrowed (docs/install.md §6).
    const np = await get<KubeObject & { spec: { ingress: Array<{ from: unknown[] }> } }>(
      "networkpolicy",
      "kube-image-keeper-registry",
    );
    expect(np.spec.ingress[0]?.from).toEqual([
      {
        namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "pepr-system" } },
        podSelector: { matchLabels: { app: "pepr-kuik-watcher" } },
      },
      { ipBlock: { cidr: "0.0.0.0/0" } },
      { ipBlock: { cidr: "::/0" } },
    ]);
    // ...and that selector matches the generated watcher's pods.
    const module = await readManifest(cp, MODULE_YAML);
    const watcherDeployment = module.find(
      o => o.kind === "Deployment" && o.metadata?.name === "pepr-kuik-watcher",
    );
    expect((watcherDeployment as Workload | undefined)?.spec.template).toMatchObject({
      metadata: { labels: { app: "pepr-kuik-watcher" } },
    });
  });

  it("generated/proxy-bundle: the bundle's immutable, content-named ConfigMap, named in the DaemonSet", async () => {
    const { file, objects } = await timed("bundle", () =>
      render(overlay("bundle", ["generated/proxy-bundle"])),
    );
    const bundle = generatedBundle();
    expect(bundle?.name).toMatch(/^kube-image-keeper-proxy-[0-9a-f]{10}$/);
    expect(kindsOf(objects)).toEqual([...BASE_OBJECTS, `ConfigMap/${NS}/${bundle?.name}`].sort());
    await timed("bundle apply", () => applyTwice(file));
    const cm = await get<KubeObject & { immutable?: boolean; data: Record<string, string> }>(
      "configmap",
      String(bundle?.name),
    );
    expect(cm.immutable).toBe(true);
    // the bundle proxy/build.mjs built, byte for byte (the loader checks its sha256 against the DaemonSet's)
    expect(cm.data[PROXY_BUNDLE_KEY]).toBe(readFileSync(PROXY_BUNDLE, "utf8"));
    const pod = await proxyPod();
    expect(bundleOf(pod)).toEqual(bundle);
    // the Component's patch reorders env (its variable first): $(POD_IP) must still come after POD_IP
    const names = (main(pod).env ?? []).map(e => e.name);
    expect(names.indexOf("POD_IP")).toBeLessThan(names.indexOf("KUIK_PROXY_OPS_LISTEN"));
    // A bundle never changes under a name: a new one is a new ConfigMap, so the DaemonSet's template rolls.
    const edit = await cp.kubectl(
      ["patch", "configmap", String(bundle?.name), "-n", NS, "--type=merge", "-p", '{"data":{"x":"y"}}'],
      { allowFailure: true },
    );
    expect(edit.code).not.toBe(0);
    expect(edit.stderr).toMatch(/immutable/);
  });

  it("deploy/: CRDs + base + the generated Pepr module, with kuik's settings on both Deployments", async () => {
    const { file, objects } = await timed("full", () => render(""));
    const names = kindsOf(objects);
    for (const o of [
      ...BASE_OBJECTS,
      "CustomResourceDefinition/cachedimages.kuik.enix.io",
      "CustomResourceDefinition/repositories.kuik.enix.io",
      "Namespace/pepr-system",
      "Deployment/pepr-system/pepr-kuik",
      "Deployment/pepr-system/pepr-kuik-watcher",
      "MutatingWebhookConfiguration/pepr-kuik",
      "ClusterRole/pepr-kuik",
    ]) {
      expect(names).toContain(o);
    }
    // the proxy bundle's Component is in the default kustomization
    expect(names).toContain(`ConfigMap/${NS}/${generatedBundle()?.name}`);
    await timed("full apply", () => applyTwice(file));

    for (const name of ["pepr-kuik", "pepr-kuik-watcher"]) {
      const d = await get<Workload>("deployment", name, "pepr-system");
      const env = envOf(main(d.spec.template.spec));
      expect(env.KUIK_REGISTRY_ENDPOINT).toBe("kube-image-keeper-registry.kuik-system.svc:5000");
      expect(env.KUIK_NAMESPACE).toBe(NS);
      expect(env.PEPR_WATCH_MODE).toBe(name === "pepr-kuik-watcher" ? "true" : "false");
      // the operator accepts them
      const settings = loadKuikConfig(env);
      expect(settings.config.registryUrl).toBe("http://kube-image-keeper-registry.kuik-system.svc:5000");
    }
    // The webhook post-processing of scripts/build-module.sh is in the applied object.
    const webhook = await get<KubeObject & { webhooks: Array<Record<string, unknown>> }>(
      "mutatingwebhookconfiguration",
      "pepr-kuik",
      undefined,
    );
    expect(webhook.webhooks[0]).toMatchObject({ reinvocationPolicy: "IfNeeded" });
    expect(JSON.stringify(webhook.webhooks[0]?.objectSelector)).toContain("image-caching-policy");
    const pod = await proxyPod();
    expect(pod.hostNetwork).toBe(true);
    expect(bundleOf(pod)).toEqual(generatedBundle());
  });

  it("overlays/persistence: volumeClaimTemplates; an installed StatefulSet must be deleted first", async () => {
    const { file } = await timed("persistence", () => render("overlays/persistence"));
    // volumeClaimTemplates are immutable: docs/install.md says to delete the StatefulSet first.
    const refused = await cp.kubectl(
      ["apply", "--server-side", `--field-manager=${FIELD_MANAGER}`, "-f", file],
      { allowFailure: true },
    );
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/StatefulSet.*Forbidden: updates to statefulset spec/s);
    await cp.kubectl(["delete", "statefulset", "-n", NS, "kube-image-keeper-registry"]);
    await timed("persistence apply", () => applyTwice(file));
    const sts = await get<Workload>("statefulset", "kube-image-keeper-registry");
    expect(sts.spec.volumeClaimTemplates).toHaveLength(1);
    expect(sts.spec.volumeClaimTemplates?.[0]).toMatchObject({
      metadata: { name: "data" },
      spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "20Gi" } } },
    });
    expect(sts.spec.template.spec.volumes?.map(v => v.name)).toEqual(["config"]);
    const mounts = (
      main(sts.spec.template.spec) as Container & { volumeMounts: Array<{ name: string; mountPath: string }> }
    ).volumeMounts;
    expect(mounts).toContainEqual({ name: "data", mountPath: "/var/lib/registry" });
    // overlays/persistence brings the proxy bundle too
    expect(bundleOf(await proxyPod())).toEqual(generatedBundle());
  });

  it("components/proxy-image: the proxy from an image of your own, without the bundle", async () => {
    const { file, objects } = await timed("proxy-image", () =>
      render(
        overlay(
          "proxy-image",
          // persistence too: the StatefulSet installed above keeps its volumeClaimTemplates
          ["components/persistence", "components/proxy-image"],
          ["images: [{name: kuik-proxy, newName: registry.corp/kuik-proxy, newTag: '1.2'}]"],
        ),
      ),
    );
    expect(kindsOf(objects)).toEqual(BASE_OBJECTS);
    await timed("proxy-image apply", () => applyTwice(file));
    // Same field manager: server-side apply took the bundle's command, hash, mount and volume back off.
    const pod = await proxyPod();
    const proxy = main(pod);
    expect(proxy.image).toBe("registry.corp/kuik-proxy:1.2");
    expect(proxy.command).toBeUndefined();
    expect(envOf(proxy)).not.toHaveProperty("KUIK_PROXY_BUNDLE_SHA256");
    expect(proxy.volumeMounts?.map(m => m.name)).toEqual(["credentials", "tmp"]);
    expect(pod.volumes?.map(v => v.name)).toEqual(["credentials", "tmp"]);
    // still in the node's network namespace, on its loopback
    expect(pod.hostNetwork).toBe(true);
    expect(envOf(proxy).KUIK_PROXY_LISTEN).toBe("127.0.0.1:7439,[::1]:7439");
    // An object only a removed component added is not deleted by `apply` (no --prune): docs/install.md says so.
    const left = await cp.kubectl(["get", "configmap", String(generatedBundle()?.name), "-n", NS], {
      allowFailure: true,
    });
    expect(left.code).toBe(0);
  });

  it("components/servicemonitor and registry-ui, with persistence and the proxy bundle: all four compose", async () => {
    await cp.apply(monitoringCrd("ServiceMonitor"));
    await cp.kubectl([
      "wait",
      "--for=condition=Established",
      "--timeout=30s",
      "crd/servicemonitors.monitoring.coreos.com",
    ]);
    const dir = overlay("all", [
      "generated/proxy-bundle",
      "components/persistence",
      "components/servicemonitor",
      "components/registry-ui",
    ]);
    const { file, objects } = await timed("all components", () => render(dir));
    expect(kindsOf(objects)).toEqual(
      [
        ...BASE_OBJECTS,
        `ConfigMap/${NS}/${generatedBundle()?.name}`,
        "Deployment/kuik-system/kube-image-keeper-registry-ui",
        "NetworkPolicy/kuik-system/kube-image-keeper-registry-from-ui",
        "Service/kuik-system/kube-image-keeper-registry-ui",
        "NetworkPolicy/kuik-system/kube-image-keeper-registry-metrics",
        "Service/kuik-system/kube-image-keeper-proxy-metrics",
        "ServiceMonitor/kuik-system/kube-image-keeper-proxy",
        "ServiceMonitor/kuik-system/kube-image-keeper-registry",
      ].sort(),
    );
    await timed("all components apply", () => applyTwice(file));
    const monitors = await cp.kubectlJson<{ items: Array<KubeObject & { spec: { endpoints: unknown[] } }> }>([
      "get",
      "servicemonitors",
      "-n",
      NS,
    ]);
    const byName = Object.fromEntries(monitors.items.map(m => [m.metadata?.name, m.spec.endpoints]));
    expect(byName).toEqual({
      "kube-image-keeper-proxy": [{ port: "ops", path: "/metrics", interval: "60s", scrapeTimeout: "30s" }],
      "kube-image-keeper-registry": [
        { port: "registry-metrics", path: "/metrics", interval: "60s", scrapeTimeout: "30s" },
      ],
    });
    const sts = await get<Workload>("statefulset", "kube-image-keeper-registry");
    expect(sts.spec.volumeClaimTemplates?.[0]?.metadata.name).toBe("data");
    const pod = await proxyPod();
    expect(pod.hostNetwork).toBe(true);
    expect(bundleOf(pod)).toEqual(generatedBundle());
  });
});
