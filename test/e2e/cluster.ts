/**
 * kuik on a real one-node cluster, installed as a user installs it, every component a Pod: what `npm run up` and the
 * node e2e tests (`*.node.e2e.test.ts`) use. The other e2e tests use stack.ts, where kuik's components run as local
 * processes (faster to start; see docs/local-cluster.md for which test uses which).
 *
 * - control plane (control-plane.ts) on the node's address, with kube-scheduler and every default controller;
 * - the node (node.ts): containerd, kubelet, kube-proxy, CNI; CoreDNS as a Deployment in kube-system;
 * - the air-gapped mirror (node-images.ts) serving every image under its real name;
 * - an origin registry (HTTPS, basic auth, harness CA) on the node's address: a registry the Pods can reach;
 * - kuik: `kubectl apply --server-side -k` of deploy/ with the built module under a kustomization of the user's
 *   (settings, the origin's CA mounted from a Secret as docs/configuration.md describes), then waits until the
 *   admission, watcher, cache registry and proxy Pods are Ready.
 */
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { cachedImageName } from "../../capabilities/shared/object-names";
import { cacheRepositoryOf } from "../../proxy/src/names";
import { keepTemp, makeTempDir, removeTempDir } from "../harness/cleanup";
import { startControlPlane, type ControlPlane, type KubeObject } from "../harness/control-plane";
import { ctrRemoveImages, writeHostsToml } from "../harness/containerd";
import { buildImage, pushImage, type ImageSpec, type PushedImage } from "../harness/images";
import { installKuik, type Installation } from "../harness/kuik-install";
import { buildModule } from "../harness/kuik-module";
import { NODE_IP, simpleRequest } from "../harness/net";
import { CLUSTER_DNS_IP, nodeImages, setUpNodeNetwork, startNode, type KubeNode } from "../harness/node";
import { startMirror, type Mirror } from "../harness/node-images";
import { harnessPki } from "../harness/pki";
import { startOriginBasic, type StartedRegistry } from "../harness/registries";
import { kuikCacheDir } from "../harness/tools";
import { KUIK_NAMESPACE } from "./installed-workloads";
import {
  createNamespaceWithPullSecret,
  DEFAULT_PROXY_PORT,
  getCachedImage,
  isCachedAndReady,
  listPods,
  podImages,
  podRunning,
  waitFor,
} from "./stack";

/** The Secret (in kuik-system and pepr-system) holding the origin's CA, mounted at /etc/kuik/ca. */
export const ROOT_CA_SECRET = "kuik-root-ca";
const PEPR_NAMESPACE = "pepr-system";

export interface ClusterOptions {
  /** State dir; default a temp dir removed on stop (unless KUIK_KEEP_TMP=1). */
  dir?: string;
  /** Where to write the admin kubeconfig; default `<dir>/control-plane/kubeconfig`. */
  kubeconfigPath?: string;
  /** kuik's settings (KUIK_* variables) on both Pepr Deployments. */
  env?: Record<string, string>;
  /** Called with progress lines. */
  progress?: (line: string) => void;
  /** deploy/components/ to enable in the user's kustomization (e.g. "persistence", "garbage-collection"). */
  components?: string[];
  /** Objects applied before kuik is installed (e.g. a PersistentVolume for components/persistence). */
  objects?: (dir: string) => object[];
  /** Install kuik with `kubectl apply -k` (default true); false: the test installs it its own way. */
  install?: boolean;
  /** Further strategic-merge patches of the user's kustomization (e.g. a proxy image that cannot be pulled). */
  patches?: object[];
  /** Wait for the proxy DaemonSet to roll out before returning (default true). */
  waitForProxy?: boolean;
}

