/**
 * The proxy path codec on kuik's side: the `localhost:<port>/…` form of a rewritten image, and the original read
 * back from it (registry-client's `fromProxyPath`, the proxy's own reading).
 */
import { fromProxyPath } from "../../registry-client/src/proxy-path";
import type { ImageReference } from "../../registry-client/src/types";

/** Longest repository path of an image reference (distribution/reference). */
const MAX_REPOSITORY_PATH_LENGTH = 255;

/** Why an image cannot be written as `localhost:<port>/…` in a way the proxy reads back unambiguously. */
export type ProxyImageProblem =
  /** `localhost`, `127.0.0.0/8` or `[::1]`: a node-local registry the cache cannot reach. */
  | "loopback-registry"
  /** A dot-less host (`registry:5000`), or one ending in `-<digits>`, would read back as something else. */
  | "ambiguous-registry"
  /** An IPv6 host: brackets cannot appear in a repository path. */
  | "unsupported-registry"
  /** The rewritten repository path would exceed 255 characters. */
  | "name-too-long";

/** The `localhost:<port>/` prefix of images served by the proxy on `port`. */
export function proxyPrefix(port: number): string {
  return `localhost:${port}/`;
}

/**
 * The proxy form of an image as v1 writes it: `localhost:<port>/` + the image as written, with the registry's
 * `host:port` turned into `host-port` (`185.145.250.247:30042/alpine` → `localhost:7439/185.145.250.247-30042/alpine`)
 * and lower-cased. Docker Hub images keep their short form (`nginx:1.25` → `localhost:7439/nginx:1.25`).
 *
 * The proxy reads a first path segment ending in `-<digits>` back as `host:port` (registry-client's
 * `fromProxyPath`); registries a proxy could not reach or that v1 would have misread (dotless hosts, loopback) are
 * refused with a {@link ProxyImageProblem} instead of being broken (v1 broke them).
 */
export function toProxyImage(
  written: string,
  ref: ImageReference,
  port: number,
  options: { allowLoopback?: boolean } = {},
): { image: string } | { problem: ProxyImageProblem } {
  const slash = written.indexOf("/");
  const first = slash > 0 ? written.slice(0, slash) : "";
  const explicitRegistry =
    first !== "" && (first === ref.registry || first.toLowerCase() === "index.docker.io");
  let path = written;
  if (explicitRegistry) {
    const problem = registryProblem(first, options.allowLoopback === true);
    if (problem !== undefined) return { problem };
    path = first.toLowerCase().replace(":", "-") + written.slice(slash);
  } else {
    // A Docker Hub namespace ending in `-<digits>` (`user-2/app`) would read back as `host:port`: name the registry.
    const read = fromProxyPath(path);
    if (!("written" in read) || read.written !== path) path = `docker.io/${path}`;
  }
  const repositoryLength = path.search(/[:@]/) < 0 ? path.length : path.search(/[:@]/);
  if (repositoryLength > MAX_REPOSITORY_PATH_LENGTH) return { problem: "name-too-long" };
  return { image: proxyPrefix(port) + path };
}

/** The problem, if any, of writing registry `host[:port]` as a path segment. */
function registryProblem(registry: string, allowLoopback: boolean): ProxyImageProblem | undefined {
  if (registry.startsWith("["))
    return registry.startsWith("[::1]") ? "loopback-registry" : "unsupported-registry";
  const colon = registry.lastIndexOf(":");
  const host = (colon < 0 ? registry : registry.slice(0, colon)).toLowerCase();
  // A 127.x address is dotted, so the proxy reads it back; `localhost` is not, and stays refused.
  if (allowLoopback && /^127\.\d+\.\d+\.\d+$/.test(host)) return undefined;
  if (host === "localhost" || host.endsWith(".localhost") || /^127\.\d+\.\d+\.\d+$/.test(host)) {
    return "loopback-registry";
  }
  if (!host.includes(".")) return "ambiguous-registry";
  if (colon < 0 && /-\d+$/.test(host)) return "ambiguous-registry";
  return undefined;
}

/**
 * The inverse of {@link toProxyImage}: the original image of a `localhost:<port>/…` image (with the registry's
 * port restored), or `undefined` when `image` is not in the proxy form for `port`. Used for ephemeral
 * containers, whose original-image annotation the API server drops (see pod-images.ts).
 */
export function fromProxyImage(image: string, port: number): string | undefined {
  const prefix = proxyPrefix(port);
  if (!image.startsWith(prefix) || image.length === prefix.length) return undefined;
  const restored = fromProxyPath(image.slice(prefix.length)); // the proxy's own reading (registry-client)
  return "written" in restored ? restored.written : undefined;
}
