import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // scenario tests share the host's kernel; run files one at a time
    fileParallelism: false,
    reporters: ['default', './test/summary-reporter.ts'],
  },
});
