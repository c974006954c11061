/**
 * One client connection of the fault proxy: relays bytes unchanged in both directions while HTTP framing
 * (http-stream.ts) tells which response answers which request, so the rule picked for a request can act on
 * exactly that response: delay or replace its head, pace, cut (RST / FIN) or stall its body.
 */
import type { Socket } from "node:net";
import type { FaultAction } from "./faults";
import { HttpFramingError, HttpMessageFramer, type MessageHead, type RequestInfo } from "./http-stream";
import { sleep } from "./tools";

function drainOrClose(sock: Socket): Promise<void> {
  return new Promise(resolve => {
    if (sock.destroyed) return resolve();
    const done = (): void => {
      sock.off("drain", done);
      sock.off("close", done);
      resolve();
    };
    sock.on("drain", done);
    sock.on("close", done);
  });
}

async function write(sock: Socket, bytes: Buffer): Promise<void> {
  if (bytes.length === 0 || sock.destroyed || sock.writableEnded) return;
  if (!sock.write(bytes)) await drainOrClose(sock);
}

/** Paces writes to `rate` bytes/s in 50 ms slices. */
class Pacer {
  private readonly start = Date.now();
  private sent = 0;
  constructor(readonly rate: number) {}
  async write(sock: Socket, bytes: Buffer): Promise<void> {
    const slice = Math.max(1, Math.floor(this.rate / 20));
    for (let off = 0; off < bytes.length && !sock.destroyed; off += slice) {
      const part = bytes.subarray(off, off + slice);
      const wait = this.start + (this.sent / this.rate) * 1000 - Date.now();
      if (wait > 0) await sleep(wait);
      await write(sock, part);
      this.sent += part.length;
    }
  }
}

/** Thrown inside pumpDown to end the connection on purpose (a fault fired). */
class Ended extends Error {}

/** Callbacks a connection needs from its proxy. */
export interface ProxyHooks {
  throttle(): number | undefined;
  onRequest(info: Omit<RequestInfo, "seq">): RequestInfo;
  pickRule(req: RequestInfo): FaultAction | undefined;
}

export class FaultConnection {
  private readonly queue: RequestInfo[] = [];
  private action: FaultAction | undefined;
  private sent = 0;
  private pacer: Pacer | undefined;
  private readonly globalPacer: Pacer | undefined;

  constructor(
    private readonly id: number,
    private readonly raw: Socket,
    private readonly client: Socket,
    private readonly upstream: Socket,
    private readonly hooks: ProxyHooks,
  ) {
    const t = hooks.throttle();
    this.globalPacer = t ? new Pacer(t) : undefined;
  }

  /** Relay until the response side is done; resolves when the connection is fully torn down. */
  async run(): Promise<void> {
    void this.pumpUp();
    try {
      await this.pumpDown();
      if (!this.client.destroyed && !this.client.writableEnded) {
        this.client.end(); // flush what was forwarded, then FIN
        await new Promise<void>(r => {
          this.client.once("finish", () => r());
          this.client.once("close", () => r());
        });
      }
    } catch {
      /* a fault fired or a socket failed: tear down below */
    }
    this.destroy();
  }

  destroy(): void {
    this.upstream.destroy();
    this.client.destroy();
    this.raw.destroy();
  }

  private async pumpUp(): Promise<void> {
    const framer = new HttpMessageFramer("request");
    let framing = true;
    const pacer = this.hooks.throttle() ? new Pacer(this.hooks.throttle() ?? 1) : undefined;
    try {
      for await (const chunk of this.client as AsyncIterable<Buffer>) {
        if (framing) framing = this.frameRequests(framer, chunk);
        if (pacer) await pacer.write(this.upstream, chunk);
        else await write(this.upstream, chunk);
      }
      this.upstream.end();
    } catch {
      this.upstream.destroy();
    }
  }

