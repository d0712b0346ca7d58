import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/e2e/**/*.e2e.ts"],
    environment: "node",
    testTimeout: 90000,
    hookTimeout: 360000,
    fileParallelism: false,
  },
});
