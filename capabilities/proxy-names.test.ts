/**
 * The contract between the webhook and the proxy (they may not import each other): every image the webhook rewrites
 * is read back by the proxy as the same origin registry and repository, and stored under the cache repository the
 * operator copies it to.
 */
import { describe, expect, it } from "vitest";
import { cacheReference } from "./caching/cache-reference";
import { toProxyImage } from "./shared/proxy-image";
import { decodeName } from "../proxy/src/names";
import { parseImageReference } from "../registry-client/src/reference";

const DIGEST = `sha256:${"a".repeat(64)}`;

describe("webhook → proxy names", () => {
  it.each([
    "nginx:1.25",
    "bitnami/redis:7",
    "user-2/app",
    "team-65536/app:v1",
    "ghcr.io/org/app:v1",
    "docker.io/library/nginx:1.25",
    "index.docker.io/library/nginx",
    "185.145.250.247:30042/alpine",
    "Registry.Example.com:5000/a/b/c:v2",
    `quay.io/org/app@${DIGEST}`,
  ])("%s", image => {
    const ref = parseImageReference(image);
    const rewritten = toProxyImage(image, ref, 7439);
    if (!("image" in rewritten)) throw new Error(`not rewritten: ${rewritten.problem}`);
    const path = rewritten.image.slice("localhost:7439/".length);
    const name = path.replace(/@.*$/, "").replace(/:[^/]*$/, "");
    const origin = decodeName(name);
    expect({ registry: origin.registry, repository: origin.repository }).toEqual({
      registry: ref.registry.toLowerCase(), // host names are case-insensitive; the webhook writes them lower-case
      repository: ref.repository,
    });
    expect(origin.cacheRepository).toBe(cacheReference(ref, "cache:5000").repository);
  });
});
