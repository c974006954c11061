/**
 * The proxy as it ships: the esbuild bundle run as a child process by Node 24, against a real cache registry.
 * - It is ready within seconds, with no Kubernetes API (kuik v1 did full API discovery at start: 30+ s on
 *   clusters with many CRDs, issues #102/#439, and nodes pulled nothing meanwhile).
 * - A client that stops reading does not make the proxy buffer the blob: backpressure holds the cache
 *   connection still, and the process RSS stays flat (measured from /proc, the reason this runs out of process).
 * - SIGTERM stops accepting, lets in-flight pulls finish within --shutdown-timeout, then exits.
 */
import { dirname } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cacheRepositoryOf } from "../../proxy/src/names";
import { eventually, httpGet } from "../../proxy/test/fixtures";
import { buildBundle, spawnProxy, type ProxyProcess } from "../../proxy/test/process";
import { buildImage, pushImage, type PushedImage } from "../harness/images";
import { removeTempDir } from "../harness/cleanup";
import { sleep } from "../harness/tools";
import { startCache, stopAll, type StartedRegistry } from "../harness/registries";

const ORIGIN = "origin.invalid:5000"; // never contacted: every request of these tests hits the cache
const MiB = 1024 * 1024;

let cache: StartedRegistry | undefined;
let bundle = "";
let big: PushedImage;
let medium: PushedImage;
const running: ProxyProcess[] = [];

async function start(extra: string[] = []): Promise<ProxyProcess> {
  const p = await spawnProxy(bundle, ["--cache-registry", cache!.url, "--log-level", "warn", ...extra]);
  running.push(p);
  return p;
}

function layerUrl(p: ProxyProcess, image: PushedImage): { url: string; digest: string; size: number } {
  const layer = (JSON.parse(image.manifest.toString()) as { layers: { digest: string; size: number }[] })
    .layers[0];
  if (!layer) throw new Error("no layer");
  // For a registry other than Docker Hub, the rewritten <name> and the cache repository are the same string.
  return { url: `http://${p.host}/v2/${image.repo}/blobs/${layer.digest}`, ...layer };
}

beforeAll(async () => {
  [cache, bundle] = await Promise.all([startCache(), buildBundle()]);
  const [b, m] = await Promise.all([
    buildImage({ size: "128M", seed: "process-big" }),
    buildImage({ size: "32M", seed: "process-medium" }),
  ]);
  [big, medium] = await Promise.all([
    pushImage(b, cache, { repo: cacheRepositoryOf(ORIGIN, "team/big"), tag: "1.0" }),
    pushImage(m, cache, { repo: cacheRepositoryOf(ORIGIN, "team/medium"), tag: "1.0" }),
  ]);
});

afterAll(async () => {
  await Promise.all(running.map(p => p.stop()));
  await stopAll(cache);
  if (bundle) removeTempDir(dirname(bundle));
});

describe("the bundled proxy process", () => {
  it("is ready within seconds (no API discovery) and serves health, readiness and metrics", async () => {
    const p = await start();
    // Not a performance goal (bench/ has those): a bound 10x above a quiet start (~0.3 s) that a loaded CI machine
    // keeps, and that a start waiting on discovery (v1: 30+ s) does not.
    expect(p.startupMs).toBeLessThan(10_000);
    expect((await httpGet(`${p.opsUrl}/healthz`)).status).toBe(200);
    expect((await httpGet(`${p.opsUrl}/readyz`)).status).toBe(200);
    expect((await httpGet(`http://${p.host}/v2/`)).status).toBe(200);
    const metrics = await httpGet(`${p.opsUrl}/metrics`, { keepBody: true });
    for (const name of [
      "kube_image_keeper_proxy_http_requests_total",
      "kuik_proxy_cache_up 1",
      "process_resident_memory_bytes",
    ]) {
      expect(metrics.body).toContain(name);
    }
  });

  it("does not grow its memory for a client that stops reading (128 MiB blob)", async () => {
    const p = await start();
    const blob = layerUrl(p, big);
    // Warm up with one fast transfer: the baseline then includes what streaming itself costs (JIT, buffers in
    // flight, garbage between two scavenges), so the growth below is what a stalled client adds.
    expect((await httpGet(blob.url)).sha256).toBe(blob.digest);
    const baseline = p.rss();
    let peak = baseline;
    const sampler = setInterval(() => (peak = Math.max(peak, p.rss())), 20);
    let stalled = false;
    const result = await httpGet(blob.url, {
      onChunk: async received => {
        if (!stalled && received >= MiB) {
          stalled = true;
          await sleep(2500); // a stuck kubelet: nothing read for 2.5 s while the cache could send 128 MiB
        }
      },
    });
    clearInterval(sampler);
    expect(result).toMatchObject({ status: 200, complete: true, bytes: blob.size, sha256: blob.digest });
    const growth = (peak - baseline) / MiB;
    console.log(
      `[proxy-process] RSS baseline ${(baseline / MiB).toFixed(1)} MiB, peak ${(peak / MiB).toFixed(1)} MiB`,
    );
    expect(growth).toBeLessThan(24);
  });

  it("drains in-flight pulls on SIGTERM: refuses new connections, finishes the transfer, exits 0", async () => {
    const p = await start();
    const blob = layerUrl(p, medium);
    let started = (): void => undefined;
    const firstChunk = new Promise<void>(resolve => (started = resolve));
    const paced = httpGet(blob.url, {
      onChunk: received => {
        started();
        return sleep(received < blob.size ? 3 : 0);
      },
    });
    await firstChunk; // the transfer is under way: SIGTERM must let it finish
    process.kill(p.pid, "SIGTERM");
    await eventually(
      async () => (await httpGet(`http://${p.host}/v2/`)).status === 0,
      2000,
      "listener closed",
    );
    expect((await httpGet(`${p.opsUrl}/readyz`)).status).toBe(503);
    const result = await paced;
    expect(result).toMatchObject({ status: 200, complete: true, bytes: blob.size, sha256: blob.digest });
    expect(await p.exited).toBe(0);
  });

  it("cuts transfers still running when --shutdown-timeout expires", async () => {
    const p = await start(["--shutdown-timeout", "500ms"]);
    const blob = layerUrl(p, medium);
    let release = (): void => undefined;
    const gate = new Promise<void>(resolve => (release = resolve));
    // Reads nothing until the proxy has exited; then finds the transfer cut (a paused socket sees no EOF).
    let started = (): void => undefined;
    const firstChunk = new Promise<void>(resolve => (started = resolve));
    const stuck = httpGet(blob.url, {
      onChunk: () => {
        started();
        return gate;
      },
    });
    await firstChunk;
    const signalled = performance.now();
    process.kill(p.pid, "SIGTERM");
    expect(await p.exited).toBe(0);
    expect(performance.now() - signalled).toBeLessThan(3000);
    release();
    const result = await stuck;
    expect(result.complete).toBe(false);
    expect(result.bytes).toBeLessThan(blob.size);
  });
});
