/**
 * The cache registry leg: one undici dispatch per request with a handler that decides, on the response head,
 * whether this is a hit (200/206: stream it to the client) or not (anything else: swallow the small body and let
 * the caller go to the origin). Nothing reaches the client before that decision.
 *
 * A hit is streamed by relay.ts straight from undici's handler callbacks (no intermediate Readable), with the
 * backpressure, short-body rule and client-abort path the origin leg uses too.
 */
import type { ServerResponse } from "node:http";
import type { Dispatcher } from "undici";
import { isTimeoutCode } from "../../registry-client/src/transport";
import type { GcPacer } from "./gc-pacer";
import { CLIENT_CLOSED_MESSAGE, ResponseRelay, type RelayResult } from "./relay";

/** What happened to one cache attempt. */
export type CacheResult =
  /** The cache answered 200/206 and the response was handed to the client (`error`: broken mid-stream). */
  | {
      outcome: "served";
      status: number;
      headersMs: number;
      bytes: number;
      error?: Error;
      clientGone?: boolean;
    }
  /** The cache answered without the content (404, 401, 3xx without Location…): it is healthy. */
  | { outcome: "miss"; status: number; headersMs: number }
  /** The cache is unwell: transport error, timeout or 5xx. */
  | { outcome: "error"; status?: number; error?: Error; timeout: boolean }
  /** The client went away before the cache answered: nothing more to do, and no verdict on the cache. */
  | { outcome: "client-gone" };

/** A request for the cache: method, path (`/v2/...`) and already-filtered headers. */
export interface CacheRequest {
  method: "GET" | "HEAD";
  path: string;
  headers: Record<string, string>;
}

/** Options of {@link CacheUpstream}. */
export interface CacheUpstreamOptions {
  baseUrl: URL;
  dispatcher: Dispatcher;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  /** Told about every streamed chunk (see gc-pacer.ts). */
  pacer?: GcPacer;
}

const MAX_REDIRECTS = 3;

/** The cache registry: try a request, probe health. */
export class CacheUpstream {
  readonly #options: CacheUpstreamOptions;

  constructor(options: CacheUpstreamOptions) {
    this.#options = options;
  }

  /**
   * Tries the cache. On "served" the response is complete (or destroyed); on "miss"/"error" nothing was written
   * to `res`. Storage redirects (S3 307) are followed here, without any credentials.
   */
  async serve(request: CacheRequest, res: ServerResponse): Promise<CacheResult> {
    let url = new URL(request.path, this.#options.baseUrl);
    for (let hop = 0; ; hop++) {
      const attempt = await this.#dispatch(url, request, res);
      if (attempt.kind === "result") return attempt.result;
      if (hop >= MAX_REDIRECTS) return { outcome: "miss", status: attempt.status, headersMs: 0 };
      url = new URL(attempt.location, url);
    }
  }

  /** `GET /v2/` with the cache timeouts: true when the registry answers below 500. */
  async probe(): Promise<boolean> {
    try {
      const { statusCode, body } = await this.#options.dispatcher.request({
        origin: this.#options.baseUrl.origin,
        path: "/v2/",
        method: "GET",
        headersTimeout: this.#options.headersTimeoutMs,
        bodyTimeout: this.#options.bodyTimeoutMs,
      });
      await body.dump();
      return statusCode < 500;
    } catch {
      return false;
    }
  }

  #dispatch(url: URL, request: CacheRequest, res: ServerResponse): Promise<DispatchOutcome> {
    return new Promise(resolve => {
      const handler = new CacheHandler(request.method, res, resolve, this.#options.pacer);
      this.#options.dispatcher.dispatch(
        {
          origin: url.origin,
          path: url.pathname + url.search,
          method: request.method,
          headers: request.headers,
          headersTimeout: this.#options.headersTimeoutMs,
          bodyTimeout: this.#options.bodyTimeoutMs,
        },
        handler,
      );
    });
  }
}

