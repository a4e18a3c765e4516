// corpusmill's page: the live parts (jobs, logs, the editor, uploads). Everything the server
// sends is written with textContent, never as HTML.
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

async function api(method, url, body, headers = {}) {
  const init = { method, headers: { "X-CSRF-Token": csrf(), ...headers }, credentials: "same-origin" };
  if (body !== undefined) {
    init.body = body instanceof Blob || typeof body === "string" ? body : JSON.stringify(body);
    if (!(body instanceof Blob) && typeof body !== "string") init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(url, init);
  const text = await response.text();
  let data = text;
  try { data = JSON.parse(text); } catch (e) { /* plain text */ }
  return { ok: response.ok, status: response.status, data };
}

function cell(row, text, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  td.textContent = text == null ? "" : String(text);
  row.appendChild(td);
  return td;
}

function errorLines(data) {
  if (data && Array.isArray(data.detail)) {
    return data.detail.map((e) => `${(e.loc || []).slice(1).join(".")}: ${e.msg}`);
  }
  return [data && data.detail ? String(data.detail) : String(data)];
}

function progressText(job) {
  const progress = job.progress || {};
  const done = (progress.segments_done || []).map((name) => `${name} ✓`);
  const running = (progress.running || []).map((name) => `${name} …`);
  return [...done, ...running].join(", ");
}

async function refreshJobs() {
  const table = document.querySelector("#jobs tbody");
  const answer = await api("GET", "/jobs");
  if (!answer.ok) return;
  table.replaceChildren();
  if (answer.data.length === 0) {
    const row = document.createElement("tr");
    cell(row, "No jobs yet: submit a build below.").colSpan = 8;
    table.appendChild(row);
  }
  for (const job of answer.data.slice().reverse()) {
    const row = document.createElement("tr");
    row.dataset.job = job.id;
    const link = document.createElement("a");
    link.href = `/ui/jobs/${encodeURIComponent(job.id)}`;
    link.textContent = job.id;
    cell(row, "").appendChild(link);
    cell(row, job.kind);
    cell(row, job.state, `state state-${job.state}`);
    cell(row, progressText(job));
    cell(row, job.created_at);
    cell(row, job.started_at);
    cell(row, job.finished_at);
    const actions = cell(row, "");
    if (job.state === "queued" || job.state === "running") {
      const cancel = document.createElement("button");
      cancel.textContent = "Cancel";
      cancel.addEventListener("click", () => api("DELETE", `/jobs/${job.id}`).then(refreshJobs));
      actions.appendChild(cancel);
    } else {
      const again = document.createElement("button");
      again.textContent = "Run again";
      again.addEventListener("click", () => api("POST", `/jobs/${job.id}/rerun`).then(refreshJobs));
      actions.appendChild(again);
    }
    table.appendChild(row);
  }
}

function jobsPage() {
  const form = document.getElementById("submit-build");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const errors = document.getElementById("errors");
    errors.replaceChildren();
    const answer = await api("POST", "/jobs", { kind: "build", config_yaml: document.getElementById("editor").value });
    if (!answer.ok) {
      for (const line of errorLines(answer.data)) {
        const item = document.createElement("li");
        item.textContent = line;
        errors.appendChild(item);
      }
      return;
    }
    refreshJobs();
  });
  refreshJobs();
  setInterval(refreshJobs, 1000);
}

async function refreshJob(id) {
  const [job, log] = await Promise.all([api("GET", `/jobs/${id}`), api("GET", `/jobs/${id}/log`)]);
  if (job.ok) {
    const state = document.getElementById("job-state");
    state.textContent = job.data.state;
    state.className = `state state-${job.data.state}`;
    document.getElementById("job-started").textContent = job.data.started_at || "";
    document.getElementById("job-finished").textContent = job.data.finished_at || "";
    document.getElementById("job-error").textContent = job.data.error || "";
    const result = document.getElementById("job-result");
    if (job.data.result && job.data.result.release) {
      const link = document.createElement("a");
      link.href = `/ui/releases/${job.data.result.release}`;
      link.textContent = job.data.result.release;
      result.replaceChildren(link);
    } else if (job.data.result) {
      result.textContent = JSON.stringify(job.data.result);
    }
    const progress = document.getElementById("job-progress");
    progress.replaceChildren();
    const seen = job.data.progress || {};
    const rows = [...Object.entries(seen.records_out || {}), ...(seen.running || []).map((s) => [s, "running…"])];
    for (const [segment, count] of rows) {
      const row = document.createElement("tr");
      cell(row, segment);
      cell(row, count);
      progress.appendChild(row);
    }
  }
  if (log.ok) document.getElementById("log").textContent = log.data;
  return job.ok && !["queued", "running"].includes(job.data.state);
}

function jobPage(id) {
  const say = (answer) => {
    document.getElementById("action-error").textContent = answer.ok ? "" : errorLines(answer.data).join("; ");
    return answer;
  };
  document.getElementById("cancel").addEventListener("click", () => api("DELETE", `/jobs/${id}`).then(say).then(() => refreshJob(id)));
  document.getElementById("rerun").addEventListener("click", async () => {
    const answer = say(await api("POST", `/jobs/${id}/rerun`));
    if (answer.ok) window.location.href = `/ui/jobs/${answer.data.id}`;
  });
  const tick = async () => {
    if (!(await refreshJob(id))) setTimeout(tick, 1000);
  };
  tick();
}

function inputsPage() {
  document.getElementById("upload").addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = document.getElementById("upload-file").files[0];
    const status = document.getElementById("upload-status");
    if (!file) return;
    const replace = document.getElementById("upload-replace").checked ? "?replace=true" : "";
    status.textContent = `Uploading ${file.name}…`;
    const answer = await api("PUT", `/inputs/${encodeURIComponent(file.name)}${replace}`, file, {
      "Content-Type": "application/octet-stream",
    });
    if (answer.ok) {
      status.textContent = `Stored as inputs/${answer.data.name} (${answer.data.bytes} bytes, ${answer.data.format}).`;
      setTimeout(() => window.location.reload(), 500);
    } else {
      status.textContent = errorLines(answer.data).join("; ");
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const signOut = document.getElementById("sign-out");
  if (signOut) {
    signOut.addEventListener("click", async () => {
      await api("POST", "/session/end");
      window.location.href = "/signin";
    });
  }
  if (document.getElementById("submit-build")) jobsPage();
  const job = document.getElementById("job");
  if (job) jobPage(job.dataset.job);
  if (document.getElementById("upload")) inputsPage();
});
