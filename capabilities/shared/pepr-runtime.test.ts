import { mkdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Log, PeprMutateRequest, R, type a } from "pepr";
import type { AdmissionRequest } from "pepr/dist/lib/common-types";
import type { Binding } from "pepr/dist/lib/types";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { realisticPod, reviewTemplate } from "../../bench/admission-review";
import { createImageRewriter } from "../image-rewriter/capability";
import { compilePolicy } from "../image-rewriter/policy";
import { loadConfig } from "./config";
import { FAST_CLONE_ENV, fastClone, installFastClone, isJsonTree, uninstallFastClone } from "./pepr-runtime";

type Clone = (...args: unknown[]) => unknown;

// Pepr's own instances, resolved the way its lib.js resolves them.
const peprLib = createRequire(import.meta.url).resolve("pepr");
const fromPepr = createRequire(peprLib);
const peprRamda = fromPepr("ramda") as { clone: Clone; __: unknown };
const jsonPatch = fromPepr("fast-json-patch") as { compare(a: object, b: object): unknown[] };
const ramdaClone = peprRamda.clone;

/** A fast clone whose structuredClone calls are counted. */
function counted(): { clone: Clone; calls: () => number } {
  let n = 0;
  const clone = fastClone(ramdaClone, v => {
    n++;
    return structuredClone(v);
  });
  return { clone, calls: () => n };
}

class Point {
  constructor(
    public x: number,
    public y: number,
  ) {}
  norm(): number {
    return Math.hypot(this.x, this.y);
  }
}

const review = (): unknown => {
  const t = reviewTemplate();
  return JSON.parse(`${t.before}0b5c1c52-0d1e-4f3a-9a55-1f0e3a1b2c3d${t.after}`) as unknown;
};

/** [case, value factory, takes the structuredClone path, JSON-comparable (key order checked too)] */
const cases: [string, () => unknown, boolean, boolean][] = [
  ["AdmissionReview with a 7 kB Pod (JSON.parse)", review, true, true],
  ["the Pod from JSON", () => JSON.parse(JSON.stringify(realisticPod("shop"))) as unknown, true, true],
  // Built in JS, its containers share one volumeMounts array: ramda keeps the sharing, so it gets the call.
  ["the Pod as built in JS (a shared array)", () => realisticPod("shop"), false, true],
  ["nested arrays", () => [[1, [2, [3, []]]], [], ["a", null, true, 0.5]], true, true],
  [
    "integer-like and insertion-ordered keys",
    () => ({ b: 1, 2: "two", a: { z: 1, 1: 1 }, 1: "one" }),
    true,
    true,
  ],
  ["undefined, -0 and NaN values", () => ({ u: undefined, z: -0, n: NaN }), true, false],
  ["an own `clone` that is data", () => ({ clone: "not a method", spec: { clone: 1 } }), true, true],
  ["an empty object", () => ({}), true, true],
  ["a JSON `__proto__` key", () => JSON.parse('{"__proto__":{"polluted":1},"a":1}') as unknown, false, false],
  ["a Date", () => new Date(0), false, false],
  ["a Date inside", () => ({ metadata: { creationTimestamp: new Date(0) } }), false, false],
  ["a RegExp inside", () => ({ re: /^a+$/gi }), false, false],
  ["a class instance", () => new Point(3, 4), false, false],
  ["a class instance inside", () => ({ p: [new Point(1, 2)] }), false, false],
  ["a null-prototype object", () => Object.assign(Object.create(null) as object, { a: 1 }), false, false],
  ["a function inside", () => ({ f: () => 1, n: 1 }), false, false],
  ["a `clone` method (ramda calls it)", () => ({ clone: () => "cloned by the object", a: 1 }), false, false],
  ["ramda's placeholder (curried call)", () => peprRamda.__, false, false],
  ["a placeholder-shaped JSON object", () => ({ "@@functional/placeholder": true }), false, false],
  ["a cycle", () => ((o: Record<string, unknown>) => ((o.self = o), o))({ a: 1 }), false, false],
  ["a shared reference", () => ((s: object) => ({ a: s, b: [s] }))({ x: 1 }), false, false],
  ["an array with a hole", () => ({ a: [1, , 3] }), false, false],
  ["an array with an extra property", () => Object.assign([1, 2], { extra: 1 }), false, false],
  ["a typed array inside", () => ({ bytes: new Uint8Array([1, 2]) }), false, false],
  ["a Map inside (ramda keeps the reference)", () => ({ m: new Map([["k", 1]]) }), false, false],
  ["an own Symbol.toStringTag", () => ({ [Symbol.toStringTag]: "Date", a: 1 }), false, false],
  ["a symbol value", () => ({ s: Symbol("s") }), false, false],
  ["a bigint value", () => ({ n: 1n }), false, false],
  ["a string", () => "text", false, true],
  ["a number", () => 42, false, true],
  ["null", () => null, false, true],
  ["undefined", () => undefined, false, false],
];

