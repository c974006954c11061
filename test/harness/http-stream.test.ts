import { describe, expect, it } from "vitest";
import { HttpMessageFramer, type RequestInfo, type Segment } from "./http-stream";

const req = (method: string, path: string, seq = 0): RequestInfo => ({
  seq,
  connection: 0,
  method,
  path,
  headers: {},
});

/** Feed `input` in every possible pair of pieces and check the framing is the same. */
function feedSplit(make: () => HttpMessageFramer, input: string): Segment[][] {
  const buf = Buffer.from(input, "latin1");
  const runs: Segment[][] = [];
  for (let cut = 0; cut <= buf.length; cut += 1) {
    const f = make();
    runs.push([...f.push(buf.subarray(0, cut)), ...f.push(buf.subarray(cut))]);
  }
  return runs;
}

function summary(segs: Segment[]): string[] {
  const out: string[] = [];
  let body = "";
  for (const s of segs) {
    if (s.kind === "body") body += s.bytes.toString("latin1");
    else {
      if (body) out.push(`body:${body}`);
      body = "";
      out.push(
        s.kind === "head"
          ? `head:${s.head.status ?? s.head.method}:${s.head.request?.path ?? s.head.path ?? ""}`
          : "end",
      );
    }
  }
  if (body) out.push(`body:${body}`);
  return out;
}

describe("HttpMessageFramer", () => {
  it("frames pipelined requests with content-length and chunked bodies, at any split point", () => {
    const input =
      "GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n" +
      "PUT /up HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello" +
      "PATCH /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" +
      "HEAD /x HTTP/1.1\r\n\r\n";
    const expected = [
      "head:GET:/v2/",
      "end",
      "head:PUT:/up",
      "body:hello",
      "end",
      "head:PATCH:/up",
      "body:3\r\nabc\r\n0\r\n\r\n",
      "end",
      "head:HEAD:/x",
      "end",
    ];
    for (const run of feedSplit(() => new HttpMessageFramer("request"), input))
      expect(summary(run)).toEqual(expected);
  });

  it("pairs responses with requests: HEAD and 204 have no body, 100 is interim, chunked with trailers", () => {
    const input =
      "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n" + // answers HEAD: no body
      "HTTP/1.1 100 Continue\r\n\r\n" +
      "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok" +
      "HTTP/1.1 204 No Content\r\n\r\n" +
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x=y\r\nhi\r\n0\r\nTrailer: v\r\n\r\n" +
      "HTTP/1.1 200 OK\r\n\r\nuntil close";
    const expected = [
      "head:200:/a",
      "end",
      "head:100:",
      "end",
      "head:201:/b",
      "body:ok",
      "end",
      "head:204:/c",
      "end",
      "head:200:/d",
      "body:2;x=y\r\nhi\r\n0\r\nTrailer: v\r\n\r\n",
      "end",
      "head:200:/e",
      "body:until close",
    ];
    for (const run of feedSplit(() => {
      const q = [
        req("HEAD", "/a"),
        req("PUT", "/b"),
        req("DELETE", "/c"),
        req("GET", "/d"),
        req("GET", "/e"),
      ];
      return new HttpMessageFramer("response", () => q.shift());
    }, input)) {
      expect(summary(run)).toEqual(expected);
    }
  });

  it("forwards every byte unchanged", () => {
    const input = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    const f = new HttpMessageFramer("response", () => req("GET", "/"));
    const bytes = f
      .push(Buffer.from(input))
      .map(s => (s.kind === "end" ? "" : s.bytes.toString()))
      .join("");
    expect(bytes).toBe(input);
  });

  it("rejects garbage", () => {
    expect(() =>
      new HttpMessageFramer("request").push(Buffer.from("\x16\x03\x01 not http\r\n\r\n")),
    ).toThrow();
  });
});
