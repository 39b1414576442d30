// Draws each plot of the page with uPlot from /api/plots/<name>; "no data" says why.
(function () {
  function noData(section, why) {
    const p = section.querySelector(".no-data");
    p.textContent = "no data: " + why;
    p.hidden = false;
  }
  async function draw(section) {
    const name = section.dataset.plot;
    let plot;
    try {
      const resp = await fetch("/api/plots/" + encodeURIComponent(name));
      plot = await resp.json();
    } catch (err) {
      noData(section, "the console did not answer");
      return;
    }
    if (plot.no_data) { noData(section, plot.no_data); return; }
    if (typeof uPlot === "undefined") { noData(section, "uPlot is not installed"); return; }
    const colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
    const series = [{}].concat(plot.labels.map(function (label, i) {
      return { label: label, stroke: colours[i % colours.length], spanGaps: false };
    }));
    new uPlot({ width: 520, height: 220, series: series, axes: [{}, { label: plot.unit }] },
      plot.data, section.querySelector(".chart"));
  }
  document.querySelectorAll("section.plot").forEach(draw);
})();
