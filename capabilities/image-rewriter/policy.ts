/**
 * The rewrite rules of rewrite.ts, compiled once at startup: regexes are built here, never per admission.
 */
import { ALWAYS_IGNORED_NAMESPACES, ConfigError, compileImageRegex } from "../shared/config";

/** The settings {@link compilePolicy} needs (a `KuikConfig` fits). */
export interface RewritePolicyConfig {
  readonly proxyPort: number;
  /** kuik's namespace, always ignored. */
  readonly namespace: string;
  readonly ignoredNamespaces: readonly string[];
  readonly ignoredImages: readonly string[];
  readonly acceptedImages: readonly string[];
  readonly ignorePullPolicyAlways: boolean;
  /** Rewrite images of 127.0.0.0/8 registries (see KuikConfig.rewriteLoopbackRegistries); default false. */
  readonly rewriteLoopbackRegistries?: boolean;
}

/** The rewrite rules, compiled once at startup by {@link compilePolicy}. */
export interface RewritePolicy {
  readonly proxyPort: number;
  /** Every ignored namespace, the always-ignored ones and kuik's included. */
  readonly ignoredNamespaces: ReadonlySet<string>;
  readonly ignoredImages: readonly RegExp[];
  readonly acceptedImages: readonly RegExp[];
  readonly ignorePullPolicyAlways: boolean;
  readonly rewriteLoopbackRegistries: boolean;
}

/**
 * Compiles the rewrite rules.
 *
 * @throws ConfigError listing every invalid regex.
 */
export function compilePolicy(config: RewritePolicyConfig): RewritePolicy {
  const problems: string[] = [];
  const compile = (field: string, sources: readonly string[]): RegExp[] =>
    sources.flatMap(source => {
      try {
        return [compileImageRegex(source)];
      } catch (e) {
        problems.push(`${field}: invalid regex ${JSON.stringify(source)}: ${(e as Error).message}`);
        return [];
      }
    });
  const ignoredImages = compile("ignoredImages", config.ignoredImages);
  const acceptedImages = compile("acceptedImages", config.acceptedImages);
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    proxyPort: config.proxyPort,
    ignoredNamespaces: new Set([...ALWAYS_IGNORED_NAMESPACES, config.namespace, ...config.ignoredNamespaces]),
    ignoredImages,
    acceptedImages,
    ignorePullPolicyAlways: config.ignorePullPolicyAlways,
    rewriteLoopbackRegistries: config.rewriteLoopbackRegistries ?? false,
  };
}
