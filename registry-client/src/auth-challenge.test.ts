import { describe, expect, it } from "vitest";
import { mergeScopes, parseWwwAuthenticate, scopeForRepository } from "./auth-challenge";
import { isRegistryError } from "./errors";
import type { AuthChallenge } from "./types";

const HUB = { realm: "https://auth.docker.io/token", service: "registry.docker.io" };

describe("parseWwwAuthenticate", () => {
  it.each<[string, string, AuthChallenge[]]>([
    [
      "Docker Hub",
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"',
      [{ scheme: "bearer", params: { ...HUB, scope: "repository:library/nginx:pull" } }],
    ],
    [
      // kuik v1 bearer_test: the parameter order must not matter
      "parameters in another order",
      'Bearer scope="repository:library/nginx:pull",service="registry.docker.io",realm="https://auth.docker.io/token"',
      [{ scheme: "bearer", params: { ...HUB, scope: "repository:library/nginx:pull" } }],
    ],
    [
      "a comma inside a quoted scope (multi-action)",
      'Bearer realm="https://r.example/token",scope="repository:a/b:pull,push",service="r"',
      [
        {
          scheme: "bearer",
          params: { realm: "https://r.example/token", scope: "repository:a/b:pull,push", service: "r" },
        },
      ],
    ],
    [
      "case-insensitive scheme and parameter names; values keep their case",
      'BEARER Realm="https://R.example/Token", SERVICE=Reg',
      [{ scheme: "bearer", params: { realm: "https://R.example/Token", service: "Reg" } }],
    ],
    ["unquoted token values", "Basic realm=simple", [{ scheme: "basic", params: { realm: "simple" } }]],
    [
      "quoted-pair escapes",
      'Basic realm="say \\"hi\\" \\\\ bye"',
      [{ scheme: "basic", params: { realm: 'say "hi" \\ bye' } }],
    ],
    ["an empty quoted value", 'Basic realm=""', [{ scheme: "basic", params: { realm: "" } }]],
    [
      "whitespace around = (RFC 7235 BWS)",
      'Basic realm = "x" , charset= "UTF-8"',
      [{ scheme: "basic", params: { realm: "x", charset: "UTF-8" } }],
    ],
    ["a bare scheme (kuik v1 panicked on this)", "Bearer", [{ scheme: "bearer", params: {} }]],
    ["a bare scheme with trailing spaces", "Basic   ", [{ scheme: "basic", params: {} }]],
    [
      "two challenges in one header",
      'Basic realm="registry", Bearer realm="https://t.example/token",service="t"',
      [
        { scheme: "basic", params: { realm: "registry" } },
        { scheme: "bearer", params: { realm: "https://t.example/token", service: "t" } },
      ],
    ],
    [
      "RFC 7235 §4.1 example",
      'Newauth realm="apps", type=1, title="Login to \\"apps\\"", Basic realm="simple"',
      [
        { scheme: "newauth", params: { realm: "apps", type: "1", title: 'Login to "apps"' } },
        { scheme: "basic", params: { realm: "simple" } },
      ],
    ],
    [
      "a token68 is tolerated and ignored",
      'Negotiate YWxhZGRpbjpvcGVuc2VzYW1l==, Basic realm="x"',
      [
        { scheme: "negotiate", params: {} },
        { scheme: "basic", params: { realm: "x" } },
      ],
    ],
    ["a token68 with / and +", "Basic a+b/c=", [{ scheme: "basic", params: {} }]],
    [
      "name= alone is a token68 (RFC 7235 grammar), not an empty parameter",
      "Bearer realm=",
      [{ scheme: "bearer", params: {} }],
    ],
    ["empty list elements", ' , Basic realm="a",, ,', [{ scheme: "basic", params: { realm: "a" } }]],
    [
      "a bare scheme then another challenge",
      'Basic, Bearer realm="x"',
      [
        { scheme: "basic", params: {} },
        { scheme: "bearer", params: { realm: "x" } },
      ],
    ],
    [
      "a repeated parameter keeps the first value",
      'Bearer realm="a", realm="b"',
      [{ scheme: "bearer", params: { realm: "a" } }],
    ],
    [
      "an error challenge",
      'Bearer realm="https://r/token",error="insufficient_scope",scope="repository:x:push"',
      [
        {
          scheme: "bearer",
          params: { realm: "https://r/token", error: "insufficient_scope", scope: "repository:x:push" },
        },
      ],
    ],
    ["an empty header", "", []],
    ["only whitespace", "   ", []],
  ])("%s", (_name, header, expected) => {
    expect(parseWwwAuthenticate(header)).toEqual(expected);
  });

  it("accepts repeated headers as undici returns them", () => {
    expect(parseWwwAuthenticate(['Basic realm="a"', 'Bearer realm="b"'])).toEqual([
      { scheme: "basic", params: { realm: "a" } },
      { scheme: "bearer", params: { realm: "b" } },
    ]);
    expect(parseWwwAuthenticate(undefined)).toEqual([]);
  });

  it("does not let a parameter named like an Object.prototype key misbehave", () => {
    const [challenge] = parseWwwAuthenticate('Bearer __proto__="x", constructor="y", realm="r"');
    expect(challenge?.params.realm).toBe("r");
    expect(Object.getPrototypeOf(challenge?.params)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(challenge?.params, "__proto__")?.value).toBe("x");
    expect(challenge?.params.constructor).toBe("y");
  });

  it.each([
    ["an unterminated quoted string", 'Bearer realm="https://auth'],
    ["a trailing backslash in a quoted string", 'Bearer realm="abc\\'],
    ["a parameter without a value", "Bearer service=x, realm="],
    ["a parameter with a bad value", "Bearer realm=@"],
    ["garbage where a scheme should be", "@@@"],
    ["garbage after a value", 'Bearer realm="a" junk'],
    ["a quote right after the scheme", 'Bearer"x"'],
    ["an = without a name", "Bearer =x"],
  ])("throws AUTH_FAILED on %s", (_name, header) => {
    let caught: unknown;
    try {
      parseWwwAuthenticate(header);
    } catch (e) {
      caught = e;
    }
    expect(isRegistryError(caught, "AUTH_FAILED")).toBe(true);
    expect((caught as Error).message).toMatch(/^malformed WWW-Authenticate header .* at offset \d+$/);
  });

  it("refuses headers over 8 KiB without scanning them", () => {
    expect(() => parseWwwAuthenticate(`Bearer realm="${"a".repeat(9000)}"`)).toThrow(/longer than 8192/);
  });

  it("stays linear on hostile input", () => {
    const started = performance.now();
    for (const header of ["Basic " + "a".repeat(8000) + "!", "a".repeat(8000), ",".repeat(8000)]) {
      try {
        parseWwwAuthenticate(header);
      } catch {
        // only the time matters here
      }
    }
    expect(performance.now() - started).toBeLessThan(500);
  });
});

