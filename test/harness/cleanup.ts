/**
 * Temp dirs and leftovers: every harness temp dir is registered and removed on stop() or at process exit (unless
 * KUIK_KEEP_TMP=1), and long-running children are tied to the Node process (setpriv --pdeathsig).
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { which } from "./tools";

const tempDirs = new Set<string>();
let exitHookInstalled = false;

/** Whether to keep temp dirs for post-mortem (KUIK_KEEP_TMP=1). */
export function keepTemp(): boolean {
  return process.env.KUIK_KEEP_TMP === "1";
}

/** mkdtemp under `${TMPDIR:-/tmp}`; removed at process exit unless KUIK_KEEP_TMP=1. */
export function makeTempDir(prefix: string, parent = tmpdir()): string {
  const dir = mkdtempSync(join(parent, `kuik-${prefix.replace(/[^\w.-]/g, "_")}-`));
  tempDirs.add(dir);
  installExitHook();
  return dir;
}

/** Remove a temp dir now (idempotent). */
export function removeTempDir(dir: string): void {
  tempDirs.delete(dir);
  if (keepTemp() || !existsSync(dir)) return;
  rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
}

const exitCallbacks = new Set<() => void>();

/** Run a synchronous cleanup at process exit (kill children, remove dirs). Returns an unregister function. */
export function onProcessExit(cb: () => void): () => void {
  exitCallbacks.add(cb);
  installExitHook();
  return () => exitCallbacks.delete(cb);
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const cb of exitCallbacks) {
      try {
        cb();
      } catch {
        /* best effort */
      }
    }
    if (keepTemp()) return;
    for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  });
}

/**
 * Wrap a long-running child so the kernel SIGKILLs it if this Node process dies without cleaning up (vitest worker
 * killed, Ctrl-C): `setpriv --pdeathsig KILL CMD ARGS…` (util-linux), exec'd in place so the PID is the command's.
 */
export function tiedToParent(cmd: string, args: readonly string[]): [string, string[]] {
  const setpriv = which("setpriv");
  return setpriv && process.env.KUIK_NO_PDEATHSIG !== "1"
    ? [setpriv, ["--pdeathsig", "KILL", cmd, ...args]]
    : [cmd, [...args]];
}
