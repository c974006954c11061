import { describe, expect, it } from "vitest";
import { isProxyError } from "./errors";
import { cacheRepositoryOf, decodeName } from "./names";

describe("decodeName", () => {
  // [<name> as the proxy sees it, origin registry, origin repository, cache repository]
  it.each<[string, string, string, string]>([
    // Docker Hub, as written in the pod spec: normalised like the kubelet does
    ["nginx", "docker.io", "library/nginx", "docker.io/library/nginx"],
    ["bitnami/redis", "docker.io", "bitnami/redis", "docker.io/bitnami/redis"],
    ["library/nginx", "docker.io", "library/nginx", "docker.io/library/nginx"],
    ["docker.io/library/nginx", "docker.io", "library/nginx", "docker.io/library/nginx"],
    ["docker.io/nginx", "docker.io", "library/nginx", "docker.io/library/nginx"],
    ["index.docker.io/nginx", "docker.io", "library/nginx", "docker.io/library/nginx"],
    ["ubuntu-12.04-base", "docker.io", "library/ubuntu-12.04-base", "docker.io/library/ubuntu-12.04-base"],
    // registries with a dot
    ["ghcr.io/org/app", "ghcr.io", "org/app", "ghcr.io/org/app"],
    [
      "quay.io/jetstack/cert-manager-controller",
      "quay.io",
      "jetstack/cert-manager-controller",
      "quay.io/jetstack/cert-manager-controller",
    ],
    ["registry.k8s.io/pause", "registry.k8s.io", "pause", "registry.k8s.io/pause"],
    // host-port: the webhook turned ':' into '-'
    ["185.145.250.247-30042/alpine", "185.145.250.247:30042", "alpine", "185.145.250.247-30042/alpine"],
    ["127.0.0.1-5000/team/app", "127.0.0.1:5000", "team/app", "127.0.0.1-5000/team/app"],
    ["myreg.com-5000/app", "myreg.com:5000", "app", "myreg.com-5000/app"],
    ["registry-5000.enix.io-5000/x", "registry-5000.enix.io:5000", "x", "registry-5000.enix.io-5000/x"],
    // dot-less host with a port: v1 misread these as Docker Hub namespaces (docs/v1-differences.md, B7)
    ["myregistry-5000/app", "myregistry:5000", "app", "myregistry-5000/app"],
    ["localhost-5000/app", "localhost:5000", "app", "localhost-5000/app"],
    ["my-registry-443/a/b/c", "my-registry:443", "a/b/c", "my-registry-443/a/b/c"],
    // localhost without a port, and dashes inside hosts that are not ports
    ["localhost/app", "localhost", "app", "localhost/app"],
    ["my-host.example.com/app-1", "my-host.example.com", "app-1", "my-host.example.com/app-1"],
    // a single component ending in -digits is an official image, not a host
    ["app-1", "docker.io", "library/app-1", "docker.io/library/app-1"],
  ])("%s → %s / %s (cache %s)", (name, registry, repository, cacheRepository) => {
    expect(decodeName(name)).toEqual({ registry, repository, cacheRepository });
  });

  it.each<[string, string]>([
    ["", "must not be empty"],
    ["Nginx", "lowercase"],
    ["foo//bar", "invalid repository name"],
    ["myregistry-99999/app", "port 99999 out of range"],
    ["myregistry-0/app", "port 0 out of range"],
    ["ghcr.io/", "missing repository name"],
    ["a".repeat(300), "255"],
    ["foo/bar%2Fbaz", "invalid repository name"],
  ])("rejects %j (%s)", (name, fragment) => {
    let caught: unknown;
    try {
      decodeName(name);
    } catch (e) {
      caught = e;
    }
    expect(isProxyError(caught, "NAME_INVALID")).toBe(true);
    expect((caught as Error).message).toContain(fragment);
    expect((caught as Error).message).toContain(JSON.stringify(name));
  });
});

describe("cacheRepositoryOf", () => {
  it("lower-cases the registry and replaces ':' by '-'", () => {
    expect(cacheRepositoryOf("Registry.Example.com:5000", "team/app")).toBe(
      "registry.example.com-5000/team/app",
    );
    expect(cacheRepositoryOf("docker.io", "library/nginx")).toBe("docker.io/library/nginx");
  });
});
