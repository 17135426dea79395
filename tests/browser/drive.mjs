// Drives JupyterLab in headless Chromium for tests/test_browser.py.
//
// usage: node drive.mjs CONFIG_JSON
// CONFIG_JSON: {"url", "token", "notebook", "host", "key", "prompt", "story", "profile", "shots",
//               "extra": [{"panel", "record", "actions": [{"fill", "upload", "click", "when", "then",
//                          "wait", "expect", "read", "from", "shot"}]}], "stop": {"model", "uses", "prompt"}}
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

  const model = settings.locator(".widget-dropdown", { hasText: "model" }).locator("select");
  await settings.getByRole("button", { name: "Refresh" }).click();
  await settings.getByText(/openai: \d+ model\(s\)/).waitFor();
  // The model in use stays selected, shown as the server spells it (not the first one listed).
  seen.model_after_refresh = await model.evaluate((select) => select.selectedOptions[0].textContent);
  step("refreshed");
  await model.selectOption("test-model");
  await settings.locator(".widget-checkbox", { hasText: "temperature" }).locator("input").check();
  await settings.getByRole("button", { name: "Use" }).click();
  await settings.getByText("using openai").waitFor();
  seen.settings_status = await settings.locator(".widget-html").last().innerText();
  step("settings used");

  const question = chat.locator(".lollms-question textarea");
  const box = chat.locator(".lollms-chat-box");
  await question.fill(cfg.prompt);
  await question.press("Control+Enter"); // no click: the keyboard sends
  const answer = box.getByText(`Echo: ${cfg.prompt}`);
  await answer.first().waitFor({ timeout: 30000 });
  seen.answer_in_panel = await answer.first().innerText();
  await page.waitForFunction(() => document.querySelector(".lollms-question textarea").value === "");
  seen.sent_by_keyboard = true;
  step("answer streamed, sent with Ctrl+Enter");

  // The record: the exchange as plain Markdown in the cell's output, outside any widget. The box
  // shows it inside the panel and hides it there: on the page it shows once.
  const where = (text) => page.evaluate((text) => {
    const visible = (el) => el.getClientRects().length > 0;
    const records = [...document.querySelectorAll(".jp-OutputArea-output.jp-RenderedMarkdown")]
      .filter((el) => !el.closest(".lollms-panel") && el.textContent.includes(text));
    const shown = [...document.querySelectorAll(".jp-RenderedMarkdown")]
      .filter((el) => visible(el) && el.textContent.includes(text));
    return { records: records.length, hidden: records.filter((el) => !visible(el)).length,
             shown: shown.length, in_box: shown.filter((el) => el.closest(".lollms-chat-box")).length };
  }, text);
  await page.waitForFunction((text) => [...document.querySelectorAll(".jp-RenderedMarkdown")]
    .some((el) => el.closest(".jp-OutputArea-output") && !el.closest(".lollms-panel")
      && el.textContent.includes(text)), `Echo: ${cfg.prompt}`);
  seen.record_in_cell = await where(`Echo: ${cfg.prompt}`);
  seen.record_in_cell = seen.record_in_cell.records === 1 && seen.record_in_cell;

  // Two long answers: the box is capped, and the newest text is in view, not the old answers.
  const inView = (text) => box.evaluate((el, text) => {
    const line = [...el.querySelectorAll("p")].filter((p) => p.textContent.includes(text)).pop();
    if (!line) return null;
    const outer = el.getBoundingClientRect(), inner = line.getBoundingClientRect();
    return inner.top >= outer.top - 1 && inner.bottom <= outer.bottom + 1;
  }, text);
  seen.stories = [];
  for (const [n, keys] of [[1, "Shift+Enter"], [2, "Control+Enter"]]) {
    await question.fill(`${cfg.story} ${n}`);
    await question.press(keys);
    await box.getByText(`The end of story ${n}.`).waitFor({ timeout: 30000 });
    await page.waitForTimeout(400); // the last update laid out
    seen.stories.push(await box.evaluate((el, n) => ({
      height: el.clientHeight, scrolled: el.scrollHeight - el.clientHeight,
      from_bottom: el.scrollHeight - el.scrollTop - el.clientHeight }), n));
  }
  seen.newest_in_view = await inView("The end of story 2.");
  seen.oldest_in_view = await inView(`Echo: ${cfg.prompt}`);
  seen.story_shown = await where("The end of story 2.");
  step("two long stories");
  await page.waitForTimeout(300);
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
      for (const [selector, file] of action.upload || []) { // a file chosen in a FileUpload's dialog
        const [chooser] = await Promise.all([page.waitForEvent("filechooser"), panel.locator(selector).click()]);
        await chooser.setFiles(file);
      }
      if (action.click) await panel.getByRole("button", { name: action.click }).click();
      if (action.then) { // a second button once it is enabled, after a text shows (Stop while the work runs)
        if (action.when) await panel.getByText(new RegExp(action.when)).first().waitFor({ timeout: 60000 });
        const button = panel.getByRole("button", { name: action.then });
        await page.waitForFunction((el) => !el.disabled, await button.elementHandle(), { timeout: 60000 });
        if (action.wait) await page.waitForTimeout(action.wait);
        await button.click();
      }
      await panel.getByText(action.expect).first().waitFor({ timeout: 60000 });
      if (action.read) seen[action.read] = await panel.locator(action.from || ".widget-html").last().innerText();
      if (action.shot) {
        const file = path.join(cfg.shots, `${action.shot}.png`);
        await panel.screenshot({ path: file });
        seen.shots.push(file);
      }
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
    await settings.getByText(`model ${cfg.stop.uses || cfg.stop.model}`).first().waitFor();
    await chat.scrollIntoViewIfNeeded();
    await chat.locator("textarea").fill(cfg.stop.prompt);
    await chat.getByRole("button", { name: "Send" }).click();
    const live = box.getByText("▍").first();
    await live.waitFor({ timeout: 30000 });
    await page.waitForTimeout(600);
    seen.partial = await live.innerText();
    const position = () => box.evaluate((el) => ({
      top: el.scrollTop, from_bottom: el.scrollHeight - el.scrollTop - el.clientHeight, height: el.scrollHeight,
      chars: el.textContent.length }));
    seen.streaming = await position(); // followed: at the bottom while it streams
    await box.hover();
    await page.mouse.wheel(0, -600); // the user scrolls up to read
    await page.waitForTimeout(300);
    const up = await position();
    await page.waitForTimeout(1000); // the answer goes on below
    seen.scrolled_up = { before: up, after: await position() };
    await chat.getByRole("button", { name: "Stop" }).click();
    await box.getByText("stopped: the answer was cut short").waitFor({ timeout: 10000 });
    seen.stopped = await box.getByText("stopped: the answer was cut short").first().innerText();
    seen.chat_status_after_stop = await chat.locator(".widget-html").last().innerText();
    await box.evaluate((el) => { el.scrollTop = el.scrollHeight; }); // back down to the stopped answer
    await page.waitForTimeout(300);
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