  /** Record the requests that start in `chunk`; false once the stream is not HTTP/1.x (plain relay). */
  private frameRequests(framer: HttpMessageFramer, chunk: Buffer): boolean {
    try {
      for (const seg of framer.push(chunk)) {
        if (seg.kind !== "head") continue;
        const info = {
          connection: this.id,
          method: seg.head.method ?? "",
          path: seg.head.path ?? "",
          headers: seg.head.headers,
        };
        this.queue.push(this.hooks.onRequest(info));
      }
      return true;
    } catch (e) {
      if (e instanceof HttpFramingError) return false;
      throw e;
    }
  }

  private async out(bytes: Buffer): Promise<void> {
    const p = this.pacer ?? this.globalPacer;
    if (p) await p.write(this.client, bytes);
    else await write(this.client, bytes);
  }

  private async pumpDown(): Promise<void> {
    const framer = new HttpMessageFramer("response", () => this.queue.shift());
    let framing = true;
    for await (const chunk of this.upstream as AsyncIterable<Buffer>) {
      let segs: ReturnType<HttpMessageFramer["push"]> | undefined;
      if (framing) {
        try {
          segs = framer.push(chunk);
        } catch (e) {
          if (!(e instanceof HttpFramingError)) throw e;
          framing = false;
        }
      }
      if (!segs) {
        await this.out(chunk);
        continue;
      }
      for (const seg of segs) {
        if (seg.kind === "head") await this.onHead(seg.head, seg.bytes);
        else if (seg.kind === "body") await this.onBody(seg.bytes);
        else this.action = this.pacer = undefined;
      }
    }
  }

  private async onHead(head: MessageHead, bytes: Buffer): Promise<void> {
    const a = head.request ? this.hooks.pickRule(head.request) : undefined;
    this.action = a;
    this.sent = 0;
    this.pacer = a?.type === "throttle" ? new Pacer(a.bytesPerSecond) : undefined;
    if (a?.type === "delay") await sleep(a.ms);
    if (a?.type === "respond") {
      const body = a.body ?? "";
      const headers = {
        "content-type": "application/json",
        "content-length": String(Buffer.byteLength(body)),
        connection: "close",
        ...a.headers,
      };
      const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`);
      await write(this.client, Buffer.from(`HTTP/1.1 ${a.status} Injected\r\n${lines.join("")}\r\n${body}`));
      throw new Ended();
    }
    await write(this.client, bytes);
    if (a?.type === "stall" && !(a.afterBytes ?? 0)) await this.stall();
  }

  private async onBody(bytes: Buffer): Promise<void> {
    const a = this.action;
    if (a?.type !== "reset" && a?.type !== "close" && a?.type !== "stall") return this.out(bytes);
    const limit = a.afterBytes ?? 0;
    if (this.sent + bytes.length < limit) {
      this.sent += bytes.length;
      return this.out(bytes);
    }
    await this.out(bytes.subarray(0, limit - this.sent));
    this.sent = limit;
    if (a.type === "stall") return this.stall();
    // wait until the forwarded bytes are with the kernel, then end the connection
    for (
      let i = 0;
      i < 200 && (this.client.writableLength > 0 || this.raw.writableLength > 0) && !this.raw.destroyed;
      i++
    )
      await sleep(5);
    this.upstream.destroy();
    if (a.type === "close") {
      await new Promise<void>(r => {
        this.client.end(() => r()); // FIN (after close_notify for TLS)
        this.client.once("close", () => r());
      });
      this.raw.end();
    } else {
      await sleep(20); // let the kernel put the bytes on the wire before the RST
      this.raw.resetAndDestroy();
    }
    throw new Ended();
  }

  /** Keep both connections open and silent until the client gives up (or the proxy is killed). */
  private async stall(): Promise<never> {
    this.upstream.pause();
    await new Promise<void>(resolve => {
      if (this.raw.destroyed) return resolve();
      this.raw.once("close", () => resolve());
    });
    throw new Ended();
  }
}
