/**
 * registry-client against real CNCF distribution registries on loopback: every auth mode, byte-exact copies
 * (checked with skopeo), faults (tampered blob, connection reset mid-blob, 429), uploads, mounts and deletes.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  RegistryClient,
  blobExists,
  copyImage,
  deleteManifest,
  getBlob,
  getManifest,
  headManifest,
  isRegistryError,
  parseImageReference,
  parseManifest,
  type Credentials,
  type RegistryEvent,
} from "../../registry-client/src";
import { buildAndPush, inspectRaw } from "../harness/images";
import { findTool } from "../harness/tools";
import { freePort } from "../harness/net";
import { makeTempDir, removeTempDir } from "../harness/cleanup";
import { match, startFaultProxy, tamperBlob, type FaultProxy } from "../harness/faults";
import type { StartedRegistry } from "../harness/registries";
import { startCache, startOriginBasic, startOriginToken, stopAll } from "../harness/registries";

let cache: StartedRegistry;
let basic: StartedRegistry;
let token: StartedRegistry;
const proxies: FaultProxy[] = [];

/** A client that knows the harness CA and the origins' credentials. */
function clientFor(
  extra: { creds?: Record<string, Credentials[]>; events?: RegistryEvent[] } = {},
): RegistryClient {
  const ca = readFileSync(basic.caFile ?? "", "utf8");
  return new RegistryClient({
    hosts: { [cache.host]: { plainHttp: true } },
    defaultCa: [ca],
    credentials: registry => extra.creds?.[registry] ?? [],
    retry: { attempts: 3, baseDelayMs: 50, maxDelayMs: 2_000 },
    onEvent: e => extra.events?.push(e),
  });
}

const basicCreds = (): Credentials[] => [
  { kind: "basic", username: basic.username ?? "", password: basic.password ?? "" },
];
const tokenCreds = (): Credentials[] => [
  { kind: "basic", username: token.username ?? "", password: token.password ?? "" },
];

beforeAll(async () => {
  [cache, basic, token] = await Promise.all([
    // Sparse indexes: kuik may cache some platforms of an index while storing the whole index byte-exact.
    startCache({ configPatch: c => void (c.validation = { manifests: { indexes: { platforms: "none" } } }) }),
    startOriginBasic(),
    startOriginToken({ publicRepos: ["public/*"] }),
  ]);
});

afterAll(async () => {
  await Promise.all(proxies.map(p => p.stop()));
  await stopAll(cache, basic, token);
});

