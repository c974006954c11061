import { createPublicKey, generateKeyPairSync, verify } from "node:crypto";
import { describe, expect, it } from "vitest";
import { decodeJwt, defaultAcl, jwkThumbprint, libtrustKeyId, parseScope, TokenIssuer } from "./token-issuer";

describe("key IDs", () => {
  it("libtrust kid: 12 groups of 4 base32 chars", () => {
    const { publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    expect(libtrustKeyId(publicKey)).toMatch(/^([A-Z2-7]{4}:){11}[A-Z2-7]{4}$/);
  });

  it("JWK thumbprint matches RFC 7638's example", () => {
    // RFC 7638 section 3.1
    const key = createPublicKey({
      format: "jwk",
      key: {
        kty: "RSA",
        e: "AQAB",
        n:
          "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMs" +
          "tn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajr" +
          "n1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
      },
    });
    expect(jwkThumbprint(key)).toBe("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
  });
});

describe("scopes and access", () => {
  it("parses scopes whose names contain colons", () => {
    expect(parseScope("repository:a/b:pull,push")).toEqual({
      type: "repository",
      name: "a/b",
      actions: ["pull", "push"],
    });
    expect(parseScope("repository(plugin):x:pull")).toEqual({
      type: "repository",
      name: "x",
      actions: ["pull"],
    });
    expect(parseScope("registry:catalog:*")).toEqual({ type: "registry", name: "catalog", actions: ["*"] });
    expect(parseScope("nonsense")).toBeUndefined();
  });

  it("grants requested ∩ allowed", () => {
    const issuer = new TokenIssuer({
      service: "svc",
      issuer: "iss",
      users: {},
      acl: defaultAcl("owner", ["reader"], ["public/*"]),
      signingKey: generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey,
      keyHint: "kid",
    });
    expect(issuer.authorize("owner", ["repository:x/y:pull,push,delete"])).toEqual([
      { type: "repository", name: "x/y", actions: ["pull", "push", "delete"] },
    ]);
    expect(issuer.authorize("reader", ["repository:x:pull,push"])).toEqual([
      { type: "repository", name: "x", actions: ["pull"] },
    ]);
    expect(issuer.authorize("", ["repository:x:pull"])).toEqual([]);
    expect(issuer.authorize("", ["repository:public/a/b:pull", "repository:public/a/b:push"])).toEqual([
      { type: "repository", name: "public/a/b", actions: ["pull"] },
    ]);
    expect(issuer.authorize("owner", ["registry:catalog:*"])).toEqual([
      { type: "registry", name: "catalog", actions: ["*"] },
    ]);
  });
});

describe("decodeJwt", () => {
  it("decodes header and claims; ES256 signatures are raw r||s", () => {
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const issuer = new TokenIssuer({
      service: "svc",
      issuer: "iss",
      users: {},
      acl: [],
      signingKey: privateKey,
      keyHint: "kid",
      kidFormat: "libtrust",
      ttlSeconds: 60,
    });
    const jwt = issuer.mint("alice", [{ type: "repository", name: "a", actions: ["pull"] }]);
    const { header, claims } = decodeJwt(jwt);
    expect(header).toEqual({ typ: "JWT", alg: "ES256", kid: libtrustKeyId(publicKey) });
    expect(claims).toMatchObject({ iss: "iss", sub: "alice", aud: "svc" });
    expect(claims.exp - claims.iat).toBe(60);
    const [h, c, s] = jwt.split(".");
    const sig = Buffer.from(s ?? "", "base64url");
    expect(sig.length).toBe(64);
    expect(
      verify("sha256", Buffer.from(`${h}.${c}`), { key: publicKey, dsaEncoding: "ieee-p1363" }, sig),
    ).toBe(true);
  });
});
