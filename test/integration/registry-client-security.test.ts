/**
 * registry-client under attack (issue #13), against registry stand-ins on loopback: where it connects (the address
 * policy, checked at connect time), where its credentials go (redirects, token realms, challenges read after a
 * redirect), which credential it uses when several match, and what it keeps per host. Each test says what an
 * attacker with a Pod could do before.
 */
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { connect, createServer as createNetServer, type AddressInfo, type Server } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { AddressPolicy, RegistryClient, isRegistryError, type Credentials } from "../../registry-client/src";
import { harnessPki } from "../harness/pki";
import { serveManifest } from "../harness/stand-ins";

const basicOf = (u: string, p: string): string => `Basic ${Buffer.from(`${u}:${p}`).toString("base64")}`;

/** One request a stand-in saw. */
interface Seen {
  url: string;
  authorization: string | undefined;
}

/** A registry stand-in on 127.0.0.1: `host` is `127.0.0.1:PORT`, `seen` every request it got. */
interface Fake {
  host: string;
  url: string;
  seen: Seen[];
  connections: number;
}

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map(s => new Promise(r => s.close(r))));
});

async function fake(handle: (req: IncomingMessage, res: ServerResponse, self: Fake) => void): Promise<Fake> {
  const self: Fake = { host: "", url: "", seen: [], connections: 0 };
  const server = createServer((req, res) => {
    self.seen.push({ url: req.url ?? "", authorization: req.headers.authorization });
    handle(req, res, self);
  });
  server.on("connection", () => self.connections++);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  servers.push(server);
  self.host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  self.url = `http://${self.host}`;
  return self;
}

/**
 * A stand-in answering TLS and plain HTTP on one port (the first byte of a connection tells which), for the
 * https → http redirect that keeps host and port.
 */
async function dualFake(handle: (req: IncomingMessage, res: ServerResponse, tls: boolean) => void): Promise<{
  host: string;
  seen: (Seen & { tls: boolean })[];
}> {
  const pki = await harnessPki();
  const seen: (Seen & { tls: boolean })[] = [];
  const on = (tls: boolean) => (req: IncomingMessage, res: ServerResponse) => {
    seen.push({ url: req.url ?? "", authorization: req.headers.authorization, tls });
    handle(req, res, tls);
  };
  const https = createHttpsServer(
    { cert: readFileSync(pki.serverCert), key: readFileSync(pki.serverKey) },
    on(true),
  );
  const http = createServer(on(false));
  for (const s of [https, http]) {
    s.listen(0, "127.0.0.1");
    await once(s, "listening");
    servers.push(s);
  }
  const portOf = (s: Server): number => (s.address() as AddressInfo).port;
  // A TLS connection starts with a handshake record (0x16): relay it to the https server, anything else to http.
  const mux = createNetServer(socket => {
    socket.once("data", first => {
      const target = connect(portOf(first[0] === 0x16 ? https : http), "127.0.0.1");
      target.write(first);
      socket.pipe(target).pipe(socket);
      target.on("error", () => socket.destroy());
      socket.on("error", () => target.destroy());
    });
  });
  mux.listen(0, "127.0.0.1");
  await once(mux, "listening");
  servers.push(mux);
  return { host: `127.0.0.1:${(mux.address() as AddressInfo).port}`, seen };
}

const LOOPBACK_ALLOWED = new AddressPolicy({ allow: ["127.0.0.1/32"] });

function client(
  hosts: Record<string, { plainHttp?: boolean; insecure?: boolean }>,
  creds: Credentials[] = [],
  extra: Partial<ConstructorParameters<typeof RegistryClient>[0]> = {},
): RegistryClient {
  return new RegistryClient({
    hosts,
    credentials: () => creds,
    retry: { attempts: 1 },
    addressPolicy: LOOPBACK_ALLOWED,
    ...extra,
  });
}

/** A manifest GET as the proxy sends it (redirects followed); resolves with the status. */
async function pull(c: RegistryClient, host: string, repository = "app"): Promise<number> {
  const response = await c.request({
    registry: host,
    repository,
    method: "GET",
    path: `/v2/${repository}/manifests/v1`,
    expect: [200],
    notFound: "MANIFEST_UNKNOWN",
    followRedirects: true,
  });
  await response.body.dump();
  return response.statusCode;
}

async function failure(work: Promise<unknown>): Promise<unknown> {
  return work.then(
    () => new Error("expected a failure"),
    (err: unknown) => err,
  );
}

