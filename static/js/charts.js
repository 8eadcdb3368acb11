// Charts for the report, each drawn from the table beneath it: the table is the data.
//
// A table opts in with data-chart ("bar", "stacked-bar" or "heatmap"). Its series are the
// columns whose <th> has data-series (and data-colour, a colour of earshot.css); its labels
// are the row headers. A cell's figure is its data-value when it has one, else its text: a
// count, or a duration as Python writes it ("1 day, 2:03:04.500000"). "—" is no figure.
// data-chart-unit="minutes" shows durations in minutes. No inline script: this file only.
(function () {
  "use strict";

  if (typeof window.Chart === "undefined") {
    return; // Chart.js did not load: the tables still say everything.
  }
  const Chart = window.Chart;
  const style = getComputedStyle(document.documentElement);
  const colour = (name) => style.getPropertyValue("--" + (name || "accent")).trim() || "#1f5fbf";
  const DURATION = /^(?:(-?\d+) days?, )?(\d+):(\d{2}):(\d{2}(?:\.\d+)?)$/;

  function figure(cell) {
    if (!cell) {
      return null;
    }
    if (cell.dataset.value !== undefined) {
      return parseFloat(cell.dataset.value);
    }
    const text = cell.textContent.trim().replace(/,(?=\d{3}\b)/g, "");
    const duration = DURATION.exec(text);
    if (duration) {
      const [, days, hours, minutes, seconds] = duration;
      return (
        parseInt(days || "0", 10) * 86400 +
        parseInt(hours, 10) * 3600 +
        parseInt(minutes, 10) * 60 +
        parseFloat(seconds)
      );
    }
    const number = Number(text);
    return text === "" || Number.isNaN(number) ? null : number;
  }

  function canvasBefore(table, tall) {
    const box = document.createElement("div");
    box.className = tall ? "chart tall" : "chart";
    const canvas = document.createElement("canvas");
    // The table beneath says the same to a screen reader, and more precisely.
    canvas.setAttribute("aria-hidden", "true");
    box.appendChild(canvas);
    const anchor = table.closest(".table-scroll") || table;
    anchor.parentNode.insertBefore(box, anchor);
    return canvas;
  }

  function titled(table) {
    const text = table.dataset.chartTitle;
    return text ? { display: true, text: text } : { display: false };
  }

  function seriesChart(table, stacked) {
    const headers = Array.from(table.tHead.rows[0].cells);
    const rows = Array.from(table.tBodies[0].rows).filter(
      (row) => row.cells.length === headers.length
    );
    if (!rows.length) {
      return;
    }
    const inMinutes = table.dataset.chartUnit === "minutes";
    const datasets = headers
      .map((th, index) => ({ th: th, index: index }))
      .filter((column) => column.th.dataset.series)
      .map((column) => ({
        label: column.th.dataset.series,
        backgroundColor: colour(column.th.dataset.colour),
        data: rows.map((row) => {
          const value = figure(row.cells[column.index]);
          return value === null ? null : inMinutes ? value / 60 : value;
        }),
      }));
    new Chart(canvasBefore(table, false), {
      type: "bar",
      data: { labels: rows.map((row) => row.cells[0].textContent.trim()), datasets: datasets },
      options: {
        maintainAspectRatio: false,
        animation: false,
        plugins: { title: titled(table) },
        scales: {
          x: { stacked: stacked },
          y: {
            stacked: stacked,
            beginAtZero: true,
            title: { display: inMinutes, text: "minutes" },
          },
        },
      },
    });
  }

  function heatmapChart(table) {
    const cells = Array.from(table.querySelectorAll("td[data-arrivals]"));
    const busiest = Math.max(1, ...cells.map((td) => parseInt(td.dataset.arrivals, 10)));
    const medians = cells
      .map((td) => parseFloat(td.dataset.medianSeconds))
      .filter((value) => !Number.isNaN(value));
    const slowest = Math.max(1, ...medians);
    const weekdays = Array.from(table.tBodies[0].rows).map((row) =>
      row.cells[0].textContent.trim()
    );
    const point = (td) => ({
      x: parseInt(td.dataset.hour, 10),
      y: parseInt(td.dataset.weekday, 10) - 1,
      r: 2 + 14 * Math.sqrt(parseInt(td.dataset.arrivals, 10) / busiest),
      median: td.dataset.medianSeconds ? parseFloat(td.dataset.medianSeconds) : null,
      arrivals: parseInt(td.dataset.arrivals, 10),
    });
    const busy = cells.filter((td) => td.dataset.arrivals !== "0");
    const covered = busy.filter((td) => !td.classList.contains("uncovered")).map(point);
    const uncovered = busy.filter((td) => td.classList.contains("uncovered")).map(point);
    const shade = (context) => {
      const median = context.raw && context.raw.median;
      // Pale when answered fast, dark when slow, grey when none was answered.
      if (median === null || median === undefined) {
        return colour("muted");
      }
      const alpha = 0.2 + 0.8 * (median / slowest);
      return "rgba(31, 95, 191, " + alpha.toFixed(2) + ")";
    };
    new Chart(canvasBefore(table, true), {
      type: "bubble",
      data: {
        datasets: [
          { label: "Arrivals (colour: median first response)", data: covered, backgroundColor: shade },
          {
            label: "Uncovered: arrivals, no reply sent",
            data: uncovered,
            backgroundColor: colour("neg-bg"),
            borderColor: colour("neg"),
            borderWidth: 2,
          },
        ],
      },
      options: {
        maintainAspectRatio: false,
        animation: false,
        plugins: {
          title: titled(table),
          tooltip: {
            callbacks: {
              label: (context) => {
                const raw = context.raw;
                const median =
                  raw.median === null ? "none answered" : Math.round(raw.median / 60) + " min median";
                return weekdays[raw.y] + " " + raw.x + ":00 · " + raw.arrivals + " arrivals · " + median;
              },
            },
          },
        },
        scales: {
          x: {
            min: -0.5,
            max: 23.5,
            afterBuildTicks: (axis) => {
              axis.ticks = Array.from({ length: 24 }, (_, hour) => ({ value: hour }));
            },
            title: { display: true, text: "hour of the day" },
          },
          y: {
            min: -0.5,
            max: 6.5,
            reverse: true,
            afterBuildTicks: (axis) => {
              axis.ticks = weekdays.map((_, index) => ({ value: index }));
            },
            ticks: { callback: (value) => weekdays[value] || "" },
          },
        },
      },
    });
  }

  function draw() {
    document.querySelectorAll("table[data-chart]").forEach((table) => {
      const kind = table.dataset.chart;
      if (kind === "heatmap") {
        heatmapChart(table);
      } else {
        seriesChart(table, kind === "stacked-bar");
      }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
