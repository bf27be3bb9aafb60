import assert from "node:assert/strict";
import { renderHtmlReport } from "./html_report.ts";
import { MetricsStore } from "./store.ts";
import { WaveCoordinator } from "../../waves/coordinator.ts";
import { WAVES_SCRIPT } from "./waves_section.ts";

function picture() {
  const waves = new WaveCoordinator({ fanout: 2 });
  waves.admit("a", "registry.example/app:1");
  waves.admit("b", "registry.example/app:1");
  return waves.snapshot();
}

Deno.test("the report embeds the waves picture and has its tables", () => {
  const page = renderHtmlReport(new MetricsStore().summary({ grid: true }), { waves: picture() });
  const data = JSON.parse(
    page.match(/<script type="application\/json" id="data">(.*?)<\/script>/s)![1],
  );
  assert.deepEqual(data.waves.images, [
    {
      image: "registry.example/app:1",
      registry: "registry.example",
      have: 0,
      pulling: 1,
      waiting: 1,
    },
  ]);
  assert.match(page, /<table id="waves-images">/);
  assert.match(page, /<table id="waves-registries">/);
  assert.match(page, /renderWaves\(s\);/);
});

Deno.test("renderWaves fills the tables, and hides the section without waves", () => {
  const elements: Record<string, { hidden?: boolean; textContent?: string }> = {
    waves: {},
    "waves-settings": {},
  };
  const filled: Record<string, string[][]> = {};
  const fillTable = (id: string, rows: unknown[], columns: [(r: unknown) => unknown][]) =>
    filled[id] = rows.map((row) => columns.map(([get]) => String(get(row))));
  const renderWaves = new Function("$", "fillTable", `${WAVES_SCRIPT}\nreturn renderWaves;`)(
    (id: string) => elements[id],
    fillTable,
  );
  renderWaves({ waves: picture() });
  assert.equal(elements.waves.hidden, false);
  assert.match(elements["waves-settings"].textContent!, /first wave 1, fanout 2/);
  assert.deepEqual(filled["waves-images"], [["registry.example/app:1", "0", "1", "1"]]);
  assert.deepEqual(filled["waves-registries"], [["registry.example", "unbounded", "1", "0"]]);
  renderWaves({});
  assert.equal(elements.waves.hidden, true);
});
