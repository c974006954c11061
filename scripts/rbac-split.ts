/**
 * Post-processing of the manifest `pepr build` generates (`dist/pepr-module-kuik.yaml`): the admission Deployment
 * gets its own ServiceAccount, and kuik's RBAC objects (capabilities/rbac-objects.ts) are appended. Pepr's
 * ClusterRole stays the watcher's (package.json `pepr.rbac`). Applying it twice changes nothing.
 *
 * Usage: `tsx scripts/rbac-split.ts <manifest> [kuik namespace, default kuik-system]` (rewrites it in place).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { dumpYaml } from "@kubernetes/client-node";
import {
  ADMISSION_SERVICE_ACCOUNT,
  WATCHER_SERVICE_ACCOUNT,
  kuikRbacObjects,
} from "../capabilities/rbac-objects";

/** Thrown when the generated manifest is not what the post-processing expects. */
export class RbacSplitError extends Error {
  readonly code = "RBAC_SPLIT";
}

const MARKER = "# kuik's RBAC (scripts/rbac-split.ts)";

/** The manifest with the admission Deployment on its own ServiceAccount and kuik's RBAC objects appended. */
export function splitRbac(manifest: string, kuikNamespace = "kuik-system"): string {
  if (manifest.includes(MARKER)) return manifest;
  const docs = manifest.split(/^---$/m);
  const admission = docs.filter(
    d => /^kind: Deployment$/m.test(d) && /pepr\.dev\/controller: admission$/m.test(d),
  );
  if (admission.length !== 1)
    throw new RbacSplitError(`expected 1 admission Deployment, found ${admission.length}`);
  const from = `serviceAccountName: ${WATCHER_SERVICE_ACCOUNT}\n`;
  const doc = admission[0] as string;
  if (doc.split(from).length !== 2) throw new RbacSplitError(`admission Deployment without ${from.trim()}`);
  docs[docs.indexOf(doc)] = doc.replace(from, `serviceAccountName: ${ADMISSION_SERVICE_ACCOUNT}\n`);
  const added = kuikRbacObjects({ kuikNamespace }).map(o => dumpYaml(o).trimEnd());
  return `${docs.join("---").trimEnd()}\n---\n${MARKER}\n${added.join("\n---\n")}\n`;
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  const [file, namespace] = process.argv.slice(2);
  if (!file) {
    console.error("usage: tsx scripts/rbac-split.ts <manifest> [kuik namespace]");
    process.exit(2);
  }
  writeFileSync(file, splitRbac(readFileSync(file, "utf8"), namespace));
}
