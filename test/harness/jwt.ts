/**
 * Just enough JWS for registry bearer tokens: sign (ES256 with raw r||s, RS256), decode, and the two key-ID
 * flavours distribution derives from its rootcertbundle (2.x libtrust, 3.x JWK thumbprint).
 */
import { createHash, sign, type KeyObject } from "node:crypto";

export interface AccessEntry {
  type: string;
  name: string;
  actions: string[];
}

export interface JwtClaims {
  iss: string;
  sub: string;
  aud: string;
  exp: number;
  nbf: number;
  iat: number;
  jti: string;
  access: AccessEntry[];
}

export type KidFormat = "libtrust" | "jwk-thumbprint";

function b64url(b: Buffer | string): string {
  return Buffer.from(b).toString("base64url");
}

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

function base32(buf: Buffer): string {
  let bits = 0;
  let value = 0; // only the low `bits` (< 13) bits matter, so 32-bit truncation is harmless
  let out = "";
  for (const byte of buf) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

/** libtrust key ID (distribution 2.x `kid`): base32(sha256(DER SPKI)[:30]) in 12 groups of 4, joined by ':'. */
export function libtrustKeyId(publicKey: KeyObject): string {
  const der = publicKey.export({ type: "spki", format: "der" });
  const enc = base32(createHash("sha256").update(der).digest().subarray(0, 30));
  return (enc.match(/.{4}/g) ?? []).join(":");
}

/**
 * JWK thumbprint as distribution 3.x computes it for rootcertbundle keys (token/util.go getJWKThumbprint):
 * RFC 7638 JSON, SHA-256, base64url, except that Go's big.Int.Bytes() drops leading zero bytes of EC coordinates.
 */
export function jwkThumbprint(publicKey: KeyObject): string {
  const jwk = publicKey.export({ format: "jwk" });
  const trim = (v: string | undefined): string => {
    const b = Buffer.from(v ?? "", "base64url");
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    return b64url(b.subarray(i));
  };
  let json: string;
  if (jwk.kty === "RSA") json = `{"e":"${trim(jwk.e)}","kty":"RSA","n":"${trim(jwk.n)}"}`;
  else if (jwk.kty === "EC")
    json = `{"crv":"${jwk.crv}","kty":"EC","x":"${trim(jwk.x)}","y":"${trim(jwk.y)}"}`;
  else throw new Error(`jwkThumbprint: unsupported key type ${jwk.kty}`);
  return b64url(createHash("sha256").update(json).digest());
}

/** The key ID a registry of the given flavour derives from the public key of its rootcertbundle. */
export function keyId(publicKey: KeyObject, format: KidFormat): string {
  return format === "libtrust" ? libtrustKeyId(publicKey) : jwkThumbprint(publicKey);
}

/** JWS alg for a private key: ES256 for EC P-256, RS256 for RSA. */
export function algFor(key: KeyObject): "ES256" | "RS256" {
  if (key.asymmetricKeyType === "ec") return "ES256";
  if (key.asymmetricKeyType === "rsa") return "RS256";
  throw new Error(`unsupported signing key type ${key.asymmetricKeyType}`);
}

/** Compact JWS over JSON header and claims (`alg` is set from the key). */
export function signJwt(key: KeyObject, header: Record<string, unknown>, claims: object): string {
  const input = `${b64url(JSON.stringify({ typ: "JWT", alg: algFor(key), ...header }))}.${b64url(JSON.stringify(claims))}`;
  const sig = sign("sha256", Buffer.from(input), { key, dsaEncoding: "ieee-p1363" });
  return `${input}.${b64url(sig)}`;
}

/** Decode (without verifying) a compact JWS: header and claims. */
export function decodeJwt(token: string): { header: Record<string, unknown>; claims: JwtClaims } {
  const [h, c] = token.split(".");
  if (!h || !c) throw new Error("decodeJwt: not a compact JWS");
  return {
    header: JSON.parse(Buffer.from(h, "base64url").toString("utf8")) as Record<string, unknown>,
    claims: JSON.parse(Buffer.from(c, "base64url").toString("utf8")) as JwtClaims,
  };
}
