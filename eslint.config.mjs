import tseslint from "typescript-eslint";

/** Import boundaries: the three dependency islands of docs/design.md. */
const PEPR_AND_CAPS = [
  { group: ["pepr", "pepr/*"], message: "Only capabilities/ and pepr.ts may import Pepr." },
  {
    group: ["kubernetes-fluent-client", "kubernetes-fluent-client/*"],
    message: "Only capabilities/ may use the Kubernetes client.",
  },
  { group: ["**/capabilities", "**/capabilities/**"], message: "capabilities/ is the operator's island." },
];

/**
 * Boundaries inside capabilities/ (docs/design.md, "capabilities/: one folder per concern"). The concern folders
 * import the Kubernetes client (kube/), shared/ and registry-client, never each other (tracking may use the expiry
 * rules) and never the wiring (watcher/), the only folder that composes them; bootstrap/ imports kube/, never the
 * reverse; testing/ is for `*.test.ts` files only. Tests are exempt from the folder rules, not from the testing one.
 */
const CONCERNS = ["tracking", "caching", "expiry", "repositories", "proxy-gate"];
const folder = name => [`**/${name}`, `**/${name}/**`];
const NO_TESTING = {
  group: folder("testing"),
  message: "capabilities/testing/ holds fakes: only *.test.ts files may import them.",
};
const no = (names, message) => ({ group: names.flatMap(folder), message });
const NOT_THE_WIRING = no(
  ["watcher"],
  "Only capabilities/watcher/ composes the concerns: nothing imports the wiring.",
);
const NOT_BOOTSTRAP = no(
  ["bootstrap"],
  "bootstrap/ uses the Kubernetes client, never the reverse; only the wiring starts it.",
);
const NOT_ADMISSION = no(
  ["image-rewriter"],
  "image-rewriter/ (admission) is imported by capabilities/index.ts only.",
);
const otherConcerns = self => {
  const others = CONCERNS.filter(c => c !== self);
  // Tracking applies the expiry rules (when expiresAt is set or cleared); nothing else crosses between concerns.
  const group = others.flatMap(c =>
    self === "tracking" && c === "expiry" ? ["**/expiry/**", "!**/expiry/rules"] : folder(c),
  );
  return {
    group,
    message: `capabilities/${self}/ is a concern: it may import kube/, shared/ and registry-client, not another concern.`,
  };
};
const LAYERS = {
  ...Object.fromEntries(
    CONCERNS.map(c => [c, [otherConcerns(c), NOT_THE_WIRING, NOT_BOOTSTRAP, NOT_ADMISSION]]),
  ),
  kube: [
    no([...CONCERNS, "bootstrap"], "kube/ is the client the concerns use: it imports none of them."),
    NOT_THE_WIRING,
    NOT_ADMISSION,
  ],
  shared: [
    no([...CONCERNS, "kube"], "shared/ depends on nothing else of capabilities/ (crd/ aside)."),
    NOT_THE_WIRING,
    NOT_BOOTSTRAP,
    NOT_ADMISSION,
  ],
  bootstrap: [
    no(CONCERNS, "bootstrap/ imports the Kubernetes client and shared/ only."),
    NOT_THE_WIRING,
    NOT_ADMISSION,
  ],
  testing: [
    no(CONCERNS, "The fakes stand in for ports (kube/): they import no concern."),
    NOT_THE_WIRING,
    NOT_BOOTSTRAP,
  ],
  "image-rewriter": [
    no([...CONCERNS, "kube"], "Admission does no I/O: it imports shared/ only."),
    NOT_THE_WIRING,
    NOT_BOOTSTRAP,
  ],
};

export default tseslint.config(
  {
    ignores: [
      "node_modules/**",
      "dist/**",
      "**/dist/**",
      "capabilities/crd/generated/**",
      ".kuik/**",
      "bench/node_modules/**",
    ],
  },
  ...tseslint.configs.recommended,
  {
    files: ["**/*.ts"],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
    },
  },
  {
    files: ["**/*.ts"],
    ignores: ["**/*.test.ts"],
    rules: { "no-restricted-imports": ["error", { patterns: [NO_TESTING] }] },
  },
  ...Object.entries(LAYERS).map(([name, patterns]) => ({
    files: [`capabilities/${name}/**/*.ts`],
    ignores: ["**/*.test.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        { patterns: name === "testing" ? patterns : [...patterns, NO_TESTING] },
      ],
    },
  })),
  {
    files: ["registry-client/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            ...PEPR_AND_CAPS,
            { group: ["**/proxy", "**/proxy/**"], message: "registry-client must not depend on the proxy." },
            {
              group: ["pino", "prom-client"],
              message: "registry-client is a library: it reports through hooks, it does not log or count.",
            },
          ],
        },
      ],
    },
  },
  {
    files: ["proxy/**/*.ts"],
    rules: { "no-restricted-imports": ["error", { patterns: PEPR_AND_CAPS }] },
  },
);
