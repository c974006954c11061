/**
 * Seeded fuzzing of the proxy's front door and of registry-client's references (issue #13): tens of thousands of
 * hostile request paths through an in-process proxy, and image references through a RegistryClient, with a fake
 * DNS that sends names to loopback, private, metadata and public addresses. Every connection the address policy
 * lets through is dialled to one stand-in origin on the loopback (never to the address itself), which answers
 * with random 404s, challenges and redirects. Asserted: nothing crashes or rejects unhandled, no connection goes
 * to a refused address, and an origin only ever sees `/v2/` paths (or a path it handed out itself).
 *
 * A failing seed is printed; rerun it with KUIK_FUZZ_SEED=<seed>.
 */
import { once } from "node:events";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { connect, type AddressInfo, type Server } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Pool } from "undici";
import {
  AddressPolicy,
  Keyring,
  RegistryClient,
  parseImageReference,
  type AddressDecision,
  type ResolvedAddress,
} from "../../registry-client/src";
import type { Connector } from "../../registry-client/src/address-policy";
import { startTestProxy, type TestProxy } from "../../proxy/test/fixtures";

const SEED = Number(process.env.KUIK_FUZZ_SEED ?? 0x6b75_696b);
const PATHS = 20_000;
const REFERENCES = 10_000;

/** mulberry32: a tiny seeded PRNG (no dependency), good enough to spread inputs. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const HEX64 = "0123456789abcdef".repeat(4);
/** Fragments an attacker would try in a name: hosts with ports (the proxy's `host-port` form), traversal, encodings. */
const FRAGMENTS = [
  ...["localhost", "localhost-22", "127.0.0.1", "127.0.0.1-6443", "169.254.169.254", "169.254.169.254-80"],
  ...[
    "metadata.google.internal",
    "kubernetes.default.svc-443",
    "10.0.0.1-2379",
    "0x7f000001-80",
    "2130706433",
  ],
  ...[
    "100.64.0.1-80",
    "192.168.0.1",
    "evil.example",
    "evil.example-22",
    "registry.example.com-5000",
    "docker.io",
  ],
  ...["ghcr.io", "library", "nginx", "app", "team", "v2", "manifests", "blobs", "_catalog", "tags", "list"],
  ...["..", ".", "%2e%2e", "%2F", "%00", "%0d%0a", "@", "~", "-", "_", "a.b", "a-1", "A", "x".repeat(70)],
  ...[`sha256:${HEX64}`, "sha256:zz", "latest", "v1.0", "[::1]", "fd00:ec2::254", "%5b::1%5d-80", "é", "*"],
];
const STARTS = [
  "/v2/",
  "/v2/",
  "/v2/",
  "/v2/",
  "/v2",
  "/",
  "//",
  "/v1/",
  "/v2//",
  "/V2/",
  "/v2/../",
  "/./v2/",
];
const ENDS = [
  "/manifests/latest",
  `/manifests/sha256:${HEX64}`,
  `/blobs/sha256:${HEX64}`,
  "/blobs/latest",
  "",
  "/",
];

function pick<T>(rand: () => number, list: readonly T[]): T {
  return list[Math.floor(rand() * list.length)] as T;
}

/** Host parts of well-formed names, in the proxy's `host-port` form: most of them must be refused. */
const HOSTS = [
  ...["localhost-22", "127.0.0.1-6443", "169.254.169.254", "169.254.169.254-80", "metadata.google.internal"],
  ...["kubernetes.default.svc-443", "10.0.0.1-2379", "100.64.0.1-80", "evil.example", "evil.example-22"],
  ...["registry.example.com-5000", "ghcr.io", "quay.io", "a.b.c.d.e", "xn--e1a.example", "1.2.3.4-1"],
];

