/**
 * Global setup of the "integration" vitest project: fail fast, with the install step, when a required tool is
 * missing, and provide the tool coordinates to tests (`inject("kuikHarness")`). It starts nothing: each test file
 * starts its own registries (tens of milliseconds each) in beforeAll and stops them in afterAll, so files stay
 * independent and a crashed file cannot leak state into another.
 */
import { mkdirSync } from "node:fs";
import type { TestProject } from "vitest/node";
import { imageCacheDir } from "../harness/images";
import { findTool, registryBinary, tryFindTool } from "../harness/tools";

export interface HarnessInfo {
  registryBinary: string;
  registryVersion: string;
  registryMajor: number;
  skopeo: string;
  crane?: string;
  containerd?: string;
  /** containerd tests need root and containerd/ctr/python3-grpc. */
  containerdUsable: boolean;
  imageCache: string;
}

declare module "vitest" {
  export interface ProvidedContext {
    kuikHarness: HarnessInfo;
  }
}

export default function setup(project: TestProject): void {
  // Required by every integration test: throws ToolNotFoundError naming the install step.
  for (const t of ["registry", "skopeo", "openssl", "htpasswd", "python3"] as const) findTool(t);
  const reg = registryBinary();
  mkdirSync(imageCacheDir(), { recursive: true });
  const containerd = tryFindTool("containerd");
  const info: HarnessInfo = {
    registryBinary: reg.path,
    registryVersion: reg.version,
    registryMajor: reg.major,
    skopeo: findTool("skopeo"),
    containerdUsable:
      process.getuid?.() === 0 && !!containerd && !!tryFindTool("ctr") && !!tryFindTool("python3-grpc"),
    imageCache: imageCacheDir(),
  };
  const crane = tryFindTool("crane");
  if (crane) info.crane = crane;
  if (containerd) info.containerd = containerd;
  project.provide("kuikHarness", info);
  console.log(`[kuik harness] registry ${reg.version} (${reg.path}); images cached in ${info.imageCache}`);
}
