/**
 * Proves the test harness itself against the real binaries: registries of every kind, token issuer, fault proxy,
 * blob tampering, image build + push (single/multi-arch, OCI/Docker) and, when possible, containerd pulls.
 * If one of these fails, every other integration test is suspect: fix this file first.
 */
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { request as undiciRequest } from "undici";
import { criPull, startContainerd, writeHostsToml, type StartedContainerd } from "../harness/containerd";
import { match, startFaultProxy, tamperBlob, type FaultProxy } from "../harness/faults";
import {
  buildImage,
  copyImage,
  inspectRaw,
  pushImage,
  skopeo,
  skopeoCredArgs,
  skopeoTlsArgs,
  type BuiltImage,
} from "../harness/images";
import { simpleRequest } from "../harness/net";
import {
  startCache,
  startOriginBasic,
  startOriginToken,
  startPullThrough,
  stopAll,
  type StartedRegistry,
} from "../harness/registries";
import { decodeJwt } from "../harness/token-issuer";

const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
const DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json";
const ACCEPT = [
  OCI_INDEX,
  OCI_MANIFEST,
  DOCKER_LIST,
  "application/vnd.docker.distribution.manifest.v2+json",
].join(", ");

const sha256 = (b: Buffer): string => `sha256:${createHash("sha256").update(b).digest("hex")}`;

interface Manifest {
  mediaType: string;
  layers?: Array<{ digest: string; size: number }>;
  manifests?: Array<{ digest: string; platform?: { architecture: string; variant?: string } }>;
}

let cache: StartedRegistry;
let basic: StartedRegistry;
let token: StartedRegistry;
let single: BuiltImage;
let multi: BuiltImage;

beforeAll(async () => {
  [cache, basic, token, single, multi] = await Promise.all([
    startCache(),
    startOriginBasic(),
    startOriginToken({ publicRepos: ["public/*"], users: { reader: "reader-pw" } }),
    buildImage({ size: "1M", layers: 2, seed: "harness" }),
    buildImage({ size: "512K", arch: ["amd64", "arm64", "arm/v7"], seed: "harness" }),
  ]);
});

afterAll(async () => {
  await stopAll(cache, basic, token);
});

describe("cache registry", () => {
  it("takes a push and serves the manifest and blobs back", async () => {
    const pushed = await pushImage(single, cache, { repo: "library/single", tag: "v1" });
    expect(pushed.digest).toBe(single.digest);
    expect(pushed.mediaType).toBe(OCI_MANIFEST);

    const m = await simpleRequest(`${cache.url}/v2/library/single/manifests/v1`, {
      headers: { accept: ACCEPT },
    });
    expect(m.status).toBe(200);
    expect(m.headers["docker-content-digest"]).toBe(single.digest);
    const layer = (JSON.parse(m.body.toString()) as Manifest).layers?.[0];
    expect(layer).toBeDefined();
    const blob = await simpleRequest(`${cache.url}/v2/library/single/blobs/${layer?.digest}`);
    expect(blob.status).toBe(200);
    expect(sha256(blob.body)).toBe(layer?.digest);

    // pull with a real client: registry -> registry copy
    expect(await copyImage(cache, "library/single:v1", cache, "copy/single:v1")).toBe(single.digest);
  });

  it("has delete enabled", async () => {
    await pushImage(single, cache, { repo: "to-delete" });
    const del = await simpleRequest(`${cache.url}/v2/to-delete/manifests/${single.digest}`, {
      method: "DELETE",
    });
    expect(del.status).toBe(202);
  });

  it("survives kill + restart with its data", async () => {
    await pushImage(single, cache, { repo: "persist" });
    cache.kill();
    await cache.exited();
    expect(cache.running).toBe(false);
    await expect(simpleRequest(`${cache.url}/v2/`, { timeoutMs: 1000 })).rejects.toThrow();
    await cache.restart();
    const m = await simpleRequest(`${cache.url}/v2/persist/manifests/latest`, {
      headers: { accept: ACCEPT },
    });
    expect(m.status).toBe(200);
  });
});