export interface Cluster {
  dir: string;
  cp: ControlPlane;
  node: KubeNode;
  mirror: Mirror;
  origin: StartedRegistry;
  /** What `kubectl apply -k` applied; undefined with `install: false`. */
  installation: Installation | undefined;
  proxyPort: number;
  timings: Record<string, number>;
  kubectl: ControlPlane["kubectl"];
  kubectlJson: ControlPlane["kubectlJson"];
  /** Build (cached) and push a runnable test image (the pause binary as its command) to the origin. */
  pushToOrigin(spec: ImageSpec, repo: string, tag: string): Promise<PushedImage>;
  /** The `localhost:<proxyPort>/…` image the webhook writes for `image`. */
  proxyImage(image: string): string;
  /** Digest of an origin `repo:ref` in the cache registry (through its Service, from the node), or undefined. */
  cacheDigest(repo: string, ref: string): Promise<string | undefined>;
  cachedImageName(image: string): string;
  getCachedImage(name: string): Promise<KubeObject | undefined>;
  /** Create the namespace with a dockerconfigjson Secret for the origin (stack.ts `createNamespaceWithPullSecret`). */
  namespaceWithPullSecret(ns: string): Promise<void>;
  /** Wait until exactly `count` Pods labelled `app=<app>` in `ns` are Running (diagnostics on timeout). */
  runningPods(ns: string, app: string, count: number, timeoutMs?: number): Promise<KubeObject[]>;
  /** Wait until the CachedImage of `image` is cached and Ready; returns it. */
  cachedImageReady(image: string): Promise<KubeObject>;
  /** Remove from the node's containerd every image whose name contains one of `repos`: the next Pod pulls again. */
  forgetOnNode(...repos: string[]): Promise<void>;
  /** Images in the node's containerd (CRI namespace). */
  nodeImages(): Promise<string[]>;
  /** `kubectl get pods -A -o wide`, recent Events and log tails, for failure messages. */
  diagnostics(): Promise<string>;
  /**
   * Wait until the webhook rewrites again: the proxy gate (capabilities/proxy-gate) opens up to one poll (5 s) after
   * the proxy is Ready. Asked with server-side dry runs of a Pod in `ns` (admission runs, nothing is created), until
   * three in a row come back rewritten, so both admission replicas agree.
   */
  rewriting(ns: string, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** CoreDNS as kubeadm installs it, minus `forward`: this cluster has no upstream resolver (air-gapped). */
function coreDnsObjects(): object[] {
  const labels = { "k8s-app": "kube-dns" };
  const corefile = [
    ".:53 {",
    "    errors",
    "    health {",
    "        lameduck 5s",
    "    }",
    "    ready",
    "    kubernetes cluster.local in-addr.arpa ip6.arpa {",
    "        pods insecure",
    "        fallthrough in-addr.arpa ip6.arpa",
    "        ttl 30",
    "    }",
    "    cache 30",
    "    loop",
    "    reload",
    "}",
    "",
  ].join("\n");
  const ns = "kube-system";
  return [
    { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "coredns", namespace: ns } },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: "system:coredns" },
      rules: [
        {
          apiGroups: [""],
          resources: ["endpoints", "services", "pods", "namespaces"],
          verbs: ["list", "watch"],
        },
        { apiGroups: ["discovery.k8s.io"], resources: ["endpointslices"], verbs: ["list", "watch"] },
      ],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: "system:coredns" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "system:coredns" },
      subjects: [{ kind: "ServiceAccount", name: "coredns", namespace: ns }],
    },
    {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "coredns", namespace: ns },
      data: { Corefile: corefile },
    },
    {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "coredns", namespace: ns, labels },
      spec: {
        replicas: 1,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            serviceAccountName: "coredns",
            priorityClassName: "system-cluster-critical",
            dnsPolicy: "Default",
            containers: [
              {
                name: "coredns",
                image: "registry.k8s.io/coredns/coredns:v1.14.2",
                imagePullPolicy: "IfNotPresent",
                args: ["-conf", "/etc/coredns/Corefile"],
                ports: [
                  { name: "dns", containerPort: 53, protocol: "UDP" },
                  { name: "dns-tcp", containerPort: 53, protocol: "TCP" },
                ],
                readinessProbe: { httpGet: { path: "/ready", port: 8181 }, periodSeconds: 2 },
                livenessProbe: { httpGet: { path: "/health", port: 8080 }, periodSeconds: 10 },
                resources: { limits: { memory: "170Mi" }, requests: { cpu: "50m", memory: "70Mi" } },
                securityContext: {
                  allowPrivilegeEscalation: false,
                  readOnlyRootFilesystem: true,
                  capabilities: { drop: ["ALL"] },
                },
                volumeMounts: [{ name: "config", mountPath: "/etc/coredns", readOnly: true }],
              },
            ],
            volumes: [{ name: "config", configMap: { name: "coredns" } }],
          },
        },
      },
    },
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "kube-dns", namespace: ns, labels },
      spec: {
        selector: labels,
        clusterIP: CLUSTER_DNS_IP,
        ports: [
          { name: "dns", port: 53, protocol: "UDP" },
          { name: "dns-tcp", port: 53, protocol: "TCP" },
        ],
      },
    },
  ];
}

