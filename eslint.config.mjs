import tseslint from "typescript-eslint";

/** Import boundaries: the three dependency islands of docs/design.md. */
const PEPR_AND_CAPS = [
  { group: ["pepr", "pepr/*"], message: "Only capabilities/ and pepr.ts may import Pepr." },
  { group: ["kubernetes-fluent-client", "kubernetes-fluent-client/*"], message: "Only capabilities/ may use the Kubernetes client." },
  { group: ["**/capabilities", "**/capabilities/**"], message: "capabilities/ is the operator's island." },
];

export default tseslint.config(
  { ignores: ["node_modules/**", "dist/**", "**/dist/**", "capabilities/crd/generated/**", ".kuik/**", "bench/node_modules/**"] },
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
    files: ["registry-client/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            ...PEPR_AND_CAPS,
            { group: ["**/proxy", "**/proxy/**"], message: "registry-client must not depend on the proxy." },
            { group: ["pino", "prom-client"], message: "registry-client is a library: it reports through hooks, it does not log or count." },
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
