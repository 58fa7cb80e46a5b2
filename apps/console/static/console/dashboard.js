// The dashboard's running jobs: fetch the tenant's jobs every few seconds and redraw the
// list (progress bars). No inline script: loaded from this file (Content-Security-Policy).
(function () {
  "use strict";
  const POLL_MS = 3000;

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function render(list, jobs) {
    list.replaceChildren();
    if (!jobs.length) {
      list.append(el("li", { class: "console-job console-job--none" }, "No job is running."));
      return;
    }
    for (const job of jobs) {
      const item = el("li", { class: "console-job", "data-job": job.kind + "-" + job.id });
      const label = el("span", { class: "console-job-label" });
      label.append(job.url ? el("a", { href: job.url }, job.label) : job.label);
      label.append(" ", el("span", { class: "console-job-status" }, "(" + job.status + ")"));
      item.append(label);
      const bar = el("progress", { "aria-label": job.label + " progress" });
      if (job.percent !== null && job.percent !== undefined) {
        bar.max = 100;
        bar.value = job.percent;
        item.append(bar, " ", el("span", { class: "console-job-percent" }, job.percent + "%"));
      } else {
        item.append(bar);
      }
      item.append(el("span", { class: "console-job-detail" }, job.detail || ""));
      list.append(item);
    }
  }

  function start() {
    const section = document.getElementById("console-jobs");
    const list = document.getElementById("console-jobs-list");
    if (!section || !list) return;
    const url = section.dataset.url;
    async function poll() {
      try {
        const response = await fetch(url, { credentials: "same-origin",
                                             headers: { Accept: "application/json" } });
        if (response.ok) {
          const body = await response.json();
          render(list, body.jobs);
          section.dataset.polled = String(Number(section.dataset.polled || 0) + 1);
        }
      } catch (error) {
        // Offline for a moment: the next poll tries again.
      }
      window.setTimeout(poll, POLL_MS);
    }
    poll();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
