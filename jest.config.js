/** Jest runs the TypeScript sources through SWC (ts-jest cannot drive TypeScript 7's native compiler). */
module.exports = {
  testEnvironment: "node",
  roots: ["<rootDir>/tests"],
  testMatch: ["**/*.test.ts"],
  transform: {
    "^.+\\.[tj]s$": [
      "@swc/jest",
      { jsc: { parser: { syntax: "typescript" }, target: "es2022" }, module: { type: "commonjs" } },
    ],
  },
  // jose ships only ES modules; Jest's CommonJS sandbox needs them compiled like our own sources.
  transformIgnorePatterns: ["/node_modules/(?!(jose|@seriousme/openapi-schema-validator|stemmer)/)"],
  // Timeouts catch hangs, not slowness: budgets hold with the CPU contended (the suite beside a second copy of itself).
  testTimeout: 120_000,
  maxWorkers: 2,
};
