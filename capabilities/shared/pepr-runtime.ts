/**
 * Runtime tuning of the Pepr that runs kuik (issue #5). Pepr 1.1.4 deep-copies every AdmissionRequest object twice
 * with `ramda.clone` (`PeprMutateRequest`/`PeprValidateRequest` constructors, `reencodeData`): 55 % of its CPU per
 * request, p99 11 ms at 200 req/s. The controller image runs its own `/app/node_modules/pepr`, so the fix is made
 * at start-up, on the ramda instance Pepr itself loaded: its `lib.js` does `var import_ramdaN = require("ramda")` and
 * reads `.clone` at call time, and ramda's CommonJS entry exports `clone` as a plain writable property.
 */
import { createRequire } from "node:module";
import { ENV } from "./config";

/** Opt-out switch: `KUIK_PEPR_FAST_CLONE=false` keeps Pepr's own `ramda.clone` (default true). */
export const FAST_CLONE_ENV = ENV.peprFastClone;

/** What {@link installFastClone} did, for one log line. */
export interface FastCloneResult {
  installed: boolean;
  /** Why it was not installed (or that it already was). */
  reason?: string;
  /** The ramda entry file patched (the one Pepr's lib resolves). */
  ramda?: string;
}

/** Options of {@link installFastClone}. */
export interface FastCloneOptions {
  /** Whether to install it at all (`KuikConfig.peprFastClone`, from {@link FAST_CLONE_ENV}). */
  enabled: boolean;
  /**
   * A file path or `file:` URL from which `pepr` is resolved as the module resolves it. Default: this code's own
   * file (in the controller, the forked module bundle next to `/app/node_modules`).
   */
  from?: string;
  /** The deep copy of the fast path; default `structuredClone` (tests inject a counting wrapper). */
  copy?: (value: unknown) => unknown;
}

type Clone = (this: unknown, ...args: unknown[]) => unknown;

/** Property of the replacement holding the ramda `clone` it replaced (lives on ramda's object, not here). */
const ORIGINAL = Symbol.for("kuik.pepr-runtime.original-clone");
/** ramda's placeholder test (`_isPlaceholder`): `clone(R.__)` returns the curried function itself. */
const PLACEHOLDER = "@@functional/placeholder";
const TO_STRING = Object.prototype.toString;

/**
 * True when `root` is a tree of plain data as `JSON.parse` builds it, for which `structuredClone(root)` and
 * ramda's `clone(root)` give equal results. Checked for each node (every test mirrors a ramda specific):
 * - primitives: string, number, boolean, null, undefined (copied as is by both);
 * - objects whose prototype is `Object.prototype` and whose tag is `[object Object]`: ramda copies onto
 *   `Object.create(proto)`, structuredClone onto a plain object, so any other prototype (class instance, null
 *   prototype) would be lost; an own `Symbol.toStringTag` would make ramda's `type()` treat it as, e.g., a Date;
 * - arrays whose prototype is `Array.prototype`, without holes and without extra own enumerable properties;
 * - no own `__proto__` key (JSON.parse makes one; ramda's `copy[key] = …` would set the prototype instead);
 * - every object met once: no cycles and no shared references (ramda keeps both through its `_ObjectMap`, and so
 *   does structuredClone, but a tree is all JSON can produce, so the proof stays simple).
 * Anything else (functions, Dates, RegExps, typed arrays, Maps, Proxies of exotic shape…) is left to ramda.
 * Own accessors are read once more here than by ramda: JSON data has none.
 *
 * Cost: one walk with a Set, about a tenth of structuredClone for a 7 kB Pod, far below ramda's quadratic
 * `_ObjectMap` lookups.
 */
export function isJsonTree(root: unknown): boolean {
  const seen = new Set<object>();
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const v = stack.pop();
    if (v === null) continue;
    const t = typeof v;
    if (t === "string" || t === "number" || t === "boolean" || t === "undefined") continue;
    if (t !== "object") return false;
    const o = v as Record<string, unknown>;
    if (seen.has(o)) return false;
    seen.add(o);
    const proto: unknown = Object.getPrototypeOf(o);
    if (proto === Array.prototype) {
      const a = o as unknown as unknown[];
      if (!Array.isArray(a) || TO_STRING.call(a) !== "[object Array]") return false;
      const n = a.length;
      for (let i = 0; i < n; i++) {
        if (!Object.hasOwn(a, i)) return false;
        stack.push(a[i]);
      }
      if (Object.keys(a).length !== n) return false;
    } else if (proto === Object.prototype) {
      if (TO_STRING.call(o) !== "[object Object]") return false;
      for (const k of Object.keys(o)) {
        if (k === "__proto__") return false;
        stack.push(o[k]);
      }
    } else {
      return false;
    }
  }
  return true;
}

