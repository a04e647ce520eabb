// The built-in chat page at / in a real headless Chromium (Debian's), against the server at
// DSINFER_URL: send a message, see the reply stream in, and its TTFT and tokens/s; then a second
// turn on the same history.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

// Waits until the n-th reply (1-based) has its stats line, and returns that reply's whole text,
// so a failed request shows its error message in the assertion instead of a timeout.
async function reply(page, n) {
  await page.waitForFunction(k => document.querySelectorAll('.assistant .stats').length >= k &&
    document.querySelectorAll('.assistant .stats')[k - 1].textContent.length > 0, n,
    { timeout: 60000 });
  return page.evaluate(k => document.querySelectorAll('.assistant')[k - 1].innerText, n);
}

test('the chat page streams a reply with its stats', async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage();
    // The page talks to the API without a key here: the server runs without one.
    await page.goto(process.env.DSINFER_URL + '/');
    // Short replies, so the second turn's history stays well inside the test server's context.
    await page.fill('#max-tokens', '12');
    await page.fill('#input', 'Hello from Chromium');
    await page.click('#send');
    const first = await reply(page, 1);
    assert.match(first, /TTFT [0-9.]+ s · [0-9]+ tokens · [0-9.]+ tokens\/s/);
    assert.equal(await page.textContent('.user'), 'Hello from Chromium');
    const tokens = Number(/([0-9]+) tokens ·/.exec(first)[1]);
    assert.ok(tokens >= 1 && tokens <= 12, first);
    // A second turn keeps the history.
    await page.fill('#input', 'And again');
    await page.click('#send');
    const second = await reply(page, 2);
    assert.match(second, /TTFT [0-9.]+ s · [0-9]+ tokens · [0-9.]+ tokens\/s/);
    assert.equal(await page.evaluate(() => document.querySelectorAll('.user').length), 2);
  } finally {
    await browser.close();
  }
});
