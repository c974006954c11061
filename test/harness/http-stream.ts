/**
 * An incremental HTTP/1.x message framer for the fault proxy: it splits a byte stream into message heads and
 * raw body bytes (chunk framing included) without changing a byte, so the proxy can forward transparently and
 * still know which response belongs to which request and where each body starts and ends.
 */

export interface RequestInfo {
  /** Sequence number over the proxy's lifetime (0-based). */
  seq: number;
  /** Connection number over the proxy's lifetime (0-based). */
  connection: number;
  method: string;
  /** Request target as sent, e.g. "/v2/foo/blobs/sha256:…?x=y". */
  path: string;
  headers: Record<string, string>;
}

export interface MessageHead {
  startLine: string;
  /** Lower-cased names; repeated headers joined with ", ". */
  headers: Record<string, string>;
  method?: string;
  path?: string;
  status?: number;
  /** Responses: the request this answers (undefined for interim 1xx). */
  request?: RequestInfo;
  /** Responses: a 1xx interim response (another head follows for the same request). */
  interim?: boolean;
}

export type Segment =
  | { kind: "head"; bytes: Buffer; head: MessageHead }
  | { kind: "body"; bytes: Buffer }
  | { kind: "end" };

type State = "head" | "fixed" | "chunk-size" | "chunk-data" | "chunk-crlf" | "trailers" | "until-close";

const EMPTY = Buffer.alloc(0);
const MAX_HEAD = 1 << 20;

export class HttpFramingError extends Error {}

export class HttpMessageFramer {
  private state: State = "head";
  private buf: Buffer = EMPTY;
  private remaining = 0;

  /**
   * @param kind which side of the conversation this stream is
   * @param nextRequest responses only: the request the next (final) response answers, FIFO
   */
  constructor(
    private readonly kind: "request" | "response",
    private readonly nextRequest?: () => RequestInfo | undefined,
  ) {}

  /** Whether a message is in progress (a head has been seen and its body is not over). */
  get inMessage(): boolean {
    return this.state !== "head" || this.buf.length > 0;
  }

  /** Feed bytes; returns what they contained, in order. Throws {@link HttpFramingError} on garbage. */
  push(chunk: Buffer): Segment[] {
    const out: Segment[] = [];
    let data = chunk;
    while (data.length > 0) {
      switch (this.state) {
        case "head": {
          const joined = this.buf.length ? Buffer.concat([this.buf, data]) : data;
          const idx = joined.indexOf("\r\n\r\n");
          if (idx < 0) {
            if (joined.length > MAX_HEAD) throw new HttpFramingError("message head too large");
            this.buf = Buffer.from(joined);
            data = EMPTY;
            break;
          }
          const bytes = joined.subarray(0, idx + 4);
          data = joined.subarray(idx + 4);
          this.buf = EMPTY;
          const head = this.parseHead(bytes);
          out.push({ kind: "head", bytes, head });
          this.startBody(head, out);
          break;
        }
        case "fixed":
        case "chunk-data":
        case "chunk-crlf": {
          const n = Math.min(this.remaining, data.length);
          out.push({ kind: "body", bytes: data.subarray(0, n) });
          data = data.subarray(n);
          this.remaining -= n;
          if (this.remaining === 0) {
            if (this.state === "fixed") this.finish(out);
            else if (this.state === "chunk-data") {
              this.state = "chunk-crlf";
              this.remaining = 2;
            } else this.state = "chunk-size";
          }
          break;
        }
        case "chunk-size":
        case "trailers": {
          const joined = this.buf.length ? Buffer.concat([this.buf, data]) : data;
          const idx = joined.indexOf("\r\n");
          if (idx < 0) {
            if (joined.length > MAX_HEAD) throw new HttpFramingError("chunk line too long");
            this.buf = Buffer.from(joined);
            out.push({ kind: "body", bytes: data });
            data = EMPTY;
            break;
          }
          const used = idx + 2 - this.buf.length;
          const line = joined.subarray(0, idx).toString("latin1");
          out.push({ kind: "body", bytes: data.subarray(0, used) });
          data = data.subarray(used);
          this.buf = EMPTY;
          if (this.state === "trailers") {
            if (line === "") this.finish(out);
          } else {
            const size = parseInt(line.split(";")[0]?.trim() ?? "", 16);
            if (!Number.isFinite(size) || size < 0)
              throw new HttpFramingError(`bad chunk size line ${JSON.stringify(line)}`);
            if (size === 0) this.state = "trailers";
            else {
              this.state = "chunk-data";
              this.remaining = size;
            }
          }
          break;
        }
        case "until-close":
          out.push({ kind: "body", bytes: data });
          data = EMPTY;
          break;
      }
    }
    return out;
  }

  private finish(out: Segment[]): void {
    this.state = "head";
    out.push({ kind: "end" });
  }

  private parseHead(bytes: Buffer): MessageHead {
    const lines = bytes.toString("latin1").split("\r\n");
    const startLine = lines[0] ?? "";
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      if (!l) continue;
      const i = l.indexOf(":");
      if (i <= 0) throw new HttpFramingError(`bad header line ${JSON.stringify(l)}`);
      const k = l.slice(0, i).trim().toLowerCase();
      const v = l.slice(i + 1).trim();
      headers[k] = headers[k] !== undefined ? `${headers[k]}, ${v}` : v;
    }
    if (this.kind === "request") {
      const m = /^([A-Z]+) (\S+) HTTP\/1\.[01]$/.exec(startLine);
      if (!m?.[1] || !m[2]) throw new HttpFramingError(`bad request line ${JSON.stringify(startLine)}`);
      return { startLine, headers, method: m[1], path: m[2] };
    }
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(startLine);
    if (!m?.[1]) throw new HttpFramingError(`bad status line ${JSON.stringify(startLine)}`);
    const status = Number(m[1]);
    const interim = status >= 100 && status < 200 && status !== 101;
    const head: MessageHead = { startLine, headers, status, interim };
    if (!interim) {
      const req = this.nextRequest?.();
      if (req) head.request = req;
    }
    return head;
  }

  private startBody(head: MessageHead, out: Segment[]): void {
    const te = (head.headers["transfer-encoding"] ?? "").toLowerCase();
    const cl = head.headers["content-length"];
    if (this.kind === "response") {
      const s = head.status ?? 0;
      if (s === 101) {
        this.state = "until-close";
        return;
      }
      if (head.interim || s === 204 || s === 304 || head.request?.method === "HEAD") return this.finish(out);
    }
    if (te.includes("chunked")) {
      this.state = "chunk-size";
      return;
    }
    if (cl !== undefined) {
      const n = Number(cl.split(",")[0]);
      if (!Number.isSafeInteger(n) || n < 0) throw new HttpFramingError(`bad content-length ${cl}`);
      if (n === 0) return this.finish(out);
      this.state = "fixed";
      this.remaining = n;
      return;
    }
    if (this.kind === "request") return this.finish(out);
    this.state = "until-close";
  }
}
