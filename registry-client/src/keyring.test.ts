import { describe, expect, it } from "vitest";
import { isRegistryError } from "./errors";
import {
  Keyring,
  parseDockerConfig,
  parsePullSecret,
  type DockerConfigEntry,
  type KeyringTarget,
  type PullSecret,
} from "./keyring";
import type { Credentials } from "./types";

const b64 = (s: string): string => Buffer.from(s).toString("base64");
const basic = (username: string, password: string): Credentials => ({ kind: "basic", username, password });

/** A kubernetes.io/dockerconfigjson secret whose `auths` are `auths`. */
function configJsonSecret(name: string, auths: Record<string, unknown>, namespace = "team"): PullSecret {
  return {
    metadata: { name, namespace },
    type: "kubernetes.io/dockerconfigjson",
    data: { ".dockerconfigjson": b64(JSON.stringify({ auths })) },
  };
}

/** A keyring of one entry per key, each with user = the key's label. */
function keyringOf(entries: Record<string, string>): Keyring {
  return new Keyring(
    Object.entries(entries).map(([registry, user]) => ({
      registry,
      credentials: basic(user, "pw"),
      source: "t",
    })),
  );
}

const users = (keyring: Keyring, target: KeyringTarget): string[] =>
  keyring.lookup(target).map(c => (c.kind === "basic" ? c.username : c.token));

