/**
 * The Helm chart (deploy/chart + the Pepr module's generated chart, assembled by scripts/build-chart.sh), with the
 * real helm binary (scripts/build-components.sh) and a real local API server (no kubelet: objects are stored and
 * validated, pods never run).
 *
 * 1. Table: every value combination is linted, rendered, checked object by object (kube-image-keeper v1's chart
 *    test checklist too) and validated by the API server (`--dry-run=server
 *    --validate=strict`); one must fail with its message.
 * 2. The default and a rich rendering are applied for real, server-side; the default is compared with deploy/base
 *    and deploy/generated/proxy-bundle (the chart's registry/proxy templates duplicate them: this is the guard,
 *    docs/install.md), down to the proxy bundle's ConfigMap name and sha256.
 * 3. `helm install` after the bundle's ConfigMap (dist/chart/kube-image-keeper-proxy-bundle.yaml), `helm upgrade`
 *    with other values, `helm uninstall` against the API server; the release Secret stays under Helm's 1 MiB.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PROXY_COMMAND } from "../../capabilities/bootstrap/proxy-bundle";
import { loadKuikConfig } from "../../capabilities/shared/watcher-config";
import { generatedBundle } from "../../scripts/generate-proxy-bundle";
import { makeTempDir, removeTempDir } from "../harness/cleanup";
import {
  controlPlaneAvailable,
  startControlPlane,
  type ControlPlane,
  type KubeObject,
} from "../harness/control-plane";
import type { Container } from "../harness/kuik-install";
import { buildModule, readManifest } from "../harness/kuik-module";
import { REPO_ROOT, run, runOk, tryFindTool } from "../harness/tools";
import { monitoringCrd } from "../harness/monitoring-crds";

const NS = "kuik-system";
const RELEASE = "kube-image-keeper";
const CHART = join(REPO_ROOT, "dist", "chart", "kube-image-keeper");
/** The bundle's ConfigMap, applied before `helm install` (scripts/build-chart.sh writes it). */
const BUNDLE_YAML = join(REPO_ROOT, "dist", "chart", "kube-image-keeper-proxy-bundle.yaml");
const HELM = tryFindTool("helm");

interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes?: Array<{
    name: string;
    emptyDir?: unknown;
    persistentVolumeClaim?: { claimName: string };
    secret?: { secretName: string; optional?: boolean };
    configMap?: { name: string };
  }>;
  serviceAccountName?: string;
  hostNetwork?: boolean;
  dnsPolicy?: string;
  priorityClassName?: string;
  tolerations?: unknown[];
  [k: string]: unknown;
}
type Obj = KubeObject & {
  spec?: Record<string, unknown> & {
    replicas?: number;
    template?: { spec: PodSpec };
    strategy?: { type: string };
    volumeClaimTemplates?: Array<{ metadata: { name: string }; spec: Record<string, unknown> }>;
  };
  data?: Record<string, string>;
  webhooks?: Array<
    Record<string, unknown> & { clientConfig: { caBundle: string; service: { path: string } } }
  >;
  rules?: Array<{ resources: string[]; resourceNames?: string[]; verbs: string[] }>;
};

let cp: ControlPlane;
let work: string;

const helm = (args: readonly string[]) =>
  run(HELM as string, [...args, `--kubeconfig=${cp.kubeconfig}`], { timeoutMs: 180_000 });

/** Values written as JSON (valid YAML) for `-f`. */
function valuesFile(name: string, values: object): string {
  const file = join(work, `${name}.values.json`);
  writeFileSync(file, JSON.stringify(values));
  return file;
}

/** `helm lint` + `helm template` with these values; returns the rendering's file and objects. */
async function render(
  name: string,
  values: object,
  release = RELEASE,
): Promise<{ file: string; objects: Obj[]; lint: string }> {
  const vf = valuesFile(name, values);
  const lint = await helm(["lint", CHART, "-f", vf, "--namespace", NS]);
  expect(lint.code, lint.stdout + lint.stderr).toBe(0);
  const t = await helm(["template", release, CHART, "-f", vf, "--namespace", NS]);
  expect(t.code, t.stderr).toBe(0);
  const file = join(work, `${name}.rendered.yaml`);
  writeFileSync(file, t.stdout);
  return { file, objects: (await readManifest(cp, file)) as Obj[], lint: lint.stdout };
}

async function dryRun(file: string): Promise<void> {
  const r = await cp.kubectl(
    [
      "apply",
      "--server-side",
      "--dry-run=server",
      "--validate=strict",
      "--field-manager=kuik-chart",
      "-f",
      file,
    ],
    { allowFailure: true },
  );
  expect(r.code, r.stderr).toBe(0);
}

function find(objects: Obj[], kind: string, name: string): Obj {
  const o = objects.find(x => x.kind === kind && x.metadata?.name === name);
  if (!o) throw new Error(`${kind}/${name} not rendered; got ${names(objects).join(", ")}`);
  return o;
}
const names = (objects: Obj[]): string[] => objects.map(o => `${o.kind}/${o.metadata?.name}`).sort();
const has = (objects: Obj[], kind: string, name?: string): boolean =>
  objects.some(o => o.kind === kind && (name === undefined || o.metadata?.name === name));
const pod = (o: Obj): PodSpec => {
  const p = o.spec?.template?.spec;
  if (!p) throw new Error(`${o.kind}/${o.metadata?.name} has no pod template`);
  return p;
};
const container = (o: Obj, name?: string): Container => {
  const c = name ? pod(o).containers.find(x => x.name === name) : pod(o).containers[0];
  if (!c) throw new Error(`no container ${name ?? "0"} in ${o.metadata?.name}`);
  return c;
};
const envOf = (c: Container): Record<string, string | undefined> =>
  Object.fromEntries((c.env ?? []).map(e => [e.name, e.value]));
