/**
 * The committed manifests.generated.ts must hold what scripts/generate-bootstrap.ts reads from deploy/crds and
 * `kubectl kustomize deploy/base` (`pepr deploy` builds from the committed file, so it cannot be generated at build
 * time): a change to deploy/ without regenerating fails here. Data is compared, not text (formatting is free).
 */
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { bootstrapData } from "../../scripts/generate-bootstrap";
import { CRDS, DATA_PLANE } from "./manifests.generated";

describe("capabilities/bootstrap/manifests.generated.ts", () => {
  it("is up to date with deploy/crds and deploy/base (run npx tsx scripts/generate-bootstrap.ts)", () => {
    const fresh = bootstrapData(resolve(__dirname, "../.."));
    expect({ crds: CRDS, dataPlane: DATA_PLANE }, "stale: run npx tsx scripts/generate-bootstrap.ts").toEqual(
      fresh,
    );
  }, 60_000);
});
