/**
 * Registry credentials from Repositories' pull secrets: the keyring a copy uses, and the one Secret the proxy
 * reads (`kuik-proxy-credentials` in kuik's namespace), so the proxy needs no access to Secrets across the
 * cluster.
 *
 * That Secret is a `kubernetes.io/dockerconfigjson` whose `auths` has one entry per Repository, keyed by the
 * repository (`docker.io/library/nginx`, `reg.example:5000/team/app`): the kubelet-style keyring matches a key's
 * path as a prefix of the image's repository, so each Repository's credentials apply to its own images only, as
 * in kuik v1 (a secret given for `team/app` is not offered for `team/other`). The entry is the credential a copy
 * would try first (the keyring's most specific match).
 */
import type { Logger } from "pino";
import { Keyring, parsePullSecret, type DockerConfigEntry } from "../../registry-client/src/keyring";
import { parseRepositoryName } from "../../registry-client/src/reference";
import type { Credentials, ImageReference } from "../../registry-client/src/types";
import type { Repository } from "../crd";
import type { KubePort } from "../kube/ports";
import { errorMessage } from "../shared/errors";
import { repositoryOf } from "../shared/object-names";
import type { PullSecretRef } from "../shared/pods";

/** The docker config entry of one credential. */
type AuthEntry =
  | { auth: string; username: string; password: string }
  | { identitytoken: string }
  | { registrytoken: string };

/**
 * Reads and parses pull secrets. Missing secrets are skipped; a malformed one is skipped with a warning (never
 * its content), so one bad secret does not take the others down. `memo` shares reads within one sync.
 */
export async function readPullSecrets(
  kube: Pick<KubePort, "getSecret">,
  refs: readonly PullSecretRef[],
  log: Logger,
  memo: Map<string, Promise<DockerConfigEntry[]>> = new Map(),
): Promise<DockerConfigEntry[]> {
  const read = async (ref: PullSecretRef): Promise<DockerConfigEntry[]> => {
    const secret = await kube.getSecret(ref);
    if (secret === undefined) return [];
    try {
      return parsePullSecret(secret);
    } catch (err) {
      log.warn({ secret: `${ref.namespace}/${ref.name}`, error: errorMessage(err) }, "pull secret ignored");
      return [];
    }
  };
  const lists = await Promise.all(
    refs.map(ref => {
      const key = `${ref.namespace}/${ref.name}`;
      let entries = memo.get(key);
      if (entries === undefined) memo.set(key, (entries = read(ref)));
      return entries;
    }),
  );
  return lists.flat();
}

/** The keyring of an image's Repository, read fresh (no Repository: anonymous). */
export async function keyringForImage(
  kube: Pick<KubePort, "getRepository" | "getSecret">,
  ref: ImageReference,
  log: Logger,
): Promise<Keyring> {
  const repository = await kube.getRepository(repositoryOf(ref).objectName);
  if (repository?.spec === undefined) return new Keyring([]);
  return new Keyring(await readPullSecrets(kube, effectivePullSecrets(repository.spec), log));
}

/** A Repository's name and the credential entries of its pull secrets. */
export interface RepositoryCredentials {
  name: string;
  entries: DockerConfigEntry[];
}

/** The `{auths}` document of the proxy's Secret (pure; keys sorted, so equal inputs give equal bytes). */
export function proxyDockerConfig(repositories: Iterable<RepositoryCredentials>): string {
  const auths: Record<string, AuthEntry> = {};
  for (const repo of [...repositories].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    let target;
    try {
      target = parseRepositoryName(repo.name);
    } catch {
      continue;
    }
    const first = new Keyring(repo.entries).match(target)[0];
    if (first !== undefined) auths[repo.name] = authEntry(first.credentials);
  }
  return JSON.stringify({ auths });
}

function authEntry(credentials: Credentials): AuthEntry {
  switch (credentials.kind) {
    case "basic": {
      const { username, password } = credentials;
      return { auth: Buffer.from(`${username}:${password}`).toString("base64"), username, password };
    }
    case "token":
      return { identitytoken: credentials.token };
    case "bearer":
      return { registrytoken: credentials.token };
  }
}

/** Keeps the proxy's Secret equal to the merge of every Repository's credentials; writes only on change. */
export class ProxyCredentialsSync {
  #lastWritten: string | undefined;

  constructor(
    private readonly kube: Pick<KubePort, "getSecret" | "applySecret">,
    private readonly target: { name: string; namespace: string },
    private readonly log: Logger,
  ) {}

  /**
   * Recomputes from `repositories` (the observed ones) and applies the Secret if its content changed since our
   * last write, or always with `force` (resync: restores a Secret edited or deleted by hand).
   */
  async sync(repositories: Iterable<Repository>, options: { force?: boolean } = {}): Promise<boolean> {
    const memo = new Map<string, Promise<DockerConfigEntry[]>>();
    const inputs: RepositoryCredentials[] = [];
    for (const repo of repositories) {
      if (repo.spec === undefined || repo.metadata?.deletionTimestamp) continue;
      const refs = effectivePullSecrets(repo.spec);
      inputs.push({ name: repo.spec.name, entries: await readPullSecrets(this.kube, refs, this.log, memo) });
    }
    const document = proxyDockerConfig(inputs);
    if (document === this.#lastWritten && options.force !== true) return false;
    await this.kube.applySecret({ ...this.target, dockerConfigJson: document });
    this.#lastWritten = document;
    const entries = Object.keys((JSON.parse(document) as { auths: object }).auths).length;
    this.log.info(
      { secret: `${this.target.namespace}/${this.target.name}`, entries },
      "proxy credentials written",
    );
    return true;
  }
}

/**
 * The pull secrets to try for a Repository: its `spec.pullSecrets`, then the user's `pullSecretNames` in
 * `pullSecretsNamespace`, deduplicated. Missing secrets are for the caller to skip.
 */
export function effectivePullSecrets(spec: {
  pullSecrets?: readonly PullSecretRef[];
  pullSecretNames?: readonly string[];
  pullSecretsNamespace?: string;
}): PullSecretRef[] {
  const namespace = spec.pullSecretsNamespace ?? "";
  const legacy = namespace === "" ? [] : (spec.pullSecretNames ?? []).map(name => ({ namespace, name }));
  const all = [...(spec.pullSecrets ?? []), ...legacy];
  return [...new Map(all.map(ref => [`${ref.namespace}/${ref.name}`, ref])).values()];
}
