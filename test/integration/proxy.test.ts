/**
 * The streaming registry proxy against real registries and real clients: hits from the cache registry, misses
 * served from origins (anonymous bearer token, basic auth over TLS with our CA, credentialed token after a
 * credentials-file reload), digest-pinned pulls, partial caches of multi-arch images, and containerd pulling
 * through the CRI as the kubelet does. Fault and process-level behaviour: proxy-faults / proxy-process tests.
 */
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { RegistryClient } from "../../registry-client/src/client";
import { copyImage } from "../../registry-client/src/copy";
import { buildImage, pushImage, type PushedImage } from "../harness/images";
import { ctrPull, criPull, startContainerd, type StartedContainerd } from "../harness/containerd";
import { harnessPki } from "../harness/pki";
import { makeTempDir, removeTempDir } from "../harness/cleanup";
import type { StartedRegistry } from "../harness/registries";
import { startCache, startOriginBasic, startOriginToken, stopAll } from "../harness/registries";
import { tryFindTool } from "../harness/tools";
import { cacheRepositoryOf } from "../../proxy/src/names";
import {
  cranePull,
  eventually,
  httpGet,
  rewrittenName,
  skopeoPull,
  startTestProxy,
  writeCredentials,
  type TestProxy,
} from "../../proxy/test/fixtures";

const harness = inject("kuikHarness");
const crane = tryFindTool("crane");
/** crane when built (scripts/build-components.sh), else skopeo: both verify every digest they download. */
const pullDigest = (ref: string): Promise<string> => (crane ? cranePull(crane, ref) : skopeoPull(ref));
const CLIENT = crane ? "crane" : "skopeo: crane not built";
const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";

let cache: StartedRegistry | undefined;
let token: StartedRegistry | undefined;
let basic: StartedRegistry | undefined;
let proxy: TestProxy | undefined;
let containerd: StartedContainerd | undefined;
let operator: RegistryClient | undefined;
let credentialsDir = "";
let credentialsFile = "";
const pushed: Record<string, PushedImage> = {};

/** `127.0.0.1:PORT/<rewritten origin>/<repo>` + `:tag` or `@digest`. */
function viaProxy(origin: StartedRegistry, repo: string, ref: string, host = proxy?.host ?? ""): string {
  return `${host}/${rewrittenName(origin.host, repo)}${ref.startsWith("sha256:") ? "@" : ":"}${ref}`;
}

/**
 * The operator caches only the node architectures of an index but keeps the index itself (its digest must not
 * change); distribution v3 refuses such an index unless told to check only the platforms it will hold.
 */
function acceptPartialIndexes(config: Record<string, unknown>): void {
  config.validation = {
    manifests: { indexes: { platforms: "list", platformlist: [{ architecture: "amd64", os: "linux" }] } },
  };
}

beforeAll(async () => {
  [cache, token, basic] = await Promise.all([
    startCache({ configPatch: acceptPartialIndexes }),
    startOriginToken({ publicRepos: ["public/*"] }),
    startOriginBasic(),
  ]);
  const t = token;
  const b = basic;
  const [a, fresh, team, priv, multi, ctrImg] = await Promise.all([
    buildImage({ size: "2M", layers: 2, seed: "proxy-hit" }),
    buildImage({ size: "1M", seed: "proxy-fresh" }),
    buildImage({ size: "1M", layers: 2, seed: "proxy-basic" }),
    buildImage({ size: "1M", seed: "proxy-private" }),
    buildImage({ size: "1M", arch: ["amd64", "arm64"], seed: "proxy-multi" }),
    buildImage({ size: "1M", seed: "proxy-ctr" }),
  ]);
  const results = await Promise.all([
    pushImage(a, t, { repo: "public/app", tag: "1.0" }),
    pushImage(fresh, t, { repo: "public/fresh", tag: "1.0" }),
    pushImage(team, b, { repo: "team/app", tag: "2.0" }),
    pushImage(priv, t, { repo: "private/app", tag: "3.0" }),
    pushImage(multi, t, { repo: "public/multi", tag: "1.0" }),
    pushImage(ctrImg, t, { repo: "public/ctr", tag: "1.0" }),
  ]);
  for (const p of results) pushed[p.repo] = p;
  // Put two images in the cache as the operator does: byte-exact copies under <registry with '-'>/<repository>.
  const pki = await harnessPki();
  operator = new RegistryClient({
    hosts: { [cache.host]: { plainHttp: true } },
    defaultCa: [readFileSync(pki.caFile, "utf8")],
    credentials: r =>
      r === t.host ? [{ kind: "basic", username: t.username ?? "", password: t.password ?? "" }] : [],
  });
  for (const [repo, platforms] of [
    ["public/app", undefined],
    ["public/multi", ["amd64"]],
  ] as const) {
    const dst = `${cache.host}/${cacheRepositoryOf(t.host, repo)}:1.0`;
    await copyImage(operator, `${t.host}/${repo}:1.0`, dst, platforms ? { platforms: [...platforms] } : {});
  }
  credentialsDir = makeTempDir("proxy-creds");
  credentialsFile = `${credentialsDir}/config.json`;
  writeCredentials(credentialsFile, { [b.host]: { username: b.username ?? "", password: b.password ?? "" } });
  proxy = await startTestProxy([
    ...["--cache-registry", cache.url, "--root-ca", pki.caFile],
    ...["--credentials-file", credentialsFile, "--credentials-poll-interval", "100ms"],
  ]);
});

