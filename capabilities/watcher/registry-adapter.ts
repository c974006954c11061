/**
 * {@link RegistryPort} over registry-client: one client for the origins (TLS settings from kuik's config, the
 * credentials of the Repository being copied) and one for the cache registry (plain HTTP unless its URL says
 * https). Both live as long as the watcher, so connection pools and bearer tokens are reused across copies.
 */
import { readFileSync } from "node:fs";
import {
  RegistryClient,
  type RegistryEvent,
  type RegistryHostOptions,
} from "../../registry-client/src/client";
import { AddressPolicy } from "../../registry-client/src/address-policy";
import { copyImage, type CopyProgress } from "../../registry-client/src/copy";
import { isRegistryError } from "../../registry-client/src/errors";
import type { Keyring } from "../../registry-client/src/keyring";
import { deleteManifest, headManifest } from "../../registry-client/src/manifests";
import type { Credentials, ImageReference } from "../../registry-client/src/types";
import type { CopyOutcome, ManifestInfo, RegistryPort } from "../kube/ports";

/** The settings {@link RegistryAdapter} reads (a `KuikConfig` fits). */
export interface RegistryAdapterConfig {
  registryEndpoint: string;
  registryUrl: string;
  insecureRegistries: readonly string[];
  rootCertificateAuthorities: readonly string[];
  architectures: readonly string[];
  /** Origins allowed on special-purpose addresses (`KUIK_ALLOWED_ORIGINS`); every other such address is refused. */
  allowedOrigins: readonly string[];
}

/** See the file comment. */
export class RegistryAdapter implements RegistryPort {
  readonly #origins: RegistryClient;
  readonly #cache: RegistryClient;
  /** Keyring of each repository being accessed (`registry/repository`), set per call. */
  readonly #keyrings = new Map<string, Keyring>();
  readonly #platforms: string[] | undefined;

  constructor(config: RegistryAdapterConfig, onEvent?: (event: RegistryEvent) => void) {
    const hosts: Record<string, RegistryHostOptions> = {};
    for (const host of config.insecureRegistries) hosts[host] = { insecure: true };
    // Unreadable CA files are fatal at startup, as in kuik v1.
    const defaultCa = config.rootCertificateAuthorities.map(path => readFileSync(path, "utf8"));
    const events = onEvent === undefined ? {} : { onEvent };
    this.#origins = new RegistryClient({
      hosts,
      defaultCa,
      // Images are named by Pods: the address a name resolves to is checked at connect time (SSRF, docs/security.md).
      addressPolicy: new AddressPolicy({ allow: config.allowedOrigins }),
      credentials: (registry, repository) => this.#credentials(registry, repository),
      ...events,
    });
    const plainHttp = !config.registryUrl.startsWith("https://");
    this.#cache = new RegistryClient({
      hosts: { [config.registryEndpoint]: { plainHttp } },
      defaultCa,
      ...events,
    });
    this.#platforms = config.architectures.length > 0 ? [...config.architectures] : undefined;
  }

  async headUpstream(ref: ImageReference, keyring: Keyring): Promise<ManifestInfo> {
    this.#keyrings.set(ref.name, keyring);
    const d = await headManifest(this.#origins, ref);
    return { digest: d.digest, mediaType: d.mediaType };
  }

  async headCache(ref: ImageReference): Promise<ManifestInfo | undefined> {
    try {
      const d = await headManifest(this.#cache, ref);
      return { digest: d.digest, mediaType: d.mediaType };
    } catch (err) {
      if (isRegistryError(err, "MANIFEST_UNKNOWN", "NAME_UNKNOWN")) return undefined;
      throw err;
    }
  }

  async copyToCache(
    source: ImageReference,
    destination: ImageReference,
    options: { keyring: Keyring; onProgress?: (p: CopyProgress) => void; signal?: AbortSignal },
  ): Promise<CopyOutcome> {
    this.#keyrings.set(source.name, options.keyring);
    let bytesTotal = 0;
    const result = await copyImage(this.#origins, source, destination, {
      destinationClient: this.#cache,
      ...(this.#platforms ? { platforms: this.#platforms } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      onProgress: p => {
        bytesTotal = p.bytesTotal;
        options.onProgress?.(p);
      },
    });
    return { digest: result.digest, bytesCopied: result.bytesCopied, bytesTotal };
  }

  deleteFromCache(destination: ImageReference, digest: string): Promise<boolean> {
    return deleteManifest(this.#cache, destination.registry, destination.repository, digest);
  }

  /** Closes both clients' connections. */
  async close(): Promise<void> {
    await Promise.all([this.#origins.close(), this.#cache.close()]);
  }

  #credentials(registry: string, repository: string | undefined): Credentials[] {
    if (repository === undefined) return [];
    return this.#keyrings.get(`${registry}/${repository}`)?.lookup({ registry, repository }) ?? [];
  }
}
