/*
 * The operations dashboard: three charts from the railyard-charts document the page carries,
 * and the running jobs table refreshed from the jobs feed. Needs Chart.js (window.Chart) and
 * railyard/console.js (window.RailyardConsole).
 */
(function () {
  "use strict";

  var COLORS = {
    blue: "#417690",
    green: "#3a8f5c",
    amber: "#d08a1a",
    red: "#ba2121",
    grey: "#8a8a8a",
    teal: "#2a9d8f",
    purple: "#7b5ea7",
    rose: "#c9566e",
  };

  function dataset(label, data, color, extra) {
    var set = {
      label: label,
      data: data,
      backgroundColor: color,
      borderColor: color,
    };
    return Object.assign(set, extra || {});
  }

  // Days are ISO dates in the data; the axis shows month and day.
  function dayAxis(labels, extra) {
    return Object.assign(
      {
        ticks: {
          maxRotation: 0,
          autoSkipPadding: 8,
          callback: function (value, index) {
            return labels[index].slice(5);
          },
        },
      },
      extra || {}
    );
  }

  function chart(id, type, labels, datasets, options) {
    var canvas = document.getElementById(id);
    if (!canvas) {
      return null;
    }
    options = options || {};
    options.scales = Object.assign({}, options.scales || {});
    options.scales.x = dayAxis(labels, options.scales.x);
    return new window.Chart(canvas, {
      type: type,
      data: { labels: labels, datasets: datasets },
      options: Object.assign(
        {
          animation: false,
          responsive: true,
          maintainAspectRatio: false,
          interaction: { mode: "index", intersect: false },
          plugins: { legend: { position: "bottom" } },
        },
        options
      ),
    });
  }

  function drawCharts(charts) {
    var days = charts.days;
    chart(
      "chart-files",
      "bar",
      days,
      [
        dataset("Received", charts.files.received, COLORS.blue),
        dataset("Applied", charts.files.applied, COLORS.green),
        dataset("Rejected", charts.files.rejected, COLORS.amber),
        dataset("Failed", charts.files.failed, COLORS.red),
      ],
      { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } }
    );
    var rows = charts.rows;
    chart(
      "chart-rows",
      "bar",
      days,
      [
        dataset("Created (files)", rows.feedCreated, COLORS.green, { stack: "files" }),
        dataset("Updated (files)", rows.feedUpdated, COLORS.blue, { stack: "files" }),
        dataset("Removed or sold (files)", rows.feedRemoved, COLORS.red, { stack: "files" }),
        dataset("Created (syncs)", rows.syncCreated, COLORS.teal, { stack: "syncs" }),
        dataset("Updated (syncs)", rows.syncUpdated, COLORS.purple, { stack: "syncs" }),
        dataset("Deleted (syncs)", rows.syncRemoved, COLORS.rose, { stack: "syncs" }),
      ],
      {
        scales: {
          x: { stacked: true },
          y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } },
        },
      }
    );
    var jobs = charts.jobs;
    chart(
      "chart-jobs",
      "bar",
      days,
      [
        dataset("Completed", jobs.completed, COLORS.green, { stack: "jobs", order: 2 }),
        dataset("Failed", jobs.failed, COLORS.red, { stack: "jobs", order: 2 }),
        dataset("Cancelled", jobs.cancelled, COLORS.grey, { stack: "jobs", order: 2 }),
        dataset("Average duration (s)", jobs.averageSeconds, COLORS.blue, {
          type: "line",
          yAxisID: "seconds",
          order: 1,
          spanGaps: true,
        }),
        dataset("Longest (s)", jobs.longestSeconds, COLORS.amber, {
          type: "line",
          yAxisID: "seconds",
          order: 1,
          spanGaps: true,
          borderDash: [4, 4],
        }),
      ],
      {
        scales: {
          x: { stacked: true },
          y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } },
          seconds: { position: "right", beginAtZero: true, grid: { drawOnChartArea: false } },
        },
      }
    );
  }

  function cell(row, content) {
    var td = document.createElement("td");
    if (content instanceof Node) {
      td.appendChild(content);
    } else {
      td.textContent = content;
    }
    row.appendChild(td);
    return td;
  }

  function link(href, text) {
    if (!href) {
      return document.createTextNode(text);
    }
    var a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    return a;
  }

  function showRunning(tbody, body) {
    var rows = body.jobs.map(function (job) {
      var row = document.createElement("tr");
      row.dataset.job = job.id;
      cell(row, link(job.url, job.id.slice(0, 8)));
      cell(row, job.kind);
      cell(row, link(job.ownerUrl, job.owner));
      cell(row, job.account);
      cell(row, String(job.attempts)).className = "railyard-number";
      cell(row, window.RailyardConsole.makeBar(job));
      return row;
    });
    if (!rows.length) {
      var none = document.createElement("tr");
      none.className = "railyard-none";
      cell(none, "No job is running.").colSpan = 6;
      rows.push(none);
    }
    tbody.replaceChildren.apply(tbody, rows);
    var queued = document.getElementById("railyard-queued");
    if (queued && typeof body.queued === "number") {
      queued.textContent = String(body.queued);
    }
  }

  function followRunning(tbody) {
    var console_ = window.RailyardConsole;
    var interval = Number(tbody.dataset.interval) || 3000;
    console_.every(interval, function () {
      return console_.fetchJobs(tbody.dataset.url).then(function (body) {
        showRunning(tbody, body);
        return true;
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var source = document.getElementById("railyard-charts");
    if (source && window.Chart) {
      drawCharts(JSON.parse(source.textContent));
    }
    var tbody = document.getElementById("railyard-running");
    if (tbody && window.RailyardConsole) {
      followRunning(tbody);
    }
  });
})();