describe("parsePullSecret", () => {
  it("reads username/password, auth (padded or not), identitytoken and registrytoken, in entry order", () => {
    const secret = configJsonSecret("pull", {
      "registry.example.com": { username: "u1", password: "p1" },
      "https://index.docker.io/v1/": { auth: b64("u2:p:2"), email: "x@example.com" },
      "quay.io": { auth: b64("u3:p3").replace(/=+$/, "") },
      "auth.wins.example": { username: "ignored", password: "ignored", auth: b64("u4:p4") },
      "acr.example.io": { username: "00000000-0000-0000-0000-000000000000", identitytoken: "refresh-1" },
      "bearer.example": { registrytoken: "bearer-1", identitytoken: "refresh-2" },
      "store.example": {},
      "empty.example": { auth: "", username: "", password: "" },
    });
    expect(parsePullSecret(secret)).toEqual<DockerConfigEntry[]>([
      { registry: "registry.example.com", credentials: basic("u1", "p1"), source: "team/pull" },
      { registry: "https://index.docker.io/v1/", credentials: basic("u2", "p:2"), source: "team/pull" },
      { registry: "quay.io", credentials: basic("u3", "p3"), source: "team/pull" },
      { registry: "auth.wins.example", credentials: basic("u4", "p4"), source: "team/pull" },
      { registry: "acr.example.io", credentials: { kind: "token", token: "refresh-1" }, source: "team/pull" },
      { registry: "bearer.example", credentials: { kind: "bearer", token: "bearer-1" }, source: "team/pull" },
    ]);
  });

  it("reads the legacy kubernetes.io/dockercfg format (the map without `auths`)", () => {
    const secret: PullSecret = {
      metadata: { name: "old" },
      type: "kubernetes.io/dockercfg",
      data: { ".dockercfg": b64(JSON.stringify({ "localhost:5000": { username: "l", password: "p" } })) },
    };
    expect(parsePullSecret(secret)).toEqual([
      { registry: "localhost:5000", credentials: basic("l", "p"), source: "old" },
    ]);
  });

  it.each([
    ["no auths", { credsStore: "desktop" }],
    ["null auths", { auths: null }],
  ])("gives no entries for a config with %s", (_name, config) => {
    const secret: PullSecret = {
      metadata: { name: "s" },
      type: "kubernetes.io/dockerconfigjson",
      data: { ".dockerconfigjson": b64(JSON.stringify(config)) },
    };
    expect(parsePullSecret(secret)).toEqual([]);
  });

  // Every case carries the same credential material; none of it may reach the error (message or cause).
  const PASSWORD = "s3cr3t-Pa55word";
  const AUTH = b64(`robot:${PASSWORD}`);
  const CONFIG = JSON.stringify({ auths: { "r.example": { auth: AUTH, password: PASSWORD } } });
  it.each<[string, PullSecret, string]>([
    [
      "a wrong type",
      {
        metadata: { name: "s", namespace: "ns" },
        type: "Opaque",
        data: { ".dockerconfigjson": b64(CONFIG) },
      },
      'type "Opaque"',
    ],
    [
      "no type",
      { metadata: { name: "s", namespace: "ns" }, data: { ".dockerconfigjson": b64(CONFIG) } },
      'type ""',
    ],
    [
      "a type/key mix-up",
      {
        metadata: { name: "s", namespace: "ns" },
        type: "kubernetes.io/dockercfg",
        data: { ".dockerconfigjson": b64(CONFIG) },
      },
      'no ".dockercfg" data',
    ],
    [
      "no data",
      { metadata: { name: "s", namespace: "ns" }, type: "kubernetes.io/dockerconfigjson" },
      'no ".dockerconfigjson" data',
    ],
    [
      "empty data",
      {
        metadata: { name: "s", namespace: "ns" },
        type: "kubernetes.io/dockerconfigjson",
        data: { ".dockerconfigjson": "" },
      },
      "no",
    ],
    [
      "data that is not base64",
      {
        metadata: { name: "s", namespace: "ns" },
        type: "kubernetes.io/dockerconfigjson",
        data: { ".dockerconfigjson": CONFIG },
      },
      "not valid base64",
    ],
    [
      "base64 that is not JSON",
      {
        metadata: { name: "s", namespace: "ns" },
        type: "kubernetes.io/dockerconfigjson",
        data: { ".dockerconfigjson": b64(`{"auths": ${PASSWORD}`) },
      },
      "not valid JSON",
    ],
    [
      "a JSON array",
      {
        metadata: { name: "s", namespace: "ns" },
        type: "kubernetes.io/dockerconfigjson",
        data: { ".dockerconfigjson": b64(`["${PASSWORD}"]`) },
      },
      "not a JSON object",
    ],
    [
      "auths that is not an object",
      {
        metadata: { name: "s", namespace: "ns" },
        type: "kubernetes.io/dockerconfigjson",
        data: { ".dockerconfigjson": b64(JSON.stringify({ auths: [PASSWORD] })) },
      },
      '"auths" is not an object',
    ],
    [
      "an entry that is not an object",
      configJsonSecret("s", { "r.example": PASSWORD }, "ns"),
      'entry "r.example": is not an object',
    ],
    [
      "a field that is not a string",
      configJsonSecret("s", { "r.example": { username: "robot", password: 12345 } }, "ns"),
      'field "password" is not a string',
    ],
    [
      "an auth that is not base64",
      configJsonSecret("s", { "r.example": { auth: `robot:${PASSWORD}` } }, "ns"),
      "base64(username:password)",
    ],
    [
      "an auth without a colon",
      configJsonSecret("s", { "r.example": { auth: b64(`robot${PASSWORD}`) } }, "ns"),
      "base64(username:password)",
    ],
    [
      "an auth of bad length",
      configJsonSecret("s", { "r.example": { auth: "abcde" } }, "ns"),
      "base64(username:password)",
    ],
    [
      "an unprintable registry key",
      configJsonSecret("s", { [`${PASSWORD} @host`]: 1 }, "ns"),
      "entry #1: is not an object",
    ],
  ])("rejects %s with INVALID_SECRET naming the secret, never its content", (_name, secret, fragment) => {
    let caught: unknown;
    try {
      parsePullSecret(secret);
    } catch (e) {
      caught = e;
    }
    expect(isRegistryError(caught, "INVALID_SECRET")).toBe(true);
    const error = caught as Error;
    expect(error.message).toContain('"ns/s"');
    expect(error.message).toContain(fragment);
    const exposed = `${error.message} ${String(error.cause)} ${JSON.stringify(error)}`;
    for (const secretText of [PASSWORD, AUTH, "robot", b64(CONFIG)])
      expect(exposed).not.toContain(secretText);
    expect(error.cause).toBeUndefined();
  });

  it("names the secret even without a namespace or name", () => {
    expect(() => parsePullSecret({ type: "Opaque" })).toThrow(/pull secret "<unnamed>" has type "Opaque"/);
  });
});

describe("parseDockerConfig", () => {
  it("reads a config.json (e.g. a node's) with the source it is given", () => {
    const text = JSON.stringify({ auths: { "ghcr.io": { auth: b64("me:tok") } }, credHelpers: {} });
    expect(parseDockerConfig(text, { source: "/var/lib/kubelet/config.json" })).toEqual([
      { registry: "ghcr.io", credentials: basic("me", "tok"), source: "/var/lib/kubelet/config.json" },
    ]);
    expect(() => parseDockerConfig("{", { source: "node config" })).toThrow(/^node config: not valid JSON$/);
  });
});