describe("authentication", () => {
  it("copies from a TLS + basic-auth origin trusted through an extra CA, digest preserved", async () => {
    const { pushed } = await buildAndPush({ size: "2M", layers: 2, seed: "rc-basic" }, basic, {
      repo: "team/app",
      tag: "v1",
    });
    const client = clientFor({ creds: { [basic.host]: basicCreds() } });
    const result = await copyImage(
      client,
      pushed.ref,
      `${cache.host}/${basic.host.replace(":", "-")}/team/app:v1`,
    );
    await client.close();
    expect(result.digest).toBe(pushed.digest);
    const raw = await inspectRaw(cache, `${basic.host.replace(":", "-")}/team/app:v1`, null);
    expect(raw.equals(pushed.manifest)).toBe(true);
  });

  it("fetches a token with credentials once and reuses it for later requests", async () => {
    const { pushed } = await buildAndPush({ size: "1M", layers: 3, seed: "rc-token" }, token, {
      repo: "private/app",
      tag: "v1",
    });
    token.tokenIssuer?.resetCounters();
    const client = clientFor({ creds: { [token.host]: tokenCreds() } });
    const ref = parseImageReference(pushed.ref);
    const manifest = await getManifest(client, ref);
    const parsed = parseManifest(manifest);
    if (parsed.kind !== "image") throw new Error("expected an image manifest");
    for (const layer of parsed.layers) {
      expect(await blobExists(client, ref.registry, ref.repository, layer.digest)).toBe(layer.size);
    }
    await client.close();
    expect(manifest.digest).toBe(pushed.digest);
    expect(token.tokenIssuer?.count("/token")).toBe(1);
  });

  it("pulls a public repository anonymously through the token flow", async () => {
    const { pushed } = await buildAndPush({ size: "1M", seed: "rc-public" }, token, {
      repo: "public/tool",
      tag: "1.0",
    });
    const client = clientFor();
    const manifest = await getManifest(client, parseImageReference(pushed.ref));
    await client.close();
    expect(manifest.digest).toBe(pushed.digest);
  });

  it.each([
    ["anonymous on a private repository", () => [] as Credentials[], "private/app:v1"],
    [
      "a wrong password",
      () => [{ kind: "basic", username: token.username ?? "", password: "wrong" } as Credentials],
      "private/app:v1",
    ],
  ])("gives UNAUTHORIZED quickly for %s", async (_name, creds, repoRef) => {
    const client = clientFor({ creds: { [token.host]: creds() } });
    const started = performance.now();
    const error = await getManifest(client, parseImageReference(`${token.host}/${repoRef}`)).catch(
      (e: unknown) => e,
    );
    await client.close();
    expect(isRegistryError(error, "UNAUTHORIZED", "DENIED")).toBe(true);
    expect(performance.now() - started).toBeLessThan(3_000);
  });

  it("gives UNAUTHORIZED for wrong basic credentials, without retrying", async () => {
    const events: RegistryEvent[] = [];
    const client = clientFor({
      creds: { [basic.host]: [{ kind: "basic", username: "nobody", password: "x" }] },
      events,
    });
    const error = await getManifest(client, parseImageReference(`${basic.host}/team/app:v1`)).catch(
      (e: unknown) => e,
    );
    await client.close();
    expect(isRegistryError(error, "UNAUTHORIZED")).toBe(true);
    expect(events.filter(e => e.type === "retry")).toEqual([]);
  });

  it("talks to an insecure registry without verifying its certificate", async () => {
    const client = new RegistryClient({
      hosts: { [basic.host]: { insecure: true } },
      credentials: () => basicCreds(),
    });
    const descriptor = await headManifest(client, parseImageReference(`${basic.host}/team/app:v1`));
    await client.close();
    expect(descriptor.digest).toMatch(/^sha256:/);
  });

  it("falls back to plain HTTP for an insecure registry without TLS, once", async () => {
    await buildAndPush({ size: "1M", seed: "rc-insecure-http" }, cache, {
      repo: "insecure/app",
      tag: "v1",
      creds: null,
    });
    const events: RegistryEvent[] = [];
    const client = new RegistryClient({
      hosts: { [cache.host]: { insecure: true } },
      onEvent: e => events.push(e),
    });
    const first = await headManifest(client, parseImageReference(`${cache.host}/insecure/app:v1`));
    const second = await headManifest(client, parseImageReference(`${cache.host}/insecure/app:v1`));
    await client.close();
    expect(second.digest).toBe(first.digest);
    expect(client.baseUrl(cache.host)).toBe(`http://${cache.host}`);
    expect(events.filter(e => e.type === "insecure-fallback")).toHaveLength(1);
  });

  it("refuses a registry whose certificate it cannot verify", async () => {
    const client = new RegistryClient({ credentials: () => basicCreds(), retry: { attempts: 1 } });
    const error = await headManifest(client, parseImageReference(`${basic.host}/team/app:v1`)).catch(
      (e: unknown) => e,
    );
    await client.close();
    expect(isRegistryError(error, "UPSTREAM_UNREACHABLE")).toBe(true);
  });
});