describe("origin-basic registry", () => {
  it("demands basic credentials over TLS with the harness CA", async () => {
    expect(basic.url).toMatch(/^https:/);
    const anon = await simpleRequest(`${basic.url}/v2/`, { caFile: basic.caFile });
    expect(anon.status).toBe(401);
    expect(anon.headers["www-authenticate"]).toMatch(/^Basic /);
    expect(
      (await simpleRequest(`${basic.url}/v2/`, { caFile: basic.caFile, auth: "kuik:wrong" })).status,
    ).toBe(401);
    expect(
      (await simpleRequest(`${basic.url}/v2/`, { caFile: basic.caFile, auth: basic.creds })).status,
    ).toBe(200);
    // without our CA, TLS verification fails
    await expect(simpleRequest(`${basic.url}/v2/`)).rejects.toThrow(
      /self.signed|unable to verify|certificate/i,
    );
  });

  it("works with skopeo (--dest-cert-dir, --dest-creds) and rejects wrong credentials", async () => {
    const pushed = await pushImage(single, basic, { repo: "app", tag: "v1", format: "docker" });
    expect(pushed.mediaType).toBe("application/vnd.docker.distribution.manifest.v2+json");
    expect(pushed.digest).not.toBe(single.digest); // converted manifest
    await expect(inspectRaw(basic, "app:v1", "kuik:wrong")).rejects.toThrow(
      /unauthorized|401|invalid username/i,
    );
    await expect(inspectRaw(basic, "app:v1", null)).rejects.toThrow();
  });
});

