// aigw usage dashboard: draws the charts from the JSON the page carries (#usage-charts) with
// Chart.js (static/vendor, no CDN). Amounts arrive as exact strings; charts only plot them.
(function () {
  "use strict";

  function draw() {
    const source = document.getElementById("usage-charts");
    if (!source || typeof Chart === "undefined") { return; }
    const data = JSON.parse(source.textContent);
    const css = getComputedStyle(document.documentElement);
    const muted = css.getPropertyValue("--pico-muted-color").trim() || "#666";
    Chart.defaults.color = muted;
    Chart.defaults.font.family = css.getPropertyValue("--pico-font-family").trim() || "system-ui";
    Chart.defaults.animation = false;
    Chart.defaults.maintainAspectRatio = false;
    const palette = ["#0172ad", "#5fa8d3", "#9bd0f5", "#e07a1f", "#f2b880", "#c0392b", "#7a4fa3"];
    const legend = { position: "bottom", labels: { boxWidth: 12 } };
    const stackedBar = { x: { stacked: true, grid: { display: false } }, y: { stacked: true, beginAtZero: true } };

    new Chart(document.getElementById("chart-requests"), {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: [
          { label: "Succeeded", data: data.requests, backgroundColor: palette[0] },
          { label: "Failed", data: data.errors, backgroundColor: palette[5] },
        ],
      },
      options: { scales: stackedBar, plugins: { legend: legend } },
    });

    new Chart(document.getElementById("chart-tokens"), {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: Object.keys(data.tokens).map(function (name, i) {
          return { label: name, data: data.tokens[name], backgroundColor: palette[i % palette.length] };
        }),
      },
      options: { scales: stackedBar, plugins: { legend: legend } },
    });

    new Chart(document.getElementById("chart-spend"), {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: [
          { label: "Spend", data: data.spend.map(Number), backgroundColor: palette[3], yAxisID: "y" },
          { label: "Cumulative", data: data.spend_total.map(Number), type: "line", borderColor: palette[0],
            backgroundColor: palette[0], pointRadius: 0, yAxisID: "total" },
        ],
      },
      options: {
        scales: {
          x: { grid: { display: false } },
          y: { beginAtZero: true, position: "left", ticks: { callback: function (v) { return "$" + v; } } },
          total: { beginAtZero: true, position: "right", grid: { display: false },
                   ticks: { callback: function (v) { return "$" + v; } } },
        },
        plugins: { legend: legend },
      },
    });

    new Chart(document.getElementById("chart-latency"), {
      type: "line",
      data: {
        labels: data.labels,
        datasets: [
          { label: "p50", data: data.p50, borderColor: palette[0], backgroundColor: palette[0], spanGaps: true, pointRadius: 2 },
          { label: "p95", data: data.p95, borderColor: palette[3], backgroundColor: palette[3], spanGaps: true, pointRadius: 2 },
        ],
      },
      options: { scales: { x: { grid: { display: false } }, y: { beginAtZero: true } }, plugins: { legend: legend } },
    });
    document.documentElement.dataset.chartsReady = "1";
  }

  document.addEventListener("DOMContentLoaded", draw);
})();
