// Swagger UI in a real browser (Debian's headless Chromium driven by playwright-core).
//
// 1. /docs/ lists every operation of the checked-in spec: each (method, path, operationId)
//    has its `.opblock`, and there are no others.
// 2. Authorize with a bearer token, expand createUserWebhook, "Try it out", fill the body,
//    Execute: the live response's status cell says 201 (asserted on the DOM, not on pixels).
// Screenshots go to OUT_DIR: swagger-ui-overview.png (the top of the page, as a newcomer sees it;
// the README's docs/swagger-ui.png is a copy), swagger-ui.png (the live 201 response) and
// swagger-ui-full.png (the whole page after it); swagger-ui-failure.{png,html} when it fails.
//
// Environment: BASE_URL, TOKEN, SPEC_JSON (the checked-in openapi.yaml as JSON), OUT_DIR,
// CHROMIUM (default /usr/bin/chromium).
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { chromium } from "playwright-core";

const { BASE_URL, TOKEN, SPEC_JSON, OUT_DIR } = process.env;
assert.ok(BASE_URL && TOKEN && SPEC_JSON && OUT_DIR, "BASE_URL, TOKEN, SPEC_JSON and OUT_DIR are required");
mkdirSync(OUT_DIR, { recursive: true });

const spec = JSON.parse(readFileSync(SPEC_JSON, "utf8"));
const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
const expected = [];
for (const [path, item] of Object.entries(spec.paths)) {
  for (const method of METHODS) {
    if (item[method]) expected.push({ method, path, operationId: item[method].operationId });
  }
}

// The page documents the very file in the repository.
const served = await (await fetch(`${BASE_URL}/api-docs/openapi.json`)).json();
if (!isDeepStrictEqual(served, spec)) {
  console.error("swagger ui: FAILED: /api-docs/openapi.json differs from the checked-in openapi.yaml (stale server build?)");
  process.exit(1);
}
console.log(`swagger ui: ok: /api-docs/openapi.json is the checked-in spec (${expected.length} operations)`);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
let failed = false;
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
const pageErrors = [];
page.on("pageerror", (e) => pageErrors.push(String(e)));
try {
  await page.goto(`${BASE_URL}/docs/`, { waitUntil: "networkidle" });
  await page.locator(".opblock").first().waitFor({ timeout: 30_000 });
  await page.locator(".info .title").first().waitFor();

  // 1. Every operation, and nothing else.
  const shown = await page.$$eval(".opblock", (blocks) =>
    blocks.map((b) => ({
      id: b.id,
      method: (b.querySelector(".opblock-summary-method")?.textContent ?? "").trim().toLowerCase(),
      path: b.querySelector(".opblock-summary-path")?.getAttribute("data-path") ?? "",
    })),
  );
  const missing = expected.filter(
    (op) =>
      !shown.some((s) => s.method === op.method && s.path === op.path && s.id.endsWith(`-${op.operationId}`)),
  );
  assert.deepEqual(missing, [], "operations of the spec that the page does not list");
  assert.equal(shown.length, expected.length, `the page lists ${shown.length} operations, the spec ${expected.length}`);
  const title = (await page.locator(".info .title").first().textContent()) ?? "";
  assert.ok(title.includes(spec.info.title), `page title ${JSON.stringify(title)}`);
  console.log(`swagger ui: ok: the page lists all ${expected.length} operations of the spec`);
  const tags = await page.$$eval(".opblock-tag", (sections) => sections.map((t) => t.getAttribute("data-tag")));
  for (const tag of ["User Webhooks", "Facilities webhooks"]) {
    assert.ok(tags.includes(tag), `the page has no section for the tag ${tag}: ${JSON.stringify(tags)}`);
  }
  console.log(`swagger ui: ok: both webhook tags have their section (${tags.join(", ")})`);
  await page.screenshot({ path: join(OUT_DIR, "swagger-ui-overview.png") });

  // 2. Authorize with the bearer token.
  await page.locator(".auth-wrapper .btn.authorize").click();
  const modal = page.locator(".dialog-ux .modal-ux");
  await modal.waitFor();
  await modal.locator(".auth-container input").first().fill(TOKEN);
  await modal.locator(".auth-btn-wrapper .btn.authorize").click();
  await modal.locator(".auth-btn-wrapper .btn-done").click();
  await modal.waitFor({ state: "detached" });
  assert.ok(await page.locator(".auth-wrapper .btn.authorize.locked").count(), "the Authorize button shows no lock");
  console.log("swagger ui: ok: authorized with a bearer token");

  // 3. Each resource's create: expand, Try it out, fill, Execute.
  const tryItOut = async (operationId, request, shown) => {
    const block = page.locator(`.opblock[id$="-${operationId}"]`);
    await block.locator(".opblock-summary").first().click();
    const tryOut = block.locator(".try-out__btn");
    await tryOut.waitFor();
    if (((await tryOut.textContent()) ?? "").trim() === "Try it out") await tryOut.click();
    await block.locator("textarea.body-param__text").fill(JSON.stringify(request, null, 2));
    await block.locator("button.execute").click();
    const status = block.locator(".live-responses-table .response .response-col_status").first();
    await status.waitFor({ timeout: 30_000 });
    const code = ((await status.textContent()) ?? "").trim();
    assert.match(code, /^201\b/, `${operationId}: live response status cell: ${JSON.stringify(code)}`);
    const responseBody = (await block.locator(".live-responses-table .response-col_description pre").first().textContent()) ?? "";
    assert.match(responseBody, shown, `${operationId}: the live response body shows the created webhook`);
    console.log(`swagger ui: ok: Try it out on ${operationId} answered ${code}`);
    return block;
  };
  // The facility one follows every facility its user can access (run.sh grants NUR-1, NUR-2).
  await tryItOut(
    "createFacilityWebhook",
    { url: "https://example.com/shifts-from-swagger-ui", events: ["shift.created"] },
    /NUR-1/,
  );
  const block = await tryItOut(
    "createUserWebhook",
    { url: "https://example.com/from-swagger-ui", events: ["facility.creation.accepted"] },
    /from-swagger-ui/,
  );
  await block.locator(".live-responses-table").first().scrollIntoViewIfNeeded();
  await page.screenshot({ path: join(OUT_DIR, "swagger-ui.png") });
  await page.screenshot({ path: join(OUT_DIR, "swagger-ui-full.png"), fullPage: true });
  assert.deepEqual(pageErrors, [], "JavaScript errors on the page");
} catch (e) {
  failed = true;
  console.error(`swagger ui: FAILED: ${e.message}`);
  await page.screenshot({ path: join(OUT_DIR, "swagger-ui-failure.png"), fullPage: true }).catch(() => {});
  writeFileSync(join(OUT_DIR, "swagger-ui-failure.html"), await page.content().catch(() => ""));
} finally {
  await browser.close();
}
if (failed) process.exit(1);
console.log("swagger ui: PASS");
