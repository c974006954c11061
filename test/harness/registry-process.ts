/**
 * One distribution registry process: config generation, spawn on a free port (retrying on EADDRINUSE), readiness
 * polling of /v2/, kill / restart / stop. The kind-specific config comes from registry-setup.ts.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import type { Server } from "node:http";
import { join } from "node:path";
import { freePort, LOOPBACK, simpleRequest } from "./net";
import { harnessPki, writeCertDir } from "./pki";
import type {
  RegistryConfig,
  RegistryKind,
  RegistryOptions,
  StartedRegistry,
  StartOptions,
  UpstreamSpec,
} from "./registries";
import { htpasswdAuth, pullThroughConfig, setupTokenAuth } from "./registry-setup";
import type { TokenIssuer } from "./token-issuer";
import { keepTemp, makeTempDir, removeTempDir } from "./cleanup";
import { startProcess as startLoggedProcess, type RunningProcess } from "./process";
import { findTool, killGroup, registryBinary, sleep, type RegistryBinaryInfo } from "./tools";

export class RegistryProcess implements StartedRegistry {
  readonly kind: RegistryKind;
  readonly name: string;
  port = 0;
  readonly tls: boolean;
  caFile?: string;
  certDir?: string;
  username?: string;
  password?: string;
  users?: Record<string, string>;
  readonly dir: string;
  readonly dataDir: string;
  readonly logFile: string;
  readonly configFile: string;
  readonly binary: RegistryBinaryInfo;
  tokenIssuer?: TokenIssuer;
  realm?: string;
  upstream?: UpstreamSpec;
  /** Port the registry process binds (differs from `port` behind a same-host token front). */
  internalPort = 0;
  private proc: RunningProcess | undefined;
  private servers: Server[] = [];
  private config!: RegistryConfig;
  private env: NodeJS.ProcessEnv = {};
  private stopped = false;
  private front = false;

  constructor(readonly opts: StartOptions) {
    this.kind = opts.kind;
    this.name = opts.name ?? opts.kind;
    this.tls = opts.tls ?? (opts.kind === "origin-basic" || opts.kind === "origin-token");
    this.dir = makeTempDir(`registry-${this.name}`);
    this.dataDir = opts.dataDir ?? join(this.dir, "data");
    mkdirSync(this.dataDir, { recursive: true });
    this.logFile = join(this.dir, "registry.log");
    this.configFile = join(this.dir, "config.yml");
    this.binary = registryBinary(opts.binary ?? findTool("registry"));
  }

  get host(): string {
    return `${this.opts.host ?? LOOPBACK}:${this.port}`;
  }
  get url(): string {
    return `${this.tls ? "https" : "http"}://${this.host}`;
  }
  get creds(): string | undefined {
    return this.username !== undefined ? `${this.username}:${this.password ?? ""}` : undefined;
  }
  get pid(): number | undefined {
    return this.proc?.isRunning() ? this.proc.pid : undefined;
  }
  get running(): boolean {
    return this.pid !== undefined;
  }

  blobFile(digest: string): string {
    const [alg, hex] = digest.split(":");
    if (!alg || !hex) throw new Error(`blobFile: bad digest ${digest}`);
    return join(this.dataDir, "docker", "registry", "v2", "blobs", alg, hex.slice(0, 2), hex, "data");
  }

  readLog(): string {
    try {
      return readFileSync(this.logFile, "utf8");
    } catch {
      return "";
    }
  }

  /** Build the config (and start the token issuer / front for origin-token). */
  async init(): Promise<void> {
    const o = this.opts;
    const pki = await harnessPki();
    const level =
      o.logLevel ?? (process.env.KUIK_REGISTRY_LOG_LEVEL as RegistryOptions["logLevel"]) ?? "info";
    this.config = {
      version: "0.1",
      log: { level, accesslog: { disabled: true }, fields: { service: this.name } },
      storage: {
        filesystem: { rootdirectory: this.dataDir },
        delete: { enabled: o.deleteEnabled ?? true },
        cache: { blobdescriptor: "inmemory" },
        maintenance: { uploadpurging: { enabled: false } },
      },
      http: {
        addr: "",
        secret: `kuik-harness-${this.name}`,
        headers: { "X-Content-Type-Options": ["nosniff"] },
      },
      health: { storagedriver: { enabled: false } },
    };
    // distribution v3 exports traces to localhost:4318 by default and logs an error per attempt.
    this.env = { ...process.env, OTEL_TRACES_EXPORTER: "none", ...o.env };
    if (this.tls) this.caFile = pki.caFile;
    if (o.kind === "origin-basic" || o.kind === "origin-token") {
      this.username = o.username ?? "kuik";
      this.password = o.password ?? "kuik-secret";
      this.users = { [this.username]: this.password, ...o.users };
    }
    if (o.kind === "origin-basic") this.config.auth = htpasswdAuth(this.dir, this.users ?? {});
    if (o.kind === "origin-token") {
      const t = await setupTokenAuth({
        opts: o,
        dir: this.dir,
        pki,
        binary: this.binary,
        tls: this.tls,
        username: this.username ?? "kuik",
        users: this.users ?? {},
        internalPort: () => this.internalPort,
      });
      Object.assign(this, { tokenIssuer: t.issuer, realm: t.realm });
      this.servers.push(...t.servers);
      this.config.auth = t.auth;
      if (t.frontPort !== undefined) {
        this.front = true;
        this.port = t.frontPort;
        this.config.http.host = this.url;
      }
    }
    if (o.kind === "pull-through") {
      const p = pullThroughConfig(this.binary, o.upstream, o.ttl);
      this.upstream = p.spec;
      this.config.proxy = p.proxy;
      Object.assign(this.env, p.env);
      if (p.env.SSL_CERT_FILE) delete this.env.SSL_CERT_DIR;
    }
    if (this.tls && !this.front) this.config.http.tls = { certificate: pki.serverCert, key: pki.serverKey };
  }

  private writeConfig(): void {
    this.config.http.addr = `${this.opts.host ?? LOOPBACK}:${this.internalPort}`;
    const cfg = structuredClone(this.config);
    this.opts.configPatch?.(cfg);
    writeFileSync(this.configFile, `${JSON.stringify(cfg, null, 2)}\n`, { mode: 0o600 });
  }

  /** Start the registry process and wait for /v2/; on EADDRINUSE pick a new port (or retry the same one). */
  async startProcess(samePort: boolean): Promise<void> {
    const deadline = Date.now() + (this.opts.readyTimeoutMs ?? 30_000);
    for (let attempt = 0; ; attempt++) {
      if (!samePort || this.internalPort === 0) {
        this.internalPort = await freePort();
        if (!this.front) this.port = this.internalPort;
      }
      this.writeConfig();
      const logStart = this.readLog().length;
      try {
        this.proc = await startLoggedProcess({
          name: `${this.name}: registry ${this.binary.path} (${this.binary.version})`,
          cmd: this.binary.path,
          args: ["serve", this.configFile],
          env: this.env,
          logFile: this.logFile,
          ready: () => this.answers(),
          readyTimeoutMs: Math.max(1000, deadline - Date.now()),
          pollMs: 50,
        });
        break;
      } catch (e) {
        const inUse = /address already in use/i.test(this.readLog().slice(logStart));
        if (!inUse || attempt >= 10 || Date.now() >= deadline) throw e;
        await sleep(samePort ? 200 : 0);
      }
    }
    if (this.tls && !this.certDir && this.caFile) {
      this.certDir = writeCertDir(this.dir, this.host, readFileSync(this.caFile));
    }
  }

  /** Whether /v2/ answers 200 or 401 (an auth challenge: the registry serves). */
  private async answers(): Promise<boolean> {
    const scheme = this.tls && !this.front ? "https" : "http";
    const url = `${scheme}://${this.opts.host ?? LOOPBACK}:${this.internalPort}/v2/`;
    const opts = { timeoutMs: 2000, ...(this.caFile ? { caFile: this.caFile } : {}) };
    const status = (await simpleRequest(url, opts)).status;
    return status === 200 || status === 401;
  }

  kill(signal: NodeJS.Signals = "SIGKILL"): void {
    killGroup(this.proc?.pid, signal);
  }

  exited(): Promise<void> {
    return (this.proc?.exited ?? Promise.resolve()).then(() => undefined);
  }

  private async stopProcess(): Promise<void> {
    await this.proc?.stop();
  }

  async restart(): Promise<void> {
    if (this.stopped) throw new Error(`${this.name}: restart() after stop()`);
    await this.stopProcess();
    await this.startProcess(true);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.stopProcess();
    const close = (s: Server): Promise<void> =>
      new Promise(resolve => {
        s.close(() => resolve());
        s.closeAllConnections();
      });
    await Promise.all(this.servers.map(close));
    if (!keepTemp()) removeTempDir(this.dir);
  }
}
