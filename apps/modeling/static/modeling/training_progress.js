// Live progress of a training run on its admin page: polls the run's progress endpoint
// (same origin, the admin's session) every second until the run has finished.
(function () {
  "use strict";
  function start() {
    var box = document.getElementById("training-progress");
    if (!box) { return; }
    var url = box.getAttribute("data-url");
    var bar = document.getElementById("training-progress-bar");
    var status = document.getElementById("training-status");
    var percent = document.getElementById("training-percent");
    var stage = document.getElementById("training-stage");
    var wasFinished = status.textContent === "succeeded" || status.textContent === "failed";
    if (wasFinished) { return; }
    function show(data) {
      bar.value = data.percent;
      bar.textContent = Math.round(data.percent) + "%";
      percent.textContent = Math.round(data.percent);
      status.textContent = data.status;
      var text = data.stage || "";
      if (data.stage === "fit" && data.iterations) {
        text = (data.candidate || "") + " iteration " + data.iteration + "/" + data.iterations;
      }
      if (data.last_error) { text += " (" + data.last_error + ")"; }
      stage.textContent = text;
    }
    function poll() {
      fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (data) {
          if (!data) { return; }
          show(data);
          if (data.finished) {
            box.setAttribute("data-finished", "true");
            return;
          }
          window.setTimeout(poll, 1000);
        })
        .catch(function () { window.setTimeout(poll, 3000); });
    }
    window.setTimeout(poll, 500);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());