const registry = (objects: Obj[]): Obj =>
  objects.find(
    o => /^(StatefulSet|Deployment)$/.test(o.kind ?? "") && o.metadata?.name === `${RELEASE}-registry`,
  ) ??
  (() => {
    throw new Error("no registry workload");
  })();
const proxy = (objects: Obj[]): Obj => find(objects, "DaemonSet", `${RELEASE}-proxy`);
const operatorEnv = (objects: Obj[], deployment: string): Record<string, string | undefined> =>
  envOf(container(find(objects, "Deployment", deployment)));

/** The api path the webhook must call (Secret pepr-kuik-api-path). */
function apiPath(objects: Obj[]): string {
  const s = find(objects, "Secret", "pepr-kuik-api-path");
  return Buffer.from(s.data?.value ?? "", "base64").toString("utf8");
}

interface Case {
  name: string;
  values: object;
  release?: string;
  check: (objects: Obj[], lint: string) => void;
}

const GC_JOB = `${RELEASE}-registry-garbage-collection`;
const S3 = { region: "eu-west-3", bucket: "kuik-cache", regionendpoint: "http://minio.storage:9000" };
const S3_KEYS = { accessKey: "AKIAKUIKTEST", secretKey: "kuik-very-secret-key" };

let defaultWebhook: NonNullable<Obj["webhooks"]>[number] | undefined;

