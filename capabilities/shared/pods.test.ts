import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { containerAnnotationKey, podContainers } from "./pods";

const QUALIFIED_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const sha1 = (s: string): string => createHash("sha1").update(s).digest("hex");

describe("containerAnnotationKey (kuik v1 ContainerAnnotationKey)", () => {
  it.each([
    ["container", "original-image-", 48],
    ["init", "original-init-image-", 43],
    ["ephemeral", "original-ephem-image-", 42],
  ] as const)("%s: keeps names up to 63 characters in all, then SHA-1", (kind, prefix, longest) => {
    const fits = "c".repeat(longest);
    const tooLong = "c".repeat(longest + 1);
    expect(containerAnnotationKey(fits, kind)).toBe(prefix + fits);
    expect(containerAnnotationKey(fits, kind)).toHaveLength(63);
    expect(containerAnnotationKey(tooLong, kind)).toBe(prefix + sha1(tooLong));
    const longest63 = containerAnnotationKey("n".repeat(63), kind);
    expect(longest63.length).toBeLessThanOrEqual(63);
    expect(longest63).toMatch(QUALIFIED_NAME);
  });

  it("uses v1's keys", () => {
    expect(containerAnnotationKey("b", "container")).toBe("original-image-b");
    expect(containerAnnotationKey("a", "init")).toBe("original-init-image-a");
  });
});

describe("podContainers", () => {
  it("lists containers, then init, then ephemeral containers, with their index", () => {
    const pod = {
      spec: {
        initContainers: [{ name: "i0", image: "a" }],
        containers: [
          { name: "c0", image: "b" },
          { name: "c1", image: "c" },
        ],
        ephemeralContainers: [{ name: "e0", image: "d" }],
      },
    };
    expect(podContainers(pod).map(c => [c.kind, c.index, c.container.name])).toEqual([
      ["container", 0, "c0"],
      ["container", 1, "c1"],
      ["init", 0, "i0"],
      ["ephemeral", 0, "e0"],
    ]);
    expect(podContainers({})).toEqual([]);
  });
});
