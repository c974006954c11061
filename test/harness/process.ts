/**
 * The harness's one way to run a long-lived process: start it in its own process group with its output appended to
 * a log file, tie it to this Node process (`setpriv --pdeathsig KILL`, plus an exit hook), wait until it is ready,
 * and stop it (SIGTERM to the group, SIGKILL after a grace period). Control plane, node and containerd use it.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";
import { onProcessExit, tiedToParent } from "./cleanup";
import { killGroup, sleep } from "./tools";

export interface ProcessSpec {
  /** Short name, used in errors ("kubelet exited; log …"). */
  name: string;
  cmd: string;
  args: readonly string[];
  /** Appended to (stdout and stderr). */
  logFile: string;
  /** Environment; default this process's. */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Resolves true once the process serves; polled every `pollMs` until `readyTimeoutMs`. Default: started. */
  ready?: () => Promise<boolean>;
  /** Default 30 s. */
  readyTimeoutMs?: number;
  /** Default 100 ms. */
  pollMs?: number;
  /** SIGTERM → SIGKILL grace period on stop; default 10 s. */
  stopGraceMs?: number;
}

export interface RunningProcess {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  /** Resolves with the exit code once the process has exited (null: killed by a signal, or it never started). */
  readonly exited: Promise<number | null>;
  isRunning(): boolean;
  /** The last lines of the log. */
  tail(lines?: number): string;
  /** SIGTERM to its group, SIGKILL after the grace period; resolves once it exited. Idempotent. */
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
onProcessExit(() => {
  for (const c of live) killGroup(c.pid, "SIGKILL");
});

/** The last `lines` lines of a file, or "(no log)". */
export function tailFile(file: string, lines = 25): string {
  try {
    return readFileSync(file, "utf8").trim().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/** Start a process; with `ready`, wait for it and throw (after stopping it) with the log's tail if it fails. */
export async function startProcess(spec: ProcessSpec): Promise<RunningProcess> {
  const fd = openSync(spec.logFile, "a");
  let child: ChildProcess;
  try {
    const [cmd, args] = tiedToParent(spec.cmd, spec.args);
    child = spawn(cmd, args, {
      stdio: ["ignore", fd, fd],
      detached: true,
      env: spec.env ?? process.env,
      ...(spec.cwd ? { cwd: spec.cwd } : {}),
    });
  } finally {
    closeSync(fd);
  }
  live.add(child);
  let running = child.pid !== undefined;
  /** How it ended, for the error below (a process killed at start writes no log line). */
  let ending = "";
  const exited = new Promise<number | null>(resolve => {
    const done = (code: number | null, how: string): void => {
      running = false;
      ending = how;
      live.delete(child);
      resolve(code);
    };
    child.once("exit", (code, signal) => done(code, signal ? `signal ${signal}` : `code ${code}`));
    child.once("error", err => done(null, `spawn error ${err.message}`));
  });
  let stopping: Promise<void> | undefined;
  const proc: RunningProcess = {
    name: spec.name,
    pid: child.pid ?? 0,
    logFile: spec.logFile,
    exited,
    isRunning: () => running,
    tail: lines => tailFile(spec.logFile, lines),
    stop: () =>
      (stopping ??= (async () => {
        if (running) {
          killGroup(child.pid, "SIGTERM");
          const t = setTimeout(() => killGroup(child.pid, "SIGKILL"), spec.stopGraceMs ?? 10_000);
          await exited;
          clearTimeout(t);
        }
        killGroup(child.pid, "SIGKILL"); // whatever of its group is left
      })()),
  };
  if (spec.ready) {
    const deadline = Date.now() + (spec.readyTimeoutMs ?? 30_000);
    for (;;) {
      if (await spec.ready().catch(() => false)) break;
      if (!running || Date.now() > deadline) {
        const state = running ? `not ready after ${spec.readyTimeoutMs ?? 30_000} ms` : `exited (${ending})`;
        await proc.stop();
        throw new Error(`${spec.name} ${state}; ${spec.logFile}:\n${proc.tail()}`);
      }
      await sleep(spec.pollMs ?? 100);
    }
  }
  return proc;
}