/** A path the router accepts (a hostile host, a valid repository and reference) three times in five, else chaos. */
function fuzzPath(rand: () => number): string {
  if (rand() < 0.6) {
    const repo = Array.from({ length: 1 + Math.floor(rand() * 3) }, () =>
      pick(rand, ["app", "team", "library", "a-b", "a.b", "a__b", "x".repeat(40)]),
    ).join("/");
    return `/v2/${pick(rand, HOSTS)}/${repo}${pick(rand, ENDS.slice(0, 3))}`;
  }
  const parts = Array.from({ length: 1 + Math.floor(rand() * 5) }, () => pick(rand, FRAGMENTS));
  const sep = rand() < 0.9 ? "/" : pick(rand, ["//", "/./", ":", "-"]);
  const query = rand() < 0.1 ? `?ns=${pick(rand, FRAGMENTS)}` : "";
  return `${pick(rand, STARTS)}${parts.join(sep)}${pick(rand, ENDS)}${query}`;
}

function fuzzReference(rand: () => number): string {
  const host = pick(rand, [
    ...[
      "localhost:5000",
      "127.0.0.1:22",
      "169.254.169.254",
      "10.0.0.1:6443",
      "[::1]:5000",
      "[fd00:ec2::254]",
    ],
    ...[
      "evil.example",
      "evil.example:8080",
      "registry.example.com",
      "docker.io",
      "",
      "a..b",
      "UPPER.example",
    ],
  ]);
  const path = Array.from({ length: 1 + Math.floor(rand() * 3) }, () =>
    pick(rand, ["app", "team", "library", "nginx", "..", "a_b", "a__b", "-x", "x".repeat(260), "Caps", "é"]),
  ).join("/");
  const tail = pick(rand, [
    ":latest",
    ":v1",
    `@sha256:${HEX64}`,
    ":bad tag",
    "",
    "@sha256:1",
    ":" + "t".repeat(130),
  ]);
  return `${host}${host === "" ? "" : "/"}${path}${tail}`;
}

/** Addresses the fake DNS hands out: public ones, and every kind the policy must refuse. */
const ADDRESSES: readonly (readonly string[])[] = [
  ["93.184.216.34"],
  ["2606:4700::1111"],
  ["127.0.0.1"],
  ["::1"],
  ["10.0.0.1"],
  ["169.254.169.254"],
  ["fd00:ec2::254"],
  ["::ffff:127.0.0.1"],
  ["100.64.0.1"],
  ["0.0.0.0"],
  ["224.0.0.1"],
  ["64:ff9b::a00:1"],
  ["192.168.1.1", "93.184.216.34"], // a private address first: the public one is used
  [],
];

/** What the fuzz run observed. */
interface Observed {
  lookups: number;
  dialled: number;
  /** Connections the policy let through to an address it should have refused. */
  violations: string[];
  decisions: AddressDecision[];
  originPaths: string[];
  /** Paths the stand-in origin handed out itself (redirect targets, realms): allowed to come back. */
  issued: Set<string>;
  cachePaths: string[];
}

const observed: Observed = {
  lookups: 0,
  dialled: 0,
  violations: [],
  decisions: [],
  originPaths: [],
  issued: new Set(),
  cachePaths: [],
};
const servers: Server[] = [];
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
let origin: Server;
let proxy: TestProxy | undefined;
let cacheHost = "";
/** The origins' policy with the same hooks, for the registry-client run. */
let policy: AddressPolicy;

async function listen(server: Server): Promise<number> {
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  servers.push(server);
  return (server.address() as AddressInfo).port;
}

