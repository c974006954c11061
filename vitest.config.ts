import { defineConfig } from "vitest/config";

/**
 * Three test tiers (see docs/testing.md):
 * - unit: colocated `*.test.ts` next to the code, pure logic, no network;
 * - integration: `test/integration/**` against real registries and real clients on loopback;
 * - e2e: `*.e2e.test.ts` files under `test/e2e/`, against a real local control plane.
 */
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: [
            "capabilities/**/*.test.ts",
            "registry-client/**/*.test.ts",
            "proxy/**/*.test.ts",
            "scripts/**/*.test.ts",
            "test/harness/**/*.test.ts",
          ],
          environment: "node",
        },
      },
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          environment: "node",
          globalSetup: ["test/integration/global-setup.ts"],
          testTimeout: 120_000,
          hookTimeout: 300_000,
          poolOptions: { forks: { singleFork: true } },
        },
      },
      {
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.e2e.test.ts"],
          environment: "node",
          testTimeout: 180_000,
          hookTimeout: 600_000,
          poolOptions: { forks: { singleFork: true } },
        },
      },
    ],
  },
});
