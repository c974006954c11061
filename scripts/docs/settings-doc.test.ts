/**
 * docs/configuration.md lists every environment variable the module reads (capabilities/shared/config.ts `ENV`,
 * watcher-config.ts `WATCHER_ENV`): a new setting without its line fails here.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ENV } from "../../capabilities/shared/config";
import { WATCHER_ENV } from "../../capabilities/shared/watcher-config";
import { envName } from "../../proxy/src/flags";
import { ROOT } from "./doc-tables";

describe("docs/configuration.md", () => {
  const doc = readFileSync(join(ROOT, "docs", "configuration.md"), "utf8");
  it.each([...Object.values(ENV), ...Object.values(WATCHER_ENV)])("documents %s", name => {
    expect(doc).toContain(`\`${name}\``);
  });
  // The proxy's flags are all in proxy/README.md (config.test.ts); its security limits are here too.
  it.each(["allowed-origin", "max-concurrent-requests", "max-connections"].map(envName))(
    "documents %s",
    name => {
      expect(doc).toContain(`\`${name}\``);
    },
  );
});