describe("address policy (SSRF)", () => {
  it("refuses a loopback registry by its resolved address, without connecting, unless allow-listed", async () => {
    const registry = await fake((_req, res) => serveManifest(res));
    const port = registry.host.split(":")[1];
    const refusing = new RegistryClient({
      hosts: { [registry.host]: { plainHttp: true }, [`localhost:${port}`]: { plainHttp: true } },
      retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 1 },
      addressPolicy: new AddressPolicy(),
    });
    // By IP literal, and by a name that resolves to loopback (the check is on the address, not the name).
    const byIp = await failure(pull(refusing, registry.host));
    const byName = await failure(pull(refusing, `localhost:${port}`));
    await refusing.close();
    expect(isRegistryError(byIp, "ADDRESS_REFUSED")).toBe(true);
    expect(isRegistryError(byName, "ADDRESS_REFUSED")).toBe(true);
    expect(registry.connections).toBe(0);

    const allowed = client({ [registry.host]: { plainHttp: true } });
    const status = await pull(allowed, registry.host);
    await allowed.close();
    expect(status).toBe(200);
  });

  it("checks every connection: a redirect to a refused address is not followed", async () => {
    const inner = await fake((_req, res) => serveManifest(res));
    const outer = await fake((_req, res) => {
      res.writeHead(307, { location: `http://localhost:${inner.host.split(":")[1]}/v2/secret` }).end();
    });
    // outer is allow-listed by name and port; inner (the redirect target) is not.
    const c = new RegistryClient({
      hosts: {
        [outer.host]: { plainHttp: true },
        [`localhost:${inner.host.split(":")[1]}`]: { plainHttp: true },
      },
      retry: { attempts: 1 },
      addressPolicy: new AddressPolicy({ allow: [outer.host] }),
    });
    const err = await failure(pull(c, outer.host));
    await c.close();
    expect(isRegistryError(err, "ADDRESS_REFUSED")).toBe(true);
    expect(inner.connections).toBe(0);
  });
});

describe("redirects and realms", () => {
  it("follows a redirect to plain http only for a registry configured plain or insecure", async () => {
    const target = await fake((_req, res) => serveManifest(res));
    const origin = await fake((_req, res) => {
      res.writeHead(307, { location: `${target.url}/v2/app/manifests/v1` }).end();
    });
    const c = client({ [origin.host]: { plainHttp: true } }); // target: not configured
    const err = await failure(pull(c, origin.host));
    await c.close();
    expect(isRegistryError(err, "REDIRECT_REFUSED")).toBe(true);
    expect(target.seen).toEqual([]);
  });

  it("stops after 3 redirects", async () => {
    const loop = await fake((req, res) => {
      const n = Number(/hop=(\d+)/.exec(req.url ?? "")?.[1] ?? 0);
      res.writeHead(302, { location: `/v2/app/manifests/v1?hop=${n + 1}` }).end();
    });
    const c = client({ [loop.host]: { plainHttp: true } });
    const err = await failure(pull(c, loop.host));
    await c.close();
    expect(isRegistryError(err, "REDIRECT_REFUSED")).toBe(true);
    expect(loop.seen).toHaveLength(4); // the request and 3 redirects
  });

  it("never sends Authorization over an https → http redirect on the same host and port", async () => {
    const pki = await harnessPki();
    const registry = await dualFake((req, res, tls) => {
      if (!tls) return serveManifest(res);
      if (req.headers.authorization !== basicOf("u", "p")) {
        res.writeHead(401, { "www-authenticate": 'Basic realm="r"' }).end();
        return;
      }
      res.writeHead(307, { location: `http://${req.headers.host}/plain/manifest` }).end();
    });
    const c = client(
      { [registry.host]: { insecure: true } },
      [{ kind: "basic", username: "u", password: "p" }],
      {
        defaultCa: [readFileSync(pki.caFile, "utf8")],
      },
    );
    await pull(c, registry.host);
    await c.close();
    const plain = registry.seen.filter(s => !s.tls);
    expect(plain).toHaveLength(1);
    expect(plain[0]?.authorization).toBeUndefined();
  });

  it("never reads a challenge served after a cross-origin redirect as the registry's (its realm gets no credentials)", async () => {
    const evil = await fake((req, res, self) => {
      if (req.url?.startsWith("/token")) return void res.end(JSON.stringify({ token: "evil" }));
      res.writeHead(401, { "www-authenticate": `Bearer realm="${self.url}/token",service="evil"` }).end();
    });
    // The registry sends even an anonymous request on (a blob store would); the 401 comes from `evil`.
    const registry = await fake((_req, res) => {
      res.writeHead(307, { location: `${evil.url}/v2/app/manifests/v1` }).end();
    });
    const c = client({ [registry.host]: { plainHttp: true }, [evil.host]: { plainHttp: true } }, [
      { kind: "basic", username: "u", password: "secret" },
    ]);
    const err = await failure(pull(c, registry.host));
    await c.close();
    expect(isRegistryError(err, "UNAUTHORIZED")).toBe(true);
    expect(evil.seen.filter(s => s.url.startsWith("/token"))).toEqual([]);
    expect(evil.seen.every(s => s.authorization === undefined)).toBe(true);
  });

  it("refuses a plain-http token realm on a host not configured insecure", async () => {
    const realm = await fake((_req, res) => void res.end(JSON.stringify({ token: "t" })));
    const registry = await fake((_req, res) => {
      res.writeHead(401, { "www-authenticate": `Bearer realm="${realm.url}/token",service="s"` }).end();
    });
    const c = client({ [registry.host]: { plainHttp: true } }, [
      { kind: "basic", username: "u", password: "p" },
    ]);
    const err = await failure(pull(c, registry.host));
    await c.close();
    expect(isRegistryError(err, "REDIRECT_REFUSED")).toBe(true);
    expect(realm.seen).toEqual([]);
  });
});