describe("copyImage", () => {
  it.each([
    ["OCI", "oci"],
    ["Docker v2 schema 2", "docker"],
  ] as const)("copies a multi-arch %s index with every platform, byte-exact", async (_name, format) => {
    const { pushed } = await buildAndPush(
      { size: "1M", arch: ["amd64", "arm64", "arm/v7"], seed: `rc-multi-${format}` },
      basic,
      {
        repo: `multi/${format}`,
        tag: "v1",
        format,
      },
    );
    const client = clientFor({ creds: { [basic.host]: basicCreds() } });
    const dst = `${cache.host}/multi/${format}:v1`;
    const result = await copyImage(client, pushed.ref, dst);
    expect(result.manifests).toBe(3);
    const index = parseManifest(await getManifest(client, parseImageReference(dst)));
    if (index.kind !== "index") throw new Error("expected an index");
    for (const child of index.manifests) {
      await expect(
        headManifest(client, parseImageReference(`${cache.host}/multi/${format}@${child.digest}`)),
      ).resolves.toBeTruthy();
    }
    await client.close();
    expect(result.digest).toBe(pushed.digest);
    expect((await inspectRaw(cache, `multi/${format}:v1`, null)).equals(pushed.manifest)).toBe(true);
  });

  it("copies a subset of platforms and still stores the whole index with its digest", async () => {
    const { pushed, image } = await buildAndPush(
      { size: "1M", arch: ["amd64", "arm64", "arm/v7"], seed: "rc-subset" },
      basic,
      {
        repo: "multi/subset",
        tag: "v1",
      },
    );
    const client = clientFor({ creds: { [basic.host]: basicCreds() } });
    const result = await copyImage(client, pushed.ref, `${cache.host}/multi/subset:v1`, {
      platforms: ["linux/arm64"],
    });
    const arm64 = await headManifest(
      client,
      parseImageReference(`${cache.host}/multi/subset@${image.manifests.arm64}`),
    );
    const amd64 = await headManifest(
      client,
      parseImageReference(`${cache.host}/multi/subset@${image.manifests.amd64}`),
    ).catch((e: unknown) => e);
    await client.close();
    expect(result).toMatchObject({ digest: pushed.digest, manifests: 1 });
    expect(arm64.digest).toBe(image.manifests.arm64);
    expect(isRegistryError(amd64, "MANIFEST_UNKNOWN")).toBe(true);
    expect((await inspectRaw(cache, "multi/subset:v1", null)).equals(pushed.manifest)).toBe(true);
  });

  it("skips blobs the destination has, and mounts them across repositories of one registry", async () => {
    const client = clientFor();
    const again = await copyImage(client, `${cache.host}/multi/oci:v1`, `${cache.host}/multi/oci:v1`);
    const mounted = await copyImage(client, `${cache.host}/multi/oci:v1`, `${cache.host}/elsewhere/oci:v1`);
    await client.close();
    expect(again).toMatchObject({ blobsCopied: 0, bytesCopied: 0 });
    expect(again.blobsSkipped).toBeGreaterThan(0);
    expect(mounted.blobsMounted).toBeGreaterThan(0);
    expect(mounted.blobsCopied).toBe(0);
  });

  it("copies with chunked uploads and reports progress up to the total", async () => {
    const { pushed } = await buildAndPush({ size: "3M", layers: 1, seed: "rc-chunked" }, basic, {
      repo: "team/chunked",
      tag: "v1",
    });
    const client = clientFor({ creds: { [basic.host]: basicCreds() } });
    const seen: number[] = [];
    let total = 0;
    const result = await copyImage(client, pushed.ref, `${cache.host}/team/chunked:v1`, {
      chunkSize: 512 * 1024,
      onProgress: p => {
        seen.push(p.bytesDone);
        total = p.bytesTotal;
      },
    });
    await client.close();
    expect(result.digest).toBe(pushed.digest);
    expect(seen.at(-1)).toBe(total);
    expect(seen.length).toBeGreaterThan(3);
  });

  it("detects a tampered blob on the origin and never references it at the destination", async () => {
    const { pushed, image } = await buildAndPush({ size: "2M", layers: 1, seed: "rc-tamper-unique" }, basic, {
      repo: "team/tampered",
      tag: "v1",
    });
    const layer = parseManifest({ mediaType: pushed.mediaType, bytes: pushed.manifest });
    if (layer.kind !== "image") throw new Error("expected an image");
    const bad = layer.layers[0]?.digest ?? "";
    tamperBlob(basic, bad);
    const client = clientFor({ creds: { [basic.host]: basicCreds() } });
    const error = await copyImage(client, pushed.ref, `${cache.host}/team/tampered:v1`).catch(
      (e: unknown) => e,
    );
    const manifest = await headManifest(client, parseImageReference(`${cache.host}/team/tampered:v1`)).catch(
      (e: unknown) => e,
    );
    const blob = await blobExists(client, cache.host, "team/tampered", bad);
    await client.close();
    expect(isRegistryError(error, "DIGEST_MISMATCH")).toBe(true);
    expect(isRegistryError(manifest, "MANIFEST_UNKNOWN")).toBe(true);
    expect(blob).toBeUndefined();
    expect(image.digest).toBeTruthy();
  });
});