describe("fastClone: the same result as ramda's clone", () => {
  it.each(cases)("%s", (_name, make, fast, json) => {
    const { clone, calls } = counted();
    const input = make();
    const expected = ramdaClone(input);
    const actual = clone(input);
    expect(calls()).toBe(fast ? 1 : 0);
    expect(actual).toStrictEqual(expected);
    if (typeof expected === "object" && expected !== null) {
      expect(Object.getPrototypeOf(actual)).toStrictEqual(Object.getPrototypeOf(expected));
    }
    if (fast) {
      expect(actual).not.toBe(input);
      expect(isJsonTree(actual)).toBe(true);
    }
    if (json) expect(JSON.stringify(actual)).toBe(JSON.stringify(expected));
  });

  it("deep-copies: mutating the copy leaves the input alone", () => {
    const input = realisticPod("shop") as { spec: { containers: { image: string }[] } };
    const copy = counted().clone(input) as typeof input;
    (copy.spec.containers[0] as { image: string }).image = "changed";
    expect(input.spec.containers[0]?.image).toBe("registry.example.com/team/web:1.4.2");
  });

  it("keeps ramda's calls without argument (curried) and its arity", () => {
    const { clone, calls } = counted();
    expect(clone()).toBe(ramdaClone());
    expect(clone.length).toBe(ramdaClone.length);
    expect(calls()).toBe(0);
  });

  it("falls back to ramda when the copy throws", () => {
    const clone = fastClone(ramdaClone, () => {
      throw new DOMException("no", "DataCloneError");
    });
    const input = { a: [1, { b: 2 }] };
    expect(clone(input)).toStrictEqual(input);
  });
});

describe("installFastClone", () => {
  afterAll(() => {
    uninstallFastClone(import.meta.url);
  });

  it("disabled: not installed, says why", () => {
    const r = installFastClone({ enabled: false, from: import.meta.url });
    expect(r).toEqual({ installed: false, reason: `disabled by ${FAST_CLONE_ENV}` });
    expect(peprRamda.clone).toBe(ramdaClone);
  });

  it("reports when pepr cannot be resolved", () => {
    const r = installFastClone({ enabled: true, from: join(tmpdir(), "no-such-dir", "x.js") });
    expect(r.installed).toBe(false);
    expect(r.reason).toMatch(/^ramda not resolvable from pepr: Cannot find module 'pepr'/);
  });

  it.each([
    ["not a function", "module.exports.clone = 1;", "ramda.clone is not a function"],
    [
      "a read-only property",
      'Object.defineProperty(module.exports, "clone", { value: function clone(x) { return x; }, enumerable: true });',
      "ramda.clone is not a writable property",
    ],
    [
      "a getter",
      'Object.defineProperty(module.exports, "clone", { get: () => function clone(x) { return x; }, enumerable: true });',
      "ramda.clone is not a writable property",
    ],
  ])("leaves a ramda whose clone is %s alone", (_what, ramdaSource, reason) => {
    // A tiny pepr/ramda pair on disk: the guards are about what a future Pepr or ramda could ship.
    const root = join(tmpdir(), `kuik-pepr-runtime-${process.pid}-${reason.length}-${ramdaSource.length}`);
    for (const [pkg, source] of [
      ["pepr", 'module.exports = require("ramda");'],
      ["ramda", ramdaSource],
    ] as const) {
      mkdirSync(join(root, "node_modules", pkg), { recursive: true });
      writeFileSync(
        join(root, "node_modules", pkg, "package.json"),
        JSON.stringify({ name: pkg, main: "index.js" }),
      );
      writeFileSync(join(root, "node_modules", pkg, "index.js"), source);
    }
    const r = installFastClone({ enabled: true, from: join(root, "module.js") });
    expect(r).toEqual({ installed: false, reason, ramda: join(root, "node_modules", "ramda", "index.js") });
  });
});

describe("Pepr's real admission path with the fast clone", () => {
  let binding: Binding | undefined;
  let level: string;

  beforeAll(() => {
    level = Log.level;
    Log.level = "warn"; // the capability and our callback log info lines through Pepr's logger
    binding = createImageRewriter(compilePolicy(loadConfig({}))).bindings.find(b => b.mutateCallback);
  });
  afterAll(() => {
    Log.level = level;
    uninstallFastClone(import.meta.url);
  });

  /** Pepr's mutateProcessor for a Pod: PeprMutateRequest (clone 1), the callback, reencodeData (clone 2), diff. */
  async function patchOf(): Promise<string> {
    const req = (JSON.parse(JSON.stringify(review())) as { request: AdmissionRequest<a.Pod> }).request;
    const wrapped = new PeprMutateRequest(req);
    await binding?.mutateCallback?.(wrapped as never);
    const transformed = R.clone(wrapped.Raw) as object;
    return JSON.stringify(jsonPatch.compare(req.object as object, transformed));
  }

  it("Pepr's lib uses the replacement, and the JSON patch of a 7 kB Pod is byte-identical", async () => {
    expect(binding).toBeDefined();
    expect(peprRamda.clone).toBe(ramdaClone);
    const before = await patchOf();
    expect(before).toContain("localhost:7439/registry.example.com/team/web:1.4.2");

    let copies = 0;
    const result = installFastClone({
      enabled: true,
      from: import.meta.url,
      copy: v => {
        copies++;
        return structuredClone(v);
      },
    });
    expect(result).toEqual({ installed: true, ramda: fromPepr.resolve("ramda") });
    // The ramda Pepr's lib.js required (and re-exports as `R`) now has the replacement.
    expect(peprRamda.clone).not.toBe(ramdaClone);
    expect(R.clone).toBe(peprRamda.clone);

    const req = (review() as { request: AdmissionRequest<a.Pod> }).request;
    const wrapped = new PeprMutateRequest(req);
    expect(copies).toBe(1); // PeprMutateRequest's constructor went through our copy
    expect(wrapped.Raw).toStrictEqual(req.object);
    expect(wrapped.Raw).not.toBe(req.object);

    const after = await patchOf();
    expect(copies).toBe(3);
    expect(after).toBe(before);

    expect(installFastClone({ enabled: true, from: import.meta.url })).toEqual({
      installed: true,
      reason: "already installed",
      ramda: fromPepr.resolve("ramda"),
    });
    expect(uninstallFastClone(import.meta.url)).toBe(true);
    expect(peprRamda.clone).toBe(ramdaClone);
    expect(uninstallFastClone(import.meta.url)).toBe(false);
  });
});
