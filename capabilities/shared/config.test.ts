import { describe, expect, it } from "vitest";
import { compileImageRegex, ConfigError, ENV, loadConfig, type KuikConfig } from "./config";

function problemsOf(env: Record<string, string>): readonly string[] {
  try {
    loadConfig(env);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).code).toBe("INVALID_CONFIG");
    return (e as ConfigError).problems;
  }
  throw new Error("loadConfig did not throw");
}

describe("loadConfig", () => {
  it("has kuik v1's Helm defaults", () => {
    expect(loadConfig({})).toEqual<KuikConfig>({
      proxyPort: 7439,
      namespace: "kuik-system",
      expiryDelayDays: 30,
      expiryDelayMs: 30 * 24 * 3600 * 1000,
      ignoredNamespaces: [],
      ignoredImages: [],
      acceptedImages: [],
      ignorePullPolicyAlways: true,
      rewriteLoopbackRegistries: false,
      architectures: [],
      insecureRegistries: [],
      rootCertificateAuthorities: [],
      registryEndpoint: "kube-image-keeper-registry.kuik-system.svc:5000",
      registryUrl: "http://kube-image-keeper-registry.kuik-system.svc:5000",
      maxConcurrentCachedImageReconciles: 3,
      bootstrap: false,
      peprFastClone: true,
      proxyGate: true,
      allowedOrigins: [],
    });
  });

  it("treats empty and blank variables as unset", () => {
    expect(loadConfig({ [ENV.proxyPort]: "", [ENV.architectures]: "  " })).toEqual(loadConfig({}));
  });

  it("reads every variable", () => {
    const config = loadConfig({
      KUIK_PROXY_HOST_PORT: "8082",
      KUIK_NAMESPACE: "kuik",
      KUIK_CACHED_IMAGES_EXPIRY_DELAY: "0.5",
      KUIK_WEBHOOK_IGNORED_NAMESPACES: "ci, build",
      KUIK_WEBHOOK_IGNORED_IMAGES: '["^docker\\\\.io/", "a{1,3}"]',
      KUIK_WEBHOOK_ACCEPTED_IMAGES: "^ghcr\\.io/\n^quay\\.io/,x",
      KUIK_WEBHOOK_IGNORE_PULL_POLICY_ALWAYS: "False",
      KUIK_REWRITE_LOOPBACK_REGISTRIES: "true",
      KUIK_ARCHITECTURES: '["amd64","arm64"]',
      KUIK_INSECURE_REGISTRIES: "https://Reg.Example:5000/,plain.example",
      KUIK_ROOT_CERTIFICATE_AUTHORITIES: "/etc/ssl/certs/registry-certificate-authorities/ca.crt",
      KUIK_REGISTRY_ENDPOINT: "https://cache.kuik.svc:5000/",
      KUIK_MAX_CONCURRENT_CACHED_IMAGE_RECONCILES: "8",
      KUIK_BOOTSTRAP: "true",
      KUIK_PEPR_FAST_CLONE: "false",
      KUIK_PROXY_GATE: "false",
      KUIK_ALLOWED_ORIGINS: "10.96.0.0/12, registry.local:5000",
    });
    expect(config).toEqual<KuikConfig>({
      proxyPort: 8082,
      namespace: "kuik",
      expiryDelayDays: 0.5,
      expiryDelayMs: 12 * 3600 * 1000,
      ignoredNamespaces: ["ci", "build"],
      ignoredImages: ["^docker\\.io/", "a{1,3}"],
      // Regex lists are split on newlines only: a comma may be part of a regex.
      acceptedImages: ["^ghcr\\.io/", "^quay\\.io/,x"],
      ignorePullPolicyAlways: false,
      rewriteLoopbackRegistries: true,
      architectures: ["amd64", "arm64"],
      // URLs are accepted as well as v1's bare host[:port] (docs/v1-differences.md, B8).
      insecureRegistries: ["reg.example:5000", "plain.example"],
      rootCertificateAuthorities: ["/etc/ssl/certs/registry-certificate-authorities/ca.crt"],
      registryEndpoint: "cache.kuik.svc:5000",
      registryUrl: "https://cache.kuik.svc:5000",
      maxConcurrentCachedImageReconciles: 8,
      bootstrap: true,
      peprFastClone: false,
      proxyGate: false,
      allowedOrigins: ["10.96.0.0/12", "registry.local:5000"],
    });
  });

  it.each([
    ["1", true],
    ["yes", true],
    ["TRUE", true],
    ["0", false],
    ["no", false],
    ["off", false],
  ])("reads boolean %s as %s", (raw, expected) => {
    expect(loadConfig({ [ENV.ignorePullPolicyAlways]: raw }).ignorePullPolicyAlways).toBe(expected);
  });

  it.each([
    [ENV.proxyPort, "0"],
    [ENV.proxyPort, "65536"],
    [ENV.proxyPort, "80.5"],
    [ENV.proxyPort, "http"],
    [ENV.expiryDelayDays, "-1"],
    [ENV.expiryDelayDays, "Infinity"],
    [ENV.maxConcurrentCachedImageReconciles, "0"],
    [ENV.ignorePullPolicyAlways, "maybe"],
    [ENV.bootstrap, "sometimes"],
    [ENV.peprFastClone, "fast"],
    [ENV.namespace, "Kuik_System"],
    [ENV.ignoredNamespaces, "ok,Not_OK"],
    [ENV.ignoredImages, "(unclosed"],
    [ENV.acceptedImages, '["ok", 3]'],
    [ENV.architectures, "amd64,arm/v7"],
    [ENV.insecureRegistries, "reg example"],
    [ENV.rootCertificateAuthorities, "relative/ca.crt"],
    [ENV.registryEndpoint, "ftp://cache:5000"],
    [ENV.registryEndpoint, "cache:5000/path"],
  ])("rejects %s=%j", (name, value) => {
    const problems = problemsOf({ [name]: value });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain(name);
  });

  it("lists every problem at once", () => {
    const problems = problemsOf({
      [ENV.proxyPort]: "-1",
      [ENV.expiryDelayDays]: "soon",
      [ENV.ignoredImages]: "(a\n[b",
      [ENV.acceptedImages]: "*x",
    });
    expect(problems).toHaveLength(5);
    expect(String(new ConfigError(problems).message)).toMatch(/^invalid kuik configuration:\n- /);
  });
});

describe("compileImageRegex", () => {
  it.each([
    ["185.145.250.247\\:30042", "185.145.250.247:30042/alpine", true],
    ["(?i)^NGINX", "nginx:1.25", true],
    ["^NGINX", "nginx:1.25", false],
    ["alpine", "docker.io/library/alpine:3", true],
    ["^alpine$", "docker.io/library/alpine:3", false],
  ])("%s on %s → %s", (source, image, expected) => {
    expect(compileImageRegex(source).test(image)).toBe(expected);
  });

  it("returns a stateless regex (no g flag)", () => {
    const re = compileImageRegex("(?is)x");
    expect(re.flags).toBe("is");
    expect([re.test("X"), re.test("X")]).toEqual([true, true]);
  });
});
