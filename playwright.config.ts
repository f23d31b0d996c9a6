import { defineConfig } from '@playwright/test';
import { CHROMIUM, CHROMIUM_ARGS } from './tests/e2e/chromium';

import { APP_PORT as PORT, HUB_PORT } from './tests/e2e/servers';

export default defineConfig({
  testDir: 'tests/e2e',
  testMatch: '*.spec.ts',
  timeout: 180_000,
  workers: 1,
  reporter: [['list'], ['json', { outputFile: process.env.PLAYWRIGHT_JSON_OUTPUT_NAME ?? 'test-results/e2e.json' }]],
  outputDir: 'test-results/e2e',
  use: {
    baseURL: `http://127.0.0.1:${PORT}`,
    // Playwright gives each test a fresh profile (--user-data-dir) of its own.
    launchOptions: { executablePath: CHROMIUM, args: CHROMIUM_ARGS },
  },
  webServer: [
    {
      // the test build: its Content-Security-Policy also lets the page reach the local test Hubs (vite.config.ts)
      command:
        `npx vite build --mode test --logLevel warn && ` +
        `npx vite preview --mode test --host 127.0.0.1 --port ${PORT} --strictPort`,
      url: `http://127.0.0.1:${PORT}`,
      reuseExistingServer: false,
      timeout: 120_000,
    },
    {
      command: `node bin/ts.mjs tests/fixtures/serve-hub.ts --port ${HUB_PORT}`,
      url: `http://127.0.0.1:${HUB_PORT}/__log`,
      reuseExistingServer: false,
      timeout: 60_000,
    },
  ],
});