describe("faults", () => {
  async function faultyOrigin(): Promise<FaultProxy> {
    const proxy = await startFaultProxy(basic);
    proxies.push(proxy);
    return proxy;
  }

  it("retries a blob whose connection was reset mid-body, and the copy succeeds", async () => {
    const proxy = await faultyOrigin();
    const { pushed } = await buildAndPush({ size: "4M", layers: 1, seed: "rc-reset-once" }, basic, {
      repo: "team/reset",
      tag: "v1",
    });
    proxy.setRules([{ match: match.blobGet, action: { type: "reset", afterBytes: 256 * 1024 }, times: 1 }]);
    const client = clientFor({ creds: { [proxy.host]: basicCreds() } });
    const result = await copyImage(client, `${proxy.host}/team/reset:v1`, `${cache.host}/team/reset:v1`);
    await client.close();
    expect(proxy.fired[0]).toBe(1);
    expect(result.digest).toBe(pushed.digest);
  });

  it("fails cleanly when every attempt is reset, leaving nothing referenced", async () => {
    const proxy = await faultyOrigin();
    await buildAndPush({ size: "4M", layers: 1, seed: "rc-reset-always" }, basic, {
      repo: "team/reset-always",
      tag: "v1",
    });
    proxy.setRules([{ match: match.blobGet, action: { type: "reset", afterBytes: 100 * 1024 } }]);
    const client = clientFor({ creds: { [proxy.host]: basicCreds() } });
    const error = await copyImage(
      client,
      `${proxy.host}/team/reset-always:v1`,
      `${cache.host}/team/reset-always:v1`,
    ).catch((e: unknown) => e);
    const manifest = await headManifest(
      client,
      parseImageReference(`${cache.host}/team/reset-always:v1`),
    ).catch((e: unknown) => e);
    await client.close();
    expect(isRegistryError(error, "UPSTREAM_UNREACHABLE", "DIGEST_MISMATCH")).toBe(true);
    expect(isRegistryError(manifest, "MANIFEST_UNKNOWN")).toBe(true);
  });

  it("gives up on a blob that always answers 503 after the request's attempts, not attempts × copy attempts", async () => {
    const proxy = await faultyOrigin();
    await buildAndPush({ size: "1M", layers: 1, seed: "rc-503-always" }, basic, {
      repo: "team/unavailable",
      tag: "v1",
    });
    proxy.setRules([{ match: match.blobGet, action: { type: "respond", status: 503 } }]);
    const client = clientFor({ creds: { [proxy.host]: basicCreds() } }); // 3 attempts per request
    const error = await copyImage(
      client,
      `${proxy.host}/team/unavailable:v1`,
      `${cache.host}/team/unavailable:v1`,
      { retry: { attempts: 4, baseDelayMs: 10, maxDelayMs: 20 } },
    ).catch((e: unknown) => e);
    await client.close();
    expect(isRegistryError(error)).toBe(true);
    expect((error as { statusCode?: number }).statusCode).toBe(503);
    // Config + layer, 3 attempts each (the request's budget): it was 2 × 12 when copyImage retried around calls that
    // retry themselves.
    expect(proxy.fired[0]).toBe(6);
  });

  it("stops waiting for a token when the caller aborts, whoever else awaits it", async () => {
    // The registry challenges for a bearer token whose realm accepts connections and never answers.
    const silent = createServer(() => {}).listen(0, "127.0.0.1");
    await once(silent, "listening");
    const realmHost = `127.0.0.1:${(silent.address() as AddressInfo).port}`;
    const realm = `http://${realmHost}/token`;
    const proxy = await faultyOrigin();
    proxy.setRules([
      {
        match: match.manifestGet,
        action: {
          type: "respond",
          status: 401,
          headers: { "www-authenticate": `Bearer realm="${realm}",service="kuik-test"` },
        },
      },
    ]);
    const client = new RegistryClient({
      hosts: { [realmHost]: { plainHttp: true } }, // a plain-http realm only on a host configured so
      defaultCa: [readFileSync(basic.caFile ?? "", "utf8")],
      credentials: () => basicCreds(),
      retry: { attempts: 1 },
      timeouts: { headersMs: 4_000 }, // what bounds the shared token fetch itself
    });
    const controller = new AbortController();
    const started = performance.now();
    const pending = getManifest(client, parseImageReference(`${proxy.host}/team/app:v1`), {
      signal: controller.signal,
    }).catch((e: unknown) => e);
    setTimeout(() => controller.abort(), 300);
    const error = await pending;
    const elapsed = performance.now() - started;
    await client.close().catch(() => undefined);
    silent.closeAllConnections();
    silent.close();
    expect(isRegistryError(error, "ABORTED")).toBe(true);
    expect(elapsed).toBeLessThan(2_000); // without the abort, the wait ends with the 4 s headers timeout
  });

  it("reads every WWW-Authenticate header: Basic and Bearer sent as two headers → the Bearer token flow", async () => {
    // Distribution sends one challenge; some registries send Basic and Bearer apart. A registry stand-in answers
    // 401 with both headers, issues a token, and accepts the manifest request that carries it.
    const seen: string[] = [];
    const fake = createServer((req, res) => {
      seen.push(`${req.url} ${req.headers.authorization ?? "-"}`);
      const base = `http://127.0.0.1:${(fake.address() as AddressInfo).port}`;
      if (req.url?.startsWith("/token")) return void res.end(JSON.stringify({ token: "t0k3n" }));
      if (req.headers.authorization === "Bearer t0k3n") {
        res.writeHead(200, { "content-type": "application/vnd.oci.image.manifest.v1+json" });
        return void res.end(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: `sha256:${"a".repeat(64)}`, size: 2 }, layers: [] })); // prettier-ignore
      }
      res.setHeader("www-authenticate", ['Basic realm="r"', `Bearer realm="${base}/token",service="fake"`]);
      res.writeHead(401).end();
    }).listen(0, "127.0.0.1");
    await once(fake, "listening");
    const host = `127.0.0.1:${(fake.address() as AddressInfo).port}`;
    const client = new RegistryClient({
      hosts: { [host]: { plainHttp: true } },
      credentials: () => [{ kind: "basic", username: "u", password: "p" }],
      retry: { attempts: 1 },
    });
    const manifest = await getManifest(client, parseImageReference(`${host}/team/app:v1`)).finally(() => {
      fake.close();
    });
    await client.close();
    expect(manifest.digest).toMatch(/^sha256:/);
    expect(seen.some(s => s.startsWith("/token"))).toBe(true);
    expect(seen.at(-1)).toMatch(/Bearer t0k3n$/);
  });

  it("honours Retry-After on 429 and then succeeds", async () => {
    const proxy = await faultyOrigin();
    proxy.setRules([
      {
        match: match.manifestGet,
        action: { type: "respond", status: 429, headers: { "retry-after": "1" } },
        times: 1,
      },
    ]);
    const events: RegistryEvent[] = [];
    const client = clientFor({ creds: { [proxy.host]: basicCreds() }, events });
    const started = performance.now();
    const manifest = await getManifest(client, parseImageReference(`${proxy.host}/team/app:v1`));
    await client.close();
    expect(manifest.digest).toMatch(/^sha256:/);
    expect(performance.now() - started).toBeGreaterThanOrEqual(950);
    expect(events.filter(e => e.type === "retry")).toHaveLength(1);
  });

  it("does not retry a 404", async () => {
    const events: RegistryEvent[] = [];
    const client = clientFor({ creds: { [basic.host]: basicCreds() }, events });
    const error = await getManifest(client, parseImageReference(`${basic.host}/team/app:missing`)).catch(
      (e: unknown) => e,
    );
    await client.close();
    expect(isRegistryError(error, "MANIFEST_UNKNOWN")).toBe(true);
    expect(events.filter(e => e.type === "retry")).toEqual([]);
  });

  it("follows an S3-style redirect for a blob without forwarding credentials", async () => {
    const proxy = await faultyOrigin();
    const { pushed } = await buildAndPush({ size: "1M", seed: "rc-redirect" }, cache, {
      repo: "redirect/app",
      tag: "v1",
      creds: null,
    });
    const parsed = parseManifest({ mediaType: pushed.mediaType, bytes: pushed.manifest });
    if (parsed.kind !== "image") throw new Error("expected an image");
    const layer = parsed.layers[0];
    if (!layer) throw new Error("no layer");
    proxy.setRules([
      {
        match: match.blobGet,
        action: {
          type: "respond",
          status: 307,
          headers: { location: `${cache.url}/v2/redirect/app/blobs/${layer.digest}` },
        },
      },
    ]);
    const client = clientFor({ creds: { [proxy.host]: basicCreds() } });
    const download = await getBlob(client, proxy.host, "team/app", layer.digest);
    let bytes = 0;
    for await (const chunk of download.stream) bytes += (chunk as Buffer).length;
    await client.close();
    expect(bytes).toBe(layer.size);
  });

  it("serves a byte range", async () => {
    const client = clientFor({ creds: { [basic.host]: basicCreds() } });
    const manifest = parseManifest(
      await getManifest(client, parseImageReference(`${basic.host}/team/app:v1`)),
    );
    if (manifest.kind !== "image") throw new Error("expected an image");
    const layer = manifest.layers[0];
    if (!layer) throw new Error("no layer");
    const download = await getBlob(client, basic.host, "team/app", layer.digest, {
      range: { start: 10, end: 19 },
    });
    const chunks: Buffer[] = [];
    for await (const chunk of download.stream) chunks.push(chunk as Buffer);
    const full = await getBlob(client, basic.host, "team/app", layer.digest);
    const whole: Buffer[] = [];
    for await (const chunk of full.stream) whole.push(chunk as Buffer);
    await client.close();
    expect(download.statusCode).toBe(206);
    expect(Buffer.concat(chunks).equals(Buffer.concat(whole).subarray(10, 20))).toBe(true);
  });

  it("refuses a Docker schema 1 manifest with a clear error", async () => {
    const proxy = await faultyOrigin();
    const schema1 = JSON.stringify({
      schemaVersion: 1,
      name: "team/app",
      tag: "old",
      fsLayers: [],
      history: [],
    });
    proxy.setRules([
      {
        match: match.manifestGet,
        action: {
          type: "respond",
          status: 200,
          body: schema1,
          headers: { "content-type": "application/vnd.docker.distribution.manifest.v1+prettyjws" },
        },
      },
    ]);
    const client = clientFor({ creds: { [proxy.host]: basicCreds() } });
    const error = await getManifest(client, parseImageReference(`${proxy.host}/team/app:old`)).catch(
      (e: unknown) => e,
    );
    await client.close();
    expect(isRegistryError(error, "UNSUPPORTED_MEDIA_TYPE")).toBe(true);
    expect(String(error)).toMatch(/schema 1/);
  });
});

