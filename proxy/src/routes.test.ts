import { describe, expect, it } from "vitest";
import { parseRoute } from "./routes";

const D = `sha256:${"a".repeat(64)}`;

describe("parseRoute", () => {
  it.each(["GET", "HEAD"])("%s /v2/ is the API ping", method => {
    expect(parseRoute(method, "/v2/")).toEqual({ type: "ping" });
    expect(parseRoute(method, "/v2")).toEqual({ type: "ping" });
  });

  // [target, kind, name, reference]
  it.each<[string, "manifest" | "blob", string, string]>([
    ["/v2/nginx/manifests/1.25", "manifest", "nginx", "1.25"],
    ["/v2/nginx/manifests/latest?ns=docker.io", "manifest", "nginx", "latest"],
    [`/v2/nginx/manifests/${D}`, "manifest", "nginx", D],
    [`/v2/185.145.250.247-30042/alpine/blobs/${D}`, "blob", "185.145.250.247-30042/alpine", D],
    // the name is greedy: a repository may itself contain "blobs" or "manifests"
    ["/v2/org/blobs/manifests/v1", "manifest", "org/blobs", "v1"],
    [`/v2/org/manifests/x/blobs/${D}`, "blob", "org/manifests/x", D],
    [`/v2/a/b/manifests/${"sha512:" + "b".repeat(128)}`, "manifest", "a/b", `sha512:${"b".repeat(128)}`],
  ])("%s", (target, kind, name, reference) => {
    for (const method of ["GET", "HEAD"]) {
      expect(parseRoute(method, target)).toEqual({
        type: "content",
        kind,
        name,
        reference,
      });
    }
  });

  // [method, target, status, code]
  it.each<[string, string, number, string]>([
    ["GET", "/", 404, "UNSUPPORTED"],
    ["GET", "/v2/_catalog", 404, "UNSUPPORTED"],
    ["GET", "/v2/nginx/tags/list", 404, "UNSUPPORTED"],
    ["POST", "/v2/nginx/blobs/uploads/", 404, "UNSUPPORTED"],
    ["PATCH", "/v2/nginx/blobs/uploads/1234", 404, "UNSUPPORTED"],
    ["GET", "/v2/nginx/manifests/", 404, "UNSUPPORTED"],
    ["GET", "/v2/manifests/latest", 404, "UNSUPPORTED"],
    ["PUT", "/v2/nginx/manifests/1.25", 405, "UNSUPPORTED"],
    ["DELETE", `/v2/nginx/blobs/${D}`, 405, "UNSUPPORTED"],
    ["POST", "/v2/", 405, "UNSUPPORTED"],
    ["GET", "/v2/nginx/blobs/latest", 400, "DIGEST_INVALID"],
    ["GET", "/v2/nginx/blobs/sha256:abc", 400, "DIGEST_INVALID"],
    ["GET", `/v2/nginx/blobs/sha256:${"A".repeat(64)}`, 400, "DIGEST_INVALID"],
    ["GET", "/v2/nginx/manifests/sha256:abc", 400, "DIGEST_INVALID"],
    ["GET", "/v2/nginx/manifests/-bad", 400, "TAG_INVALID"],
    ["GET", `/v2/nginx/manifests/${"t".repeat(129)}`, 400, "TAG_INVALID"],
  ])("%s %s → %i %s", (method, target, status, code) => {
    const route = parseRoute(method, target);
    expect(route.type).toBe("refused");
    if (route.type !== "refused") return;
    expect(route.error.statusCode).toBe(status);
    expect(route.error.code).toBe(code);
    expect(route.allow).toBe(status === 405 ? "GET, HEAD" : undefined);
  });
});
