/**
 * Fixtures of the proxy's integration tests (test/integration/proxy*.test.ts) and benchmark: the proxy in
 * process (real config parsing, real wiring, listening on a free port of both loopbacks), pulls with real clients
 * and small helpers. The bundled proxy as a child process: process.ts. Registries come from test/harness.
 */
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { Writable } from "node:stream";
import { freePort } from "../../test/harness/net";
import { makeTempDir, removeTempDir } from "../../test/harness/cleanup";
import { runOk, sleep } from "../../test/harness/tools";
import { skopeo } from "../../test/harness/images";
import { cacheRepositoryOf } from "../../registry-client/src/proxy-path";
import { parseCommandLine } from "../src/config";
import { createLogger } from "../src/logger";
import { buildProxy, type BuildOptions, type ProxyRuntime } from "../src/wiring";

/** A proxy running in the test process. */
export interface TestProxy {
  /** `127.0.0.1:PORT` (the same port is bound on [::1]). */
  readonly host: string;
  readonly port: number;
  readonly runtime: ProxyRuntime;
  /** Parsed JSON log lines. */
  readonly logs: Record<string, unknown>[];
  /** Sum of a metric's values over the series whose labels include `labels`. */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  close(timeoutMs?: number): Promise<{ interrupted: number }>;
}

/** Options of {@link startTestProxy} that are not flags. */
export interface TestProxyOptions {
  /**
   * Allow origins on the loopback (`--allowed-origin 127.0.0.0/8 --allowed-origin ::1`), where every harness registry listens;
   * default true. Tests of the address policy turn it off to see the refusal.
   */
  allowLoopbackOrigins?: boolean;
  /** Level of the captured log (default `debug`; `fatal` keeps a run of thousands of requests fast). */
  logLevel?: "fatal" | "debug";
  /** Hooks of the origins' address policy (see wiring.ts `BuildOptions`). */
  addressPolicy?: BuildOptions["addressPolicy"];
}

/** Starts a proxy in process with these extra flags (listen/ops addresses are chosen here). */
export async function startTestProxy(args: string[], options: TestProxyOptions = {}): Promise<TestProxy> {
  const port = await freePort();
  const loopback =
    options.allowLoopbackOrigins === false
      ? []
      : ["--allowed-origin", "127.0.0.0/8", "--allowed-origin", "::1"];
  const parsed = parseCommandLine(
    [
      ...args,
      ...loopback,
      ...["--listen", `127.0.0.1:${port}`, "--listen", `[::1]:${port}`, "--ops-listen", "127.0.0.1:0"],
    ],
    {},
  );
  if (parsed.action !== "run") throw new Error("unexpected command");
  const logs: Record<string, unknown>[] = [];
  const log = createLogger(options.logLevel ?? "debug", {
    write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>),
  });
  const runtime = buildProxy(parsed.config, log, {
    version: "test",
    defaultMetrics: false,
    ...(options.addressPolicy ? { addressPolicy: options.addressPolicy } : {}),
  });
  await runtime.start();
  return {
    host: `127.0.0.1:${port}`,
    port,
    runtime,
    logs,
    async metric(name, labels = {}) {
      const metric = runtime.metrics.registry.getSingleMetric(name);
      if (metric === undefined) throw new Error(`no metric ${name}`);
      const { values } = await metric.get();
      return values
        .filter(v => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want))
        .reduce((sum, v) => sum + v.value, 0);
    },
    close: timeoutMs => runtime.close(timeoutMs ?? 2000),
  };
}

/** The `<name>` the webhook writes for an image of `registryHost` (`127.0.0.1:5000` → `127.0.0.1-5000/<repo>`). */
export function rewrittenName(registryHost: string, repository: string): string {
  return cacheRepositoryOf(registryHost, repository); // the same host-port encoding (registry-client/src/proxy-path.ts)
}