afterAll(async () => {
  await proxy?.close();
  await containerd?.stop();
  await operator?.close();
  await stopAll(cache, token, basic);
  if (credentialsDir) removeTempDir(credentialsDir);
});

describe("registry API surface", () => {
  it("answers /v2/ on both loopbacks, and refuses other routes and methods with OCI errors", async () => {
    const p = proxy!;
    for (const host of [p.host, `[::1]:${p.port}`]) {
      const ping = await httpGet(`http://${host}/v2/`, { keepBody: true });
      expect(ping).toMatchObject({ status: 200, body: "{}" });
      expect(ping.headers["docker-distribution-api-version"]).toBe("registry/2.0");
    }
    const catalog = await httpGet(`http://${p.host}/v2/_catalog`, { keepBody: true });
    expect(catalog.status).toBe(404);
    expect(JSON.parse(catalog.body ?? "")).toMatchObject({ errors: [{ code: "UNSUPPORTED" }] });
    const upload = await httpGet(`http://${p.host}/v2/nginx/blobs/uploads/`, { method: "POST" });
    expect(upload.status).toBe(404);
    const del = await httpGet(`http://${p.host}/v2/nginx/manifests/1.25`, {
      method: "DELETE",
      keepBody: true,
    });
    expect(del.status).toBe(405);
    expect(del.headers.allow).toBe("GET, HEAD");
    const bad = await httpGet(`http://${p.host}/v2/Bad-Name/manifests/1.0`, { keepBody: true });
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body ?? "")).toMatchObject({ errors: [{ code: "NAME_INVALID" }] });
  });
});

describe("cache hits", () => {
  it("serves a cached image from the cache registry only (skopeo, by tag)", async () => {
    const p = proxy!;
    const before = await p.metric("kuik_proxy_requests_total", { source: "origin" });
    const tokensBefore = token!.tokenIssuer?.count() ?? 0;
    expect(await skopeoPull(viaProxy(token!, "public/app", "1.0"))).toBe(pushed["public/app"]?.digest);
    expect(await p.metric("kuik_proxy_requests_total", { source: "origin" })).toBe(before);
    expect(
      await p.metric("kuik_proxy_requests_total", { source: "cache", kind: "blob", status: "200" }),
    ).toBeGreaterThanOrEqual(3);
    expect(
      await p.metric("kube_image_keeper_proxy_http_requests_total", {
        cacheHit: "true",
        registry: token!.host,
      }),
    ).toBeGreaterThan(0);
    expect(token!.tokenIssuer?.count() ?? 0).toBe(tokensBefore);
  });

  it(`serves a digest-pinned pull from the cache (${CLIENT})`, async () => {
    const digest = pushed["public/app"]?.digest ?? "";
    expect(await pullDigest(viaProxy(token!, "public/app", digest))).toBe(digest);
  });

  it("passes Range through and answers 206 from the cache", async () => {
    const manifest = JSON.parse(pushed["public/app"]?.manifest.toString() ?? "{}") as {
      layers: { digest: string }[];
    };
    const layer = manifest.layers[0]?.digest ?? "";
    const r = await httpGet(
      `http://${proxy!.host}/v2/${rewrittenName(token!.host, "public/app")}/blobs/${layer}`,
      {
        headers: { range: "bytes=10-99" },
      },
    );
    expect(r).toMatchObject({ status: 206, bytes: 90, complete: true });
    expect(r.headers["content-range"]).toMatch(/^bytes 10-99\/\d+$/);
  });
});

