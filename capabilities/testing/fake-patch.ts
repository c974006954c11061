/** JSON Patch (RFC 6902) and JSON Merge Patch (RFC 7386) for the fake API server of fakes.ts. */
import { KubeApiError, type JsonPatchOp } from "../kube/ports";

function unescape(token: string): string {
  return token.replace(/~1/g, "/").replace(/~0/g, "~");
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Applies `ops` to a copy of `doc`; a failed `test` or a missing path rejects with 422, as the API server does. */
export function applyJsonPatch<T>(doc: T, ops: readonly JsonPatchOp[]): T {
  const root = { value: structuredClone(doc) as unknown };
  for (const op of ops) {
    const tokens = op.path.split("/").slice(1).map(unescape);
    let parent: unknown = root;
    let key: string = "value";
    for (const token of tokens) {
      const container = (parent as Record<string, unknown>)[key];
      if (typeof container !== "object" || container === null)
        throw new KubeApiError(422, `no path ${op.path}`);
      parent = container;
      key = token;
    }
    const target = parent as Record<string, unknown> & unknown[];
    const exists = Array.isArray(target) ? key === "-" || Number(key) < target.length : key in target;
    if (op.op === "test") {
      if (!exists || !same(target[key as never], op.value))
        throw new KubeApiError(422, `test failed: ${op.path}`);
    } else if (op.op === "remove") {
      if (!exists) throw new KubeApiError(422, `cannot remove ${op.path}`);
      if (Array.isArray(target)) target.splice(Number(key), 1);
      else delete target[key];
    } else if (op.op === "add" && Array.isArray(target)) {
      target.splice(key === "-" ? target.length : Number(key), 0, structuredClone(op.value));
    } else {
      if (op.op === "replace" && !exists) throw new KubeApiError(422, `cannot replace ${op.path}`);
      target[key as never] = structuredClone(op.value) as never;
    }
  }
  return root.value as T;
}

/** RFC 7386: objects merge recursively, `null` deletes, anything else replaces. */
export function mergePatch(target: unknown, patch: unknown): Record<string, unknown> {
  const out: Record<string, unknown> =
    typeof target === "object" && target !== null && !Array.isArray(target)
      ? structuredClone(target as Record<string, unknown>)
      : {};
  for (const [key, value] of Object.entries(patch as Record<string, unknown>)) {
    if (value === null) delete out[key];
    else if (typeof value === "object" && !Array.isArray(value)) out[key] = mergePatch(out[key], value);
    else out[key] = structuredClone(value);
  }
  return out;
}
