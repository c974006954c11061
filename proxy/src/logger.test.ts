import { describe, expect, it } from "vitest";
import { createLogger } from "./logger";

describe("createLogger", () => {
  it("writes JSON lines with a constant message and redacts credentials wherever they appear", () => {
    const lines: string[] = [];
    const log = createLogger("info", { write: (s: string) => void lines.push(s) });
    log.info(
      {
        registry: "ghcr.io",
        headers: { authorization: "Bearer abc.def.ghi", accept: "application/json" },
        req: { headers: { authorization: "Basic dXNlcjpwYXNz" } },
        credentials: { token: "t0k3n", password: "hunter2" },
        token: "top-level-token",
      },
      "request",
    );
    log.debug({ token: "hidden" }, "below the level");
    expect(lines).toHaveLength(1);
    const entry = JSON.parse(lines[0] ?? "{}") as Record<string, unknown>;
    expect(entry).toMatchObject({
      level: "info",
      msg: "request",
      component: "kuik-proxy",
      registry: "ghcr.io",
    });
    expect(entry.headers).toEqual({ authorization: "[redacted]", accept: "application/json" });
    for (const secret of ["abc.def.ghi", "dXNlcjpwYXNz", "t0k3n", "hunter2", "top-level-token"]) {
      expect(lines[0]).not.toContain(secret);
    }
  });
});
