/**
 * The one way a decided upstream response reaches the client, for both legs (cache and origin): undici's dispatch
 * handler contract. The leg hands over the response head ({@link ResponseRelay.start}), then every chunk and the end
 * or error, with the {@link RelayController} of the exchange (undici's DispatchController for the cache leg; the
 * origin's body Readable behind the same three calls, {@link relayReadable}).
 *
 * - Backpressure: `res.write() === false` pauses the upstream; the ServerResponse's 'drain' resumes it, so a slow
 *   client holds the upstream connection still instead of buffering the blob.
 * - Short body: a response whose body stops short of its Content-Length (or breaks: upstream error, early close)
 *   destroys the client socket instead of ending the response, so the client sees a broken transfer (and retries
 *   with a Range request), never a silently short blob.
 * - Abort: the client going away aborts the upstream exchange, once, and the relay ends there.
 */
import type { ServerResponse } from "node:http";
import type { Readable } from "node:stream";
import type { GcPacer } from "./gc-pacer";
import { clientResponseHeaders, declaredLength } from "./headers";

/** What the relay asks of the upstream exchange (undici's `Dispatcher.DispatchController` fits). */
export interface RelayController {
  pause(): void;
  resume(): void;
  abort(reason: Error): void;
}

/** How a relayed response ended: `error` set when the response was destroyed rather than ended. */
export interface RelayResult {
  bytes: number;
  error?: Error;
  /** The client went away first. */
  clientGone?: boolean;
}

/** The message of the abort sent upstream when the client goes away. */
export const CLIENT_CLOSED_MESSAGE = "client closed the connection";

/** Streams one upstream response into `res`; see the module comment. Calls `done` exactly once. */
export class ResponseRelay {
  readonly #res: ServerResponse;
  readonly #upstream: string;
  readonly #pacer: GcPacer | undefined;
  readonly #done: (result: RelayResult) => void;
  #controller: RelayController | undefined;
  #expected: number | undefined;
  #bytes = 0;
  #settled = false;

  /** `upstream` names the leg in errors (`cache sent 10 of 20 bytes`). */
  constructor(
    res: ServerResponse,
    upstream: "cache" | "origin",
    done: (result: RelayResult) => void,
    pacer?: GcPacer,
  ) {
    this.#res = res;
    this.#upstream = upstream;
    this.#pacer = pacer;
    this.#done = done;
  }

  /** The response head: written to the client at once. A HEAD response has no body to check. */
  start(
    controller: RelayController,
    method: string,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    this.#controller = controller;
    this.#res.on("close", this.#onClientClose);
    if (this.#res.destroyed) return this.#onClientClose();
    this.#res.writeHead(statusCode, clientResponseHeaders(headers));
    this.#expected = method === "HEAD" ? undefined : declaredLength(headers);
    this.#res.on("drain", this.#onDrain);
  }

  data(chunk: Buffer): void {
    if (this.#settled) return;
    this.#bytes += chunk.length;
    this.#pacer?.add(chunk.length);
    if (!this.#res.write(chunk)) this.#controller?.pause();
  }

  end(): void {
    if (this.#settled) return;
    if (this.#expected !== undefined && this.#bytes !== this.#expected) {
      return this.error(new Error(`${this.#upstream} sent ${this.#bytes} of ${this.#expected} bytes`));
    }
    this.#res.end();
    this.#settle({ bytes: this.#bytes });
  }

  error(error: Error): void {
    if (this.#settled) return;
    this.#res.destroy(error);
    this.#settle({ bytes: this.#bytes, error });
  }

  readonly #onDrain = (): void => this.#controller?.resume();

  readonly #onClientClose = (): void => {
    if (this.#settled || this.#res.writableFinished) return;
    const error = new Error(CLIENT_CLOSED_MESSAGE);
    this.#settle({ bytes: this.#bytes, error, clientGone: true });
    this.#controller?.abort(error);
  };

  #settle(result: RelayResult): void {
    this.#settled = true;
    this.#res.off("drain", this.#onDrain);
    this.#res.off("close", this.#onClientClose);
    this.#done(result);
  }
}

/**
 * Drives a relay from a body Readable (undici's BodyReadable of `request()`, as registry-client returns it):
 * the Readable's events become the relay's calls, and pause/resume/abort act on it.
 */
export function relayReadable(body: Readable, relay: ResponseRelay): void {
  const onData = (chunk: Buffer): void => relay.data(chunk);
  const onEnd = (): void => relay.end();
  const onError = (error: Error): void => relay.error(error);
  const onClose = (): void => {
    if (!body.readableEnded) relay.error(new Error("upstream body closed before its end"));
    body.off("data", onData);
    body.off("end", onEnd);
    body.off("error", onError);
  };
  body.on("error", onError);
  body.on("close", onClose);
  body.on("end", onEnd);
  body.on("data", onData);
}

/** A {@link RelayController} over a body Readable. */
export function readableController(body: Readable): RelayController {
  return {
    pause: () => body.pause(),
    resume: () => body.resume(),
    abort: reason => body.destroy(reason),
  };
}