/**
 * The replacement of ramda's `clone`: `copy(value)` (structuredClone) when the call is one a JSON tree would
 * make, else the original, with the same `this` and arguments. Falls back to the original as well when the copy
 * throws (e.g. DataCloneError), so errors are ramda's own.
 *
 * Equal to ramda's result on the fast path because ramda's `clone(value)`:
 * - with no argument or ramda's placeholder, returns itself curried: those calls go to the original;
 * - calls `value.clone()` when that is a function (own or inherited, e.g. a polluted prototype): original;
 * - returns primitives as they are: original (already cheap);
 * - deep-copies a JSON tree: own enumerable string keys, in the same order, onto plain objects and arrays,
 *   which is what structuredClone does for the trees {@link isJsonTree} accepts.
 */
export function fastClone(original: Clone, copy: (value: unknown) => unknown = structuredClone): Clone {
  const clone = function clone(this: unknown, ...args: unknown[]): unknown {
    const value = args[0];
    if (args.length === 1 && typeof value === "object" && value !== null) {
      const v = value as Record<string, unknown>;
      if (v[PLACEHOLDER] !== true && typeof v.clone !== "function" && isJsonTree(v)) {
        try {
          return copy(v);
        } catch {
          // left to ramda, which decides what such a value becomes (or throws its own error)
        }
      }
    }
    return Reflect.apply(original, this, args);
  };
  // ramda's curried `clone` has length 1; keep what introspection sees.
  Object.defineProperty(clone, "length", { value: original.length });
  Object.defineProperty(clone, ORIGINAL, { value: original });
  return clone;
}

interface RamdaExports {
  clone?: unknown;
}

/** Pepr's own ramda instance (the CommonJS module object Pepr's lib.js `require`s), and its entry file. */
function peprRamda(from: string | undefined): { ramda: RamdaExports; file: string } {
  const anchor = from ?? (typeof __filename === "string" ? __filename : `${process.cwd()}/`);
  const peprLib = createRequire(anchor).resolve("pepr");
  const fromPepr = createRequire(peprLib);
  return { ramda: fromPepr("ramda") as RamdaExports, file: fromPepr.resolve("ramda") };
}

/**
 * Replaces `clone` on the ramda instance Pepr resolves by {@link fastClone} of it, once per process (a second
 * call finds it installed). Does nothing, and says why, when disabled by `KUIK_PEPR_FAST_CLONE=false`, when
 * ramda cannot be resolved from Pepr, or when its `clone` is not a writable function property. Call it before
 * `new PeprModule(...)` so that the first request already uses it.
 */
export function installFastClone(opts: FastCloneOptions): FastCloneResult {
  if (!opts.enabled) return { installed: false, reason: `disabled by ${FAST_CLONE_ENV}` };
  let found: { ramda: RamdaExports; file: string };
  try {
    found = peprRamda(opts.from);
  } catch (err) {
    return { installed: false, reason: `ramda not resolvable from pepr: ${(err as Error).message}` };
  }
  const { ramda, file } = found;
  const current = ramda.clone;
  if (typeof current !== "function")
    return { installed: false, reason: "ramda.clone is not a function", ramda: file };
  if (Object.hasOwn(current, ORIGINAL)) return { installed: true, reason: "already installed", ramda: file };
  const desc = Object.getOwnPropertyDescriptor(ramda, "clone");
  if (!desc || !("value" in desc) || desc.writable !== true) {
    return { installed: false, reason: "ramda.clone is not a writable property", ramda: file };
  }
  const replacement = fastClone(current as Clone, opts.copy);
  ramda.clone = replacement;
  if (ramda.clone !== replacement)
    return { installed: false, reason: "ramda.clone did not change", ramda: file };
  return { installed: true, ramda: file };
}

/**
 * Puts ramda's own `clone` back on Pepr's ramda (tests, and A/B comparisons in one process).
 *
 * @returns whether a replacement was removed.
 */
export function uninstallFastClone(from?: string): boolean {
  const { ramda } = peprRamda(from);
  const current = ramda.clone as Record<symbol, unknown> | undefined;
  if (typeof current !== "function" || !Object.hasOwn(current, ORIGINAL)) return false;
  ramda.clone = current[ORIGINAL];
  return true;
}
