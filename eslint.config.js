// ESLint for the web page's ES modules (server/web/js); `make lint` runs it. The vendored chart library is
// third-party, minified code and is not linted.
import js from "@eslint/js";
import globals from "globals";

export default [
  { ignores: ["server/web/vendor/**", "node_modules/**", ".venv/**"] },
  js.configs.recommended,
  {
    files: ["server/web/js/**/*.js"],
    languageOptions: { ecmaVersion: 2022, sourceType: "module", globals: { ...globals.browser } },
    rules: {
      "no-unused-vars": ["error", { argsIgnorePattern: "^_", caughtErrors: "none" }],
      eqeqeq: ["error", "always"],
      "no-var": "error",
      "prefer-const": "error",
      "no-implicit-globals": "error",
      "no-console": ["error", { allow: ["error", "warn"] }],
    },
  },
  {
    files: ["eslint.config.js"],
    languageOptions: { sourceType: "module", globals: { ...globals.node } },
  },
];