describe("origin-token registry", () => {
  const service = "kuik-harness-registry";
  const tokenUrl = (scope: string): string =>
    `${token.realm}?service=${service}&scope=${encodeURIComponent(scope)}`;

  it("challenges with a Bearer realm", async () => {
    const r = await simpleRequest(`${token.url}/v2/`, { caFile: token.caFile });
    expect(r.status).toBe(401);
    expect(r.headers["www-authenticate"]).toBe(`Bearer realm="${token.realm}",service="${service}"`);
  });

  it("issues tokens only for allowed scopes; wrong password is 401", async () => {
    const issuer = token.tokenIssuer;
    expect(issuer).toBeDefined();
    issuer?.resetCounters();
    const bad = await simpleRequest(tokenUrl("repository:app:pull"), {
      caFile: token.caFile,
      auth: "kuik:nope",
    });
    expect(bad.status).toBe(401);

    const good = await simpleRequest(tokenUrl("repository:app:pull,push"), {
      caFile: token.caFile,
      auth: token.creds,
    });
    expect(good.status).toBe(200);
    const body = JSON.parse(good.body.toString()) as {
      token: string;
      access_token: string;
      expires_in: number;
      issued_at: string;
    };
    expect(body.access_token).toBe(body.token);
    expect(body.expires_in).toBe(300);
    const { header, claims } = decodeJwt(body.token);
    expect(header.alg).toBe("ES256");
    expect(Array.isArray(header.x5c)).toBe(true);
    expect(claims).toMatchObject({
      sub: "kuik",
      aud: service,
      access: [{ type: "repository", name: "app", actions: ["pull", "push"] }],
    });

    // reader may not push; anonymous gets nothing on private repos but pull on public/*
    const reader = await simpleRequest(tokenUrl("repository:app:pull,push"), {
      caFile: token.caFile,
      auth: "reader:reader-pw",
    });
    expect(decodeJwt((JSON.parse(reader.body.toString()) as { token: string }).token).claims.access).toEqual([
      { type: "repository", name: "app", actions: ["pull"] },
    ]);
    const anon = await simpleRequest(tokenUrl("repository:app:pull"), { caFile: token.caFile });
    expect(anon.status).toBe(200);
    const anonToken = (JSON.parse(anon.body.toString()) as { token: string }).token;
    expect(decodeJwt(anonToken).claims.access).toEqual([]);
    const anonPublic = await simpleRequest(tokenUrl("repository:public/x:pull,push"), {
      caFile: token.caFile,
    });
    expect(
      decodeJwt((JSON.parse(anonPublic.body.toString()) as { token: string }).token).claims.access,
    ).toEqual([{ type: "repository", name: "public/x", actions: ["pull"] }]);

    // the registry accepts the signature and enforces the (empty) access
    const denied = await simpleRequest(`${token.url}/v2/app/tags/list`, {
      caFile: token.caFile,
      headers: { authorization: `Bearer ${anonToken}` },
    });
    expect(denied.status).toBe(401);
    expect(denied.headers["www-authenticate"]).toMatch(/insufficient_scope/);
    const allowed = await simpleRequest(`${token.url}/v2/app/tags/list`, {
      caFile: token.caFile,
      headers: { authorization: `Bearer ${body.token}` },
    });
    expect(allowed.status).toBe(404); // authorized; the repository just does not exist yet

    expect(issuer?.count("/token")).toBe(5);
    expect(issuer?.countsByPath()).toEqual({ "/token": 5 });
  });

  it("supports the OAuth2 POST flow with refresh tokens", async () => {
    const form = (o: Record<string, string>): string => new URLSearchParams(o).toString();
    const headers = { "content-type": "application/x-www-form-urlencoded" };
    const pw = await simpleRequest(token.realm ?? "", {
      method: "POST",
      caFile: token.caFile,
      headers,
      body: form({
        grant_type: "password",
        username: "kuik",
        password: "kuik-secret",
        service,
        scope: "repository:app:pull",
        access_type: "offline",
        client_id: "test",
      }),
    });
    expect(pw.status).toBe(200);
    const { refresh_token: rt } = JSON.parse(pw.body.toString()) as { refresh_token?: string };
    expect(rt).toBeTruthy();
    const refreshed = await simpleRequest(token.realm ?? "", {
      method: "POST",
      caFile: token.caFile,
      headers,
      body: form({
        grant_type: "refresh_token",
        refresh_token: rt ?? "",
        service,
        scope: "repository:app:pull",
        client_id: "test",
      }),
    });
    expect(refreshed.status).toBe(200);
    expect(
      decodeJwt((JSON.parse(refreshed.body.toString()) as { access_token: string }).access_token).claims.sub,
    ).toBe("kuik");
    const wrong = await simpleRequest(token.realm ?? "", {
      method: "POST",
      caFile: token.caFile,
      headers,
      body: form({
        grant_type: "password",
        username: "kuik",
        password: "x",
        service,
        scope: "repository:app:pull",
        client_id: "test",
      }),
    });
    expect(wrong.status).toBe(401);
  });

  it("works end to end with skopeo; anonymous pulls only public repositories", async () => {
    const pushed = await pushImage(multi, token, { repo: "app", tag: "multi" });
    expect(pushed.digest).toBe(multi.digest);
    await pushImage(single, token, { repo: "public/app", tag: "v1" });
    expect(sha256(await inspectRaw(token, "public/app:v1", null))).toBe(single.digest);
    await expect(inspectRaw(token, "app:multi", null)).rejects.toThrow(/denied|unauthorized/i);
    await expect(inspectRaw(token, "app:multi", "kuik:wrong")).rejects.toThrow(
      /unauthorized|401|invalid username/i,
    );
    const args = [
      "inspect",
      ...skopeoTlsArgs(token, ""),
      ...skopeoCredArgs(token, ""),
      `docker://${token.host}/app:multi`,
    ];
    const inspected = JSON.parse((await skopeo(args, { freshBlobInfoCache: false })).stdout) as {
      Digest: string;
    };
    expect(inspected.Digest).toMatch(/^sha256:/);
  });
});

describe("multi-arch images", () => {
  it("round-trips an OCI index and a Docker manifest list with stable digests", async () => {
    const oci = await pushImage(multi, cache, { repo: "multi/oci", tag: "v1" });
    expect(oci.digest).toBe(multi.digest);
    expect(oci.mediaType).toBe(OCI_INDEX);
    const docker = await pushImage(multi, cache, { repo: "multi/docker", tag: "v1", format: "docker" });
    expect(docker.mediaType).toBe(DOCKER_LIST);
    for (const p of [oci, docker]) {
      const r = await simpleRequest(`${cache.url}/v2/${p.repo}/manifests/${p.tag}`, {
        headers: { accept: ACCEPT },
      });
      expect(r.status).toBe(200);
      expect(sha256(r.body)).toBe(p.digest);
      const list = JSON.parse(r.body.toString()) as Manifest;
      expect(
        list.manifests?.map(m => [m.platform?.architecture, m.platform?.variant].filter(Boolean).join("/")),
      ).toEqual(["amd64", "arm64", "arm/v7"]);
      for (const child of list.manifests ?? []) {
        const c = await simpleRequest(`${cache.url}/v2/${p.repo}/manifests/${child.digest}`, {
          headers: { accept: ACCEPT },
        });
        expect(c.status).toBe(200);
        expect(sha256(c.body)).toBe(child.digest);
      }
    }
    expect(Object.values(multi.manifests)).toEqual(
      (JSON.parse(oci.manifest.toString()) as Manifest).manifests?.map(m => m.digest),
    );
  });
});

