/**
 * Origin credentials from one file: the `.dockerconfigjson` key of the single Secret the operator maintains in
 * kuik's namespace, mounted into the proxy pod. So the proxy needs no Kubernetes API access at all (kuik v1 read
 * Repository objects and Secrets cluster-wide on every cache miss, docs/v1-differences.md B3).
 *
 * The file is watched (fs.watch on its directory: a Secret volume swaps a `..data` symlink, which a watch on the
 * file itself would miss) and stat-polled as a fallback. A file that disappears or fails to parse keeps the last
 * good credentials; the error is logged with the file's path and the parser's code, never with any content.
 */
import { createHash } from "node:crypto";
import { readFileSync, statSync, watch, type FSWatcher } from "node:fs";
import { dirname } from "node:path";
import type { Logger } from "pino";
import { isRegistryError } from "../../registry-client/src/errors";
import { Keyring, parseDockerConfig } from "../../registry-client/src/keyring";
import type { Credentials } from "../../registry-client/src/types";

/** Options of {@link CredentialStore}. */
export interface CredentialStoreOptions {
  /** Path of the dockerconfigjson document (`{"auths": {...}}`). */
  file: string;
  /** Interval of the stat fallback, in ms. */
  pollMs: number;
  log: Logger;
  /** Called after each load attempt (metrics). */
  onReload?: (result: "success" | "error", entries?: number) => void;
}

/** Why the last load attempt did not take. */
type LoadState = "loaded" | "missing" | "invalid";

/** The current credentials and their reloading. All state is per instance. */
export class CredentialStore {
  readonly #options: CredentialStoreOptions;
  #keyring = new Keyring([]);
  #contentHash = "";
  #signature = "";
  #state: LoadState | undefined;
  #missing = false;
  #watcher: FSWatcher | undefined;
  #poll: NodeJS.Timeout | undefined;
  #debounce: NodeJS.Timeout | undefined;

  constructor(options: CredentialStoreOptions) {
    this.#options = options;
  }

  /** Credentials for a repository, most specific first; `[]` means anonymous. */
  lookup(registry: string, repository: string | undefined): Credentials[] {
    return this.#keyring.lookup({ registry, repository });
  }

  /** Loads the file now and starts watching it. Never throws: a bad file is logged and the proxy runs anonymous. */
  start(): void {
    this.check();
    try {
      this.#watcher = watch(dirname(this.#options.file), { persistent: false }, () => this.#scheduleCheck());
      this.#watcher.on("error", err => {
        this.#options.log.warn({ err, file: this.#options.file }, "credentials watch failed; polling only");
        this.#watcher?.close();
        this.#watcher = undefined;
      });
    } catch (err) {
      this.#options.log.warn({ err, file: this.#options.file }, "credentials watch failed; polling only");
    }
    this.#poll = setInterval(() => this.check(), this.#options.pollMs);
    this.#poll.unref();
  }

  /** Stops watching. */
  stop(): void {
    this.#watcher?.close();
    this.#watcher = undefined;
    clearInterval(this.#poll);
    clearTimeout(this.#debounce);
  }

  /** Reloads when the file changed since the last look (by stat, then by content). */
  check(): void {
    const { file, log } = this.#options;
    let signature: string;
    try {
      const s = statSync(file);
      signature = `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}`;
    } catch (err) {
      if (!this.#missing) {
        const keeping =
          this.#state === "loaded" ? "keeping the last good credentials" : "pulling anonymously";
        log.warn({ file, code: (err as NodeJS.ErrnoException).code, keeping }, "credentials file unreadable");
      }
      this.#missing = true;
      if (this.#state === undefined) this.#state = "missing";
      this.#signature = "";
      return;
    }
    this.#missing = false;
    if (signature === this.#signature) return;
    this.#signature = signature;
    this.#load();
  }

  #load(): void {
    const { file, log } = this.#options;
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      log.error({ file, code: (err as NodeJS.ErrnoException).code }, "credentials file unreadable");
      this.#options.onReload?.("error");
      return;
    }
    const hash = createHash("sha256").update(text).digest("hex");
    if (hash === this.#contentHash) return;
    try {
      const keyring = new Keyring(parseDockerConfig(text, { source: file }));
      this.#keyring = keyring;
      this.#contentHash = hash;
      this.#state = "loaded";
      log.info({ file, registries: keyring.size }, "credentials loaded");
      this.#options.onReload?.("success", keyring.size);
    } catch (err) {
      // registry-client's INVALID_SECRET messages name the file and the entry, never the content.
      const code = isRegistryError(err) ? err.code : "UNKNOWN";
      const reason = isRegistryError(err) ? err.message : "unexpected parser failure";
      const keeping = this.#state === "loaded" ? "keeping the last good credentials" : "pulling anonymously";
      log.error({ file, code, reason, keeping }, "credentials file invalid");
      if (this.#state !== "loaded") this.#state = "invalid";
      this.#options.onReload?.("error");
    }
  }

  #scheduleCheck(): void {
    clearTimeout(this.#debounce);
    // A Secret update is several renames in a row: look once they have settled.
    this.#debounce = setTimeout(() => this.check(), 50);
    this.#debounce.unref();
  }
}
