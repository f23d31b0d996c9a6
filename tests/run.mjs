// `npm test`: system packages, the typecheck and the house style, then the Node kernel tests (vitest on
// Dawn + SwiftShader), then the browser tests (Playwright on headless chromium). Ends with one line,
// "N passed, M failed".
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';

const run = (cmd, args, env = {}) =>
  spawnSync(cmd, args, { stdio: 'inherit', env: { ...process.env, ...env } }).status ?? 1;

if (run('bash', ['tests/setup/system-deps.sh']) !== 0) process.exit(1);
mkdirSync('test-results', { recursive: true });
if (run('npx', ['tsc', '--noEmit', '-p', '.']) !== 0) {
  console.log('\ntypecheck failed\n0 passed, 1 failed');
  process.exit(1);
}

// the house style, configured once (biome.jsonc): formatting and lint, and no line over 120 characters
// that the formatter could not wrap (scripts/long-lines.mjs lists them)
if (run('npx', ['biome', 'ci', '--error-on-warnings', '.']) !== 0 || run('node', ['scripts/long-lines.mjs']) !== 0) {
  console.log('\nlint failed: run npm run format, then fix what biome and long-lines list\n0 passed, 1 failed');
  process.exit(1);
}

const unitStatus = run('npx', [
  'vitest',
  'run',
  '--reporter=default',
  '--reporter=json',
  '--outputFile.json=test-results/unit.json',
]);
const e2eStatus = run('npx', ['playwright', 'test'], { PLAYWRIGHT_JSON_OUTPUT_NAME: 'test-results/e2e.json' });

let passed = 0,
  failed = 0;
if (existsSync('test-results/unit.json')) {
  const u = JSON.parse(readFileSync('test-results/unit.json', 'utf8'));
  passed += u.numPassedTests;
  failed += u.numFailedTests + (u.numPendingTests ?? 0) + (u.numTodoTests ?? 0);
}
if (existsSync('test-results/e2e.json')) {
  const s = JSON.parse(readFileSync('test-results/e2e.json', 'utf8')).stats;
  passed += s.expected;
  failed += s.unexpected + s.flaky + s.skipped;
}
const ok = unitStatus === 0 && e2eStatus === 0 && failed === 0 && passed > 0;
if (!ok && failed === 0) failed = 1; // a runner died without reporting: never a silent pass
console.log(`\n${passed} passed, ${failed} failed`);
process.exit(ok ? 0 : 1);