describe("pull-through registry", () => {
  it("proxies an authenticated TLS origin", async () => {
    await pushImage(single, basic, { repo: "pt/app", tag: "v1" });
    const pt = await startPullThrough({ upstream: basic });
    try {
      expect(sha256(await inspectRaw(pt, "pt/app:v1"))).toBe(single.digest);
    } finally {
      await pt.stop();
    }
  });

  it("proxies a token origin whose realm is on the registry's host:port", async () => {
    const origin = await startOriginToken({ realm: "same-host" });
    let pt: StartedRegistry | undefined;
    try {
      expect(origin.realm).toBe(`${origin.url}/token`);
      await pushImage(single, origin, { repo: "pt/app", tag: "v1" });
      pt = await startPullThrough({ upstream: origin });
      origin.tokenIssuer?.resetCounters();
      expect(sha256(await inspectRaw(pt, "pt/app:v1"))).toBe(single.digest);
      expect(origin.tokenIssuer?.requests.some(r => r.account === "kuik" && r.status === 200)).toBe(true);
    } finally {
      await stopAll(pt, origin);
    }
  });
});

describe("fault injection", () => {
  let proxy: FaultProxy | undefined;
  let layer: { digest: string; size: number };
  afterAll(async () => {
    await proxy?.stop();
  });

  beforeAll(async () => {
    // A dedicated seed: blobs are shared by every repository of a registry, and the tamper test corrupts one.
    const own = await buildImage({ size: "1M", layers: 2, seed: "harness-faults" });
    await pushImage(own, cache, { repo: "faults/app" });
    const m = JSON.parse((await inspectRaw(cache, "faults/app:latest")).toString()) as Manifest;
    const l = m.layers?.[0];
    if (!l) throw new Error("no layer");
    layer = l;
    proxy = await startFaultProxy(cache);
  });

  const blobUrl = (): string => `${proxy?.url}/v2/faults/app/blobs/${layer.digest}`;

  it("passes traffic through untouched by default", async () => {
    const r = await simpleRequest(blobUrl());
    expect(r.status).toBe(200);
    expect(sha256(r.body)).toBe(layer.digest);
    expect(proxy?.requests.at(-1)).toMatchObject({
      method: "GET",
      path: `/v2/faults/app/blobs/${layer.digest}`,
    });
  });

  it("resets the connection mid-body (RST after N bytes)", async () => {
    proxy?.setRules([{ match: match.blobGet, action: { type: "reset", afterBytes: 100_000 }, times: 1 }]);
    let received = 0;
    const res = await undiciRequest(blobUrl());
    expect(res.statusCode).toBe(200);
    expect(Number(res.headers["content-length"])).toBe(layer.size);
    await expect(
      (async () => {
        for await (const c of res.body) received += (c as Buffer).length;
      })(),
    ).rejects.toThrow(/ECONNRESET|other side closed|terminated|aborted/i);
    expect(received).toBeGreaterThan(0);
    expect(received).toBeLessThanOrEqual(100_000);
    expect(proxy?.fired).toEqual([1]);
    // rule retired after one use
    expect(sha256((await simpleRequest(blobUrl())).body)).toBe(layer.digest);
  });

  it("closes early (short body), throttles, injects statuses", async () => {
    proxy?.setRules([{ match: match.blobGet, action: { type: "close", afterBytes: 5000 }, times: 1 }]);
    await expect(simpleRequest(blobUrl())).rejects.toThrow(/incomplete|aborted|5000|socket hang up/i);

    proxy?.setRules([
      { match: match.blobGet, action: { type: "throttle", bytesPerSecond: 4 << 20 }, times: 1 },
    ]);
    const t0 = Date.now();
    const slow = await simpleRequest(blobUrl());
    const ms = Date.now() - t0;
    expect(sha256(slow.body)).toBe(layer.digest);
    expect(ms).toBeGreaterThanOrEqual((layer.size / (4 << 20)) * 1000 * 0.8);

    proxy?.setRules([
      { match: match.manifestGet, action: { type: "respond", status: 503, body: '{"errors":[]}' }, times: 1 },
    ]);
    const m = await simpleRequest(`${proxy?.url}/v2/faults/app/manifests/latest`, {
      headers: { accept: ACCEPT },
    });
    expect(m.status).toBe(503);
    proxy?.clearRules();
  });

  it("delays heads and stalls bodies", async () => {
    proxy?.setRules([{ match: match.path(/^\/v2\/$/), action: { type: "delay", ms: 300 }, times: 1 }]);
    const t0 = Date.now();
    expect((await simpleRequest(`${proxy?.url}/v2/`)).status).toBe(200);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(280);

    proxy?.setRules([{ match: match.blobGet, action: { type: "stall", afterBytes: 1000 }, times: 1 }]);
    await expect(simpleRequest(blobUrl(), { timeoutMs: 300 })).rejects.toThrow(/timeout/);
    proxy?.clearRules();
  });

  it("can be killed (origin down) and restarted", async () => {
    proxy?.kill();
    await expect(simpleRequest(`${proxy?.url}/v2/`, { timeoutMs: 1000 })).rejects.toThrow(/ECONNREFUSED/);
    await proxy?.restart();
    expect((await simpleRequest(`${proxy?.url}/v2/`)).status).toBe(200);
  });

  it("terminates and re-originates TLS in front of a TLS origin", async () => {
    const tlsProxy = await startFaultProxy(basic);
    try {
      expect(tlsProxy.url).toMatch(/^https:/);
      expect(tlsProxy.creds).toBe(basic.creds);
      await pushImage(single, basic, { repo: "faults/tls" });
      expect(sha256(await inspectRaw(tlsProxy, "faults/tls:latest"))).toBe(single.digest);
      expect(tlsProxy.requests.map(r => r.path)).toContain("/v2/faults/tls/manifests/latest");
    } finally {
      await tlsProxy.stop();
    }
  });

  it("tampers a stored blob in place (same size, wrong digest)", async () => {
    const before = await simpleRequest(`${cache.url}/v2/faults/app/blobs/${layer.digest}`);
    const t = tamperBlob(cache, layer.digest);
    expect(t.size).toBe(layer.size);
    const after = await simpleRequest(`${cache.url}/v2/faults/app/blobs/${layer.digest}`);
    expect(after.status).toBe(200);
    expect(after.body.length).toBe(before.body.length);
    expect(after.headers["docker-content-digest"]).toBe(layer.digest);
    expect(sha256(after.body)).not.toBe(layer.digest);
  });
});

