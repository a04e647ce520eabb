// The built-in chat page at / in a real headless Chromium (Debian's), against the server at
// DSINFER_URL: send a message, see the reply stream in, and its TTFT and tokens/s.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

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
    await page.fill('#input', 'Hello from Chromium');
    await page.click('#send');
    await page.waitForFunction(() => {
      const s = document.querySelector('.assistant .stats');
      return s && /tokens\/s/.test(s.textContent);
    }, null, { timeout: 60000 });
    const stats = await page.textContent('.assistant .stats');
    assert.match(stats, /TTFT [0-9.]+ s/);
    const user = await page.textContent('.user');
    assert.equal(user, 'Hello from Chromium');
    const reply = await page.evaluate(() => {
      const a = document.querySelector('.assistant');
      return a.innerText;
    });
    assert.ok(reply.length > 0);
    // A second turn keeps the history.
    await page.fill('#input', 'And again');
    await page.click('#send');
    await page.waitForFunction(() => document.querySelectorAll('.assistant .stats').length === 2 &&
      /tokens\/s/.test(document.querySelectorAll('.assistant .stats')[1].textContent), null, { timeout: 60000 });
  } finally {
    await browser.close();
  }
});
