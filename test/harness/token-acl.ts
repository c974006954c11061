/** Access rules of the harness token issuer and the scope grammar (`type:name:actions`). */
import type { AccessEntry } from "./jwt";

export interface TokenAclRule {
  /** Resource type of the scope; default "repository". */
  type?: string;
  /** Resource name pattern; `*` matches any run of characters (including `/`). */
  name: string;
  /** Actions granted ("pull", "push", "delete", "*"). */
  actions: string[];
  /** Accounts the rule applies to; omitted = everybody, anonymous included. */
  accounts?: string[];
}

/**
 * The default access rules: `owner` may pull, push and delete everything and list the catalog; `readers` may
 * pull everything; everybody (anonymous included) may pull repositories matching `publicRepos`.
 */
export function defaultAcl(
  owner: string,
  readers: string[] = [],
  publicRepos: string[] = [],
): TokenAclRule[] {
  return [
    { name: "*", actions: ["pull", "push", "delete"], accounts: [owner] },
    { type: "registry", name: "catalog", actions: ["*"], accounts: [owner] },
    ...(readers.length ? [{ name: "*", actions: ["pull"], accounts: readers }] : []),
    ...publicRepos.map(p => ({ name: p, actions: ["pull"] })),
  ];
}

function globToRegExp(glob: string): RegExp {
  return new RegExp(
    `^${glob
      .split("*")
      .map(s => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
      .join(".*")}$`,
  );
}

/** Parse "type:name:actions" (the name may contain ':'; actions are last; a "(class)" suffix is dropped). */
export function parseScope(scope: string): { type: string; name: string; actions: string[] } | undefined {
  const first = scope.indexOf(":");
  const last = scope.lastIndexOf(":");
  if (first <= 0 || last <= first) return undefined;
  return {
    type: scope.slice(0, first).replace(/\(.*\)$/, ""),
    name: scope.slice(first + 1, last),
    actions: scope
      .slice(last + 1)
      .split(",")
      .filter(Boolean),
  };
}

/** What `account` may do for the requested scopes (requested ∩ allowed; scopes with nothing left dropped). */
export function authorize(acl: TokenAclRule[], account: string, scopes: string[]): AccessEntry[] {
  const out: AccessEntry[] = [];
  for (const s of scopes) {
    const p = parseScope(s);
    if (!p) continue;
    const allowed = new Set<string>();
    for (const rule of acl) {
      if ((rule.type ?? "repository") !== p.type) continue;
      if (rule.accounts && !rule.accounts.includes(account)) continue;
      if (globToRegExp(rule.name).test(p.name)) for (const a of rule.actions) allowed.add(a);
    }
    const granted = p.actions.filter(a => allowed.has(a) || allowed.has("*"));
    if (granted.length === 0) continue;
    const prev = out.find(e => e.type === p.type && e.name === p.name);
    if (prev) prev.actions = [...new Set([...prev.actions, ...granted])];
    else out.push({ type: p.type, name: p.name, actions: granted });
  }
  return out;
}