describe.skipIf(!inject("kuikHarness").containerdUsable)("containerd", () => {
  let ctd: StartedContainerd | undefined;
  afterAll(async () => {
    await ctd?.stop();
  });

  it("pulls through the CRI from the plain-HTTP cache and the TLS+basic origin", async () => {
    ctd = await startContainerd();
    await pushImage(multi, cache, { repo: "cri/app", tag: "v1" });
    await pushImage(multi, basic, { repo: "cri/app", tag: "v1" });
    writeHostsToml(ctd.hostsDir, cache.host, [{ url: cache.url }], cache.url);
    writeHostsToml(ctd.hostsDir, basic.host, [
      { url: basic.url, ...(basic.caFile ? { caFile: basic.caFile } : {}) },
    ]);
    const a = await criPull(ctd.socket, `${cache.host}/cri/app:v1`);
    const b = await criPull(ctd.socket, `${basic.host}/cri/app:v1`, { creds: basic.creds ?? "" });
    expect(a.imageRef).toMatch(/^sha256:/);
    expect(b.imageRef).toBe(a.imageRef);
    await expect(criPull(ctd.socket, `${basic.host}/cri/app:v1`, { creds: "kuik:wrong" })).rejects.toThrow(
      /401|unauthorized/i,
    );
  });
});
