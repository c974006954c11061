/**
 * The fault proxy's listener (plain, or terminating TLS with the harness server certificate and re-originating it
 * to a TLS target): rules, counters, kill/restart. Each accepted connection is a FaultConnection.
 */
import { readFileSync } from "node:fs";
import { connect as netConnect, createServer, type Server, type Socket } from "node:net";
import { connect as tlsConnect, createSecureContext, TLSSocket } from "node:tls";
import { makeTempDir, removeTempDir } from "./cleanup";
import { FaultConnection, type ProxyHooks } from "./fault-connection";
import type { FaultAction, FaultProxy, FaultProxyOptions, FaultRule, FaultTarget } from "./faults";
import type { RequestInfo } from "./http-stream";
import { LOOPBACK } from "./net";
import { harnessPki, writeCertDir } from "./pki";

export class FaultProxyServer implements FaultProxy {
  port = 0;
  readonly tls: boolean;
  caFile?: string;
  certDir?: string;
  readonly username?: string;
  readonly password?: string;
  readonly requests: RequestInfo[] = [];
  connectionsAccepted = 0;
  fired: number[] = [];
  private rules: FaultRule[] = [];
  private server: Server | undefined;
  private readonly connections = new Set<FaultConnection>();
  private readonly rawSockets = new Set<Socket>();
  private throttle: number | undefined;
  private secure: ReturnType<typeof createSecureContext> | undefined;
  private upstreamCa: Buffer | undefined;
  private dir: string | undefined;
  private stopped = false;

  constructor(
    readonly target: FaultTarget,
    opts: FaultProxyOptions,
  ) {
    this.tls = opts.tls ?? target.tls;
    if (target.username !== undefined) this.username = target.username;
    if (target.password !== undefined) this.password = target.password;
    this.setRules(opts.rules ?? []);
    this.throttle = opts.throttleBytesPerSecond;
  }

  get host(): string {
    return `${LOOPBACK}:${this.port}`;
  }
  get url(): string {
    return `${this.tls ? "https" : "http"}://${this.host}`;
  }
  get creds(): string | undefined {
    return this.username !== undefined ? `${this.username}:${this.password ?? ""}` : undefined;
  }
  get connectionsOpen(): number {
    return this.connections.size;
  }

  setRules(rules: FaultRule[]): void {
    this.rules = rules.map(r => ({ ...r }));
    this.fired = rules.map(() => 0);
  }
  addRule(rule: FaultRule): void {
    this.rules.push({ ...rule });
    this.fired.push(0);
  }
  clearRules(): void {
    this.setRules([]);
  }
  setThrottle(bytesPerSecond: number | undefined): void {
    this.throttle = bytesPerSecond;
  }

  async init(): Promise<void> {
    const pki = await harnessPki();
    if (this.tls) {
      this.secure = createSecureContext({
        cert: readFileSync(pki.serverCert),
        key: readFileSync(pki.serverKey),
      });
      this.caFile = pki.caFile;
    }
    if (this.target.tls) this.upstreamCa = readFileSync(this.target.caFile ?? pki.caFile);
    await this.listen(0);
    if (this.tls && this.caFile) {
      this.dir = makeTempDir("faultproxy");
      this.certDir = writeCertDir(this.dir, this.host, readFileSync(this.caFile));
    }
  }

  private listen(port: number): Promise<void> {
    const server = createServer({ noDelay: true }, raw => this.accept(raw));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, LOOPBACK, () => {
        const a = server.address();
        this.port = typeof a === "object" && a ? a.port : 0;
        resolve();
      });
    });
  }

  private pickRule(req: RequestInfo): FaultAction | undefined {
    for (const [i, r] of this.rules.entries()) {
      if (r.times !== undefined && (this.fired[i] ?? 0) >= r.times) continue;
      if (r.match && !r.match(req)) continue;
      this.fired[i] = (this.fired[i] ?? 0) + 1;
      return r.action;
    }
    return undefined;
  }

  private accept(raw: Socket): void {
    raw.on("error", () => undefined);
    const client: Socket = this.secure
      ? new TLSSocket(raw, { isServer: true, secureContext: this.secure })
      : raw;
    client.on("error", () => undefined);
    const i = this.target.host.lastIndexOf(":");
    const [host, port] = [this.target.host.slice(0, i), Number(this.target.host.slice(i + 1))];
    const upstream: Socket = this.target.tls
      ? tlsConnect({ host, port, ...(this.upstreamCa ? { ca: this.upstreamCa } : {}) })
      : netConnect({ host, port, noDelay: true });
    upstream.on("error", () => undefined);
    const hooks: ProxyHooks = {
      throttle: () => this.throttle,
      onRequest: info => {
        const r = { seq: this.requests.length, ...info };
        this.requests.push(r);
        return r;
      },
      pickRule: req => this.pickRule(req),
    };
    const conn = new FaultConnection(this.connectionsAccepted++, raw, client, upstream, hooks);
    this.connections.add(conn);
    this.rawSockets.add(raw);
    raw.on("close", () => {
      conn.destroy();
      this.rawSockets.delete(raw);
    });
    void conn.run().finally(() => this.connections.delete(conn));
  }

  resetConnections(): void {
    for (const s of this.rawSockets) s.resetAndDestroy();
    for (const c of this.connections) c.destroy();
  }

  kill(): void {
    this.server?.close();
    this.server = undefined;
    this.resetConnections();
  }

  async restart(): Promise<void> {
    if (this.stopped) throw new Error("fault proxy: restart() after stop()");
    if (!this.server) await this.listen(this.port);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const server = this.server;
    this.kill();
    if (server) await new Promise<void>(r => server.close(() => r()));
    if (this.dir) removeTempDir(this.dir);
  }
}
