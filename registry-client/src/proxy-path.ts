/**
 * kuik's node-local proxy names, shared by the webhook (which writes them), the operator (which reads them back) and
 * the proxy (which serves them): a registry `host:port` written as the path segment `host-port`, and the
 * repository under which the cache registry keeps an origin repository.
 */

const HOST_PORT_RE = /^(.+)-(\d{1,5})$/;
const MAX_PORT = 65535;

/**
 * The image or repository as written, from its proxy path (`myregistry-5000/app:v1` → `myregistry:5000/app:v1`).
 * When the path has two or more components and the first ends in `-<digits>`, that suffix is the registry's port:
 * unambiguous, because a Docker Hub namespace (the only other thing a dotless first component can be) never has a
 * `-`. A port out of range is returned as `invalidPort`.
 */
export function fromProxyPath(path: string): { written: string } | { invalidPort: number } {
  const slash = path.indexOf("/");
  if (slash <= 0) return { written: path };
  const match = HOST_PORT_RE.exec(path.slice(0, slash));
  if (match?.[1] === undefined || match[2] === undefined) return { written: path };
  const port = Number(match[2]);
  if (port < 1 || port > MAX_PORT) return { invalidPort: port };
  return { written: `${match[1]}:${port}${path.slice(slash)}` };
}

/**
 * The repository under which the cache registry stores `registry/repository`: the registry host lower-cased
 * (repository paths must be) with `:` replaced by `-`.
 */
export function cacheRepositoryOf(registry: string, repository: string): string {
  return `${registry.toLowerCase().replaceAll(":", "-")}/${repository}`;
}
