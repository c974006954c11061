/**
 * The proxy as an attacker with a Pod sees it (issue #13): it names the origin in the request path, so without
 * a policy it is a door into the node's and the cluster's networks (a port scanner, a reader of any HTTP service
 * that answers like a registry). Here: the origin's address is refused unless allow-listed, failures tell the
 * client nothing about the upstream, and one client cannot take every connection or request slot.
 */
import { once } from "node:events";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { connect, type AddressInfo, type Server } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { freePort } from "../harness/net";
import { serveManifest } from "../harness/stand-ins";
import { eventually, httpGet, startTestProxy, type TestProxy } from "../../proxy/test/fixtures";

const servers: Server[] = [];
const proxies: TestProxy[] = [];
afterEach(async () => {
  await Promise.all(proxies.splice(0).map(p => p.close()));
  await Promise.all(servers.splice(0).map(s => new Promise(r => s.close(r))));
});

/** A plain-HTTP stand-in on 127.0.0.1 counting its connections. */
async function fake(
  handle: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ host: string; port: number; connections: () => number }> {
  let connections = 0;
  const server = createServer(handle);
  server.on("connection", () => connections++);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  servers.push(server);
  const port = (server.address() as AddressInfo).port;
  return { host: `127.0.0.1:${port}`, port, connections: () => connections };
}

const notFound = (_req: IncomingMessage, res: ServerResponse): void => void res.writeHead(404).end();

async function proxyWith(args: string[], allowLoopback: boolean): Promise<TestProxy> {
  const cache = await fake(notFound);
  const p = await startTestProxy(
    ["--cache-registry", `http://${cache.host}`, "--origin-attempts", "1", ...args],
    {
      allowLoopbackOrigins: allowLoopback,
    },
  );
  proxies.push(p);
  return p;
}

const manifestUrl = (p: TestProxy, name: string): string => `http://${p.host}/v2/${name}/app/manifests/v1`;

describe("origin addresses (SSRF)", () => {
  it("refuses an origin on the loopback without the allow-list, by address or by name, and never connects", async () => {
    const origin = await fake((_req, res) => serveManifest(res));
    const p = await proxyWith(["--insecure-registry", origin.host], false);
    for (const name of [`127.0.0.1-${origin.port}`, `localhost-${origin.port}`]) {
      const r = await httpGet(manifestUrl(p, name), { keepBody: true });
      expect(r.status, name).toBe(403);
      expect(JSON.parse(r.body ?? "{}")).toMatchObject({ errors: [{ code: "DENIED" }] });
      expect(r.body).not.toContain(String(origin.port));
    }
    expect(origin.connections()).toBe(0);
    expect(p.logs.some(l => l.code === "ADDRESS_REFUSED")).toBe(true); // the details are in the log
  });

  it("serves the same origin once it is allow-listed", async () => {
    const origin = await fake((_req, res) => serveManifest(res));
    const p = await proxyWith(
      ["--insecure-registry", origin.host, "--allowed-origin", "127.0.0.1/32"],
      false,
    );
    const r = await httpGet(manifestUrl(p, `127.0.0.1-${origin.port}`));
    expect(r.status).toBe(200);
  });

  it("answers a closed port with the same generic 502 as any unreachable origin: no errno, no address", async () => {
    const p = await proxyWith([], true);
    const closed = await freePort();
    const r = await httpGet(manifestUrl(p, `127.0.0.1-${closed}`), { keepBody: true });
    expect(r.status).toBe(502);
    expect(JSON.parse(r.body ?? "{}")).toMatchObject({ errors: [{ code: "UPSTREAM_UNREACHABLE" }] });
    expect(r.body).not.toMatch(new RegExp(`ECONNREFUSED|127\\.0\\.0\\.1|${closed}`));
  });
});

describe("bounded load", () => {
  it("answers 503 with Retry-After beyond --max-concurrent-requests", async () => {
    const held: ServerResponse[] = [];
    const origin = await fake((_req, res) => void held.push(res));
    const p = await proxyWith(["--insecure-registry", origin.host, "--max-concurrent-requests", "2"], true);
    const url = manifestUrl(p, `127.0.0.1-${origin.port}`);
    const pending = [httpGet(url), httpGet(url)];
    await eventually(() => held.length === 2, 5000, "two requests at the origin");
    const third = await httpGet(url, { keepBody: true });
    expect(third.status).toBe(503);
    expect(third.headers["retry-after"]).toBe("1");
    expect(JSON.parse(third.body ?? "{}")).toMatchObject({ errors: [{ code: "TOOMANYREQUESTS" }] });
    for (const res of held) serveManifest(res);
    expect((await Promise.all(pending)).map(r => r.status)).toEqual([200, 200]);
    expect(await p.metric("kuik_proxy_rejected_requests_total")).toBe(1);
  });

  it("closes connections beyond --max-connections", async () => {
    const p = await proxyWith(["--max-connections", "2"], true);
    const sockets = [0, 1, 2].map(() => connect(p.port, "127.0.0.1"));
    try {
      await Promise.all(sockets.map(s => once(s, "connect")));
      const closed = await Promise.race([
        ...sockets.map((s, i) => once(s, "close").then(() => i)),
        new Promise(r => setTimeout(() => r(-1), 2000)),
      ]);
      expect(closed).toBe(2);
    } finally {
      for (const s of sockets) s.destroy();
    }
  });
});
