import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { connectionFromKubeConfig, KubeConfigError, TOKEN_REFRESH_MS, tokenFileCredentials } from "./config";

const dir = mkdtempSync(join(tmpdir(), "kuik-kube-config-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const CA = "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n";
const b64 = (s: string): string => Buffer.from(s).toString("base64");

/** A KubeConfig loaded from a kubeconfig file, as KUBECONFIG would be. */
function kubeconfig(cluster: Record<string, unknown>, user: Record<string, unknown>): KubeConfig {
  const file = join(dir, `kubeconfig-${Math.random().toString(36).slice(2)}`);
  writeFileSync(
    file,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "c", cluster }],
      users: [{ name: "u", user }],
      contexts: [{ name: "ctx", context: { cluster: "c", user: "u" } }],
      "current-context": "ctx",
    }),
  );
  const kc = new KubeConfig();
  kc.loadFromFile(file);
  return kc;
}

describe("connectionFromKubeConfig", () => {
  it("a token kubeconfig (the harness's module kubeconfig): CA data, bearer token", async () => {
    const c = connectionFromKubeConfig(
      kubeconfig(
        { server: "https://127.0.0.1:6443", "certificate-authority-data": b64(CA) },
        { token: "t0k" },
      ),
    );
    expect(c.origin).toBe("https://127.0.0.1:6443");
    expect(c.basePath).toBe("");
    expect(c.tls).toEqual({ ca: Buffer.from(CA), rejectUnauthorized: true });
    expect(await c.authorization()).toBe("Bearer t0k");
  });

  it("client certificates from files (relative to the kubeconfig), tls-server-name, a path prefix", async () => {
    writeFileSync(join(dir, "ca.crt"), CA);
    writeFileSync(join(dir, "admin.crt"), "CERT");
    writeFileSync(join(dir, "admin.key"), "KEY");
    const c = connectionFromKubeConfig(
      kubeconfig(
        {
          server: "https://k8s.example:8443/proxy/",
          "certificate-authority": "ca.crt",
          "tls-server-name": "kube",
        },
        { "client-certificate": "admin.crt", "client-key": "admin.key" },
      ),
    );
    expect(c.origin).toBe("https://k8s.example:8443");
    expect(c.basePath).toBe("/proxy");
    expect(c.tls).toEqual({
      ca: Buffer.from(CA),
      cert: Buffer.from("CERT"),
      key: Buffer.from("KEY"),
      rejectUnauthorized: true,
      servername: "kube",
    });
    expect(await c.authorization()).toBeUndefined();
  });

  it("honours insecure-skip-tls-verify, and allows plain HTTP only with it", async () => {
    const insecure = connectionFromKubeConfig(
      kubeconfig(
        { server: "https://127.0.0.1:1", "insecure-skip-tls-verify": true },
        { username: "a", password: "b" },
      ),
    );
    expect(insecure.tls).toEqual({ rejectUnauthorized: false });
    expect(await insecure.authorization()).toBe(`Basic ${b64("a:b")}`);
    expect(
      connectionFromKubeConfig(
        kubeconfig({ server: "http://127.0.0.1:1", "insecure-skip-tls-verify": true }, {}),
      ).origin,
    ).toBe("http://127.0.0.1:1");
    expect(() => connectionFromKubeConfig(kubeconfig({ server: "http://127.0.0.1:1" }, {}))).toThrow(
      KubeConfigError,
    );
  });

  it("fails at load, not per request, when a file is missing", () => {
    expect(() =>
      connectionFromKubeConfig(
        kubeconfig({ server: "https://h:1", "certificate-authority": join(dir, "nope") }, {}),
      ),
    ).toThrow(/cannot read the cluster CA/);
  });
});

describe("in-cluster configuration", () => {
  const saved = { host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT };
  afterEach(() => {
    for (const [k, v] of [
      ["KUBERNETES_SERVICE_HOST", saved.host],
      ["KUBERNETES_SERVICE_PORT", saved.port],
    ] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  it("reads the service account's CA once and its token file at most every minute", async () => {
    const root = join(dir, "in-cluster");
    const sa = join(root, "var/run/secrets/kubernetes.io/serviceaccount");
    mkdirSync(sa, { recursive: true });
    writeFileSync(join(sa, "ca.crt"), CA);
    writeFileSync(join(sa, "token"), "first\n");
    process.env.KUBERNETES_SERVICE_HOST = "10.96.0.1";
    process.env.KUBERNETES_SERVICE_PORT = "443";
    const kc = new KubeConfig();
    kc.loadFromCluster(root);
    let now = 1_000_000;
    const c = connectionFromKubeConfig(kc, { now: () => now });
    expect(c.origin).toBe("https://10.96.0.1");
    expect(c.tls.ca).toEqual(Buffer.from(CA));
    expect(await c.authorization()).toBe("Bearer first");
    writeFileSync(join(sa, "token"), "second\n"); // the kubelet rotated it
    now += TOKEN_REFRESH_MS - 1;
    expect(await c.authorization()).toBe("Bearer first");
    now += 1;
    expect(await c.authorization()).toBe("Bearer second");
  });
});

describe("tokenFileCredentials", () => {
  it("keeps the last token when a re-read fails, rejects when the first read does", async () => {
    const file = join(dir, "token-keep");
    writeFileSync(file, "kept");
    let now = 0;
    const creds = tokenFileCredentials(file, { now: () => now, refreshMs: 10 });
    expect(await creds()).toBe("Bearer kept");
    rmSync(file);
    now = 100;
    expect(await creds()).toBe("Bearer kept");
    await expect(tokenFileCredentials(join(dir, "missing"))()).rejects.toThrow(KubeConfigError);
  });
});
