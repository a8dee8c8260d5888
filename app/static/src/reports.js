// Reports: draw each <canvas data-chart='{...}'> with Chart.js (served from our static files).
// The figures come from the page itself (a data attribute, so no inline script under our CSP);
// the same figures are in the table under each chart, which stays the source of truth.
(function () {
  "use strict";
  if (typeof window.Chart === "undefined") return; // tables still show everything

  function moneyFormat(currency) {
    var fmt;
    try {
      fmt = new Intl.NumberFormat(undefined, { style: "currency", currency: currency || "USD", maximumFractionDigits: 0 });
    } catch (e) {
      fmt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
    }
    // Values are integer cents; shown in currency units.
    return function (cents) { return fmt.format(cents / 100); };
  }

  function draw(canvas) {
    var spec;
    try {
      spec = JSON.parse(canvas.getAttribute("data-chart"));
    } catch (e) {
      return;
    }
    var money = spec.unit === "money" ? moneyFormat(spec.currency) : null;
    var format = function (v) {
      if (v === null || v === undefined) return "–";
      if (money) return money(v);
      if (spec.unit === "minutes") return v + " min";
      return String(v);
    };
    var hasPct = spec.datasets.some(function (d) { return d.axis === "pct"; });
    var valueAxis = spec.horizontal ? "x" : "y";
    var datasets = spec.datasets.map(function (d) {
      var line = d.type === "line";
      return {
        type: line ? "line" : "bar",
        label: d.label,
        data: d.data,
        backgroundColor: d.color,
        borderColor: d.color,
        borderWidth: line ? 2 : 0,
        pointRadius: line ? 3 : 0,
        spanGaps: true,
        // Bars share one stack only on stacked charts; otherwise they stand side by side.
        stack: spec.stacked ? (line ? "line-" + d.label : "bars") : undefined,
        yAxisID: spec.horizontal ? undefined : (d.axis === "pct" ? "pct" : "y"),
        order: line ? 0 : 1,
        pct: d.axis === "pct"
      };
    });
    var scales = {};
    scales[valueAxis] = {
      stacked: !!spec.stacked,
      beginAtZero: true,
      ticks: { callback: function (v) { return format(v); }, precision: 0 }
    };
    scales[valueAxis === "y" ? "x" : "y"] = { stacked: !!spec.stacked, grid: { display: false } };
    if (hasPct && !spec.horizontal) {
      scales.pct = {
        position: "right",
        min: 0,
        max: 100,
        grid: { drawOnChartArea: false },
        ticks: { callback: function (v) { return v + " %"; } }
      };
    }
    new window.Chart(canvas, {
      type: "bar",
      data: { labels: spec.labels, datasets: datasets },
      options: {
        indexAxis: spec.horizontal ? "y" : "x",
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", intersect: false },
        plugins: {
          legend: { position: "bottom", labels: { boxWidth: 12, boxHeight: 12 } },
          tooltip: {
            callbacks: {
              label: function (ctx) {
                var v = ctx.raw;
                var shown = ctx.dataset.pct ? (v === null ? "–" : v + " %") : format(v);
                return ctx.dataset.label + ": " + shown;
              }
            }
          }
        },
        scales: scales
      }
    });
    canvas.setAttribute("data-drawn", "1");
  }

  function init() {
    var canvases = document.querySelectorAll("canvas[data-chart]");
    for (var i = 0; i < canvases.length; i++) draw(canvases[i]);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
