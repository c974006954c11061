/**
 * The origin leg: registry-client's RegistryClient does the authentication (anonymous and credentialed bearer
 * tokens, basic auth, token cache), the bounded retries before the first byte and the redirects (S3-style 307,
 * Authorization dropped on a host change). This module turns its answer into the client's response: the content
 * headers and the body streamed by relay.ts (as the cache leg's) on success, the origin's own status with an OCI
 * error body on failure.
 */
import type { ServerResponse } from "node:http";
import type { RegistryClient } from "../../registry-client/src/client";
import { clientErrorOf, sendError, type ClientError } from "./errors";
import type { GcPacer } from "./gc-pacer";
import { API_VERSION_HEADER } from "./headers";
import {
  CLIENT_CLOSED_MESSAGE,
  readableController,
  relayReadable,
  ResponseRelay,
  type RelayResult,
} from "./relay";
import type { RouteKind } from "./routes";

/** A request for the origin. */
export interface OriginRequest {
  registry: string;
  repository: string;
  kind: RouteKind;
  method: "GET" | "HEAD";
  /** `/v2/<repository>/<manifests|blobs>/<reference>`. */
  path: string;
  headers: Record<string, string>;
}

/** What happened to one origin attempt. */
export type OriginResult =
  /** The origin's content was sent (`error`: broken mid-stream, client socket destroyed). */
  | {
      outcome: "served";
      status: number;
      headersMs: number;
      bytes: number;
      error?: Error;
      clientGone?: boolean;
    }
  /** The client was answered with an error status (the origin's 4xx/5xx, or 502/504 for transport failures). */
  | { outcome: "failed"; status: number; headersMs: number; error: ClientError; cause: unknown }
  /** The client went away before the origin answered. */
  | { outcome: "client-gone" };

/** Serves requests from their origin registry. */
export class OriginUpstream {
  readonly #client: RegistryClient;
  readonly #pacer: GcPacer | undefined;

  constructor(client: RegistryClient, pacer?: GcPacer) {
    this.#client = client;
    this.#pacer = pacer;
  }

  /** Answers `res` from the origin; never rejects. */
  async serve(request: OriginRequest, res: ServerResponse): Promise<OriginResult> {
    const abort = new AbortController();
    const onClientClose = (): void => {
      if (!res.writableFinished) abort.abort(new Error(CLIENT_CLOSED_MESSAGE));
    };
    res.once("close", onClientClose);
    const started = performance.now();
    let response: Awaited<ReturnType<RegistryClient["request"]>>;
    try {
      response = await this.#client.request({
        registry: request.registry,
        repository: request.repository,
        method: request.method,
        path: request.path,
        headers: request.headers,
        expect: [200, 206],
        notFound: request.kind === "blob" ? "BLOB_UNKNOWN" : "MANIFEST_UNKNOWN",
        followRedirects: true,
        signal: abort.signal,
      });
    } catch (cause) {
      res.off("close", onClientClose);
      if (abort.signal.aborted || res.destroyed) return { outcome: "client-gone" };
      const error = clientErrorOf(cause);
      sendError(res, error, API_VERSION_HEADER);
      return {
        outcome: "failed",
        status: error.statusCode,
        headersMs: performance.now() - started,
        error,
        cause,
      };
    }
    res.off("close", onClientClose);
    const headersMs = performance.now() - started;
    if (res.destroyed) {
      response.body.destroy();
      return { outcome: "client-gone" };
    }
    const body = response.body;
    const relayed = await new Promise<RelayResult>(resolve => {
      const relay = new ResponseRelay(res, "origin", resolve, this.#pacer);
      relay.start(readableController(body), request.method, response.statusCode, response.headers);
      relayReadable(body, relay);
    });
    return { outcome: "served", status: response.statusCode, headersMs, ...relayed };
  }
}
