// The `test` every browser test uses: Playwright's, plus a watch on the Content-Security-Policy.
// Any violation in the page or in its workers (Chromium reports them on the console of the
// context that was refused: "Refused to connect to …", and the page fires a
// securitypolicyviolation event) fails the test that caused it. A test that provokes
// violations on purpose takes them with `csp.take()` and checks them itself.
import { expect, test as base } from '@playwright/test';

export interface CspWatch {
  /** The violations seen so far (one line each), cleared: they no longer fail the test. */
  take(): string[];
}

const VIOLATION = /Content Security Policy|securitypolicyviolation/i;

export const test = base.extend<{ csp: CspWatch }>({
  csp: [
    async ({ page }, use) => {
      const seen: string[] = [];
      const record = (where: string) => (m: { type(): string; text(): string }) => {
        if (VIOLATION.test(m.text())) seen.push(`${where}: ${m.text()}`);
      };
      page.on('console', record('page'));
      // the event, with the directive and the address it refused, onto the console above: in the page
      // from its first script on, in each worker as soon as it starts (Chromium's own console lines
      // about a worker's violations do not reach Playwright)
      // (the function runs in the browser, on its own: it can use nothing from this file)
      const report = () =>
        globalThis.addEventListener('securitypolicyviolation', (event) => {
          const e = event as SecurityPolicyViolationEvent;
          const where = `${e.sourceFile}:${e.lineNumber}`;
          console.error(`securitypolicyviolation: ${e.effectiveDirective} refused ${e.blockedURI} (${where})`);
        });
      page.on('worker', (w) => {
        w.on('console', record(`worker ${w.url().split('/').pop()}`));
        w.evaluate(report).catch(() => {}); // a worker that ended at once has nothing to report
      });
      await page.addInitScript(report);
      await use({ take: () => [...new Set(seen.splice(0))] });
      expect([...new Set(seen)], 'Content-Security-Policy violations').toEqual([]);
    },
    { auto: true },
  ],
});

export { expect };
