/**
 * Pieces of the hand-written registry stand-ins (node:http servers) of the security tests, for what a real
 * registry will not do: redirect anywhere, challenge with any realm, hold a response.
 */
import type { ServerResponse } from "node:http";

/** The media type of {@link STAND_IN_MANIFEST}. */
export const STAND_IN_MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json";

/** A small, valid OCI image manifest. */
export const STAND_IN_MANIFEST = JSON.stringify({
  schemaVersion: 2,
  mediaType: STAND_IN_MANIFEST_TYPE,
  config: {
    mediaType: "application/vnd.oci.image.config.v1+json",
    digest: `sha256:${"a".repeat(64)}`,
    size: 2,
  },
  layers: [],
});

/** Answers 200 with {@link STAND_IN_MANIFEST}. */
export function serveManifest(res: ServerResponse): void {
  res.writeHead(200, {
    "content-type": STAND_IN_MANIFEST_TYPE,
    "content-length": String(Buffer.byteLength(STAND_IN_MANIFEST)),
  });
  res.end(STAND_IN_MANIFEST);
}
