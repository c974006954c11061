/**
 * Decoding of the `<name>` the kubelet sends to the proxy back into the origin image, and the repository the
 * cache registry stores it under.
 *
 * The webhook rewrites an image by prefixing `localhost:7439/` to the image AS WRITTEN, with every `:` of the
 * registry host replaced by `-` (a `:` cannot appear in a repository path):
 *
 * | image as written                 | `<name>` seen by the proxy      | origin                     |
 * | -------------------------------- | ------------------------------- | -------------------------- |
 * | `nginx:1.25`                     | `nginx`                         | docker.io/library/nginx    |
 * | `bitnami/redis`                  | `bitnami/redis`                 | docker.io/bitnami/redis    |
 * | `ghcr.io/org/app`                | `ghcr.io/org/app`               | ghcr.io/org/app            |
 * | `185.145.250.247:30042/alpine`   | `185.145.250.247-30042/alpine`  | 185.145.250.247:30042/alpine |
 * | `myregistry:5000/app`            | `myregistry-5000/app`           | myregistry:5000/app        |
 * | `localhost:5000/app`             | `localhost-5000/app`            | localhost:5000/app         |
 *
 * The rule: when `<name>` has two or more components and the first ends in `-<digits>`, that suffix is a port.
 * This is unambiguous because a Docker Hub namespace (the only other thing a first component can be when it has
 * no `.`) is made of lower-case letters and digits only, never `-`. kuik v1 read `myregistry-5000/app` as the Docker
 * Hub repository `myregistry-5000/app` (docs/v1-differences.md, B7); this module fixes that. IPv6 literal hosts cannot be
 * rewritten (`[` is not valid in a repository path) and are not supported.
 */
import { cacheRepositoryOf, fromProxyPath } from "../../registry-client/src/proxy-path";
import { parseRepositoryName } from "../../registry-client/src/reference";

export { cacheRepositoryOf };
import { ProxyError } from "./errors";

/** The origin of a proxied repository, and where the cache registry keeps it. */
export interface OriginName {
  /** Origin registry, normalised, with its port: `docker.io`, `myregistry:5000`. */
  registry: string;
  /** Repository at the origin: `library/nginx`. */
  repository: string;
  /** Repository in the cache registry: `<registry with ':' → '-'>/<repository>`, e.g. `myregistry-5000/app`. */
  cacheRepository: string;
}

/**
 * Decodes a rewritten `<name>` into its origin and cache repository.
 *
 * @throws {@link ProxyError} `NAME_INVALID`, quoting the name and saying why.
 */
export function decodeName(name: string): OriginName {
  const restored = fromProxyPath(name);
  if ("invalidPort" in restored) {
    throw new ProxyError(
      "NAME_INVALID",
      `invalid repository name ${JSON.stringify(name)}: port ${restored.invalidPort} out of range`,
    );
  }
  const written = restored.written;
  let parsed: { registry: string; repository: string };
  try {
    parsed = parseRepositoryName(written);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new ProxyError("NAME_INVALID", `invalid repository name ${JSON.stringify(name)}: ${reason}`, {
      cause: err,
    });
  }
  return {
    registry: parsed.registry,
    repository: parsed.repository,
    cacheRepository: cacheRepositoryOf(parsed.registry, parsed.repository),
  };
}
