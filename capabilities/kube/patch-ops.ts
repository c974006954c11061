/** JSON Patch operations kuik builds for any object: finalizer removal, annotation paths. */
import type { JsonPatchOp } from "./ports";

/** JSON Patch removing `finalizer` at its current index, guarded by a `test` of that index. */
export function removeFinalizerOps(
  object: { metadata?: { finalizers?: unknown } },
  finalizer: string,
): JsonPatchOp[] {
  const index = ((object.metadata?.finalizers as string[] | undefined) ?? []).indexOf(finalizer);
  if (index < 0) return [];
  const path = `/metadata/finalizers/${index}`;
  return [
    { op: "test", path, value: finalizer },
    { op: "remove", path },
  ];
}

/** `/metadata/annotations/<key>` with the key escaped for a JSON Pointer. */
export function annotationPath(key: string): string {
  return `/metadata/annotations/${key.replace(/~/g, "~0").replace(/\//g, "~1")}`;
}
