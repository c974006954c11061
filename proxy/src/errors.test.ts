import { describe, expect, it } from "vitest";
import { RegistryError } from "../../registry-client/src/errors";
import { clientErrorOf, isProxyError, ociErrorBody, ProxyError } from "./errors";

describe("clientErrorOf", () => {
  it.each<[string, unknown, number, string]>([
    [
      "an origin 404 keeps its OCI code",
      new RegistryError("MANIFEST_UNKNOWN", "m", { statusCode: 404 }),
      404,
      "MANIFEST_UNKNOWN",
    ],
    [
      "an origin 401 stays 401",
      new RegistryError("UNAUTHORIZED", "m", { statusCode: 401 }),
      401,
      "UNAUTHORIZED",
    ],
    ["an origin 403", new RegistryError("DENIED", "m", { statusCode: 403 }), 403, "DENIED"],
    [
      "an origin 503 after retries",
      new RegistryError("HTTP_ERROR", "m", { statusCode: 503 }),
      503,
      "HTTP_ERROR",
    ],
    ["a connect failure is 502", new RegistryError("UPSTREAM_UNREACHABLE", "m"), 502, "UPSTREAM_UNREACHABLE"],
    ["a timeout is 504", new RegistryError("UPSTREAM_TIMEOUT", "m"), 504, "UPSTREAM_TIMEOUT"],
    [
      "an auth flow failure without status is 401",
      new RegistryError("UNAUTHORIZED", "m"),
      401,
      "UNAUTHORIZED",
    ],
    ["a token server failure is 502", new RegistryError("AUTH_FAILED", "m"), 502, "AUTH_FAILED"],
    ["a proxy error keeps its status", new ProxyError("NAME_INVALID", "m"), 400, "NAME_INVALID"],
    ["anything else is 500", new Error("bug"), 500, "UPSTREAM_ERROR"],
  ])("%s", (_what, err, status, code) => {
    const e = clientErrorOf(err);
    expect(e.statusCode).toBe(status);
    expect(e.code).toBe(code);
  });

  it("passes Retry-After on for a 429", () => {
    const e = clientErrorOf(
      new RegistryError("TOOMANYREQUESTS", "slow down", { statusCode: 429, retryAfterMs: 1500 }),
    );
    expect(e).toMatchObject({ statusCode: 429, headers: { "retry-after": "2" } });
  });

  it.each<[string, RegistryError]>([
    [
      "connection refused",
      new RegistryError("UPSTREAM_UNREACHABLE", "GET /v2/x on 10.0.0.9:22: ECONNREFUSED"),
    ],
    [
      "a timeout",
      new RegistryError(
        "UPSTREAM_TIMEOUT",
        "GET /v2/x on 10.0.0.9:6443: timed out (UND_ERR_CONNECT_TIMEOUT)",
      ),
    ],
    [
      "a DNS failure",
      new RegistryError("UPSTREAM_UNREACHABLE", "cannot resolve kube-dns.internal: ENOTFOUND"),
    ],
    [
      "a refused address",
      new RegistryError("ADDRESS_REFUSED", "connection to 10.0.0.9:22 refused: 10.0.0.9 is private"),
    ],
    [
      "a refused redirect",
      new RegistryError("REDIRECT_REFUSED", "10.0.0.9:5000: redirect to http://10.0.0.9:22 refused"),
    ],
    [
      "an origin 404",
      new RegistryError("MANIFEST_UNKNOWN", "GET 10.0.0.9:5000/v2/x: HTTP 404 MANIFEST_UNKNOWN", {
        statusCode: 404,
      }),
    ],
    [
      "a token server failure",
      new RegistryError("AUTH_FAILED", "token server 10.0.0.9:8443 answered HTTP 500"),
    ],
  ])("never echoes an upstream address or errno to the client: %s", (_what, err) => {
    const { message } = clientErrorOf(err);
    expect(message).not.toMatch(/10\.0\.0\.9|kube-dns|ECONNREFUSED|ENOTFOUND|UND_ERR|:22\b|:6443/);
    expect(message).toMatch(/origin registry/);
  });

  it("answers a refused origin address 403 DENIED", () => {
    expect(clientErrorOf(new RegistryError("ADDRESS_REFUSED", "x"))).toMatchObject({
      statusCode: 403,
      code: "DENIED",
    });
  });

  it("never leaks an unexpected error's message", () => {
    expect(clientErrorOf(new Error("password=hunter2")).message).toBe("internal error");
  });
});

describe("ProxyError", () => {
  it("has a stable code, a default status per code, and survives duplicate module copies", () => {
    const e = new ProxyError("UPSTREAM_TIMEOUT", "slow");
    expect(e.statusCode).toBe(504);
    expect(new ProxyError("UNSUPPORTED", "x", { statusCode: 405 }).statusCode).toBe(405);
    const clone = Object.assign(Object.create(null) as object, {
      [Symbol.for("kuik.proxy.ProxyError")]: true,
    });
    expect(clone instanceof ProxyError).toBe(true);
    expect(isProxyError(e, "UPSTREAM_TIMEOUT")).toBe(true);
    expect(isProxyError(e, "NAME_INVALID")).toBe(false);
  });
});

describe("ociErrorBody", () => {
  it("is the distribution error document", () => {
    expect(JSON.parse(ociErrorBody("NAME_UNKNOWN", "no such repo"))).toEqual({
      errors: [{ code: "NAME_UNKNOWN", message: "no such repo" }],
    });
  });
});
