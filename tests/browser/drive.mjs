// Drives JupyterLab in headless Chromium for tests/test_browser.py.
//
// usage: node drive.mjs CONFIG_JSON
// CONFIG_JSON: {"url", "token", "notebook", "host", "key", "prompt", "profile", "shots"}
// Prints one JSON line with what it saw; exits non-zero on failure (after a screenshot).
import { chromium } from "playwright-core";
import path from "node:path";

const cfg = JSON.parse(process.argv[2]);
const seen = { steps: [], shots: [] };
const step = (name) => { seen.steps.push(name); console.error(`step: ${name}`); };

const context = await chromium.launchPersistentContext(cfg.profile, {
  executablePath: cfg.chromium || "/usr/bin/chromium",
  headless: true, // playwright adds --headless
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
  viewport: { width: 1280, height: 1500 },
});
const page = context.pages()[0] || (await context.newPage());
page.setDefaultTimeout(45000);
// A stuck page must end the run with what was seen, never hang the test.
setTimeout(() => {
  console.log(JSON.stringify({ ok: false, error: `gave up after ${cfg.budget || 240} s`, ...seen }));
  process.exit(2);
}, (cfg.budget || 240) * 1000).unref();

async function shot(name) {
  const file = path.join(cfg.shots, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  seen.shots.push(file);
}

try {
  step("open");
  await page.goto(`${cfg.url}/lab/tree/${cfg.notebook}?token=${cfg.token}&reset`);
  await page.waitForFunction((name) => {
    const widget = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    return widget && widget.context && widget.context.path === name;
  }, cfg.notebook);
  // The kernel must be ready before running: cells sent while it starts may be lost.
  await page.waitForFunction(() => {
    const widget = window.jupyterapp.shell.currentWidget;
    const kernel = widget && widget.sessionContext && widget.sessionContext.session
      && widget.sessionContext.session.kernel;
    return kernel && kernel.status === "idle";
  }, null, { timeout: 90000 });
  step("run all");
  await page.evaluate(() => window.jupyterapp.commands.execute("notebook:run-all-cells"));

  const notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)");
  const settings = notebook.locator(".lollms-settings");
  const chat = notebook.locator(".lollms-chat");
  await settings.waitFor({ state: "visible", timeout: 90000 });
  await chat.waitFor({ state: "visible", timeout: 90000 });
  step("panels shown");

  await settings.locator(".widget-dropdown", { hasText: "binding" }).locator("select").selectOption("openai");
  const host = settings.locator(".widget-text", { hasText: "host" }).locator("input");
  await host.fill(cfg.host);
  await host.press("Tab");
  const key = settings.locator("input[type=password]");
  await key.fill(cfg.key);
  await key.press("Enter"); // continuous_update=False: the value goes to the kernel now
  await page.waitForFunction(() => document.querySelector(".lollms-settings input[type=password]").value === "");
  seen.key_field_cleared = true;
  step("key typed and taken by the kernel");

  await settings.getByRole("button", { name: "Refresh" }).click();
  const model = settings.locator(".widget-dropdown", { hasText: "model" }).locator("select");
  await page.waitForFunction(
    () => [...document.querySelectorAll(".lollms-settings select option")].some((o) => o.textContent === "test-model"));
  await model.selectOption("test-model");
  await settings.locator(".widget-checkbox", { hasText: "temperature" }).locator("input").check();
  await settings.getByRole("button", { name: "Use" }).click();
  await settings.getByText("using openai").waitFor();
  seen.settings_status = await settings.locator(".widget-html").last().innerText();
  step("settings used");

  await chat.locator("textarea").fill(cfg.prompt);
  await chat.getByRole("button", { name: "Send" }).click();
  const answer = chat.getByText(`Echo: ${cfg.prompt}`);
  await answer.first().waitFor({ timeout: 30000 });
  seen.answer_in_panel = await answer.first().innerText();
  step("answer streamed");

  // The record: the same exchange as plain Markdown in the cell's output, outside any widget.
  await page.waitForFunction((text) => [...document.querySelectorAll(".jp-RenderedMarkdown")]
    .some((el) => el.closest(".jp-OutputArea-output") && !el.closest(".lollms-panel")
      && el.textContent.includes(text)), `Echo: ${cfg.prompt}`);
  seen.record_in_cell = true;
  await page.waitForTimeout(500);
  await shot("chat-and-settings");
  await chat.scrollIntoViewIfNeeded();
  await chat.screenshot({ path: path.join(cfg.shots, "chat-panel.png") });
  seen.shots.push(path.join(cfg.shots, "chat-panel.png"));

  // The other panels: fill fields, click buttons, wait for what each click must show.
  for (const extra of cfg.extra || []) {
    const panel = notebook.locator(`.lollms-${extra.panel}`);
    await panel.scrollIntoViewIfNeeded();
    for (const action of extra.actions) {
      for (const [kind, label, value] of action.fill || []) {
        const field = panel.locator(`.widget-${kind}`, { hasText: label }).locator("input, textarea").first();
        await field.fill(value);
        await field.press("Tab");
      }
      await panel.getByRole("button", { name: action.click }).click();
      await panel.getByText(action.expect).first().waitFor({ timeout: 60000 });
    }
    if (extra.record) { // the record outside the widget: an image or Markdown in the cell's output
      await page.waitForFunction(([sel, text]) => [...document.querySelectorAll(sel)]
        .some((el) => el.closest(".jp-OutputArea-output") && !el.closest(".lollms-panel")
          && el.textContent.includes(text)), [extra.record.selector, extra.record.text || ""]);
    }
    await page.waitForTimeout(500);
    await panel.scrollIntoViewIfNeeded();
    const file = path.join(cfg.shots, `${extra.panel}-panel.png`);
    await panel.screenshot({ path: file });
    seen.shots.push(file);
    seen[`${extra.panel}_done`] = true;
    step(`${extra.panel} panel`);
  }

  // Stop: a slow model streams; the partial answer shows with its cursor, Stop ends it, the text stays.
  if (cfg.stop) {
    await settings.scrollIntoViewIfNeeded();
    await model.selectOption(cfg.stop.model);
    await settings.getByRole("button", { name: "Use" }).click();
    await settings.getByText(`model ${cfg.stop.model}`).first().waitFor();
    await chat.scrollIntoViewIfNeeded();
    await chat.locator("textarea").fill(cfg.stop.prompt);
    await chat.getByRole("button", { name: "Send" }).click();
    const live = chat.getByText("▍").first();
    await live.waitFor({ timeout: 30000 });
    await page.waitForTimeout(600);
    seen.partial = await live.innerText();
    await chat.getByRole("button", { name: "Stop" }).click();
    await chat.getByText("stopped; the text so far is kept").waitFor({ timeout: 10000 });
    seen.stopped = await chat.getByText("stopped: the answer was cut short").first().innerText();
    await chat.screenshot({ path: path.join(cfg.shots, "chat-stopped.png") });
    seen.shots.push(path.join(cfg.shots, "chat-stopped.png"));
    step("stopped");
  }

  await page.evaluate(() => window.jupyterapp.commands.execute("docmanager:save"));
  await page.waitForTimeout(1500);
  step("saved");
  console.log(JSON.stringify({ ok: true, ...seen }));
} catch (err) {
  await shot("failure").catch(() => {});
  console.log(JSON.stringify({ ok: false, error: String(err), ...seen }));
  process.exitCode = 1;
} finally {
  await context.close();
}