describe("Keyring matching (kubelet urlsMatch)", () => {
  // [key, target, matches]: the kubelet's TestURLsMatch cases, restated with kuik's targets.
  it.each<[string, { registry: string; repository?: string }, boolean]>([
    ["*.kubernetes.io", { registry: "prefix.kubernetes.io", repository: "x" }, true],
    ["prefix.*.io", { registry: "prefix.kubernetes.io", repository: "x" }, true],
    ["prefix.kubernetes.*", { registry: "prefix.kubernetes.io", repository: "x" }, true],
    ["*-good.kubernetes.io", { registry: "prefix-good.kubernetes.io", repository: "x" }, true],
    ["*.kubernetes.io/blah", { registry: "prefix.kubernetes.io", repository: "blah" }, true],
    ["prefix.*.io/foo", { registry: "prefix.kubernetes.io", repository: "foo/bar" }, true],
    ["*.kubernetes.io:1111/blah", { registry: "prefix.kubernetes.io:1111", repository: "blah" }, true],
    ["prefix.*.io:1111/foo", { registry: "prefix.kubernetes.io:1111", repository: "foo/bar" }, true],
    // one label per *
    ["*.kubernetes.io", { registry: "kubernetes.io", repository: "x" }, false],
    ["*.*.kubernetes.io", { registry: "prefix.kubernetes.io", repository: "x" }, false],
    ["*kubernetes.io", { registry: "a.kubernetes.io", repository: "x" }, false],
    ["*kubernetes.io", { registry: "kubernetes.io", repository: "x" }, true],
    ["*.*.*.kubernetes.io", { registry: "a.b.c.kubernetes.io", repository: "x" }, true],
    // "?" starts a URL query for the kubelet's url.Parse, so it is no wildcard: the host is "k"
    ["k?s.io", { registry: "k8s.io", repository: "x" }, false],
    ["k?s.io", { registry: "k", repository: "x" }, true],
    ["kubernetes.io", { registry: "kubernetes.com", repository: "x" }, false],
    ["k*.io", { registry: "quay.io", repository: "x" }, false],
    // ports must be equal, absent included
    ["*.kubernetes.io:1234/blah", { registry: "prefix.kubernetes.io:1111", repository: "blah" }, false],
    ["prefix.*.io/foo", { registry: "prefix.kubernetes.io:1111", repository: "foo/bar" }, false],
    ["registry.example.com", { registry: "registry.example.com:5000", repository: "x" }, false],
    ["registry.example.com:5000", { registry: "registry.example.com", repository: "x" }, false],
    // scheme and /v1/, /v2/ paths mean the host
    ["https://prefix.docker.*/path", { registry: "prefix.docker.io", repository: "path/foo/bar" }, true],
    ["https://*.docker.io:8888", { registry: "prefix.docker.io:8888", repository: "foo/bar" }, true],
    ["https://*.example.io/v1/", { registry: "prefix.example.io", repository: "foo/bar" }, true],
    ["http://*.example.io/v2/", { registry: "prefix.example.io", repository: "foo/bar" }, true],
    ["https://suffix.*.io", { registry: "prefix.docker.io", repository: "foo/bar" }, false],
    ["https://prefix.docker.c*", { registry: "prefix.docker.io", repository: "foo/bar" }, false],
    ["https://hello.kubernetes.io", { registry: "world.mesos.org", repository: "foo/bar" }, false],
    // the key's path matches whole path segments (the kubelet's plain string prefix would let a tenant's
    // `reg/team/app` key authenticate `reg/team/app-other`, issue #13)
    ["team.example.com/team", { registry: "team.example.com", repository: "team-b/app" }, false],
    ["team.example.com/team/", { registry: "team.example.com", repository: "team-b/app" }, false],
    ["team.example.com/team/", { registry: "team.example.com", repository: "team/app" }, true],
    ["reg.example.com/team/app", { registry: "reg.example.com", repository: "team/app-other" }, false],
    ["reg.example.com/team/app", { registry: "reg.example.com", repository: "team/app" }, true],
    ["reg.example.com/team/app", { registry: "reg.example.com", repository: "team/app/sub" }, true],
    ["team.example.com/team", { registry: "team.example.com" }, false],
    // case-insensitive hosts, IPv6 literals
    ["Registry.Example.COM", { registry: "registry.example.com", repository: "x" }, true],
    ["[::1]:5000", { registry: "[::1]:5000", repository: "app" }, true],
    ["[::1]:5000", { registry: "[::1]:5001", repository: "app" }, false],
    ["[::1]", { registry: "[::1]", repository: "app" }, true],
  ])("%s ~ %j → %s", (key, target, matches) => {
    expect(users(keyringOf({ [key]: "u" }), target)).toEqual(matches ? ["u"] : []);
  });

  it.each<[string, string, boolean]>([
    ["a*", "a", true],
    ["*a*b*", "xaxxbx", true],
    ["*a*b*", "xbxxax", false],
    ["a**b", "ab", true],
    ["**", "", true],
  ])("globs the label %j against %j → %s", (pattern, label, matches) => {
    expect(users(keyringOf({ [`${pattern}.x`]: "u" }), { registry: `${label}.x`, repository: "r" })).toEqual(
      matches ? ["u"] : [],
    );
  });

  it("globs in linear-ish time, even on a key built to make a regex backtrack", () => {
    const keyring = keyringOf({ [`${"*a".repeat(30)}*b.example`]: "u" });
    const started = performance.now();
    expect(users(keyring, { registry: `${"a".repeat(900)}.example`, repository: "r" })).toEqual([]);
    expect(performance.now() - started).toBeLessThan(500);
  });

  it.each([
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "https://index.docker.io/v1/",
    "https://registry-1.docker.io/v2/",
  ])("treats %s as Docker Hub", key => {
    const keyring = keyringOf({ [key]: "hub" });
    for (const image of [
      "nginx",
      "library/nginx:1",
      "google/docker-registry",
      "docker.io/bitnami/redis",
      "index.docker.io/x",
    ]) {
      expect(users(keyring, image), image).toEqual(["hub"]);
    }
    expect(users(keyring, { registry: "registry-1.docker.io", repository: "library/nginx" })).toEqual([
      "hub",
    ]);
    for (const image of [
      "myhostdocker.io/foo/bar",
      "registry.tld/foo/bar",
      "registry:5000/foo/bar",
      "quay.io/x",
    ]) {
      expect(users(keyring, image), image).toEqual([]);
    }
  });

  it("returns every match, most specific key first (kubelet TestDockerKeyringLookup)", () => {
    const keyring = keyringOf({ "bar.example.com": "ada", "bar.example.com/pong": "grace" });
    expect(users(keyring, { registry: "bar.example.com" })).toEqual(["ada"]);
    expect(users(keyring, "bar.example.com/pong")).toEqual(["grace", "ada"]);
    expect(users(keyring, "bar.example.com/ping")).toEqual(["ada"]);
    // the kubelet also gives "grace" here (string prefix); kuik matches path segments (issue #13)
    expect(users(keyring, "bar.example.com/pongz")).toEqual(["ada"]);
    expect(users(keyring, "bar.example.com/pong/pang:1")).toEqual(["grace", "ada"]);
    expect(users(keyring, { registry: "example.com", repository: "x" })).toEqual([]);
    expect(users(keyring, "foo.example.com/x")).toEqual([]);
  });

  it("serves a /v1/ key for the whole host (kubelet issue 3797)", () => {
    const keyring = keyringOf({ "https://quay.io/v1/": "rex" });
    for (const target of [{ registry: "quay.io" }, "quay.io/foo", "quay.io/foo/bar"]) {
      expect(users(keyring, target)).toEqual(["rex"]);
    }
  });

  it("orders keys in reverse, merges a key across secrets in secret order, and drops duplicates", () => {
    const keyring = Keyring.fromPullSecrets([
      configJsonSecret("a", {
        "quay.io": { auth: b64("a-host:p") },
        "quay.io/org": { auth: b64("a-org:p") },
      }),
      configJsonSecret("b", {
        "https://quay.io": { auth: b64("b-host:p") },
        "*.io": { auth: b64("b-glob:p") },
      }),
      configJsonSecret("c", { "quay.io/org": { auth: b64("a-org:p") } }),
    ]);
    expect(keyring.size).toBe(3);
    expect(users(keyring, "quay.io/org/app")).toEqual(["a-org", "a-host", "b-host", "b-glob"]);
    expect(keyring.match("quay.io/org/app").map(e => e.source)).toEqual([
      "team/a",
      "team/c",
      "team/a",
      "team/b",
      "team/b",
    ]);
    expect(users(keyring, "quay.io/other")).toEqual(["a-host", "b-host", "b-glob"]);
  });

  it("picks Docker Hub credentials for alpine and localhost ones for localhost:5000 (kuik v1 keychain test)", () => {
    const keyring = Keyring.fromPullSecrets([
      configJsonSecret("s", {
        "https://index.docker.io/v1/": { username: "hub", password: "p" },
        "localhost:5000": { username: "local", password: "p" },
      }),
    ]);
    expect(keyring.lookup("alpine")).toEqual([basic("hub", "p")]);
    expect(keyring.lookup("localhost:5000/alpine")).toEqual([basic("local", "p")]);
    expect(keyring.lookup("localhost/alpine")).toEqual([]);
  });

  it("is empty without entries, skips keys without a host, and rejects invalid references", () => {
    expect(new Keyring([]).lookup("nginx")).toEqual([]);
    expect(keyringOf({ "https://": "x", "/path": "y" }).size).toBe(0);
    let caught: unknown;
    try {
      new Keyring([]).lookup("Not A Reference");
    } catch (e) {
      caught = e;
    }
    expect(isRegistryError(caught, "INVALID_REFERENCE")).toBe(true);
  });
});