type DispatchOutcome =
  | { kind: "result"; result: CacheResult }
  | { kind: "redirect"; location: string; status: number };

type HandlerState = "waiting" | "streaming" | "skipping" | "done";

/**
 * One cache exchange: waits for the head, then either hands the response to a {@link ResponseRelay} (200/206) or
 * swallows it (a miss, an error, a redirect to follow). Every path ends in exactly one `resolve`.
 */
class CacheHandler implements Dispatcher.DispatchHandler {
  readonly #method: string;
  readonly #res: ServerResponse;
  readonly #resolve: (outcome: DispatchOutcome) => void;
  readonly #pacer: GcPacer | undefined;
  readonly #started = performance.now();
  #state: HandlerState = "waiting";
  #controller: Dispatcher.DispatchController | undefined;
  #relay: ResponseRelay | undefined;
  #status = 0;
  #headersMs = 0;
  #location: string | undefined;
  #clientGone = false;

  constructor(
    method: string,
    res: ServerResponse,
    resolve: (outcome: DispatchOutcome) => void,
    pacer: GcPacer | undefined,
  ) {
    this.#method = method;
    this.#res = res;
    this.#resolve = resolve;
    this.#pacer = pacer;
    res.once("close", this.#onClientClose);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#clientGone) controller.abort(new Error(CLIENT_CLOSED_MESSAGE));
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    this.#controller = controller;
    this.#status = statusCode;
    this.#headersMs = performance.now() - this.#started;
    if (statusCode !== 200 && statusCode !== 206) {
      this.#state = "skipping";
      const location = headers.location;
      if (statusCode >= 300 && statusCode < 400 && typeof location === "string") this.#location = location;
      return;
    }
    if (this.#res.destroyed) return this.#abortForClient();
    // From here on the relay owns the client side, client close included.
    this.#res.off("close", this.#onClientClose);
    this.#state = "streaming";
    this.#relay = new ResponseRelay(this.#res, "cache", result => this.#served(result), this.#pacer);
    this.#relay.start(controller, this.#method, statusCode, headers);
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#state === "streaming") this.#relay?.data(chunk);
  }

  onResponseEnd(): void {
    if (this.#state === "streaming") return this.#relay?.end();
    if (this.#state !== "skipping") return;
    if (this.#location !== undefined)
      return this.#finish({ kind: "redirect", location: this.#location, status: this.#status });
    if (this.#status >= 500) return this.#result({ outcome: "error", status: this.#status, timeout: false });
    this.#result({ outcome: "miss", status: this.#status, headersMs: this.#headersMs });
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    if (this.#state === "streaming") return this.#relay?.error(error);
    if (this.#state === "done") return;
    if (this.#clientGone) return this.#result({ outcome: "client-gone" });
    const code = (error as { code?: string }).code ?? "";
    this.#result({
      outcome: "error",
      error,
      timeout: isTimeoutCode(code),
      ...(this.#status ? { status: this.#status } : {}),
    });
  }

  readonly #onClientClose = (): void => {
    if (this.#res.writableFinished || this.#state === "done") return;
    this.#abortForClient();
  };

  #abortForClient(): void {
    this.#clientGone = true;
    this.#controller?.abort(new Error(CLIENT_CLOSED_MESSAGE));
  }

  #served({ bytes, error, clientGone }: RelayResult): void {
    const result: CacheResult = {
      outcome: "served",
      status: this.#status,
      headersMs: this.#headersMs,
      bytes,
    };
    if (error !== undefined) result.error = error;
    if (clientGone) result.clientGone = true;
    this.#result(result);
  }

  #result(result: CacheResult): void {
    this.#finish({ kind: "result", result });
  }

  #finish(outcome: DispatchOutcome): void {
    if (this.#state === "done") return;
    this.#state = "done";
    this.#res.off("close", this.#onClientClose);
    this.#resolve(outcome);
  }
}
