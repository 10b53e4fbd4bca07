/*
 * The operator console's progress bars (config.console.progress_bar): building and updating
 * one from a job of the jobs feed (/admin/operations/jobs.json), and following a job on its
 * detail page while it is queued or running. Text goes in with textContent only.
 */
(function () {
  "use strict";

  var ACTIVE = ["QUEUED", "RUNNING"];
  var DEFAULT_INTERVAL = 3000;

  function updateBar(wrap, job) {
    var bar = wrap.querySelector(".railyard-progress");
    var fill = wrap.querySelector(".railyard-progress-bar");
    var text = wrap.querySelector(".railyard-progress-label");
    wrap.dataset.status = job.status;
    if (job.percent === null || job.percent === undefined) {
      bar.classList.add("railyard-progress-indeterminate");
      bar.removeAttribute("aria-valuenow");
      fill.style.width = "100%";
    } else {
      bar.classList.remove("railyard-progress-indeterminate");
      bar.setAttribute("aria-valuenow", String(job.percent));
      fill.style.width = job.percent + "%";
    }
    bar.setAttribute("aria-label", job.label);
    text.textContent = job.label;
  }

  function makeBar(job) {
    var wrap = document.createElement("span");
    wrap.className = "railyard-progress-wrap";
    var bar = document.createElement("span");
    bar.className = "railyard-progress";
    bar.setAttribute("role", "progressbar");
    bar.setAttribute("aria-valuemin", "0");
    bar.setAttribute("aria-valuemax", "100");
    var fill = document.createElement("span");
    fill.className = "railyard-progress-bar";
    bar.appendChild(fill);
    var text = document.createElement("span");
    text.className = "railyard-progress-label";
    wrap.appendChild(bar);
    wrap.appendChild(document.createTextNode(" "));
    wrap.appendChild(text);
    updateBar(wrap, job);
    return wrap;
  }

  function fetchJobs(url) {
    return fetch(url, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    }).then(function (response) {
      if (!response.ok) {
        throw new Error("jobs feed answered " + response.status);
      }
      return response.json();
    });
  }

  // Calls tick() every interval ms (not while the page is hidden); tick returns a promise,
  // and false from it stops the polling.
  function every(interval, tick) {
    function next() {
      window.setTimeout(run, interval);
    }
    function run() {
      if (document.hidden) {
        next();
        return;
      }
      Promise.resolve()
        .then(tick)
        .then(
          function (goOn) {
            if (goOn !== false) {
              next();
            }
          },
          function () {
            next();
          }
        );
    }
    next();
  }

  function followJob(wrap) {
    var interval = Number(wrap.dataset.interval) || DEFAULT_INTERVAL;
    every(interval, function () {
      return fetchJobs(wrap.dataset.pollUrl).then(function (body) {
        var job = body.jobs[0];
        if (!job) {
          return false;
        }
        updateBar(wrap, job);
        if (ACTIVE.indexOf(job.status) === -1) {
          // Ended: show the page as it is now (final stats, log, no cancel button).
          window.location.reload();
          return false;
        }
        return true;
      });
    });
  }

  window.RailyardConsole = {
    ACTIVE: ACTIVE,
    every: every,
    fetchJobs: fetchJobs,
    makeBar: makeBar,
    updateBar: updateBar,
  };

  document.addEventListener("DOMContentLoaded", function () {
    document
      .querySelectorAll(".railyard-progress-wrap[data-poll-url]")
      .forEach(followJob);
  });
})();