const CASES: Case[] = [
  {
    name: "defaults",
    values: {},
    check: objects => {
      const sts = registry(objects);
      expect(sts.kind).toBe("StatefulSet");
      expect(sts.spec?.volumeClaimTemplates).toBeUndefined();
      expect(pod(sts).volumes?.find(v => v.name === "data")?.emptyDir).toEqual({});
      expect(pod(sts).initContainers).toBeUndefined();
      expect(has(objects, "PersistentVolumeClaim")).toBe(false);
      expect(has(objects, "CronJob")).toBe(false); // no GC without persistence (as v1)
      expect(objects.filter(o => o.kind === "Deployment" && o.metadata?.namespace === NS)).toEqual([]);
      const ds = proxy(objects);
      expect(pod(ds).priorityClassName).toBe("system-node-critical");
      expect(pod(ds).tolerations).toEqual([{ operator: "Exists" }]);
      // the node's network, on its loopback only; ops on the node's address, 7440
      expect(pod(ds)).toMatchObject({ hostNetwork: true, dnsPolicy: "ClusterFirstWithHostNet" });
      expect(container(ds).ports).toEqual([
        { name: "registry", containerPort: 7439, hostPort: 7439, hostIP: "127.0.0.1" },
        { name: "ops", containerPort: 7440, hostPort: 7440 },
      ]);
      expect(envOf(container(ds))).toMatchObject({
        KUIK_PROXY_LISTEN: "127.0.0.1:7439,[::1]:7439",
        KUIK_PROXY_OPS_LISTEN: "$(POD_IP):7440",
      });
      const envNames = (container(ds).env ?? []).map(e => e.name);
      expect(envNames.indexOf("POD_IP")).toBeLessThan(envNames.indexOf("KUIK_PROXY_OPS_LISTEN"));
      // no image of its own: the module's Pepr image runs the bundle of the content-named ConfigMap, which the
      // chart names (the name and hash every install path gives it) but does not carry
      expect(container(ds).image).toBe(container(find(objects, "Deployment", "pepr-kuik-watcher")).image);
      expect(container(ds).command).toEqual(PROXY_COMMAND);
      const bundle = generatedBundle();
      expect(pod(ds).volumes?.find(v => v.name === "bundle")?.configMap).toEqual({ name: bundle?.name });
      expect(envOf(container(ds)).KUIK_PROXY_BUNDLE_SHA256).toBe(bundle?.sha256);
      expect(objects.filter(o => o.kind === "ConfigMap").map(o => o.metadata?.name)).not.toContain(
        bundle?.name,
      );
      const { watcher } = loadKuikConfig({});
      expect(pod(ds).volumes?.find(v => v.name === "credentials")?.secret).toMatchObject({
        secretName: watcher.credentialsSecret,
        optional: true,
      });
      // webhook: Pepr's + build-module.sh's post-processing
      const wh = find(objects, "MutatingWebhookConfiguration", "pepr-kuik").webhooks?.[0];
      defaultWebhook = wh;
      expect(wh).toMatchObject({
        reinvocationPolicy: "IfNeeded",
        failurePolicy: "Ignore",
        timeoutSeconds: 10,
      });
      expect(wh?.objectSelector).toEqual({
        matchExpressions: [
          { key: "kube-image-keeper.enix.io/image-caching-policy", operator: "NotIn", values: ["ignore"] },
        ],
      });
      expect(JSON.stringify(wh?.namespaceSelector)).toContain(NS);
      expect(wh?.clientConfig.service.path).toBe(`/mutate/${apiPath(objects)}`);
      // kuik's settings on both Pepr Deployments, accepted by the operator's own parser
      for (const d of ["pepr-kuik", "pepr-kuik-watcher"]) {
        const env = operatorEnv(objects, d);
        const { config } = loadKuikConfig(env);
        expect(config).toMatchObject({
          namespace: NS,
          proxyPort: 7439,
          expiryDelayDays: 30,
          architectures: [],
          ignorePullPolicyAlways: true,
          registryUrl: `http://${RELEASE}-registry.${NS}.svc:5000`,
        });
      }
      expect(find(objects, "Deployment", "pepr-kuik").spec?.replicas).toBe(2);
      expect(has(objects, "ClusterRole", "pepr-kuik")).toBe(true);
      expect(has(objects, "ServiceMonitor") || has(objects, "PodMonitor")).toBe(false);
      expect(has(objects, "Deployment", `${RELEASE}-registry-ui`)).toBe(false);
    },
  },
  {
    name: "persistence RWO (GC on by default)",
    values: { registry: { persistence: { enabled: true, storageClass: "fast", size: "50Gi" } } },
    check: objects => {
      const sts = registry(objects);
      expect(sts.kind).toBe("StatefulSet");
      expect(sts.spec?.volumeClaimTemplates?.[0]).toMatchObject({
        metadata: { name: "data" },
        spec: {
          accessModes: ["ReadWriteOnce"],
          storageClassName: "fast",
          resources: { requests: { storage: "50Gi" } },
        },
      });
      expect(has(objects, "PersistentVolumeClaim")).toBe(false);
      expect(pod(sts).volumes?.map(v => v.name)).not.toContain("data");
      // GC: an init container with the registry container's image, env and resources, that always lets the
      // registry start (deploy/components/garbage-collection's script; compared with the component below)
      const init = pod(sts).initContainers?.[0];
      expect(init?.name).toBe("garbage-collect");
      expect(init?.image).toBe(container(sts).image);
      expect(init?.env).toEqual(container(sts).env);
      expect(init?.command).toEqual(["sh", "/etc/kuik/gc/garbage-collect.sh"]);
      expect(init?.args).toEqual(["3600", "/etc/distribution/config.yml", "--delete-untagged=false"]);
      const script = find(objects, "ConfigMap", `${RELEASE}-registry-gc`).data?.["garbage-collect.sh"];
      expect(script).toBe(
        readFileSync(
          join(REPO_ROOT, "deploy", "components", "garbage-collection", "garbage-collect.sh"),
          "utf8",
        ),
      );
      const job = find(objects, "CronJob", GC_JOB);
      expect(job.spec).toMatchObject({
        schedule: "0 0 * * 0",
        concurrencyPolicy: "Forbid",
        jobTemplate: { spec: { activeDeadlineSeconds: 4200, backoffLimit: 3 } },
      });
      const jobPod = (job.spec as unknown as { jobTemplate: { spec: { template: { spec: PodSpec } } } })
        .jobTemplate.spec.template.spec;
      expect(jobPod.initContainers?.[0]?.args).toEqual([
        "rollout",
        "restart",
        `StatefulSet/${RELEASE}-registry`,
      ]);
      expect(jobPod.containers[0]?.args).toEqual([
        "rollout",
        "status",
        `StatefulSet/${RELEASE}-registry`,
        "--timeout=4000s",
      ]);
      const role = find(objects, "Role", `${RELEASE}-registry-restart`);
      expect(role.rules).toEqual([
        {
          apiGroups: ["apps"],
          resources: ["statefulsets", "deployments"],
          resourceNames: [`${RELEASE}-registry`],
          verbs: ["get", "list", "watch", "patch"],
        },
      ]);
      expect(jobPod.serviceAccountName).toBe(`${RELEASE}-registry-restart`);
    },
  },
  {
    name: "persistence RWX, replicas 2",
    values: { registry: { replicas: 2, persistence: { enabled: true, accessModes: "ReadWriteMany" } } },
    check: objects => {
      const d = registry(objects);
      expect(d.kind).toBe("Deployment");
      expect(d.spec?.replicas).toBe(2);
      expect(d.spec?.strategy).toEqual({ type: "Recreate" }); // no writes during GC
      expect(has(objects, "StatefulSet")).toBe(false);
      const pvc = find(objects, "PersistentVolumeClaim", `${RELEASE}-registry-pvc`);
      expect(pvc.spec).toMatchObject({
        accessModes: ["ReadWriteMany"],
        resources: { requests: { storage: "20Gi" } },
      });
      expect(pod(d).volumes?.find(v => v.name === "data")?.persistentVolumeClaim).toEqual({
        claimName: `${RELEASE}-registry-pvc`,
      });
      expect(container(d).env).toContainEqual({
        name: "REGISTRY_HTTP_SECRET",
        valueFrom: { secretKeyRef: { name: `${RELEASE}-registry-http-secret`, key: "secret" } },
      });
      const jobPod = (
        find(objects, "CronJob", GC_JOB).spec as unknown as {
          jobTemplate: { spec: { template: { spec: PodSpec } } };
        }
      ).jobTemplate.spec.template.spec;
      expect(jobPod.initContainers?.[0]?.args?.[2]).toBe(`Deployment/${RELEASE}-registry`);
    },
  },
  {
    name: "S3 with inline keys, GC deleteUntagged",
    values: {
      registry: {
        persistence: { s3: { ...S3, ...S3_KEYS }, disableS3Redirections: true },
        garbageCollection: { deleteUntagged: true },
        httpSecret: "fixed-http-secret",
      },
    },
    check: objects => {
      const d = registry(objects);
      expect(d.kind).toBe("Deployment");
      expect(d.spec?.strategy).toEqual({ type: "Recreate" });
      const env = envOf(container(d));
      expect(env).toMatchObject({
        REGISTRY_STORAGE: "s3",
        REGISTRY_STORAGE_S3_REGION: S3.region,
        REGISTRY_STORAGE_S3_BUCKET: S3.bucket,
        REGISTRY_STORAGE_S3_REGIONENDPOINT: S3.regionendpoint,
        REGISTRY_STORAGE_REDIRECT_DISABLE: "true",
      });
      const keys = `${RELEASE}-s3-registry-keys`;
      expect(container(d).env).toContainEqual({
        name: "REGISTRY_STORAGE_S3_SECRETKEY",
        valueFrom: { secretKeyRef: { name: keys, key: "secretKey" } },
      });
      // the keys are in the Secret, never in a pod spec
      const secret = find(objects, "Secret", keys);
      expect(Buffer.from(secret.data?.secretKey ?? "", "base64").toString()).toBe(S3_KEYS.secretKey);
      expect(JSON.stringify(d)).not.toContain(S3_KEYS.secretKey);
      expect(JSON.stringify(d)).not.toContain(S3_KEYS.accessKey);
      // the init container sees the same storage
      const init = pod(d).initContainers?.[0];
      expect(envOf(init as Container).REGISTRY_STORAGE).toBe("s3");
      expect(init?.args).toContain("--delete-untagged=true");
      const http = find(objects, "Secret", `${RELEASE}-registry-http-secret`);
      expect(Buffer.from(http.data?.secret ?? "", "base64").toString()).toBe("fixed-http-secret");
      expect(has(objects, "CronJob", GC_JOB)).toBe(true);
    },
  },
  {
    name: "S3 with an existing Secret, 3 replicas",
    values: { registry: { replicas: 3, persistence: { s3: S3, s3ExistingSecret: "my-s3" } } },
    check: objects => {
      const d = registry(objects);
      expect(d.spec?.replicas).toBe(3);
      expect(container(d).env).toContainEqual({
        name: "REGISTRY_STORAGE_S3_ACCESSKEY",
        valueFrom: { secretKeyRef: { name: "my-s3", key: "accessKey" } },
      });
      expect(has(objects, "Secret", `${RELEASE}-s3-registry-keys`)).toBe(false);
    },
  },
  {
    name: "GC off (empty schedule) with persistence",
    values: { registry: { persistence: { enabled: true }, garbageCollection: { schedule: "" } } },
    check: objects => {
      expect(has(objects, "CronJob")).toBe(false);
      expect(has(objects, "Role")).toBe(has(objects, "Role", "pepr-kuik-store"));
      expect(pod(registry(objects)).initContainers).toBeUndefined();
    },
  },
  {
    name: "hostNetwork false: a pod-network proxy behind a hostPort, own image",
    values: {
      proxy: { hostNetwork: false, metricsPort: 8080, image: { repository: "corp/kuik-proxy", tag: "1.2" } },
    },
    check: objects => {
      const ds = proxy(objects);
      expect(pod(ds).hostNetwork).toBeUndefined();
      expect(pod(ds).dnsPolicy).toBeUndefined();
      expect(envOf(container(ds))).toMatchObject({
        KUIK_PROXY_LISTEN: ":7439",
        KUIK_PROXY_OPS_LISTEN: "$(POD_IP):8080",
      });
      const names = (container(ds).env ?? []).map(e => e.name);
      expect(names.indexOf("POD_IP")).toBeLessThan(names.indexOf("KUIK_PROXY_OPS_LISTEN"));
      expect(container(ds).ports).toEqual([
        { name: "registry", containerPort: 7439, hostPort: 7439, hostIP: "127.0.0.1" },
        { name: "ops", containerPort: 8080 },
      ]);
      // its own image: the image's entrypoint, no bundle ConfigMap nor hash
      expect(container(ds).image).toBe("corp/kuik-proxy:1.2");
      expect(container(ds).command).toBeUndefined();
      expect(names).not.toContain("KUIK_PROXY_BUNDLE_SHA256");
      expect(pod(ds).volumes?.map(v => v.name)).not.toContain("bundle");
      // pod-network proxies reach the cache registry by label; their egress stays open
      const np = find(objects, "NetworkPolicy", `${RELEASE}-registry`);
      expect(JSON.stringify(np.spec)).not.toContain("ipBlock");
      expect(JSON.stringify(np.spec)).toContain('"app.kubernetes.io/component":"proxy"');
      expect(has(objects, "NetworkPolicy", `${RELEASE}-proxy`)).toBe(true);
    },
  },
  {
    name: "ServiceMonitor and PodMonitors",
    values: {
      registry: { serviceMonitor: { create: true, extraLabels: { release: "prom" } } },
      proxy: { podMonitor: { create: true } },
      controllers: { podMonitor: { create: true, scrapeInterval: "15s" } },
    },
    check: objects => {
      const sm = find(objects, "ServiceMonitor", `${RELEASE}-registry`);
      expect(sm.metadata?.labels).toMatchObject({ release: "prom" });
      expect(sm.spec?.endpoints).toEqual([
        { port: "registry-metrics", path: "/metrics", interval: "60s", scrapeTimeout: "30s" },
      ]);
      expect(find(objects, "PodMonitor", `${RELEASE}-proxy`).spec?.podMetricsEndpoints).toEqual([
        { port: "ops", path: "/metrics", interval: "60s", scrapeTimeout: "30s" },
      ]);
      const ctl = find(objects, "PodMonitor", `${RELEASE}-controllers`);
      expect(ctl.metadata?.namespace).toBe("pepr-system");
      expect(ctl.spec?.podMetricsEndpoints).toEqual([
        { targetPort: 8080, path: "/metrics", interval: "15s", scrapeTimeout: "30s" },
      ]);
      expect(has(objects, "NetworkPolicy", `${RELEASE}-registry-metrics`)).toBe(true);
    },
  },
  {
    name: "registryUI (v1's docker-registry-ui.enabled)",
    values: { "docker-registry-ui": { enabled: true } },
    check: objects => {
      const ui = find(objects, "Deployment", `${RELEASE}-registry-ui`);
      expect(envOf(container(ui)).NGINX_PROXY_PASS_URL).toBe(`http://${RELEASE}-registry:5000`);
      expect(find(objects, "Service", `${RELEASE}-registry-ui`).spec).toMatchObject({ type: "ClusterIP" });
      expect(has(objects, "Ingress")).toBe(false);
      const np = find(objects, "NetworkPolicy", `${RELEASE}-registry`);
      expect(JSON.stringify(np.spec)).toContain("registry-ui");
    },
  },
  {
    name: "rich: hostPort, namespaces, selectors, policy, architectures, insecure registries, CAs, env",
    values: {
      cachedImagesExpiryDelay: 7,
      architectures: ["amd64", "arm64"],
      insecureRegistries: ["registry.corp:5000", "https://other.corp/"],
      rootCertificateAuthorities: { secretName: "corp-cas", keys: ["root.pem", "intermediate.pem"] },
      controllers: {
        replicas: 3,
        env: [{ name: "HTTPS_PROXY", value: "http://proxy.corp:3128" }],
        resources: { requests: { cpu: "100m", memory: "300Mi" } },
        webhook: {
          ignoredNamespaces: ["team-a", "team-b"],
          ignoredImages: ["^docker\\.io/library/busybox"],
          ignorePullPolicyAlways: false,
          objectSelector: { matchExpressions: [{ key: "kuik", operator: "NotIn", values: ["off"] }] },
        },
      },
      proxy: { hostPort: 7500, env: [{ name: "NO_PROXY", value: ".svc,.cluster.local" }] },
    },
    check: objects => {
      for (const d of ["pepr-kuik", "pepr-kuik-watcher"]) {
        const env = operatorEnv(objects, d);
        expect(env.HTTPS_PROXY).toBe("http://proxy.corp:3128");
        const { config } = loadKuikConfig(env);
        expect(config).toMatchObject({
          proxyPort: 7500,
          expiryDelayDays: 7,
          architectures: ["amd64", "arm64"],
          insecureRegistries: ["registry.corp:5000", "other.corp"],
          rootCertificateAuthorities: ["/etc/kuik/ca/root.pem", "/etc/kuik/ca/intermediate.pem"],
          ignoredNamespaces: ["team-a", "team-b"],
          ignoredImages: ["^docker\\.io/library/busybox"],
          ignorePullPolicyAlways: false,
        });
        const dep = find(objects, "Deployment", d);
        expect(container(dep).volumeMounts).toContainEqual(
          expect.objectContaining({ name: "kuik-root-cas", mountPath: "/etc/kuik/ca" }),
        );
        expect(container(dep).resources).toEqual({ requests: { cpu: "100m", memory: "300Mi" } });
      }
      expect(find(objects, "Deployment", "pepr-kuik").spec?.replicas).toBe(3);
      const wh = find(objects, "MutatingWebhookConfiguration", "pepr-kuik").webhooks?.[0];
      const nsValues = (wh?.namespaceSelector as { matchExpressions: Array<{ values: string[] }> })
        .matchExpressions[0]?.values;
      expect(nsValues).toEqual(
        expect.arrayContaining(["kube-system", "pepr-system", NS, "team-a", "team-b"]),
      );
      expect((wh?.objectSelector as { matchExpressions: unknown[] }).matchExpressions).toEqual([
        { key: "kuik", operator: "NotIn", values: ["off"] },
        { key: "kube-image-keeper.enix.io/image-caching-policy", operator: "NotIn", values: ["ignore"] },
      ]);
      const ds = proxy(objects);
      expect(container(ds).ports).toContainEqual(
        expect.objectContaining({ name: "registry", containerPort: 7500, hostPort: 7500 }),
      );
      expect(envOf(container(ds))).toMatchObject({
        KUIK_PROXY_LISTEN: "127.0.0.1:7500,[::1]:7500",
        KUIK_PROXY_INSECURE_REGISTRY: "registry.corp:5000,https://other.corp/",
        KUIK_PROXY_ROOT_CA: "/etc/kuik/ca/root.pem,/etc/kuik/ca/intermediate.pem",
        NO_PROXY: ".svc,.cluster.local",
      });
      expect(pod(ds).volumes).toContainEqual(expect.objectContaining({ name: "kuik-root-cas" }));
    },
  },
  {
    name: "B1: admission.webhookTimeout changes the timeout only",
    values: { admission: { webhookTimeout: 7 } },
    check: objects => {
      const wh = find(objects, "MutatingWebhookConfiguration", "pepr-kuik").webhooks?.[0];
      expect(wh?.timeoutSeconds).toBe(7);
      expect(wh?.clientConfig.service.path).toBe(`/mutate/${apiPath(objects)}`);
      expect(defaultWebhook).toBeDefined();
      expect(wh?.clientConfig).toEqual(defaultWebhook?.clientConfig);
      expect({ ...wh, timeoutSeconds: 10 }).toEqual(defaultWebhook);
    },
  },
  {
    name: "rbac.create=false, serviceAccount.create=false with a name",
    values: { rbac: { create: false }, serviceAccount: { create: false, name: "my-sa" } },
    check: objects => {
      expect(has(objects, "ClusterRole")).toBe(false);
      expect(has(objects, "ClusterRoleBinding")).toBe(false);
      expect(has(objects, "ServiceAccount", "pepr-kuik")).toBe(false);
      expect(pod(find(objects, "Deployment", "pepr-kuik")).serviceAccountName).toBe("my-sa");
      expect(pod(find(objects, "Deployment", "pepr-kuik-watcher")).serviceAccountName).toBe("my-sa");
    },
  },
  {
    name: "a 53-character release name keeps the CronJob name within 52",
    release: "kuik-with-a-release-name-long-enough-to-break-cronjob", // 53, Helm's maximum
    values: { registry: { persistence: { enabled: true } } },
    check: objects => {
      const job = objects.find(o => o.kind === "CronJob");
      expect(job?.metadata?.name?.length).toBeLessThanOrEqual(52);
      expect(job?.metadata?.name).toMatch(/-registry-garbage-collection$/);
      for (const o of objects) expect(o.metadata?.name?.length ?? 0).toBeLessThanOrEqual(63);
    },
  },
];