/** The stand-in for every origin: random answers, from its own seeded PRNG. */
function originHandler(rand: () => number): (req: IncomingMessage, res: ServerResponse) => void {
  let n = 0;
  return (req, res) => {
    const url = req.url ?? "";
    observed.originPaths.push(url);
    if (url.startsWith("/token/")) return void res.end(JSON.stringify({ token: "t", expires_in: 60 }));
    const host = `${pick(rand, ["evil.example", "localhost", "metadata.google.internal", "public.example"])}`;
    const port = pick(rand, ["", ":22", ":443", ":6443"]);
    const scheme = pick(rand, ["https", "https", "http", "ftp"]);
    const issued = `/${pick(rand, ["redirected", "token"])}/${n++}`;
    observed.issued.add(issued);
    const choice = rand();
    if (choice < 0.3) {
      res.writeHead(404, { "content-type": "application/json" });
      res.end('{"errors":[{"code":"MANIFEST_UNKNOWN","message":"internal detail 10.1.2.3"}]}');
    } else if (choice < 0.55) {
      const realm = `${scheme}://${host}${port}${issued.replace("redirected", "token")}`;
      observed.issued.add(new URL(realm, "http://x").pathname);
      res.writeHead(401, { "www-authenticate": `Bearer realm="${realm}",service="s"` }).end();
    } else if (choice < 0.85) {
      const location = rand() < 0.2 ? issued : `${scheme}://${host}${port}${issued}`;
      res.writeHead(pick(rand, [301, 302, 307, 308]), { location }).end();
    } else {
      res.writeHead(200, {
        "content-type": "application/vnd.oci.image.manifest.v1+json",
        "content-length": "2",
      });
      res.end("{}");
    }
  };
}

/** The policy hooks: a counting fake DNS, a recorder of decisions, and a dialler that checks what it is given. */
function policyHooks(originPort: number, refusing: AddressPolicy, rand: () => number) {
  // Each lookup draws its answer: a name is public once and private the next time, as with DNS rebinding.
  const resolve = async (hostname: string): Promise<ResolvedAddress[]> => {
    observed.lookups++;
    const addresses = pick(rand, ADDRESSES);
    if (addresses.length === 0)
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND" });
    return addresses.map(address => ({ address, family: address.includes(":") ? 6 : 4 }));
  };
  const connectVia: Connector = (options, callback) => {
    observed.dialled++;
    // `hostname` is the address the policy checked; `host` the name:port asked for (the cache is allowed by name).
    const allowedByName = options.host === cacheHost;
    if (!allowedByName && refusing.refusal(options.hostname) !== undefined) {
      observed.violations.push(`${options.host ?? ""} → ${options.hostname}`);
    }
    const socket = connect(originPort, "127.0.0.1");
    socket.once("connect", () => callback(null, socket));
    socket.once("error", err => callback(err, null));
  };
  return { resolve, connectVia, onDecision: (d: AddressDecision) => void observed.decisions.push(d) };
}

beforeAll(async () => {
  process.on("unhandledRejection", onUnhandled);
  const rand = prng(SEED ^ 0x5eed);
  origin = createServer(originHandler(rand));
  const originPort = await listen(origin);
  const cache = createServer((req, res) => {
    observed.cachePaths.push(req.url ?? "");
    res.writeHead(404).end();
  });
  cacheHost = `127.0.0.1:${await listen(cache)}`;
  const hooks = policyHooks(originPort, new AddressPolicy(), prng(SEED ^ 0xd115));
  proxy = await startTestProxy(
    [
      ...["--cache-registry", `http://${cacheHost}`, "--origin-attempts", "1"],
      ...[
        "--origin-connect-timeout",
        "1s",
        "--origin-headers-timeout",
        "2s",
        "--max-concurrent-requests",
        "4096",
      ],
    ],
    { allowLoopbackOrigins: false, addressPolicy: hooks, logLevel: "fatal" },
  );
  policy = new AddressPolicy(hooks);
});

afterAll(async () => {
  process.off("unhandledRejection", onUnhandled);
  await proxy?.close();
  await Promise.all(servers.map(s => new Promise(r => s.close(r))));
});

/** Runs `work` over `items` with `width` in flight. */
async function inParallel<T>(
  items: readonly T[],
  width: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await work(items[next++] as T);
    }),
  );
}

