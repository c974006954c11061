/**
 * The watcher's Kubernetes client (capabilities/kube/client.ts over capabilities/kube/http.ts) against a real
 * kube-apiserver, authenticated as a ServiceAccount bound to exactly the rules kuik declares
 * (capabilities/api-calls.ts): the ClusterRole (which capabilities/rbac.test.ts proves equal to the one Pepr
 * generates) and the Role in kuik's namespace for the proxy credentials Secret (capabilities/rbac-objects.ts).
 *
 * Regression (issue #5): through kubernetes-fluent-client 3.11.6 every API call built a new undici Agent with a
 * 600 s keep-alive, so each call left one TLS connection open; converging 2,000 Pods / 500 images the watcher held
 * 5,400 sockets and 937 MiB. Here 200 sequential calls must reuse a handful of connections.
 */
import { mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { policyRules, WATCHER_KUIK_NAMESPACE_CALLS } from "../../capabilities/api-calls";
import { KubeClient } from "../../capabilities/kube/client";
import { connectionFromKubeConfig, TOKEN_REFRESH_MS } from "../../capabilities/kube/config";
import { KubeHttp } from "../../capabilities/kube/http";
import { isConflict, KubeApiError } from "../../capabilities/kube/ports";
import { makeTempDir, removeTempDir } from "../harness/cleanup";
import {
  controlPlaneAvailable,
  startControlPlane,
  type ControlPlane,
  type KubeObject,
} from "../harness/control-plane";
import { REPO_ROOT } from "../harness/tools";

const KUIK_NS = "kuik-system";
const APP_NS = "app";
const SA = "kuik-watcher";
const CREDENTIALS = "kuik-proxy-credentials";

/** Sockets this process holds open (`/proc/self/fd` links `socket:[inode]`). */
function openSockets(): number {
  let n = 0;
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).startsWith("socket:")) n++;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}

