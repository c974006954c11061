import { describe, expect, it } from "vitest";
import { errorFromResponse, requestTarget, resourcePath } from "./http";
import { KubeApiError } from "./ports";

describe("resourcePath", () => {
  it.each([
    [{ group: "", version: "v1", plural: "pods" }, "/api/v1/pods"],
    [
      { group: "", version: "v1", plural: "secrets", namespace: "ns", name: "s" },
      "/api/v1/namespaces/ns/secrets/s",
    ],
    [
      { group: "", version: "v1", plural: "events", namespace: "kuik-system" },
      "/api/v1/namespaces/kuik-system/events",
    ],
    [
      { group: "kuik.enix.io", version: "v1alpha1", plural: "cachedimages", name: "docker.io-nginx-1.25" },
      "/apis/kuik.enix.io/v1alpha1/cachedimages/docker.io-nginx-1.25",
    ],
    [
      {
        group: "kuik.enix.io",
        version: "v1alpha1",
        plural: "repositories",
        name: "r",
        subresource: "status",
      },
      "/apis/kuik.enix.io/v1alpha1/repositories/r/status",
    ],
    // names never come from users unchecked, but a path must not be forgeable
    [
      { group: "", version: "v1", plural: "secrets", namespace: "a/b", name: "../x?y" },
      "/api/v1/namespaces/a%2Fb/secrets/..%2Fx%3Fy",
    ],
  ])("%j → %s", (ref, expected) => {
    expect(resourcePath(ref)).toBe(expected);
  });
});

describe("requestTarget", () => {
  it("appends the encoded query and keeps the server's path prefix", () => {
    expect(
      requestTarget("/k8s", {
        path: "/api/v1/pods",
        query: { labelSelector: "kuik.enix.io/managed", limit: "500", continue: "a+b=" },
      }),
    ).toBe("/k8s/api/v1/pods?labelSelector=kuik.enix.io%2Fmanaged&limit=500&continue=a%2Bb%3D");
    expect(requestTarget("", { path: "/api/v1/pods" })).toBe("/api/v1/pods");
  });
});

describe("errorFromResponse", () => {
  it("uses the message of a Status body", () => {
    const body = JSON.stringify({
      kind: "Status",
      apiVersion: "v1",
      status: "Failure",
      message: 'cachedimages.kuik.enix.io "x" not found',
      reason: "NotFound",
      code: 404,
    });
    const e = errorFromResponse(404, body, "GET /apis/kuik.enix.io/v1alpha1/cachedimages/x");
    expect(e).toBeInstanceOf(KubeApiError);
    expect(e.status).toBe(404);
    expect(e.code).toBe("KUBE_API_ERROR");
    expect(e.message).toBe(
      'GET /apis/kuik.enix.io/v1alpha1/cachedimages/x: cachedimages.kuik.enix.io "x" not found',
    );
  });

  it.each([
    [503, "", "x: HTTP 503"],
    [502, "<html>Bad gateway</html>\n", "x: HTTP 502: <html>Bad gateway</html>"],
    [401, '{"kind":"Status","message":""}', 'x: HTTP 401: {"kind":"Status","message":""}'],
  ])("falls back to the status and a short text (%i)", (status, body, message) => {
    const e = errorFromResponse(status, body, "x");
    expect([e.status, e.message]).toEqual([status, message]);
  });

  it("shortens a long non-Status body", () => {
    expect(errorFromResponse(500, "a".repeat(10_000), "x").message.length).toBeLessThan(250);
  });
});
