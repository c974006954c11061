/**
 * The proxy when things break, with real registries behind TCP fault proxies and real clients:
 * - kuik v1 had no timeouts: a dead or hung cache registry stalled every pull (issues #503, #507). Here a dead
 *   cache costs a few fast failures, a hung one a single short headers timeout, and then the circuit breaker
 *   sends pulls straight to the origin until a background probe finds the cache back.
 * - A response that has started can only be aborted: an upstream reset or stall mid-blob must reach the client
 *   as a broken transfer (which it retries), never as a short or corrupt body that looks complete.
 */
import { readFileSync } from "node:fs";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { RegistryClient } from "../../registry-client/src/client";
import { copyImage } from "../../registry-client/src/copy";
import { cacheRepositoryOf } from "../../proxy/src/names";
import {
  eventually,
  httpGet,
  rewrittenName,
  skopeoPull,
  startTestProxy,
  type TestProxy,
} from "../../proxy/test/fixtures";
import { buildImage, pushImage, type PushedImage } from "../harness/images";
import { harnessPki } from "../harness/pki";
import { match, startFaultProxy, type FaultProxy } from "../harness/faults";
import { startCache, startOriginToken, stopAll, type StartedRegistry } from "../harness/registries";

let cache: StartedRegistry | undefined;
let origin: StartedRegistry | undefined;
let cacheFp: FaultProxy | undefined;
let originFp: FaultProxy | undefined;
let caFile = "";
let cached: PushedImage;
let uncached: PushedImage;
const proxies: TestProxy[] = [];

/** A fresh proxy (fresh breaker) in front of the fault proxies, with short timeouts. */
async function newProxy(extra: string[] = []): Promise<TestProxy> {
  const p = await startTestProxy([
    ...["--cache-registry", cacheFp!.url, "--root-ca", caFile, "--origin-attempts", "3"],
    ...["--cache-connect-timeout", "300ms", "--cache-headers-timeout", "500ms", "--cache-body-timeout", "1s"],
    ...["--breaker-failures", "2", "--breaker-cooldown", "300ms", ...extra],
  ]);
  proxies.push(p);
  return p;
}

/** Blob GETs that carry credentials (the first, anonymous attempt is answered 401 and must not use up a rule). */
const authedBlobGet = (r: Parameters<typeof match.blobGet>[0]): boolean =>
  match.blobGet(r) && "authorization" in r.headers;

function ref(p: TestProxy, image: PushedImage, tagOrDigest: string): string {
  const sep = tagOrDigest.startsWith("sha256:") ? "@" : ":";
  return `${p.host}/${rewrittenName(originFp!.host, image.repo)}${sep}${tagOrDigest}`;
}

function manifestUrl(p: TestProxy, image: PushedImage, reference: string): string {
  return `http://${p.host}/v2/${rewrittenName(originFp!.host, image.repo)}/manifests/${reference}`;
}

function blobUrl(p: TestProxy, image: PushedImage): { url: string; digest: string; size: number } {
  const layer = (JSON.parse(image.manifest.toString()) as { layers: { digest: string; size: number }[] })
    .layers[0];
  if (!layer) throw new Error("no layer");
  return {
    url: `http://${p.host}/v2/${rewrittenName(originFp!.host, image.repo)}/blobs/${layer.digest}`,
    ...layer,
  };
}

beforeAll(async () => {
  caFile = (await harnessPki()).caFile;
  [cache, origin] = await Promise.all([startCache(), startOriginToken({ publicRepos: ["public/*"] })]);
  [cacheFp, originFp] = await Promise.all([startFaultProxy(cache), startFaultProxy(origin)]);
  const [one, two] = await Promise.all([
    buildImage({ size: "4M", layers: 2, seed: "faults-cached" }),
    buildImage({ size: "8M", seed: "faults-uncached" }),
  ]);
  [cached, uncached] = await Promise.all([
    pushImage(one, origin, { repo: "public/one", tag: "1.0" }),
    pushImage(two, origin, { repo: "public/two", tag: "1.0" }),
  ]);
  const o = origin;
  const operator = new RegistryClient({
    hosts: { [cache.host]: { plainHttp: true } },
    defaultCa: [readFileSync(caFile, "utf8")],
    credentials: () => [{ kind: "basic", username: o.username ?? "", password: o.password ?? "" }],
  });
  await copyImage(
    operator,
    `${o.host}/public/one:1.0`,
    `${cache.host}/${cacheRepositoryOf(originFp.host, "public/one")}:1.0`,
  );
  await operator.close();
});

afterEach(async () => {
  cacheFp?.clearRules();
  originFp?.clearRules();
  await Promise.all(proxies.splice(0).map(p => p.close()));
});

afterAll(async () => {
  await stopAll(cacheFp, originFp, cache, origin);
});

