/**
 * The install manifests of deploy/ (docs/install.md), rendered with the kustomize built into kubectl and applied
 * for real, server-side, to a real local API server (test/harness/control-plane.ts; no kubelet: objects are
 * stored and validated, pods never run). Each rendering is applied twice: for real, then `--dry-run=server`.
 *
 * Order matters, as on a cluster: base, the hostnetwork overlay over it, the full kustomization (CRDs + base + the
 * Pepr module of `scripts/build-module.sh`) which must take the proxy back off hostNetwork, then the persistence
 * overlay, which an installed StatefulSet refuses (volumeClaimTemplates are immutable) until it is deleted, then
 * every component together with a ServiceMonitor CRD fixture.
 */
import { copyFileSync, cpSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadKuikConfig } from "../../capabilities/shared/watcher-config";
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

interface Container {
  name: string;
  image?: string;
  env?: Array<{ name: string; value?: string; valueFrom?: unknown }>;
  ports?: Array<{ name?: string; containerPort: number; hostPort?: number; hostIP?: string }>;
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  securityContext?: Record<string, unknown>;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
}
interface PodSpec {
  containers: Container[];
  volumes?: Array<{ name: string; emptyDir?: unknown; secret?: { secretName: string; optional?: boolean } }>;
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

const BASE_OBJECTS = [
  "ConfigMap/kuik-system/kube-image-keeper-registry-config",
  "DaemonSet/kuik-system/kube-image-keeper-proxy",
  "Namespace/kuik-system",
  "NetworkPolicy/kuik-system/kube-image-keeper-proxy",
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
    expect(pod.hostNetwork).toBeFalsy();
    expect(proxy.ports).toContainEqual(
      expect.objectContaining({ name: "registry", containerPort: 7439, hostPort: 7439, hostIP: "127.0.0.1" }),
    );
    expect(proxy.readinessProbe?.httpGet).toMatchObject({ path: "/readyz", port: "ops" });
    expect(proxy.livenessProbe?.httpGet).toMatchObject({ path: "/healthz", port: "ops" });
    expect(proxy.securityContext).toMatchObject({
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["ALL"] },
    });
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65532 });
    expect(proxy.resources).toMatchObject({ requests: { memory: "64Mi" }, limits: { memory: "128Mi" } });
    expect(proxy.image).toBe("kuik-proxy:0.1.0");
    // The Secret the watcher writes: same name as its default, optional so the proxy starts before it exists.
    const { watcher, config } = loadKuikConfig({});
    const credentials = pod.volumes?.find(v => v.name === "credentials");
    expect(credentials?.secret).toMatchObject({ secretName: watcher.credentialsSecret, optional: true });
    // $(POD_IP) expands only from variables defined before it.
    const names = (proxy.env ?? []).map(e => e.name);
    expect(names.indexOf("POD_IP")).toBeLessThan(names.indexOf("KUIK_PROXY_OPS_LISTEN"));
    expect(envOf(proxy)).toMatchObject({
      KUIK_PROXY_LISTEN: ":7439",
      KUIK_PROXY_OPS_LISTEN: "$(POD_IP):8080",
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

    // The registry: reachable from the proxy and Pepr's watcher only.
    const np = await get<KubeObject & { spec: { ingress: Array<{ from: unknown[] }> } }>(
      "networkpolicy",
      "kube-image-keeper-registry",
    );
    expect(np.spec.ingress[0]?.from).toEqual([
      {
        podSelector: {
          matchLabels: {
            "app.kubernetes.io/name": "kube-image-keeper",
            "app.kubernetes.io/component": "proxy",
          },
        },
      },
      {
        namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "pepr-system" } },
        podSelector: { matchLabels: { app: "pepr-kuik-watcher" } },
      },
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

  it("overlays/hostnetwork: the proxy on the node's loopback", async () => {
    const { file, objects } = await timed("hostnetwork", () => render("overlays/hostnetwork"));
    expect(kindsOf(objects)).toEqual(
      [...BASE_OBJECTS, "NetworkPolicy/kuik-system/kube-image-keeper-registry-from-nodes"].sort(),
    );
    await timed("hostnetwork apply", () => applyTwice(file));
    const pod = (await get<Workload>("daemonset", "kube-image-keeper-proxy")).spec.template.spec;
    const proxy = main(pod);
    expect(pod.hostNetwork).toBe(true);
    expect(pod.dnsPolicy).toBe("ClusterFirstWithHostNet");
    expect(envOf(proxy)).toMatchObject({
      KUIK_PROXY_LISTEN: "127.0.0.1:7439,[::1]:7439",
      KUIK_PROXY_OPS_LISTEN: "$(POD_IP):7440",
    });
    const names = (proxy.env ?? []).map(e => e.name);
    expect(names.indexOf("POD_IP")).toBeLessThan(names.indexOf("KUIK_PROXY_OPS_LISTEN"));
    expect(proxy.ports).toEqual([
      { name: "registry", containerPort: 7439, hostPort: 7439, hostIP: "127.0.0.1", protocol: "TCP" },
      { name: "ops", containerPort: 7440, hostPort: 7440, protocol: "TCP" },
    ]);
    expect(pod.priorityClassName).toBe("system-node-critical");
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
    // the hostnetwork component is not in the default kustomization
    expect(names).not.toContain("NetworkPolicy/kuik-system/kube-image-keeper-registry-from-nodes");
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
    // Same field manager, hostnetwork no longer applied: server-side apply took it back off.
    const pod = (await get<Workload>("daemonset", "kube-image-keeper-proxy")).spec.template.spec;
    expect(pod.hostNetwork).toBeFalsy();
    expect(envOf(main(pod)).KUIK_PROXY_LISTEN).toBe(":7439");
    const np = await cp.kubectl(["get", "networkpolicy", "-n", NS, "-o", "name"]);
    // An object only a removed component added is not deleted by `apply` (no --prune): docs/install.md says so.
    expect(np.stdout).toContain("kube-image-keeper-registry-from-nodes");
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
  });

  it("components/servicemonitor and registry-ui, with persistence and hostnetwork: all four compose", async () => {
    await cp.apply(monitoringCrd("ServiceMonitor"));
    await cp.kubectl([
      "wait",
      "--for=condition=Established",
      "--timeout=30s",
      "crd/servicemonitors.monitoring.coreos.com",
    ]);
    const dir = join(work, "overlays", "all");
    mkdirSync(dir);
    writeFileSync(
      join(dir, "kustomization.yaml"),
      [
        "apiVersion: kustomize.config.k8s.io/v1beta1",
        "kind: Kustomization",
        "resources: [../../base]",
        "components: [../../components/persistence, ../../components/hostnetwork, ../../components/servicemonitor, ../../components/registry-ui]",
        "",
      ].join("\n"),
    );
    const { file, objects } = await timed("all components", () => render("overlays/all"));
    expect(kindsOf(objects)).toEqual(
      [
        ...BASE_OBJECTS,
        "Deployment/kuik-system/kube-image-keeper-registry-ui",
        "NetworkPolicy/kuik-system/kube-image-keeper-registry-from-ui",
        "Service/kuik-system/kube-image-keeper-registry-ui",
        "NetworkPolicy/kuik-system/kube-image-keeper-registry-from-nodes",
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
    const pod = (await get<Workload>("daemonset", "kube-image-keeper-proxy")).spec.template.spec;
    expect(pod.hostNetwork).toBe(true);
  });
});
