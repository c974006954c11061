import { describe, expect, it } from "vitest";
import { Keyring, parseDockerConfig } from "../../registry-client/src/keyring";
import { parseImageReference } from "../../registry-client/src/reference";
import type { Repository } from "../crd";
import { FakeKube, silentLog } from "../testing/fakes";
import {
  effectivePullSecrets,
  ProxyCredentialsSync,
  keyringForImage,
  proxyDockerConfig,
} from "./credentials";

const b64 = (s: string): string => Buffer.from(s).toString("base64");

function dockerSecret(auths: Record<string, object>): { type: string; data: Record<string, string> } {
  return {
    type: "kubernetes.io/dockerconfigjson",
    data: { ".dockerconfigjson": b64(JSON.stringify({ auths })) },
  };
}

function repository(objectName: string, spec: NonNullable<Repository["spec"]>): Repository {
  return { metadata: { name: objectName }, spec } as Repository;
}

function auths(secret: { dockerConfigJson: string } | undefined): Record<string, Record<string, string>> {
  return (JSON.parse(secret?.dockerConfigJson ?? "{}") as { auths: Record<string, Record<string, string>> })
    .auths;
}

describe("proxyDockerConfig", () => {
  it("one entry per Repository, keyed by its repository, with the most specific credential", () => {
    const entries = parseDockerConfig(
      JSON.stringify({
        auths: {
          "registry.example:5000": { username: "host", password: "h" },
          "registry.example:5000/team": { username: "team", password: "t" },
          "https://index.docker.io/v1/": { identitytoken: "refresh" },
        },
      }),
      { source: "ns/s" },
    );
    const doc = proxyDockerConfig([
      { name: "registry.example:5000/team/app", entries },
      { name: "docker.io/library/nginx", entries },
      { name: "quay.io/none", entries },
    ]);
    expect(JSON.parse(doc)).toEqual({
      auths: {
        "docker.io/library/nginx": { identitytoken: "refresh" },
        "registry.example:5000/team/app": { auth: b64("team:t"), username: "team", password: "t" },
      },
    });
    // The proxy's keyring offers each Repository's credential to that repository only.
    const proxy = new Keyring(parseDockerConfig(doc, { source: "proxy" }));
    expect(proxy.lookup("registry.example:5000/team/app:1")).toEqual([
      { kind: "basic", username: "team", password: "t" },
    ]);
    expect(proxy.lookup("registry.example:5000/team/other:1")).toEqual([]);
    expect(proxy.lookup("nginx:1.25")).toEqual([{ kind: "token", token: "refresh" }]);
  });

  it("is deterministic whatever the input order", () => {
    const e = parseDockerConfig(JSON.stringify({ auths: { "a.io": { auth: b64("u:p") } } }), { source: "s" });
    expect(
      proxyDockerConfig([
        { name: "a.io/x", entries: e },
        { name: "a.io/y", entries: e },
      ]),
    ).toBe(
      proxyDockerConfig([
        { name: "a.io/y", entries: e },
        { name: "a.io/x", entries: e },
      ]),
    );
  });
});

describe("ProxyCredentialsSync", () => {
  it("merges every Repository's secrets across namespaces, skips missing and malformed ones, writes on change only", async () => {
    const kube = new FakeKube();
    kube.secrets.set("a/regcred", dockerSecret({ "registry.example": { username: "a", password: "1" } }));
    kube.secrets.set("ops/legacy", dockerSecret({ "quay.io": { username: "q", password: "2" } }));
    kube.secrets.set("b/broken", {
      type: "kubernetes.io/dockerconfigjson",
      data: { ".dockerconfigjson": "!!" },
    });
    const repos = [
      repository("registry.example-app", {
        name: "registry.example/app",
        pullSecrets: [
          { namespace: "b", name: "broken" },
          { namespace: "a", name: "missing" },
          { namespace: "a", name: "regcred" },
        ],
      }),
      repository("quay.io-org-app", {
        name: "quay.io/org/app",
        pullSecretNames: ["legacy"],
        pullSecretsNamespace: "ops",
      }),
    ];
    const sync = new ProxyCredentialsSync(
      kube,
      { name: "kuik-proxy-credentials", namespace: "kuik-system" },
      silentLog,
    );
    expect(await sync.sync(repos)).toBe(true);
    expect(kube.appliedSecrets).toHaveLength(1);
    expect(kube.appliedSecrets[0]).toMatchObject({
      name: "kuik-proxy-credentials",
      namespace: "kuik-system",
    });
    expect(Object.keys(auths(kube.appliedSecrets[0])).sort()).toEqual([
      "quay.io/org/app",
      "registry.example/app",
    ]);
    expect(auths(kube.appliedSecrets[0])["registry.example/app"]?.username).toBe("a");
    expect(await sync.sync(repos)).toBe(false);
    kube.secrets.set(
      "a/regcred",
      dockerSecret({ "registry.example": { username: "a", password: "rotated" } }),
    );
    expect(await sync.sync(repos)).toBe(true);
    expect(auths(kube.appliedSecrets[1])["registry.example/app"]?.password).toBe("rotated");
    // A resync forces the write: a Secret edited or deleted by hand is restored.
    expect(await sync.sync(repos, { force: true })).toBe(true);
    expect(kube.appliedSecrets).toHaveLength(3);
  });

  it("writes an empty document when no Repository has credentials", async () => {
    const kube = new FakeKube();
    const sync = new ProxyCredentialsSync(kube, { name: "c", namespace: "k" }, silentLog);
    await sync.sync([]);
    expect(auths(kube.appliedSecrets[0])).toEqual({});
  });
});

describe("keyringForImage", () => {
  it("reads the image's Repository and its secrets; no Repository means anonymous", async () => {
    const kube = new FakeKube();
    kube.secrets.set("a/regcred", dockerSecret({ "registry.example": { username: "a", password: "1" } }));
    const ref = parseImageReference("registry.example/app:1");
    expect((await keyringForImage(kube, ref, silentLog)).size).toBe(0);
    kube.repositories.set(
      "registry.example-app",
      repository("registry.example-app", {
        name: "registry.example/app",
        pullSecrets: [{ namespace: "a", name: "regcred" }],
      }),
    );
    expect((await keyringForImage(kube, ref, silentLog)).lookup(ref)).toEqual([
      { kind: "basic", username: "a", password: "1" },
    ]);
  });
});

describe("effectivePullSecrets", () => {
  it("tries kuik's entries, then the user's pullSecretNames, without duplicates", () => {
    const spec = {
      pullSecrets: [{ namespace: "a", name: "s" }],
      pullSecretNames: ["s", "t"],
      pullSecretsNamespace: "a",
    };
    expect(effectivePullSecrets(spec)).toEqual([
      { namespace: "a", name: "s" },
      { namespace: "a", name: "t" },
    ]);
    expect(effectivePullSecrets({ pullSecretNames: ["orphan"] })).toEqual([]);
  });
});