describe("origin failures", () => {
  it("keeps serving cached images by tag and digest when the origin is gone", async () => {
    const p = await newProxy();
    originFp!.kill();
    try {
      expect(await skopeoPull(ref(p, cached, "1.0"))).toBe(cached.digest);
      expect(await skopeoPull(ref(p, cached, cached.digest))).toBe(cached.digest);
      const down = await httpGet(manifestUrl(p, uncached, "1.0"), { keepBody: true });
      expect(down.status).toBe(502);
      expect(JSON.parse(down.body ?? "")).toMatchObject({ errors: [{ code: "UPSTREAM_UNREACHABLE" }] });
    } finally {
      await originFp!.restart();
    }
  });

  it("turns an origin reset mid-blob into a broken transfer, never a short body; the retried pull is intact", async () => {
    const p = await newProxy();
    const blob = blobUrl(p, uncached);
    originFp!.setRules([
      { match: authedBlobGet, action: { type: "reset", afterBytes: 256 * 1024 }, times: 1 },
    ]);
    const broken = await httpGet(blob.url);
    expect(broken.status).toBe(200);
    expect(broken.complete).toBe(false);
    expect(broken.bytes).toBeLessThan(blob.size);
    expect(originFp!.fired[0]).toBe(1); // no retry once the first byte was sent
    originFp!.setRules([{ match: authedBlobGet, action: { type: "reset", afterBytes: 100_000 } }]);
    await expect(skopeoPull(ref(p, uncached, "1.0"))).rejects.toThrow();
    originFp!.clearRules();
    const whole = await httpGet(blob.url);
    expect(whole).toMatchObject({ status: 200, complete: true, bytes: blob.size, sha256: blob.digest });
    expect(await skopeoPull(ref(p, uncached, "1.0"))).toBe(uncached.digest);
  });

  it("retries an origin 503 that comes before the first byte", async () => {
    const p = await newProxy();
    originFp!.setRules([{ match: match.manifestGet, action: { type: "respond", status: 503 }, times: 1 }]);
    expect(await skopeoPull(ref(p, uncached, "1.0"))).toBe(uncached.digest);
    expect(originFp!.fired[0]).toBe(1);
    expect(await p.metric("kuik_proxy_origin_retries_total")).toBeGreaterThanOrEqual(1);
  });
});

describe("cache registry failures", () => {
  it("keeps pulls working while the cache registry is dead, then returns to it once it is back", async () => {
    const p = await newProxy();
    expect(await skopeoPull(ref(p, cached, "1.0"))).toBe(cached.digest);
    cache!.kill();
    await cache!.exited();
    try {
      expect(await skopeoPull(ref(p, cached, "1.0"))).toBe(cached.digest);
      expect(await p.metric("kuik_proxy_cache_up")).toBe(0);
      expect(p.runtime.breaker.state).not.toBe("closed");
      expect(await p.metric("kuik_proxy_cache_fallbacks_total", { reason: "breaker_open" })).toBeGreaterThan(
        0,
      );
    } finally {
      await cache!.restart();
    }
    const fromCache = await p.metric("kuik_proxy_requests_total", { source: "cache" });
    await eventually(
      async () => {
        await httpGet(manifestUrl(p, cached, "1.0"), {
          method: "HEAD",
          headers: { accept: cached.mediaType },
        });
        return p.runtime.breaker.state === "closed";
      },
      5000,
      "breaker closed by a probe",
    );
    expect(await skopeoPull(ref(p, cached, "1.0"))).toBe(cached.digest);
    expect(await p.metric("kuik_proxy_requests_total", { source: "cache" })).toBeGreaterThan(fromCache);
    expect(await p.metric("kuik_proxy_cache_up")).toBe(1);
  });

  it("pays one short headers timeout for a hung cache, then skips it", async () => {
    const p = await newProxy();
    cacheFp!.setRules([{ action: { type: "delay", ms: 10_000 } }]);
    const manifest = manifestUrl(p, cached, "1.0");
    const timings: number[] = [];
    for (let i = 0; i < 4; i++) {
      const started = performance.now();
      const r = await httpGet(manifest, { headers: { accept: cached.mediaType } });
      timings.push(performance.now() - started);
      expect(r).toMatchObject({ status: 200, complete: true, sha256: cached.digest });
    }
    expect(timings[0]).toBeGreaterThanOrEqual(450);
    expect(timings[0]).toBeLessThan(3000);
    expect(timings[2]).toBeLessThan(400); // breaker open after 2 failures: straight to the origin
    expect(timings[3]).toBeLessThan(400);
    expect(await p.metric("kuik_proxy_cache_fallbacks_total", { reason: "timeout" })).toBe(2);
  });

  it("aborts the client's transfer when the cache resets or stalls mid-blob", async () => {
    const p = await newProxy();
    const blob = blobUrl(p, cached);
    cacheFp!.setRules([{ match: match.blobGet, action: { type: "reset", afterBytes: 64 * 1024 }, times: 1 }]);
    const reset = await httpGet(blob.url);
    expect(reset).toMatchObject({ status: 200, complete: false });
    cacheFp!.setRules([{ match: match.blobGet, action: { type: "stall", afterBytes: 64 * 1024 }, times: 1 }]);
    const started = performance.now();
    const stalled = await httpGet(blob.url);
    expect(stalled).toMatchObject({ status: 200, complete: false });
    expect(performance.now() - started).toBeLessThan(5000); // --cache-body-timeout 1s
    const whole = await httpGet(blob.url);
    expect(whole).toMatchObject({ status: 200, complete: true, bytes: blob.size, sha256: blob.digest });
  });
});