/** Writes a dockerconfigjson credentials file (what the operator's Secret holds). */
export function writeCredentials(
  file: string,
  auths: Record<string, { username: string; password: string }>,
): void {
  const entries = Object.entries(auths).map(([host, c]) => [
    host,
    { auth: Buffer.from(`${c.username}:${c.password}`).toString("base64") },
  ]);
  writeFileSync(file, JSON.stringify({ auths: Object.fromEntries(entries) }), { mode: 0o600 });
}

/** `skopeo copy docker://REF dir:…` over plain HTTP, anonymous, no retries; returns the manifest digest. */
export async function skopeoPull(ref: string): Promise<string> {
  const dir = makeTempDir("proxy-pull");
  try {
    const digestFile = join(dir, "digest");
    await skopeo(
      [
        "copy",
        "--retry-times",
        "0",
        "--src-tls-verify=false",
        "--src-no-creds",
        "--digestfile",
        digestFile,
        `docker://${ref}`,
        `dir:${join(dir, "img")}`,
      ],
      { timeoutMs: 60_000 },
    );
    return readFileSync(digestFile, "utf8").trim();
  } finally {
    removeTempDir(dir);
  }
}

/** `crane pull --insecure` into an OCI layout (crane verifies every digest); returns the manifest digest. */
export async function cranePull(crane: string, ref: string, platform?: string): Promise<string> {
  const dir = makeTempDir("proxy-crane");
  try {
    const args = [
      "pull",
      "--insecure",
      "--format",
      "oci",
      ...(platform ? ["--platform", platform] : []),
      ref,
      join(dir, "oci"),
    ];
    await runOk(crane, args, { timeoutMs: 60_000, env: { DOCKER_CONFIG: dir } });
    const digest = await runOk(
      crane,
      ["digest", "--insecure", ...(platform ? ["--platform", platform] : []), ref],
      {
        timeoutMs: 30_000,
        env: { DOCKER_CONFIG: dir },
      },
    );
    return digest.stdout.trim();
  } finally {
    removeTempDir(dir);
  }
}

/** Result of {@link httpGet}: `complete` is false when the transfer broke. */
export interface GetResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  bytes: number;
  sha256: string;
  complete: boolean;
  error?: string;
  body?: string;
}

/**
 * One GET/HEAD on a fresh connection, hashing the body as it streams (never buffered unless `keepBody`).
 * `onChunk` may return a promise to slow the reader down (backpressure tests).
 */
export function httpGet(
  url: string,
  opts: {
    method?: string;
    headers?: Record<string, string>;
    keepBody?: boolean;
    onChunk?: (received: number) => Promise<void> | void;
  } = {},
): Promise<GetResult> {
  return new Promise(resolve => {
    const hash = createHash("sha256");
    const kept: Buffer[] = [];
    let bytes = 0;
    let settled = false;
    const req = request(url, { method: opts.method ?? "GET", headers: opts.headers, agent: false }, res => {
      const done = (complete: boolean, error?: string): void => {
        if (settled) return;
        settled = true;
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          bytes,
          sha256: `sha256:${hash.digest("hex")}`,
          complete,
          ...(error ? { error } : {}),
          ...(opts.keepBody ? { body: Buffer.concat(kept).toString("utf8") } : {}),
        });
      };
      const sink = new Writable({
        highWaterMark: 64 * 1024,
        write(chunk: Buffer, _enc, callback) {
          bytes += chunk.length;
          hash.update(chunk);
          if (opts.keepBody) kept.push(chunk);
          const wait = opts.onChunk?.(bytes);
          if (wait) wait.then(() => callback(), callback);
          else callback();
        },
      });
      res.on("aborted", () => done(false, "aborted"));
      res.on("error", err => done(false, err.message));
      sink.on("finish", () => done(res.complete, res.complete ? undefined : "incomplete"));
      res.pipe(sink);
    });
    req.on("error", err =>
      resolve({ status: 0, headers: {}, bytes, sha256: "", complete: false, error: err.message }),
    );
    req.end();
  });
}

/** Polls `check` every 25 ms until it holds, or throws after `timeoutMs`. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  what = "condition",
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms`);
    await sleep(25);
  }
}