/**
 * The user's kustomization patches: the origin's CA, from a Secret, in the proxy and both Pepr Deployments; and the
 * origin's private address (the node's) allow-listed in the proxy, which refuses private addresses otherwise.
 */
function rootCaPatches(): object[] {
  const volume = { name: "kuik-root-ca", secret: { secretName: ROOT_CA_SECRET } };
  const mount = { name: "kuik-root-ca", mountPath: "/etc/kuik/ca", readOnly: true };
  const workload = (
    kind: string,
    namespace: string,
    name: string,
    container: string,
    env: string,
    extraEnv: { name: string; value: string }[] = [],
  ): object => ({
    apiVersion: "apps/v1",
    kind,
    metadata: { name, namespace },
    spec: {
      template: {
        spec: {
          volumes: [volume],
          containers: [
            {
              name: container,
              volumeMounts: [mount],
              env: [{ name: env, value: "/etc/kuik/ca/ca.crt" }, ...extraEnv],
            },
          ],
        },
      },
    },
  });
  return [
    workload("Deployment", PEPR_NAMESPACE, "pepr-kuik", "server", "KUIK_ROOT_CERTIFICATE_AUTHORITIES"),
    workload(
      "Deployment",
      PEPR_NAMESPACE,
      "pepr-kuik-watcher",
      "watcher",
      "KUIK_ROOT_CERTIFICATE_AUTHORITIES",
    ),
    workload("DaemonSet", KUIK_NAMESPACE, "kube-image-keeper-proxy", "proxy", "KUIK_PROXY_ROOT_CA", [
      { name: "KUIK_PROXY_ALLOWED_ORIGIN", value: NODE_IP },
    ]),
  ];
}

/** Whether a workload's Pods are all up: `kubectl rollout status` semantics, read from its status. */
function rolledOut(w: KubeObject): boolean {
  const s = (w.status ?? {}) as Record<string, number | undefined>;
  const want = w.kind === "DaemonSet" ? (s.desiredNumberScheduled ?? 0) : ((w.spec?.replicas as number) ?? 1);
  const ready = w.kind === "DaemonSet" ? s.numberReady : s.readyReplicas;
  return want > 0 && ready === want;
}

/**
 * The namespaces of kuik's install (created now: the Secrets must exist before the Pods start) and the origin's CA
 * in each, as Secret {@link ROOT_CA_SECRET} (key `ca.crt`): what a user with a private registry creates first
 * (docs/configuration.md `rootCertificateAuthorities`).
 */
export async function createRootCaSecrets(cp: ControlPlane): Promise<void> {
  const { caFile } = await harnessPki();
  for (const ns of [KUIK_NAMESPACE, PEPR_NAMESPACE]) {
    await cp.apply([
      { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } },
      {
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: ROOT_CA_SECRET, namespace: ns },
        data: { "ca.crt": readFileSync(caFile).toString("base64") },
      },
    ]);
  }
}

/** Wait until every workload of kuik's install is rolled out (all its Pods Ready). */
export async function waitForKuik(
  cp: ControlPlane,
  diagnostics: () => Promise<string>,
  timeoutMs = 300_000,
  withProxy = true,
): Promise<void> {
  const workloads: Array<[string, string, string]> = [
    ["statefulset", KUIK_NAMESPACE, "kube-image-keeper-registry"],
    ...(withProxy
      ? [["daemonset", KUIK_NAMESPACE, "kube-image-keeper-proxy"] as [string, string, string]]
      : []),
    ["deployment", PEPR_NAMESPACE, "pepr-kuik"],
    ["deployment", PEPR_NAMESPACE, "pepr-kuik-watcher"],
  ];
  for (const [kind, ns, name] of workloads) {
    await waitFor(
      `${kind} ${ns}/${name} rolled out`,
      async () => {
        const o = await cp.kubectlJson(["get", kind, name, "-n", ns]);
        return rolledOut(o) ? o : undefined;
      },
      { timeoutMs, intervalMs: 1000 },
    ).catch(async (e: unknown) => {
      throw new Error(`${(e as Error).message}\n${await diagnostics()}`);
    });
  }
}

