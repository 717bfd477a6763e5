// Charts of the admin's usage dashboard (templates/admin/usage_dashboard.html), drawn with the vendored Chart.js.
(function () {
  "use strict";
  const source = document.getElementById("usage-data");
  if (!source || typeof Chart === "undefined") {
    return;
  }
  const data = JSON.parse(source.textContent);
  const series = data.series;
  const style = getComputedStyle(document.documentElement);
  const textColor = style.getPropertyValue("--body-fg").trim() || "#333";
  const gridColor = style.getPropertyValue("--hairline-color").trim() || "#e0e0e0";
  const colors = { requests: "#417690", errors: "#ba2121", prompt: "#79aec8", completion: "#e6a23c", p50: "#417690", p95: "#ba2121", cache: "#5b8c3a" };

  Chart.defaults.color = textColor;
  Chart.defaults.borderColor = gridColor;
  Chart.defaults.animation = false; // draw at once: the page is read, not watched
  Chart.defaults.maintainAspectRatio = false;

  function chart(id, config) {
    const canvas = document.getElementById(id);
    return canvas ? new Chart(canvas, config) : null;
  }

  chart("chart-requests", {
    type: "bar",
    data: {
      labels: series.labels,
      datasets: [
        { label: "Requests", data: series.requests, backgroundColor: colors.requests },
        { label: "Errors", data: series.errors, backgroundColor: colors.errors },
        { label: "Cache hits", data: series.cache_hits, backgroundColor: colors.cache },
      ],
    },
    options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
  });

  chart("chart-tokens", {
    type: "bar",
    data: {
      labels: series.labels,
      datasets: [
        { label: "Prompt tokens", data: series.prompt_tokens, backgroundColor: colors.prompt, stack: "tokens" },
        { label: "Completion tokens", data: series.completion_tokens, backgroundColor: colors.completion, stack: "tokens" },
      ],
    },
    options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } },
  });

  chart("chart-latency", {
    type: "line",
    data: {
      labels: series.labels,
      datasets: [
        { label: "p50", data: series.latency_p50_ms, borderColor: colors.p50, backgroundColor: colors.p50, spanGaps: true },
        { label: "p95", data: series.latency_p95_ms, borderColor: colors.p95, backgroundColor: colors.p95, spanGaps: true },
      ],
    },
    options: { scales: { y: { beginAtZero: true } } },
  });

  chart("chart-projects", {
    type: "bar",
    data: {
      labels: data.projects.map((row) => row.project_name),
      datasets: [
        { label: "Requests", data: data.projects.map((row) => row.requests), backgroundColor: colors.requests },
        { label: "Errors", data: data.projects.map((row) => row.errors), backgroundColor: colors.errors },
        { label: "Cache hits", data: data.projects.map((row) => row.cache_hits), backgroundColor: colors.cache },
      ],
    },
    options: { indexAxis: "y", scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } },
  });

  document.getElementById("usage-dashboard").dataset.chartsReady = "true";
})();
