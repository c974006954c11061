/**
 * registry-client: an OCI distribution registry client on undici. See registry-client/README.md.
 * Imports nothing from Pepr, the operator or the proxy, and never logs: it reports through `onEvent`.
 */
export * from "./errors";
export * from "./types";
export {
  parseImageReference,
  parseRepositoryName,
  formatImageReference,
  DOCKER_HUB_REGISTRY,
} from "./reference";
export { parseWwwAuthenticate, scopeForRepository, mergeScopes } from "./auth-challenge";
export * from "./keyring";
export type { CredentialsProvider } from "./auth";
export {
  AddressPolicy,
  parseAllowEntry,
  type AddressPolicyOptions,
  type AddressDecision,
  type AllowEntry,
  type Resolver,
  type ResolvedAddress,
} from "./address-policy";
export {
  RegistryClient,
  headerValue,
  parseOciError,
  type RegistryClientOptions,
  type RegistryHostOptions,
  type RegistryEvent,
  type RequestSpec,
  type RegistryResponse,
  type Action,
} from "./client";
export * from "./media-types";
export { digestOf, isDigest, verifyingStream } from "./digest";
export * from "./manifests";
export * from "./blobs";
export { copyImage, platformWanted, type CopyOptions, type CopyProgress, type CopyResult } from "./copy";
export type { TimeoutOptions, RetryOptions, ProxyOptions, TlsOptions } from "./transport";