/** Start everything; always `await stop()` it. */
export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  const t0 = Date.now();
  const timings: Record<string, number> = {};
  const say = opts.progress ?? ((): void => undefined);
  const ownDir = !opts.dir;
  const dir = opts.dir ?? makeTempDir("cluster");
  mkdirSync(dir, { recursive: true });
  const timed = async <T>(name: string, p: Promise<T>): Promise<T> => {
    const s = Date.now();
    const v = await p;
    timings[name] = Date.now() - s;
    return v;
  };
  const hostsDir = join(dir, "node", "certs.d");
  mkdirSync(hostsDir, { recursive: true });

  const parts: { cp?: ControlPlane; node?: KubeNode; mirror?: Mirror; origin?: StartedRegistry } = {};
  let releaseNetwork: (() => Promise<void>) | undefined;
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await parts.node?.stop();
    await Promise.all([parts.cp?.stop(), parts.mirror?.stop(), parts.origin?.stop()]);
    await releaseNetwork?.();
    if (ownDir && !keepTemp()) removeTempDir(dir);
  };
  const diagnostics = async (): Promise<string> => {
    const out: string[] = [];
    const cp = parts.cp;
    if (cp) {
      const pods = await cp.kubectl(["get", "pods", "-A", "-o", "wide"], { allowFailure: true });
      const events = await cp.kubectl(["get", "events", "-A", "--sort-by=.lastTimestamp"], {
        allowFailure: true,
      });
      out.push(pods.stdout, events.stdout.split("\n").slice(-30).join("\n"));
    }
    for (const p of parts.node?.processes ?? []) out.push(`--- ${p.name} (${p.logFile}) ---\n${p.tail(15)}`);
    return out.join("\n");
  };

  try {
    say(
      "setting up the node's network; building the module and the proxy; starting the control plane and the origin",
    );
    releaseNetwork = await setUpNodeNetwork();
    const { caFile } = await harnessPki();
    // scripts/build-module.sh also builds the proxy bundle and its ConfigMap (deploy/generated/proxy-bundle)
    const [, cp, origin] = await Promise.all([
      timed("moduleBuild", buildModule()),
      timed(
        "controlPlane",
        startControlPlane({
          dir: join(dir, "control-plane"),
          bindAddress: NODE_IP,
          scheduler: true,
          controllers: ["*"],
          ...(opts.kubeconfigPath ? { kubeconfigPath: opts.kubeconfigPath } : {}),
        }),
      ),
      timed("origin", startOriginBasic({ name: "origin", host: NODE_IP, logLevel: "warn" })),
    ]);
    parts.cp = cp;
    parts.origin = origin;
    // Pods that are not rewritten (opt-outs) pull the origin directly: the node trusts its CA, as a node would.
    writeHostsToml(
      hostsDir,
      origin.host,
      [{ url: `https://${origin.host}`, caFile }],
      `https://${origin.host}`,
    );
    say(`control plane ${cp.version} on ${cp.server}; building the images the node needs into the mirror`);
    parts.mirror = await timed("mirror", startMirror({ dir: join(dir, "mirror"), hostsDir, progress: say }));
    say("starting the node: containerd, kubelet, kube-proxy");
    const node = await timed("node", startNode(cp, { dir: join(dir, "node"), hostsDir }));
    parts.node = node;
    say(`node ${node.name} Ready; starting CoreDNS`);
    await cp.apply(coreDnsObjects());
    await timed(
      "dns",
      waitFor(
        "CoreDNS ready",
        async () => rolledOut(await cp.kubectlJson(["get", "deployment", "coredns", "-n", "kube-system"])),
        { timeoutMs: 120_000, intervalMs: 1000 },
      ).catch(async (e: unknown) => {
        throw new Error(`${(e as Error).message}\n${await diagnostics()}`);
      }),
    );

    if (opts.objects) await cp.apply(opts.objects(dir));
    await createRootCaSecrets(cp);
    let installation: Installation | undefined;
    if (opts.install ?? true) {
      say("installing kuik: kubectl apply --server-side of deploy/ under the user's kustomization");
      installation = await timed(
        "install",
        installKuik(cp, {
          dir: join(dir, "install"),
          // The origin listens on the node's address, private: the watcher copies from it only when allow-listed.
          moduleSettings: { KUIK_ALLOWED_ORIGINS: NODE_IP, ...(opts.env ?? {}) },
          patches: [...rootCaPatches(), ...(opts.patches ?? [])],
          components: opts.components ?? [],
        }),
      );
      say(`installed ${installation.objects.length} objects; waiting for kuik's Pods`);
      await timed("kuikReady", waitForKuik(cp, diagnostics, 300_000, opts.waitForProxy ?? true));
    }
    timings.total = Date.now() - t0;
    const proxyPort = DEFAULT_PROXY_PORT;
    return {
      dir,
      cp,
      node,
      mirror: parts.mirror,
      origin,
      installation,
      proxyPort,
      timings,
      kubectl: cp.kubectl,
      kubectlJson: cp.kubectlJson,
      pushToOrigin: async (spec, repo, tag) =>
        pushImage(
          await buildImage({
            addFiles: [{ src: join(kuikCacheDir(), "bin", "pause"), dst: "/pause" }],
            cmd: "/pause",
            ...spec,
          }),
          origin,
          { repo, tag, format: "oci" },
        ),
      proxyImage: image => {
        const slash = image.indexOf("/");
        return `localhost:${proxyPort}/${image.slice(0, slash).replace(":", "-")}${image.slice(slash)}`;
      },
      cacheDigest: async (repo, ref) => {
        const svc = await cp.kubectlJson([
          "get",
          "service",
          "kube-image-keeper-registry",
          "-n",
          KUIK_NAMESPACE,
        ]);
        const ip = String(svc.spec?.clusterIP ?? "");
        const r = await simpleRequest(
          `http://${ip}:5000/v2/${cacheRepositoryOf(origin.host, repo)}/manifests/${ref}`,
          {
            headers: {
              accept: "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json",
            },
          },
        );
        if (r.status !== 200) return undefined;
        return `sha256:${createHash("sha256").update(r.body).digest("hex")}`;
      },
      cachedImageName: image => cachedImageName(image),
      getCachedImage: name => getCachedImage(cp, name),
      namespaceWithPullSecret: ns => createNamespaceWithPullSecret(cp, ns, origin),
      runningPods: (ns, app, count, timeoutMs = 180_000) =>
        waitFor(
          `${count} Running Pods of ${ns}/${app}`,
          async () => {
            const pods = (await listPods(cp, ns, `app=${app}`)).filter(p => !p.metadata?.deletionTimestamp);
            return pods.length === count && pods.every(podRunning) ? pods : undefined;
          },
          { timeoutMs, intervalMs: 1000 },
        ).catch(async (e: unknown) => {
          throw new Error(`${(e as Error).message}\n${await diagnostics()}`);
        }),
      cachedImageReady: image =>
        waitFor(
          `CachedImage of ${image} Ready`,
          async () => {
            const c = await getCachedImage(cp, cachedImageName(image));
            return c && isCachedAndReady(c) ? c : undefined;
          },
          { timeoutMs: 120_000 },
        ),
      forgetOnNode: async (...repos) => {
        const names = (await nodeImages(node)).filter(n => repos.some(r => n.includes(r)));
        await ctrRemoveImages(node.containerd.socket, names);
      },
      nodeImages: () => nodeImages(node),
      diagnostics,
      rewriting: async (ns, timeoutMs = 60_000) => {
        const pod = {
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name: "kuik-gate-probe", namespace: ns },
          spec: {
            containers: [
              { name: "probe", image: `${origin.host}/probe:v1`, imagePullPolicy: "IfNotPresent" },
            ],
          },
        };
        let streak = 0;
        await waitFor(
          "the webhook rewriting again",
          async () => {
            const r = await cp.kubectl(["create", "--dry-run=server", "-o", "json", "-f", "-"], {
              input: JSON.stringify(pod),
            });
            const [image = ""] = podImages(JSON.parse(r.stdout) as KubeObject);
            streak = image.startsWith(`localhost:${proxyPort}/`) ? streak + 1 : 0;
            return streak >= 3;
          },
          { timeoutMs, intervalMs: 500 },
        );
      },
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