describe("misses served from the origin", () => {
  it("pulls a public image with an anonymous bearer token (skopeo)", async () => {
    const p = proxy!;
    const misses = await p.metric("kuik_proxy_cache_fallbacks_total", { reason: "miss" });
    expect(await skopeoPull(viaProxy(token!, "public/fresh", "1.0"))).toBe(pushed["public/fresh"]?.digest);
    expect(await p.metric("kuik_proxy_cache_fallbacks_total", { reason: "miss" })).toBeGreaterThan(misses);
    expect(token!.tokenIssuer?.requests.some(r => r.account === "" && r.status === 200)).toBe(true);
  });

  it(`pulls from a TLS + basic-auth origin trusted through --root-ca (${CLIENT}, by tag and digest)`, async () => {
    const digest = pushed["team/app"]?.digest ?? "";
    expect(await pullDigest(viaProxy(basic!, "team/app", "2.0"))).toBe(digest);
    expect(await pullDigest(viaProxy(basic!, "team/app", digest))).toBe(digest);
  });

  it("answers the origin's 404 with its OCI error, and no body for HEAD", async () => {
    const base = `http://${proxy!.host}/v2/${rewrittenName(token!.host, "public/app")}/manifests/nope`;
    const get = await httpGet(base, { keepBody: true, headers: { accept: OCI_MANIFEST } });
    expect(get.status).toBe(404);
    expect(JSON.parse(get.body ?? "")).toMatchObject({ errors: [{ code: "MANIFEST_UNKNOWN" }] });
    const head = await httpGet(base, { method: "HEAD", keepBody: true });
    expect(head).toMatchObject({ status: 404, body: "" });
  });

  it("refuses a private repository without credentials, then pulls it once the credentials file has them", async () => {
    const t = token!;
    const url = `http://${proxy!.host}/v2/${rewrittenName(t.host, "private/app")}/manifests/3.0`;
    const denied = await httpGet(url, { keepBody: true, headers: { accept: OCI_MANIFEST } });
    expect(denied.status).toBe(401);
    expect(JSON.parse(denied.body ?? "")).toMatchObject({ errors: [{ code: "UNAUTHORIZED" }] });
    expect(denied.headers["www-authenticate"]).toBeUndefined();
    writeCredentials(credentialsFile, {
      [basic!.host]: { username: basic!.username ?? "", password: basic!.password ?? "" },
      [t.host]: { username: t.username ?? "", password: t.password ?? "" },
    });
    await eventually(
      async () => (await httpGet(url, { method: "HEAD", headers: { accept: OCI_MANIFEST } })).status === 200,
      5000,
      "credentials reload",
    );
    expect(await skopeoPull(viaProxy(t, "private/app", "3.0"))).toBe(pushed["private/app"]?.digest);
    expect(t.tokenIssuer?.requests.some(r => r.account === t.username && r.status === 200)).toBe(true);
  });
});

describe.skipIf(!harness.containerdUsable)("containerd, as the kubelet pulls", () => {
  beforeAll(async () => {
    containerd = await startContainerd();
  });

  it("pulls through the CRI from localhost:<port> (multi-arch index and amd64 from the cache)", async () => {
    const p = proxy!;
    const before = await p.metric("kuik_proxy_requests_total", { source: "origin" });
    const image = `localhost:${p.port}/${rewrittenName(token!.host, "public/multi")}:1.0`;
    const pulled = await criPull(containerd!.socket, image, { timeoutMs: 60_000 });
    expect(pulled.imageRef).toMatch(/^sha256:/);
    expect(await p.metric("kuik_proxy_requests_total", { source: "origin" })).toBe(before);
  });

  it("serves the platform the cache lacks from the origin (ctr --platform linux/arm64)", async () => {
    const p = proxy!;
    const before = await p.metric("kuik_proxy_requests_total", { source: "origin", kind: "blob" });
    const image = viaProxy(token!, "public/multi", "1.0");
    await ctrPull(containerd!.socket, image, { plainHttp: true, platform: "linux/arm64", timeoutMs: 60_000 });
    expect(await p.metric("kuik_proxy_requests_total", { source: "origin", kind: "blob" })).toBeGreaterThan(
      before,
    );
  });

  it("pulls a digest-pinned image on a miss (ctr --plain-http localhost:<port>)", async () => {
    const digest = pushed["public/ctr"]?.digest ?? "";
    const r = await ctrPull(
      containerd!.socket,
      viaProxy(token!, "public/ctr", digest, `localhost:${proxy!.port}`),
      {
        plainHttp: true,
        timeoutMs: 60_000,
      },
    );
    expect(r.stdout + r.stderr).toContain(digest.slice(7, 19));
  });
});