describe.skipIf(!controlPlaneAvailable(false) || !HELM)("Helm chart on a real API server", () => {
  beforeAll(async () => {
    const [plane] = await Promise.all([startControlPlane({ controllerManager: false }), buildModule()]);
    cp = plane;
    work = makeTempDir("chart");
    await runOk("bash", [join(REPO_ROOT, "scripts", "build-chart.sh")], {
      cwd: REPO_ROOT,
      timeoutMs: 300_000,
      env: {
        KUIK_HELM_BIN: HELM,
        PATH: `${join(REPO_ROOT, "node_modules", ".bin")}:${process.env.PATH ?? ""}`,
      },
    });
    await cp.kubectl(["apply", "--server-side", "-f", join(CHART, "crds")]);
    await cp.apply([monitoringCrd("ServiceMonitor"), monitoringCrd("PodMonitor")]);
    await cp.kubectl(["wait", "--for=condition=Established", "--timeout=30s", "crd", "--all"]);
    // A server dry run cannot create the namespaces the objects are in.
    await cp.kubectl(["create", "namespace", NS]);
    await cp.kubectl(["create", "namespace", "pepr-system"]);
  });

  afterAll(async () => {
    await cp?.stop();
    if (work) removeTempDir(work);
  });

  it.each(CASES.map(c => [c.name, c] as const))(
    "%s: lint, template, objects, server dry run",
    async (_, c) => {
      const { file, objects, lint } = await render(c.name.replace(/\W+/g, "-"), c.values, c.release);
      c.check(objects, lint);
      await dryRun(file);
    },
  );

  it("registry.replicas 2 without a shared storage fails with v1's guard", async () => {
    const vf = valuesFile("replicas-2", { registry: { replicas: 2, persistence: { enabled: true } } });
    const message =
      "registry.replicas=2 needs a storage shared by every replica: set registry.persistence.s3";
    const template = await helm(["template", RELEASE, CHART, "-f", vf]);
    expect(template.code).not.toBe(0);
    expect(template.stderr).toContain(message);
    // `helm lint` reports a template's `fail` but does not count it as an error
    const lint = await helm(["lint", CHART, "-f", vf]);
    expect(lint.stdout + lint.stderr).toContain(message);
  });

  it("v1 values without an equivalent: refused when they ask for something, accepted when inert", async () => {
    for (const [values, message] of [
      [{ minio: { enabled: true } }, "minio.enabled (v1's bundled MinIO) is not supported by kuik"],
      [
        { registry: { persistence: { gcs: { bucket: "b" } } } },
        "registry.persistence.gcs/azure are not supported",
      ],
    ] as const) {
      const r = await helm(["template", RELEASE, CHART, "-f", valuesFile("v1-refused", values)]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(message);
    }
    const inert = await helm([
      "template",
      RELEASE,
      CHART,
      "-f",
      valuesFile("v1-inert", { psp: { create: true } }),
    ]);
    expect(inert.code, inert.stderr).toBe(0);
  });

  it("the values schema refuses a misspelt value", async () => {
    const vf = valuesFile("typo", {
      registry: { persistence: { enabled: "yes" } },
      cachedImagesExpiryDelai: 3,
    });
    const r = await helm(["template", RELEASE, CHART, "-f", vf]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/cachedImagesExpiryDelai|additional propert/i);
    expect(r.stderr).toMatch(/enabled/);
  });

  it("the default rendering duplicates deploy/base and the proxy bundle exactly where it must (registry, proxy, config)", async () => {
    const { objects } = await render("sync", {});
    // deploy/base with the proxy bundle's Component, as every kustomize install has it (deploy/kustomization.yaml)
    const kdir = join(work, "kustomize-base");
    mkdirSync(kdir);
    writeFileSync(
      join(kdir, "kustomization.yaml"),
      [
        "apiVersion: kustomize.config.k8s.io/v1beta1",
        "kind: Kustomization",
        `resources: [${relative(kdir, join(REPO_ROOT, "deploy", "base"))}]`,
        `components: [${relative(kdir, join(REPO_ROOT, "deploy", "generated", "proxy-bundle"))}]`,
        "",
      ].join("\n"),
    );
    const base = (await cp.kubectl(["kustomize", "--load-restrictor=LoadRestrictionsNone", kdir])).stdout;
    const baseFile = join(work, "base.yaml");
    writeFileSync(baseFile, base);
    const kustomized = (await readManifest(cp, baseFile)) as Obj[];
    // env by name: the generated Component's strategic-merge patch moves the variable it sets
    // (KUIK_PROXY_BUNDLE_SHA256) to the front, which changes nothing (no $(…) refers to it; the order that
    // matters, POD_IP before KUIK_PROXY_OPS_LISTEN, is checked in the defaults case and in deploy.e2e.test.ts)
    const pick = (c: Container) => {
      const { image: _image, env, ...rest } = c;
      return { ...rest, env: [...(env ?? [])].sort((a, b) => a.name.localeCompare(b.name)) };
    };
    const chartRegistry = registry(objects);
    const baseRegistry = find(kustomized, "StatefulSet", "kube-image-keeper-registry");
    expect(pick(container(chartRegistry))).toEqual(pick(container(baseRegistry)));
    expect(container(chartRegistry).image).toBe(container(baseRegistry).image);
    const { securityContext: podSc, volumes } = pod(chartRegistry);
    expect(podSc).toEqual(pod(baseRegistry).securityContext);
    expect(volumes).toEqual(pod(baseRegistry).volumes);
    expect(pick(container(proxy(objects)))).toEqual(
      pick(container(find(kustomized, "DaemonSet", "kube-image-keeper-proxy"))),
    );
    expect(container(proxy(objects)).image).toBe(
      container(find(kustomized, "DaemonSet", "kube-image-keeper-proxy")).image,
    );
    expect(pod(proxy(objects)).volumes).toEqual(
      pod(find(kustomized, "DaemonSet", "kube-image-keeper-proxy")).volumes,
    );
    // the ConfigMap written beside the chart is the kustomize Component's (same name, same bytes), without a
    // namespace: it goes in the release's (`kubectl apply -n`)
    const bundleName = generatedBundle()?.name ?? "";
    // (JSON: read as written, since kubectl's client-side parse would fill in the namespace)
    const beside = JSON.parse(readFileSync(BUNDLE_YAML, "utf8")) as Obj;
    expect(beside.metadata?.namespace).toBeUndefined();
    expect({ ...beside, metadata: { ...beside.metadata, namespace: NS } }).toEqual(
      find(kustomized, "ConfigMap", bundleName),
    );
    const withoutComments = (t: string) =>
      t
        .split("\n")
        .map(l => l.replace(/\s*#.*$/, ""))
        .filter(l => l.trim() !== "")
        .join("\n");
    expect(
      withoutComments(find(objects, "ConfigMap", `${RELEASE}-registry-config`).data?.["config.yml"] ?? ""),
    ).toBe(
      withoutComments(
        find(kustomized, "ConfigMap", "kube-image-keeper-registry-config").data?.["config.yml"] ?? "",
      ),
    );
    // the same selectors: a kustomize install can be taken over by `helm install --take-ownership`
    expect(chartRegistry.spec?.selector).toEqual(baseRegistry.spec?.selector);
    expect(proxy(objects).spec?.selector).toEqual(
      find(kustomized, "DaemonSet", "kube-image-keeper-proxy").spec?.selector,
    );
    expect(find(objects, "Service", `${RELEASE}-registry`).spec?.ports).toEqual(
      find(kustomized, "Service", "kube-image-keeper-registry").spec?.ports,
    );

    // garbage collection: the chart's (persistence RWO) and deploy/components/garbage-collection's are the same
    const dir = join(work, "kustomize-gc");
    mkdirSync(dir);
    writeFileSync(
      join(dir, "kustomization.yaml"),
      [
        "apiVersion: kustomize.config.k8s.io/v1beta1",
        "kind: Kustomization",
        `resources: [${relative(dir, join(REPO_ROOT, "deploy", "base"))}]`,
        `components: [${["persistence", "garbage-collection"].map(c => relative(dir, join(REPO_ROOT, "deploy", "components", c))).join(", ")}]`,
        "",
      ].join("\n"),
    );
    const gcFile = join(work, "kustomize-gc.yaml");
    writeFileSync(
      gcFile,
      (await cp.kubectl(["kustomize", "--load-restrictor=LoadRestrictionsNone", dir])).stdout,
    );
    const kgc = (await readManifest(cp, gcFile)) as Obj[];
    const withGc = (await render("sync-gc", { registry: { persistence: { enabled: true } } })).objects;
    const initOf = (o: Obj) => pod(o).initContainers?.find(c => c.name === "garbage-collect");
    const kInit = initOf(find(kgc, "StatefulSet", "kube-image-keeper-registry"));
    const cInit = initOf(registry(withGc));
    expect(kInit).toBeDefined();
    // the image comes from the registry container in both (checked above); the component leaves pullPolicy to the
    // API server's default, IfNotPresent for a tagged image
    expect({ ...cInit, image: undefined, imagePullPolicy: undefined }).toEqual({
      ...kInit,
      image: undefined,
    });
    const jobSpec = (o: Obj) => {
      const spec = structuredClone(o.spec) as {
        jobTemplate: { metadata?: unknown; spec: { template: { metadata?: unknown } } };
      };
      delete spec.jobTemplate.metadata;
      delete spec.jobTemplate.spec.template.metadata;
      // the chart spells out imagePullPolicy (a value); the component leaves it to the API server's default
      const tpl = spec.jobTemplate.spec.template as unknown as { spec: PodSpec };
      for (const c of [...(tpl.spec.initContainers ?? []), ...tpl.spec.containers]) delete c.imagePullPolicy;
      return spec;
    };
    expect(jobSpec(find(withGc, "CronJob", GC_JOB))).toEqual(
      jobSpec(find(kgc, "CronJob", "kube-image-keeper-registry-garbage-collection")),
    );
    expect(find(withGc, "Role", `${RELEASE}-registry-restart`).rules).toEqual(
      find(kgc, "Role", "kube-image-keeper-registry-restart").rules,
    );
  });

  it("a rich rendering, then the default, apply for real, server-side", async () => {
    const applyFor = async (name: string, values: object): Promise<Obj> => {
      const { file } = await render(name, values);
      const r = await cp.kubectl(["apply", "--server-side", "--field-manager=kuik-chart", "-f", file], {
        allowFailure: true,
      });
      expect(r.code, r.stderr).toBe(0);
      return cp.kubectlJson<Obj>(["get", "daemonset", `${RELEASE}-proxy`, "-n", NS]);
    };
    const rich = await applyFor("apply-rich", CASES.find(c => c.name.startsWith("rich"))?.values ?? {});
    expect(container(rich).ports?.[0]).toMatchObject({ containerPort: 7500, hostPort: 7500 });
    expect(pod(rich).volumes?.map(v => v.name)).toContain("kuik-root-cas");
    // Same field manager: server-side apply takes back what the default no longer sets.
    const def = await applyFor("apply-default", {});
    expect(container(def).ports?.map(p => [p.name, p.containerPort, p.hostPort])).toEqual([
      ["registry", 7439, 7439],
      ["ops", 7440, 7440],
    ]);
    expect(pod(def).volumes?.map(v => v.name)).not.toContain("kuik-root-cas");
    const wh = await cp.kubectlJson<Obj>(["get", "mutatingwebhookconfiguration", "pepr-kuik"]);
    expect(wh.webhooks?.[0]).toMatchObject({ reinvocationPolicy: "IfNeeded" });
  });

  it("helm install, upgrade with other values, uninstall", async () => {
    // A kustomize install of deploy/base (docs/install.md) on top of the chart's objects applied above: Helm takes
    // both over (same names and selectors), as a user moving from kustomize to the chart does.
    const base = join(work, "base-takeover.yaml");
    writeFileSync(base, (await cp.kubectl(["kustomize", join(REPO_ROOT, "deploy", "base")])).stdout);
    await cp.kubectl([
      "apply",
      "--server-side",
      "--force-conflicts",
      "--field-manager=kuik-install",
      "-f",
      base,
    ]);
    // The proxy bundle's ConfigMap first (docs/install.md §8): the chart names it but cannot carry it.
    await cp.kubectl(["apply", "--server-side", "--field-manager=kuik-install", "-n", NS, "-f", BUNDLE_YAML]);
    const install = await helm(["install", RELEASE, CHART, "-n", NS, "--take-ownership"]);
    expect(install.code, install.stderr).toBe(0);
    expect(install.stdout).toContain("STATUS: deployed");
    const bundleVolume = pod(
      await cp.kubectlJson<Obj>(["get", "daemonset", `${RELEASE}-proxy`, "-n", NS]),
    ).volumes?.find(v => v.name === "bundle");
    const bundleCm = await cp.kubectlJson<Obj & { immutable?: boolean }>([
      "get",
      "configmap",
      String(bundleVolume?.configMap?.name),
      "-n",
      NS,
    ]);
    expect(bundleCm.immutable).toBe(true);
    // Helm's release Secret (1 MiB at most): why the bundle is not in the chart
    const release = await cp.kubectlJson<Obj>([
      "get",
      "secret",
      "-n",
      NS,
      "-l",
      `owner=helm,name=${RELEASE},version=1`,
    ]);
    const releaseItems = (release as unknown as { items: Obj[] }).items;
    expect(releaseItems).toHaveLength(1);
    const releaseBytes = Buffer.from(releaseItems[0]?.data?.release ?? "", "base64").length;
    console.info(`chart.e2e: helm release Secret ${releaseBytes} bytes`);
    expect(releaseBytes).toBeLessThan(1024 * 1024);
    const status = await helm(["status", RELEASE, "-n", NS, "-o", "json"]);
    expect(JSON.parse(status.stdout)).toMatchObject({ info: { status: "deployed" }, version: 1 });
    let ds = await cp.kubectlJson<Obj>(["get", "daemonset", `${RELEASE}-proxy`, "-n", NS]);
    expect(container(ds).ports?.[0]).toMatchObject({ containerPort: 7439, hostPort: 7439 });
    expect((await cp.kubectlJson<Obj>(["get", "statefulset", `${RELEASE}-registry`, "-n", NS])).kind).toBe(
      "StatefulSet",
    );
    const crd = await cp.kubectl(["get", "crd", "cachedimages.kuik.enix.io"]);
    expect(crd.code).toBe(0);

    const vf = valuesFile("upgrade", {
      proxy: { hostPort: 7600 },
      controllers: { webhook: { ignoredNamespaces: ["legacy"] } },
      admission: { webhookTimeout: 20 },
      registry: { replicas: 2, persistence: { enabled: true, accessModes: "ReadWriteMany", size: "5Gi" } },
    });
    const upgrade = await helm(["upgrade", RELEASE, CHART, "-n", NS, "-f", vf]);
    expect(upgrade.code, upgrade.stderr).toBe(0);
    ds = await cp.kubectlJson<Obj>(["get", "daemonset", `${RELEASE}-proxy`, "-n", NS]);
    expect(container(ds).ports?.[0]).toMatchObject({ containerPort: 7600, hostPort: 7600 });
    const watcher = await cp.kubectlJson<Obj>([
      "get",
      "deployment",
      "pepr-kuik-watcher",
      "-n",
      "pepr-system",
    ]);
    expect(loadKuikConfig(envOf(container(watcher))).config).toMatchObject({
      proxyPort: 7600,
      ignoredNamespaces: ["legacy"],
    });
    const wh = await cp.kubectlJson<Obj>(["get", "mutatingwebhookconfiguration", "pepr-kuik"]);
    expect(wh.webhooks?.[0]?.timeoutSeconds).toBe(20);
    const secret = await cp.kubectlJson<Obj>(["get", "secret", "pepr-kuik-api-path", "-n", "pepr-system"]);
    expect(wh.webhooks?.[0]?.clientConfig.service.path).toBe(
      `/mutate/${Buffer.from(secret.data?.value ?? "", "base64").toString()}`,
    );
    const registryDeployment = await cp.kubectlJson<Obj>([
      "get",
      "deployment",
      `${RELEASE}-registry`,
      "-n",
      NS,
    ]);
    expect(registryDeployment.spec?.replicas).toBe(2);
    const gone = await cp.kubectl(["get", "statefulset", `${RELEASE}-registry`, "-n", NS], {
      allowFailure: true,
    });
    expect(gone.stderr).toContain("NotFound");
    const pvc = await cp.kubectlJson<Obj>(["get", "pvc", `${RELEASE}-registry-pvc`, "-n", NS]);
    expect(pvc.spec).toMatchObject({ accessModes: ["ReadWriteMany"] });
    const httpSecret = await cp.kubectlJson<Obj>([
      "get",
      "secret",
      `${RELEASE}-registry-http-secret`,
      "-n",
      NS,
    ]);
    // generated once, then kept: a second upgrade does not change it
    const again = await helm(["upgrade", RELEASE, CHART, "-n", NS, "-f", vf]);
    expect(again.code, again.stderr).toBe(0);
    const httpSecret2 = await cp.kubectlJson<Obj>([
      "get",
      "secret",
      `${RELEASE}-registry-http-secret`,
      "-n",
      NS,
    ]);
    expect(httpSecret2.data?.secret).toBeTruthy();
    expect(httpSecret2.data?.secret).toBe(httpSecret.data?.secret);
    expect(await cp.kubectlJson<Obj>(["get", "cronjob", GC_JOB, "-n", NS])).toMatchObject({
      spec: { concurrencyPolicy: "Forbid" },
    });

    const uninstall = await helm(["uninstall", RELEASE, "-n", NS]);
    expect(uninstall.code, uninstall.stderr).toBe(0);
    const after = await cp.kubectl(["get", "daemonset", `${RELEASE}-proxy`, "-n", NS], {
      allowFailure: true,
    });
    expect(after.stderr).toContain("NotFound");
    // kept on purpose (helm.sh/resource-policy: keep): the cache volume; and CRDs are never deleted by Helm
    expect(
      (await cp.kubectl(["get", "pvc", `${RELEASE}-registry-pvc`, "-n", NS], { allowFailure: true })).code,
    ).toBe(0);
    expect((await cp.kubectl(["get", "crd", "cachedimages.kuik.enix.io"], { allowFailure: true })).code).toBe(
      0,
    );
  });
});
