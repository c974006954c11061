/**
 * Copies an upstream body (a Readable, e.g. undici's BodyReadable) into a ServerResponse with backpressure, and
 * never lets a broken upstream look like a complete response: an upstream error, an early close or a length
 * short of Content-Length destroys the client socket instead of ending the response.
 */
import type { ServerResponse } from "node:http";
import type { Readable } from "node:stream";
import type { GcPacer } from "./gc-pacer";

/** How a copy ended: `error` set when the response was destroyed rather than ended. */
export interface PumpResult {
  bytes: number;
  error?: Error;
  /** The client went away first. */
  clientGone?: boolean;
}

/**
 * Streams `body` into `res` (whose head is already written) and ends or destroys `res`. Resolves once the copy
 * is over; never rejects. `expected` is the announced Content-Length, if any.
 */
export function pumpBody(
  body: Readable,
  res: ServerResponse,
  expected: number | undefined,
  pacer?: GcPacer,
): Promise<PumpResult> {
  return new Promise(resolve => {
    let bytes = 0;
    let settled = false;
    const settle = (result: PumpResult): void => {
      if (settled) return;
      settled = true;
      body.off("data", onData);
      body.off("end", onEnd);
      body.off("error", onError);
      body.off("close", onBodyClose);
      res.off("drain", onDrain);
      res.off("close", onClientClose);
      resolve(result);
    };
    const onData = (chunk: Buffer): void => {
      bytes += chunk.length;
      pacer?.add(chunk.length);
      if (!res.write(chunk)) body.pause();
    };
    const onDrain = (): void => {
      body.resume();
    };
    const onEnd = (): void => {
      if (expected !== undefined && bytes !== expected) {
        return fail(new Error(`upstream sent ${bytes} of ${expected} bytes`));
      }
      res.end();
      settle({ bytes });
    };
    const fail = (error: Error): void => {
      res.destroy(error);
      settle({ bytes, error });
    };
    const onError = (error: Error): void => fail(error);
    const onBodyClose = (): void => {
      if (!body.readableEnded) fail(new Error("upstream body closed before its end"));
    };
    const onClientClose = (): void => {
      if (res.writableFinished) return;
      body.destroy();
      settle({ bytes, error: new Error("client closed the connection"), clientGone: true });
    };
    body.on("error", onError);
    body.on("close", onBodyClose);
    res.on("drain", onDrain);
    res.on("close", onClientClose);
    if (res.destroyed) return onClientClose();
    body.on("end", onEnd);
    body.on("data", onData);
  });
}
