import { describe, expect, it } from "vitest";
import { parseOciError } from "./client";
import { isRegistryError } from "./errors";
import { parseManifest } from "./manifests";
import { DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST } from "./media-types";

const digest = (c: string): string => `sha256:${c.repeat(64)}`;
const bytes = (o: unknown): Buffer => Buffer.from(JSON.stringify(o));

describe("parseManifest", () => {
  it.each([OCI_MANIFEST, DOCKER_MANIFEST])("reads config and layers of %s", mediaType => {
    const parsed = parseManifest({
      mediaType,
      bytes: bytes({
        schemaVersion: 2,
        mediaType,
        config: { mediaType: "c", digest: digest("a"), size: 10 },
        layers: [
          { mediaType: "l", digest: digest("b"), size: 20 },
          { mediaType: "l", digest: digest("c"), size: 30, urls: ["https://example.com/x"] },
        ],
      }),
    });
    expect(parsed.kind).toBe("image");
    if (parsed.kind !== "image") return;
    expect(parsed.config.digest).toBe(digest("a"));
    expect(parsed.layers.map(l => l.size)).toEqual([20, 30]);
  });

  it.each([OCI_INDEX, DOCKER_MANIFEST_LIST])("reads the children of %s", mediaType => {
    const parsed = parseManifest({
      mediaType,
      bytes: bytes({
        schemaVersion: 2,
        mediaType,
        manifests: [
          {
            mediaType: OCI_MANIFEST,
            digest: digest("d"),
            size: 5,
            platform: { architecture: "arm64", os: "linux" },
          },
        ],
      }),
    });
    expect(parsed).toEqual({
      kind: "index",
      manifests: [
        {
          mediaType: OCI_MANIFEST,
          digest: digest("d"),
          size: 5,
          platform: { architecture: "arm64", os: "linux" },
        },
      ],
    });
  });

  it.each([
    ["no config", { schemaVersion: 2, layers: [] }],
    ["a bad digest", { schemaVersion: 2, config: { digest: "sha256:zz", size: 1 }, layers: [] }],
    ["a negative size", { schemaVersion: 2, config: { digest: digest("a"), size: -1 }, layers: [] }],
  ])("rejects a manifest with %s", (_name, doc) => {
    try {
      parseManifest({ mediaType: OCI_MANIFEST, bytes: bytes(doc) });
      expect.unreachable();
    } catch (err) {
      expect(isRegistryError(err, "MANIFEST_INVALID")).toBe(true);
    }
  });
});

describe("parseOciError", () => {
  it.each([
    [
      '{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}',
      "MANIFEST_UNKNOWN",
    ],
    ['{"errors":[{"code":"TOOMANYREQUESTS","message":"rate"}]}', "TOOMANYREQUESTS"],
    ['{"errors":[{"code":"SOMETHING_ELSE"}]}', undefined],
    ["<html>502 Bad Gateway</html>", undefined],
    ["", undefined],
  ])("%s → %s", (text, code) => {
    expect(parseOciError(text)?.code).toBe(code);
  });
});
