import { describe, expect, it } from "vitest";
import { Authenticator, MAX_CHALLENGES, type TokenFetcher } from "./auth";

describe("Authenticator token cache", () => {
  it("stays bounded: past 1,000 scopes the oldest tokens are forgotten and fetched again", async () => {
    const fetched: string[] = [];
    const fetchToken: TokenFetcher = async url => {
      fetched.push(url.searchParams.get("scope") ?? "");
      return { statusCode: 200, body: JSON.stringify({ token: `t${fetched.length}`, expires_in: 3600 }) };
    };
    const auth = new Authenticator(() => [], fetchToken);
    const challenge = 'Bearer realm="https://auth.example/token",service="registry.example"';
    const scope = (i: number): string => `repository:team/app${i}:pull`;
    for (let i = 0; i < 1001; i++)
      await auth.onUnauthorized("registry.example", `team/app${i}`, scope(i), challenge);
    await auth.authorization("registry.example", "team/app1000", scope(1000)); // the newest: still cached
    await auth.authorization("registry.example", "team/app0", scope(0)); // the oldest: fetched again
    expect(fetched.filter(s => s === scope(1000))).toHaveLength(1);
    expect(fetched.filter(s => s === scope(0))).toHaveLength(2);
  });

  it("remembers at most MAX_CHALLENGES registries' challenges, forgetting the oldest", async () => {
    const fetchToken: TokenFetcher = async () => ({ statusCode: 200, body: JSON.stringify({ token: "t" }) });
    const auth = new Authenticator(() => [], fetchToken);
    const challenge = 'Bearer realm="https://auth.example/token"';
    for (let i = 0; i <= MAX_CHALLENGES; i++)
      await auth.onUnauthorized(`r${i}.example`, "app", undefined, challenge);
    expect(auth.sizes().challenges).toBe(MAX_CHALLENGES);
    expect(await auth.authorization("r0.example", "app", undefined)).toBeUndefined(); // forgotten
    expect(await auth.authorization(`r${MAX_CHALLENGES}.example`, "app", undefined)).toBe("Bearer t");
  });
});
