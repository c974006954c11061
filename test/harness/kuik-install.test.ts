import { describe, expect, it } from "vitest";
import {
  containerEnv,
  formatOverrides,
  localPath,
  parseJsonStream,
  type Container,
  type EnvVar,
} from "./kuik-install";

describe("containerEnv: a container's environment as the kubelet resolves it", () => {
  const proxy: Container = {
    name: "proxy",
    env: [
      { name: "POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
      { name: "KUIK_PROXY_OPS_LISTEN", value: "$(POD_IP):8080" },
      { name: "LATER", value: "$(DEFINED_AFTER)" },
      { name: "DEFINED_AFTER", value: "x" },
      { name: "EMPTY" },
    ],
  };

  it("expands $(VAR) from the variables before it and fieldRef from the given fields", () => {
    expect(containerEnv(proxy, { "status.podIP": "127.0.0.1" })).toEqual({
      POD_IP: "127.0.0.1",
      KUIK_PROXY_OPS_LISTEN: "127.0.0.1:8080",
      LATER: "$(DEFINED_AFTER)",
      DEFINED_AFTER: "x",
      EMPTY: "",
    });
  });

  it.each<[EnvVar["valueFrom"], string]>([
    [{ fieldRef: { fieldPath: "status.podIP" } }, "no field given"],
    [{ secretKeyRef: { name: "s", key: "k" } }, "another source"],
  ])("refuses a valueFrom it cannot resolve (%j: %s)", valueFrom => {
    expect(() => containerEnv({ name: "c", env: [{ name: "V", valueFrom }] })).toThrow(
      /unsupported valueFrom/,
    );
  });
});

describe("helpers", () => {
  it("formats an override with its installed value, or (unset)", () => {
    expect(
      formatOverrides([
        { object: "Deployment ns/d", setting: "A", installed: ":5000", local: "127.0.0.1:1", why: "w" },
        { object: "Deployment ns/d", setting: "B", installed: undefined, local: "x", why: "y" },
      ]),
    ).toEqual(['Deployment ns/d: A ":5000" → "127.0.0.1:1" (w)', 'Deployment ns/d: B (unset) → "x" (y)']);
  });

  it("maps a container path under a local root", () => {
    expect(localPath("/tmp/x", "/etc/kuik/credentials/config.json")).toBe(
      "/tmp/x/etc/kuik/credentials/config.json",
    );
  });

  it("parses concatenated JSON documents, braces in strings included", () => {
    expect(parseJsonStream('{"a":"}{"}\n{"b":{"c":"\\"{"}}')).toEqual([{ a: "}{" }, { b: { c: '"{' } }]);
  });
});
