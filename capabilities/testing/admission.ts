/** kuik's real admission rules for the watcher's unit tests (never a stand-in: they are what the watcher trusts). */
import { admittedImages } from "../image-rewriter/recheck";
import { compilePolicy, type RewritePolicyConfig } from "../image-rewriter/policy";
import { loadConfig } from "../shared/config";
import type { AdmittedImages } from "../shared/pod-images";

/** The admission rules of the default configuration, with `overrides`. */
export function admissionRules(overrides: Partial<RewritePolicyConfig> = {}): AdmittedImages {
  return admittedImages(compilePolicy({ ...loadConfig({}), ...overrides }));
}
