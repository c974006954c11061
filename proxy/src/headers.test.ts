import { describe, expect, it } from "vitest";
import { clientResponseHeaders, declaredLength, upstreamRequestHeaders } from "./headers";

describe("upstreamRequestHeaders", () => {
  it("forwards Accept, Range and If-Range only, joining repeated values", () => {
    expect(
      upstreamRequestHeaders({
        accept: "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json",
        range: "bytes=100-",
        "if-range": '"sha256:abc"',
        authorization: "Bearer secret",
        cookie: "a=b",
        host: "localhost:7439",
        connection: "keep-alive",
        "user-agent": "containerd/1.6",
        "x-forwarded-for": "10.0.0.1",
      }),
    ).toEqual({
      accept: "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json",
      range: "bytes=100-",
      "if-range": '"sha256:abc"',
    });
  });

  it("returns nothing for a bare request", () => {
    expect(upstreamRequestHeaders({ host: "x" })).toEqual({});
  });
});

describe("clientResponseHeaders", () => {
  it("keeps content headers, drops hop-by-hop, auth and storage headers, adds the API version", () => {
    expect(
      clientResponseHeaders({
        "content-type": "application/octet-stream",
        "content-length": "1048576",
        "content-range": "bytes 0-1048575/2097152",
        "docker-content-digest": "sha256:abc",
        etag: '"sha256:abc"',
        "accept-ranges": "bytes",
        "last-modified": "Tue, 24 Nov 2026 10:00:00 GMT",
        "retry-after": "5",
        "transfer-encoding": "chunked",
        connection: "keep-alive",
        "keep-alive": "timeout=5",
        "set-cookie": ["a=b", "c=d"],
        "www-authenticate": 'Bearer realm="https://auth.example.com/token"',
        "x-amz-request-id": "123",
        "docker-distribution-api-version": "registry/2.0",
        location: "https://s3.example.com/blob",
      }),
    ).toEqual({
      "docker-distribution-api-version": "registry/2.0",
      "content-type": "application/octet-stream",
      "content-length": "1048576",
      "content-range": "bytes 0-1048575/2097152",
      "docker-content-digest": "sha256:abc",
      etag: '"sha256:abc"',
      "accept-ranges": "bytes",
      "last-modified": "Tue, 24 Nov 2026 10:00:00 GMT",
      "retry-after": "5",
    });
  });

  it("stringifies numbers and ignores undefined and empty arrays", () => {
    expect(clientResponseHeaders({ "content-length": 12, etag: undefined, "content-type": [] })).toEqual({
      "docker-distribution-api-version": "registry/2.0",
      "content-length": "12",
    });
  });
});

describe("declaredLength", () => {
  it.each<[Record<string, string | string[] | undefined>, number | undefined]>([
    [{ "content-length": "42" }, 42],
    [{ "content-length": "0" }, 0],
    [{}, undefined],
    [{ "content-length": "-1" }, undefined],
    [{ "content-length": "12abc" }, undefined],
    [{ "content-length": ["5", "6"] }, undefined],
  ])("%j → %s", (headers, expected) => expect(declaredLength(headers)).toBe(expected));
});
