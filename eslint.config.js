// ESLint flat config: type-aware typescript-eslint, plus the module boundaries of the
// privilege split (the root listener never imports minio or the recall service).
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["node_modules/", "dist/", "native/build/", "proto/gen/", "eslint.config.js", "bin/", "scripts/*.mjs"] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      "@typescript-eslint/no-explicit-any": "error",
      "@typescript-eslint/consistent-type-imports": "error",
      "@typescript-eslint/require-await": "off",
      "no-restricted-syntax": ["error", { selector: "ExportDefaultDeclaration", message: "Use named exports." }],
    },
  },
  {
    files: ["listener/**/*.ts"],
    rules: {
      // The root listener stays small enough to audit in one sitting: no function over 60 lines.
      "max-lines-per-function": ["error", { max: 60 }],
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            { group: ["minio", "minio/*", "s3rver"], message: "The root listener holds no S3 client." },
            { group: ["**/recall-service/**"], message: "listener/ never imports recall-service/." },
            {
              group: ["node:net", "net", "node:http", "http", "node:https", "https"],
              message: "The listener opens no network port.",
            },
          ],
        },
      ],
    },
  },
  {
    files: ["recall-service/**/*.ts"],
    rules: {
      // One concern a function: no function over 60 lines here either.
      "max-lines-per-function": ["error", { max: 60 }],
      "no-restricted-imports": [
        "error",
        { patterns: [{ group: ["**/listener/**"], message: "recall-service/ never imports listener/." }] },
      ],
    },
  },
  {
    files: ["test/**/*.ts", "bench/**/*.ts"],
    rules: {
      "@typescript-eslint/no-floating-promises": "off",
      "@typescript-eslint/no-non-null-assertion": "off",
    },
  },
);
