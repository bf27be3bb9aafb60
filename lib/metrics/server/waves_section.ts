/**
 * The "Waves" section of the HTML report: per image how many nodes have it, pull it and wait for
 * it, and per registry its bound of nodes pulling at once. Hidden when the server does not
 * coordinate waves. The page's script fills it from `summary.waves` at every refresh.
 *
 * @module
 */

/** The section's markup, hidden until the script finds `summary.waves`. */
export const WAVES_HTML = `<section id="waves" hidden>
<h2>Waves <span id="waves-settings" class="muted"></span></h2>
<table id="waves-registries"><thead><tr><th>registry</th><th>bound (nodes pulling at once)</th><th>nodes pulling</th><th>429 answers</th></tr></thead><tbody></tbody></table>
<p></p>
<table id="waves-images"><thead><tr><th>image</th><th>nodes that have it</th><th>pulling it</th><th>waiting for it</th></tr></thead><tbody></tbody></table>
</section>`;

/** The script that fills the section; `renderWaves(summary)` is called by the page's `render()`. */
export const WAVES_SCRIPT = String.raw`
function renderWaves(s) {
  const w = s.waves;
  $("waves").hidden = !w;
  if (!w) return;
  $("waves-settings").textContent = "(first wave " + w.firstWave + ", fanout " + w.fanout +
    ", at most " + (w.maxNodesPulling || "any number of") + " nodes pulling; " + w.nodesPulling +
    " of " + w.nodes + " pulling now)";
  fillTable("waves-registries", w.registries, [[r => r.registry], [r => r.bound === null ? "unbounded" : r.bound, "num"],
    [r => r.nodesPulling, "num"], [r => r.rateLimited, "num"]]);
  fillTable("waves-images", w.images, [[r => r.image], [r => r.have, "num"], [r => r.pulling, "num"], [r => r.waiting, "num"]]);
}
`;