describe("scopeForRepository", () => {
  it.each<[string, Parameters<typeof scopeForRepository>[1], string]>([
    ["library/nginx", ["pull"], "repository:library/nginx:pull"],
    ["a/b", ["push", "pull"], "repository:a/b:pull,push"],
    ["a/b", ["pull", "pull", "push"], "repository:a/b:pull,push"],
    ["a", ["*", "delete", "pull"], "repository:a:pull,delete,*"],
  ])("%s %j → %s", (repository, actions, expected) => {
    expect(scopeForRepository(repository, actions)).toBe(expected);
  });

  it.each(["", "Library/nginx", "a:b", "a b", "docker.io/library/nginx:1"])(
    "rejects the repository %j",
    repository => {
      expect(() => scopeForRepository(repository, ["pull"])).toThrow(/invalid repository name/);
    },
  );

  it("rejects an empty action list at run time too", () => {
    const none = [] as unknown as Parameters<typeof scopeForRepository>[1];
    expect(() => scopeForRepository("a", none)).toThrow(TypeError);
  });
});

describe("mergeScopes", () => {
  it.each<[(string | undefined)[], string[]]>([
    [["repository:a:pull", "repository:a:push"], ["repository:a:pull,push"]],
    [
      ["repository:a:push,pull", "repository:b:pull", "repository:a:pull"],
      ["repository:a:pull,push", "repository:b:pull"],
    ],
    [
      ["repository:a:pull repository:b:pull", "repository:a:delete"],
      ["repository:a:pull,delete", "repository:b:pull"],
    ],
    [["repository:host:5000/a:pull", "repository:host:5000/a:push"], ["repository:host:5000/a:pull,push"]],
    [
      ["repository(plugin):a:pull", "repository:a:pull"],
      ["repository(plugin):a:pull", "repository:a:pull"],
    ],
    [["registry:catalog:*", undefined, ""], ["registry:catalog:*"]],
    [["repository:a:zeta,pull,alpha"], ["repository:a:pull,alpha,zeta"]],
    [
      ["garbage", "garbage", "repository:a:pull"],
      ["garbage", "repository:a:pull"],
    ],
    [[], []],
  ])("%j → %j", (scopes, expected) => {
    expect(mergeScopes(...scopes)).toEqual(expected);
  });
});