describe("deleteManifest", () => {
  it("deletes by digest, and reports a second delete as already gone", async () => {
    const client = clientFor();
    const ref = parseImageReference(`${cache.host}/team/chunked:v1`);
    const { digest } = await headManifest(client, ref);
    expect(await deleteManifest(client, ref.registry, ref.repository, digest)).toBe(true);
    expect(await deleteManifest(client, ref.registry, ref.repository, digest)).toBe(false);
    const error = await headManifest(client, ref).catch((e: unknown) => e);
    await client.close();
    expect(isRegistryError(error, "MANIFEST_UNKNOWN")).toBe(true);
  });
});

describe("HTTP(S)_PROXY", () => {
  let tinyproxy: ChildProcess | undefined;
  let proxyUrl = "";
  let logFile = "";
  let dir = "";

  beforeAll(async () => {
    dir = makeTempDir("tinyproxy");
    const port = await freePort();
    logFile = join(dir, "tinyproxy.log");
    const conf = join(dir, "tinyproxy.conf");
    // No ConnectPort line: CONNECT is allowed to any port (our origins listen on random ones).
    writeFileSync(
      conf,
      `Port ${port}\nListen 127.0.0.1\nAllow 127.0.0.1\nLogFile "${logFile}"\nLogLevel Info\nMaxClients 20\n`,
    );
    tinyproxy = spawn(findTool("tinyproxy"), ["-d", "-c", conf], { stdio: "ignore" });
    proxyUrl = `http://127.0.0.1:${port}`;
    for (let i = 0; i < 50 && !readLogSafe(logFile).includes("listening"); i++)
      await new Promise(r => setTimeout(r, 100));
    if (!readLogSafe(logFile).includes("listening")) {
      throw new Error(
        `tinyproxy did not start listening:\n${readLogSafe(logFile).split("\n").slice(-10).join("\n")}`,
      );
    }
  });

  afterAll(() => {
    tinyproxy?.kill("SIGKILL");
    removeTempDir(dir);
  });

  it("reaches a TLS origin and a plain-HTTP registry through the proxy, and bypasses it with NO_PROXY", async () => {
    await buildAndPush({ size: "1M", seed: "rc-proxy" }, basic, { repo: "via/proxy", tag: "v1" });
    await buildAndPush({ size: "1M", seed: "rc-proxy" }, cache, {
      repo: "via/proxy",
      tag: "v1",
      creds: null,
    });
    const ca = readFileSync(basic.caFile ?? "", "utf8");
    const proxied = new RegistryClient({
      hosts: { [cache.host]: { plainHttp: true } },
      defaultCa: [ca],
      credentials: r => (r === basic.host ? basicCreds() : []),
      proxy: { httpProxy: proxyUrl, httpsProxy: proxyUrl, noProxy: "" },
    });
    const viaTls = await headManifest(proxied, parseImageReference(`${basic.host}/via/proxy:v1`));
    const viaHttp = await headManifest(proxied, parseImageReference(`${cache.host}/via/proxy:v1`));
    await proxied.close();
    const log = readLogSafe(logFile);
    expect(viaTls.digest).toMatch(/^sha256:/);
    expect(viaHttp.digest).toMatch(/^sha256:/);
    expect(log).toContain(`CONNECT ${basic.host}`);
    // undici tunnels plain HTTP through CONNECT too (proxyTunnel), so both registries show up as CONNECTs.
    expect(log).toContain(`CONNECT ${cache.host}`);

    const dead = `http://127.0.0.1:${await freePort()}`;
    const bypassing = new RegistryClient({
      defaultCa: [ca],
      credentials: () => basicCreds(),
      retry: { attempts: 1 },
      proxy: { httpsProxy: dead, noProxy: "127.0.0.1" },
    });
    const direct = await headManifest(bypassing, parseImageReference(`${basic.host}/via/proxy:v1`));
    await bypassing.close();
    expect(direct.digest).toBe(viaTls.digest);
  });
});

function readLogSafe(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return "";
  }
}

describe("a 1 GiB image", () => {
  it("copies byte-exact, streamed", async () => {
    const { pushed } = await buildAndPush({ size: "1G", layers: 5, seed: "bench" }, basic, {
      repo: "big/image",
      tag: "v1",
    });
    const client = clientFor({ creds: { [basic.host]: basicCreds() } });
    const before = process.memoryUsage().rss;
    const result = await copyImage(client, pushed.ref, `${cache.host}/big/image:v1`);
    const grown = process.memoryUsage().rss - before;
    await client.close();
    expect(result.digest).toBe(pushed.digest);
    expect(result.bytesCopied).toBeGreaterThan(1024 ** 3);
    expect(grown).toBeLessThan(256 * 1024 * 1024);
    expect((await inspectRaw(cache, "big/image:v1", null)).equals(pushed.manifest)).toBe(true);
  }, 300_000);
});