describe.skipIf(!controlPlaneAvailable(false))("KubeClient against a real kube-apiserver", () => {
  let cp: ControlPlane;
  let dir: string;
  let http: KubeHttp;
  let kube: KubeClient;

  const kubectlJson = <T = KubeObject>(args: string[]): Promise<T> => cp.kubectlJson<T>(args);

  beforeAll(async () => {
    dir = makeTempDir("kube-client-e2e");
    cp = await startControlPlane({ controllerManager: false });
    await cp.kubectl(["apply", "--server-side", "-f", join(REPO_ROOT, "deploy", "crds")]);
    const rules = policyRules();
    await cp.apply([
      { apiVersion: "v1", kind: "Namespace", metadata: { name: KUIK_NS } },
      { apiVersion: "v1", kind: "Namespace", metadata: { name: APP_NS } },
      { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: SA, namespace: KUIK_NS } },
      { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "default", namespace: APP_NS } },
      { apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRole", metadata: { name: SA }, rules },
      {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "ClusterRoleBinding",
        metadata: { name: SA },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: SA },
        subjects: [{ kind: "ServiceAccount", name: SA, namespace: KUIK_NS }],
      },
      // the watcher's only write in kuik's namespace: no cluster-wide Secret create (docs/security.md "RBAC")
      {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "Role",
        metadata: { name: SA, namespace: KUIK_NS },
        rules: policyRules(WATCHER_KUIK_NAMESPACE_CALLS),
      },
      {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "RoleBinding",
        metadata: { name: SA, namespace: KUIK_NS },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: SA },
        subjects: [{ kind: "ServiceAccount", name: SA, namespace: KUIK_NS }],
      },
    ]);
    await cp.kubectl(["wait", "--for=condition=Established", "--timeout=60s", "crd/cachedimages.kuik.enix.io", "crd/repositories.kuik.enix.io"]); // prettier-ignore
    const token = (await cp.kubectl(["create", "token", SA, "-n", KUIK_NS, "--duration=1h"])).stdout.trim();
    const kc = new KubeConfig();
    kc.loadFromFile(cp.writeTokenKubeconfig(join(dir, "token.kubeconfig"), `system:serviceaccount:${KUIK_NS}:${SA}`, token)); // prettier-ignore
    http = new KubeHttp(connectionFromKubeConfig(kc));
    kube = new KubeClient(http);
  });

  afterAll(async () => {
    await http?.close();
    await cp?.stop();
    if (dir) removeTempDir(dir);
  });

  it("lists managed Pods (label selector) and ServiceAccounts; gets a ServiceAccount, undefined when missing", async () => {
    const pod = (name: string, labels: Record<string, string>): object => ({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, namespace: APP_NS, labels },
      spec: { automountServiceAccountToken: false, containers: [{ name: "c", image: "nginx:1" }] },
    });
    await cp.apply([pod("managed", { "kuik.enix.io/managed": "true" }), pod("other", {})]);
    const pods = await kube.listManagedPods();
    expect(pods.map(p => `${p.metadata?.namespace}/${p.metadata?.name}`)).toEqual([`${APP_NS}/managed`]);
    expect(pods[0]?.spec?.containers?.[0]?.image).toBe("nginx:1");
    const accounts = (await kube.listServiceAccounts()).map(
      s => `${s.metadata?.namespace}/${s.metadata?.name}`,
    );
    expect(accounts).toEqual(expect.arrayContaining([`${APP_NS}/default`, `${KUIK_NS}/${SA}`]));
    expect((await kube.getServiceAccount(APP_NS, "default"))?.metadata?.name).toBe("default");
    expect(await kube.getServiceAccount(APP_NS, "missing")).toBeUndefined();
  });

  it("gets a Secret (undefined when missing) and applies the proxy credentials Secret, create then update", async () => {
    await cp.kubectl(["create", "secret", "generic", "pull", "-n", APP_NS, "--from-literal=k=v"]);
    expect((await kube.getSecret({ namespace: APP_NS, name: "pull" }))?.data).toEqual({ k: "dg==" });
    expect(await kube.getSecret({ namespace: APP_NS, name: "missing" })).toBeUndefined();
    for (const auths of ['{"auths":{"a":{}}}', '{"auths":{"b":{}}}']) {
      await kube.applySecret({ name: CREDENTIALS, namespace: KUIK_NS, dockerConfigJson: auths });
      const secret = await kubectlJson(["get", "secret", CREDENTIALS, "-n", KUIK_NS]);
      expect(secret.type).toBe("kubernetes.io/dockerconfigjson");
      const data = secret.data as Record<string, string>;
      expect(Buffer.from(data[".dockerconfigjson"] ?? "", "base64").toString()).toBe(auths);
    }
    // The patch grant is restricted to that name: RBAC refuses another, and the Status message comes through.
    const refused = kube.applySecret({ name: "other", namespace: KUIK_NS, dockerConfigJson: "{}" });
    await expect(refused).rejects.toBeInstanceOf(KubeApiError);
    await expect(refused).rejects.toMatchObject({ status: 403, message: expect.stringMatching(/forbidden/) });
  });

  it("applies, patches (JSON Patch), patches the status of, lists, gets and deletes CachedImages", async () => {
    const name = "docker.io-library-nginx-1";
    await kube.applyCachedImage(name, "nginx:1", { "kuik.enix.io/repository": "docker.io-library-nginx" });
    await kube.applyCachedImage(name, "nginx:1", { "kuik.enix.io/repository": "docker.io-library-nginx" });
    let ci = await kube.getCachedImage(name);
    expect(ci?.spec?.sourceImage).toBe("nginx:1");
    expect(ci?.metadata?.labels?.["kuik.enix.io/repository"]).toBe("docker.io-library-nginx");
    const managers = () =>
      (
        (ci?.metadata?.managedFields ?? []) as { manager: string; operation: string; subresource?: string }[]
      ).map(f => `${f.manager} ${f.operation}${f.subresource ? ` ${f.subresource}` : ""}`);
    expect(managers()).toEqual(["pepr Apply"]);
    await kube.patchCachedImage(name, [
      { op: "add", path: "/metadata/finalizers", value: ["kuik.enix.io/test"] },
      { op: "add", path: "/spec/retain", value: true },
    ]);
    const wrongTest = kube.patchCachedImage(name, [{ op: "test", path: "/spec/retain", value: false }]);
    await expect(wrongTest).rejects.toSatisfy(isConflict);
    await kube.patchCachedImageStatus(name, { phase: "Ready", isCached: true, lastError: "x" });
    await kube.patchCachedImageStatus(name, { lastError: null });
    ci = await kube.getCachedImage(name);
    expect(ci?.spec?.retain).toBe(true);
    expect(ci?.status).toEqual({ phase: "Ready", isCached: true });
    // The same field managers as KFC's requests had: existing objects keep their owners.
    expect(managers().sort()).toEqual([
      "kubernetes-fluent-client Update",
      "kubernetes-fluent-client Update status",
      "pepr Apply",
    ]);
    expect((await kube.listCachedImages()).map(c => c.metadata?.name)).toEqual([name]);
    // Paging with the API server's continue tokens: 5 objects, 2 per page.
    for (let i = 0; i < 4; i++) await kube.applyCachedImage(`page-${i}`, `busybox:${i}`, {});
    const paged = new KubeClient(http, { pageSize: 2 });
    const requests = http.stats().requests;
    expect((await paged.listCachedImages()).map(c => c.metadata?.name).sort()).toEqual([name, "page-0", "page-1", "page-2", "page-3"]); // prettier-ignore
    expect(http.stats().requests - requests).toBe(3);
    // A delete bound to a resourceVersion: refused (409) once the object changed, done on the current one.
    const judged = await kube.getCachedImage("page-0");
    await kube.patchCachedImage("page-0", [{ op: "add", path: "/spec/retain", value: true }]);
    await expect(kube.deleteCachedImage("page-0", judged?.metadata?.resourceVersion)).rejects.toMatchObject({
      status: 409,
    });
    const current = await kube.getCachedImage("page-0");
    expect(current?.spec?.retain).toBe(true);
    await kube.deleteCachedImage("page-0", current?.metadata?.resourceVersion);
    expect(await kube.getCachedImage("page-0")).toBeUndefined();
    for (let i = 1; i < 4; i++) await kube.deleteCachedImage(`page-${i}`);
    await kube.deleteCachedImage(name); // held by the finalizer
    expect((await kube.getCachedImage(name))?.metadata?.deletionTimestamp).toBeDefined();
    await kube.patchCachedImage(name, [{ op: "remove", path: "/metadata/finalizers" }]);
    expect(await kube.getCachedImage(name)).toBeUndefined();
    await kube.deleteCachedImage(name); // already gone: resolves
  });

  it("applies Repositories with pull secrets, patches their status, lists and gets them", async () => {
    const secrets = [{ namespace: APP_NS, name: "pull" }];
    await kube.applyRepository("docker.io-library-nginx", "docker.io/library/nginx", secrets);
    await kube.patchRepositoryStatus("docker.io-library-nginx", { phase: "Ready", images: 1 });
    const repo = await kube.getRepository("docker.io-library-nginx");
    expect(repo?.spec).toEqual({ name: "docker.io/library/nginx", pullSecrets: secrets });
    expect(repo?.status).toEqual({ phase: "Ready", images: 1 });
    expect((await kube.listRepositories()).map(r => r.metadata?.name)).toEqual(["docker.io-library-nginx"]);
    expect(await kube.getRepository("missing")).toBeUndefined();
    const invalid = kube.applyRepository("Not_A_Name", "x");
    await expect(invalid).rejects.toMatchObject({
      status: 422,
      message: expect.stringMatching(/Not_A_Name/),
    });
  });

  it("ensures a Repository exists without touching an existing one's pull secrets", async () => {
    await kube.ensureRepository("ghcr.io-org-app", "ghcr.io/org/app");
    expect((await kube.getRepository("ghcr.io-org-app"))?.spec).toEqual({ name: "ghcr.io/org/app" });
    const secrets = [{ namespace: APP_NS, name: "pull" }];
    await kube.applyRepository("ghcr.io-org-app", "ghcr.io/org/app", secrets);
    await kube.ensureRepository("ghcr.io-org-app", "ghcr.io/org/app"); // 409, swallowed
    expect((await kube.getRepository("ghcr.io-org-app"))?.spec).toEqual({
      name: "ghcr.io/org/app",
      pullSecrets: secrets,
    });
  });

  it("removes kube-image-keeper v1's finalizer from a Repository being deleted (JSON patch), which then goes", async () => {
    const finalizer = "repository.kuik.enix.io/finalizer";
    await kube.ensureRepository("quay.io-org-old", "quay.io/org/old");
    await cp.kubectl(["patch", "repository", "quay.io-org-old", "--type=merge", "-p", JSON.stringify({ metadata: { finalizers: [finalizer] } })]); // prettier-ignore
    await cp.kubectl(["delete", "repository", "quay.io-org-old", "--wait=false"]);
    const deleting = await kube.getRepository("quay.io-org-old");
    expect(deleting?.metadata?.deletionTimestamp).toBeDefined();
    await kube.patchRepository("quay.io-org-old", [
      { op: "test", path: "/metadata/finalizers/0", value: finalizer },
      { op: "remove", path: "/metadata/finalizers/0" },
    ]);
    expect(await kube.getRepository("quay.io-org-old")).toBeUndefined();
  });

  it("creates Events", async () => {
    const stamp = new Date().toISOString();
    await kube.createEvent({
      // events of cluster-scoped objects live in `default` (capabilities/kube/events.ts), as client-go's recorder puts them
      metadata: { name: "ci.1", namespace: "default" },
      involvedObject: { apiVersion: "kuik.enix.io/v1alpha1", kind: "CachedImage", name: "ci" },
      reason: "Cached",
      message: "copied",
      type: "Normal",
      source: { component: "kuik" },
      reportingComponent: "kuik",
      reportingInstance: "test",
      firstTimestamp: stamp,
      lastTimestamp: stamp,
      count: 1,
    });
    const event = await kubectlJson(["get", "event", "ci.1", "-n", "default"]);
    expect([event.reason, event.message, (event.involvedObject as { kind: string }).kind]).toEqual(["Cached", "copied", "CachedImage"]); // prettier-ignore
  });

  it("200 sequential calls reuse one connection; 40 concurrent ones stay within the pool's 8", async () => {
    const before = { ...http.stats(), sockets: openSockets() };
    expect(before.connects).toBeGreaterThan(0); // the counter counts
    await kube.applyCachedImage("reuse", "busybox:1", {});
    for (let i = 0; i < 200; i++) {
      if (i % 2 === 0) await kube.getCachedImage("reuse");
      else await kube.patchCachedImageStatus("reuse", { retryCount: i });
    }
    const after = { ...http.stats(), sockets: openSockets() };
    expect(after.requests - before.requests).toBe(201);
    // The connection of the earlier tests is still alive (30 s keep-alive): usually no new one at all.
    expect(after.connects - before.connects).toBeLessThanOrEqual(1);
    expect(after.sockets - before.sockets).toBeLessThanOrEqual(1);
    await Promise.all(Array.from({ length: 40 }, () => kube.getCachedImage("reuse")));
    expect(http.stats().connects - before.connects).toBeLessThanOrEqual(8);
    expect(openSockets() - before.sockets).toBeLessThanOrEqual(8);
  });

  it("in cluster: reads the service account's CA and token, and re-reads a rotated token after a minute", async () => {
    // The token file first holds the token of a ServiceAccount without rights, then kuik's: which one is sent
    // shows when the file is read.
    await cp.apply({
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: { name: "nobody", namespace: KUIK_NS },
    });
    const tokenOf = async (account: string): Promise<string> =>
      (await cp.kubectl(["create", "token", account, "-n", KUIK_NS, "--duration=1h"])).stdout.trim();
    const sa = join(dir, "pod", "var/run/secrets/kubernetes.io/serviceaccount");
    mkdirSync(sa, { recursive: true });
    writeFileSync(join(sa, "ca.crt"), readFileSync(cp.caFile));
    writeFileSync(join(sa, "token"), await tokenOf("nobody"));
    let now = 0;
    const inCluster = new KubeHttp(
      connectionFromKubeConfig(inClusterConfig(join(dir, "pod"), cp.server), { now: () => now }),
    );
    try {
      const client = new KubeClient(inCluster);
      await expect(client.getServiceAccount(KUIK_NS, SA)).rejects.toMatchObject({ status: 403 });
      writeFileSync(join(sa, "token"), await tokenOf(SA)); // rotated
      now += TOKEN_REFRESH_MS - 1;
      await expect(client.getServiceAccount(KUIK_NS, SA)).rejects.toMatchObject({ status: 403 });
      now += 1;
      expect((await client.getServiceAccount(KUIK_NS, SA))?.metadata?.name).toBe(SA);
    } finally {
      await inCluster.close();
    }
  });
});

/** client-node's in-cluster configuration (KUBERNETES_SERVICE_HOST/PORT, service account files under `root`). */
function inClusterConfig(root: string, server: string): KubeConfig {
  const url = new URL(server);
  const saved = { host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT };
  process.env.KUBERNETES_SERVICE_HOST = url.hostname;
  process.env.KUBERNETES_SERVICE_PORT = url.port;
  try {
    const kc = new KubeConfig();
    kc.loadFromCluster(root);
    return kc;
  } finally {
    if (saved.host === undefined) delete process.env.KUBERNETES_SERVICE_HOST;
    else process.env.KUBERNETES_SERVICE_HOST = saved.host;
    if (saved.port === undefined) delete process.env.KUBERNETES_SERVICE_PORT;
    else process.env.KUBERNETES_SERVICE_PORT = saved.port;
  }
}
