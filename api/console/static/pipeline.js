// "Run now": the form generated from the pipeline's declared parameters starts a run at the commit shown, through
// POST /v1/runs (the API checks types, choices and the role again), then opens the new run's page.
import { api, base, enableScripted, errorText } from "./console.js";

const form = document.getElementById("run-now");
form?.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const out = document.getElementById("run-now-message");
  const params = {};
  for (const [k, v] of new FormData(form).entries()) if (v !== "") params[k] = String(v);
  out.textContent = "starting…";
  const res = await api("/v1/runs", {
    method: "POST",
    body: { pipeline: form.dataset.pipeline, ref: form.dataset.sha, params },
  });
  if (!res.ok) { out.textContent = await errorText(res); return; }
  const run = await res.json();
  location.href = `${base}/console/runs/${encodeURIComponent(run.id)}`;
});
enableScripted(form ?? undefined);