describe(`fuzzing (seed ${SEED})`, () => {
  it(`sends ${PATHS} hostile request paths through the proxy: no crash, no refused address dialled, only /v2/ upstream`, async () => {
    const rand = prng(SEED);
    const paths = Array.from({ length: PATHS }, () => fuzzPath(rand));
    const pool = new Pool(`http://${proxy?.host}`, { connections: 16 });
    const statuses = new Map<number, number>();
    const internal: string[] = [];
    const started = performance.now();
    try {
      await inParallel(paths, 64, async path => {
        let status: number;
        try {
          const r = await pool.request({ path, method: rand() < 0.8 ? "GET" : "HEAD" });
          await r.body.dump();
          status = r.statusCode;
        } catch (err) {
          // undici refuses some targets before sending (invalid characters): not the proxy's business.
          if ((err as { code?: string }).code === "UND_ERR_INVALID_ARG") return;
          throw err;
        }
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        if (status === 500 && internal.length < 5) internal.push(path);
      });
    } finally {
      await pool.close();
    }
    const ms = performance.now() - started;
    console.log(`fuzz paths: ${PATHS} in ${Math.round(ms)} ms`, Object.fromEntries(statuses), {
      lookups: observed.lookups,
      dialled: observed.dialled,
      refused: observed.decisions.filter(d => !d.allowed).length,
    });
    expect(unhandled).toEqual([]);
    expect(observed.violations).toEqual([]);
    expect(internal, "paths answered 500 (a bug of the handler)").toEqual([]);
    const stray = observed.originPaths.filter(
      p => !p.startsWith("/v2/") && !observed.issued.has(p.split("?")[0] ?? ""),
    );
    expect(stray).toEqual([]);
    expect(observed.cachePaths.filter(p => !p.startsWith("/v2/"))).toEqual([]);
    // The run exercised what it claims to: refusals, allowed dials, and served answers.
    expect(observed.decisions.some(d => !d.allowed)).toBe(true);
    expect(observed.dialled).toBeGreaterThan(50);
    const ping = await fetch(`http://${proxy?.host}/v2/`);
    expect(ping.status).toBe(200); // still serving
  });

  it(`resolves ${REFERENCES} hostile image references with registry-client as the watcher would`, async () => {
    const rand = prng(SEED + 1);
    const keyring = new Keyring([
      {
        registry: "evil.example/team",
        credentials: { kind: "basic", username: "a", password: "b" },
        source: "t",
      },
      { registry: "evil.example", credentials: { kind: "bearer", token: "t" }, source: "t" },
    ]);
    const client = new RegistryClient({
      addressPolicy: policy,
      credentials: (registry, repository) => keyring.lookup({ registry, repository }),
      retry: { attempts: 1 },
      timeouts: { connectMs: 1000, headersMs: 2000, bodyMs: 2000 },
      maxHosts: 8,
    });
    const before = observed.originPaths.length;
    let parsed = 0;
    let pools = 0;
    try {
      await inParallel(
        Array.from({ length: REFERENCES }, () => fuzzReference(rand)),
        32,
        async text => {
          let ref: ReturnType<typeof parseImageReference>;
          try {
            ref = parseImageReference(text);
          } catch {
            return;
          }
          parsed++;
          const reference = ref.digest ?? ref.tag ?? "latest";
          await client
            .request({
              registry: ref.registry,
              repository: ref.repository,
              method: "HEAD",
              path: `/v2/${ref.repository}/manifests/${reference}`,
              expect: [200],
              followRedirects: true,
            })
            .then(
              r => r.body.dump(),
              () => undefined,
            );
        },
      );
      pools = client.pools;
    } finally {
      await client.close();
    }
    console.log(`fuzz references: ${REFERENCES}, ${parsed} parsed, pools ${pools}`);
    expect(unhandled).toEqual([]);
    expect(observed.violations).toEqual([]);
    expect(pools).toBeLessThanOrEqual(8);
    const stray = observed.originPaths
      .slice(before)
      .filter(p => !p.startsWith("/v2/") && !observed.issued.has(p.split("?")[0] ?? ""));
    expect(stray).toEqual([]);
    expect(parsed).toBeGreaterThan(100);
  });
});