describe("several candidate credentials", () => {
  const good: Credentials = { kind: "basic", username: "team-b", password: "right" };
  const wrong: Credentials = { kind: "basic", username: "team-a", password: "wrong" };

  it("moves on to the next candidate when the registry answers 401, and starts with the one that worked next time", async () => {
    const registry = await fake((req, res) => {
      if (req.headers.authorization === basicOf("team-b", "right")) return serveManifest(res);
      res.writeHead(401, { "www-authenticate": 'Basic realm="r"' }).end();
    });
    const c = client({ [registry.host]: { plainHttp: true } }, [wrong, good]);
    await pull(c, registry.host, "team/app");
    const before = registry.seen.length;
    await pull(c, registry.host, "team/app");
    await c.close();
    expect(registry.seen.length - before).toBe(1); // the working candidate first
  });

  it("moves on after a 403, and past a ready bearer token (registrytoken) that does not work", async () => {
    const registry = await fake((req, res) => {
      if (req.headers.authorization === basicOf("team-b", "right")) return serveManifest(res);
      if (req.headers.authorization === undefined) {
        res.writeHead(401, { "www-authenticate": 'Basic realm="r"' }).end();
        return;
      }
      res.writeHead(403).end();
    });
    const c = client({ [registry.host]: { plainHttp: true } }, [
      { kind: "bearer", token: "stale" },
      wrong,
      good,
    ]);
    const status = await pull(c, registry.host, "team/app");
    await c.close();
    expect(status).toBe(200);
  });

  it("tries at most 4 candidates", async () => {
    const registry = await fake((_req, res) => {
      res.writeHead(401, { "www-authenticate": 'Basic realm="r"' }).end();
    });
    const many = Array.from(
      { length: 10 },
      (_, i): Credentials => ({ kind: "basic", username: `u${i}`, password: "x" }),
    );
    const c = client({ [registry.host]: { plainHttp: true } }, many);
    const err = await failure(pull(c, registry.host, "team/app"));
    await c.close();
    expect(isRegistryError(err, "UNAUTHORIZED")).toBe(true);
    const tried = new Set(registry.seen.map(s => s.authorization).filter(Boolean));
    expect(tried.size).toBe(4);
  });
});

describe("bounded state", () => {
  it("keeps at most maxHosts connection pools, closing the least recently used", async () => {
    const registries = await Promise.all([1, 2, 3].map(() => fake((_req, res) => serveManifest(res))));
    const hosts = Object.fromEntries(registries.map(r => [r.host, { plainHttp: true }]));
    const c = client(hosts, [], { maxHosts: 2 });
    for (const r of registries) await pull(c, r.host);
    expect(c.pools).toBe(2);
    await pull(c, registries[0]?.host ?? ""); // evicted, reopened
    expect(c.pools).toBe(2);
    await c.close();
  });
});
