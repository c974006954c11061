/** The integration/e2e/bench test harness; see docs/testing.md. */
export * from "./cleanup";
export * from "./containerd";
export * from "./faults";
export * from "./images";
export * from "./net";
export * from "./pki";
export * from "./registries";
export * from "./skopeo";
export * from "./token-issuer";
export * from "./jwt";
export * from "./tools";
