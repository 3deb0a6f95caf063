// The homeboy dashboard: reads the daemon's routes (docs/openapi.json) and keeps the jobs table live through
// `GET /jobs/events?follow=true`. Its only mutation is `POST /jobs/:id/cancel`. Every text from the daemon
// is put into the page as text (never as markup).
'use strict';

const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);
const JOB_EVENT_KINDS = ['status', 'stdout', 'stderr', 'progress', 'result', 'error'];
const MAX_JOBS = 200;

const state = {
  jobs: new Map(),
  selectedJob: null,
  jobStream: null,
  selectedRun: null,
  renderQueued: false,
  runsTimer: null,
};

// ---- small helpers -------------------------------------------------------------------------------------

function $(selector) {
  return document.querySelector(selector);
}

/** An element with text children (strings) or element children. */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'className') node.className = value;
    else if (name.startsWith('data-')) node.setAttribute(name, value);
    else if (name === 'onclick') node.addEventListener('click', value);
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function statusBadge(status) {
  return el('span', { className: `status status-${status}` }, status);
}

function shortId(id) {
  return id && id.length > 14 ? `${id.slice(0, 8)}…${id.slice(-4)}` : id;
}

function time(ms) {
  if (!ms) return '';
  return new Date(ms).toLocaleString();
}

function notice(text) {
  const node = $('#notice');
  node.textContent = text || '';
  node.hidden = !text;
}

/** GET or POST a contract route: the envelope's data, or an Error carrying the envelope's error. */
async function api(path, options) {
  const response = await fetch(path, { headers: { Accept: 'application/json' }, ...options });
  const body = await response.json();
  if (!body.success) {
    const error = new Error(`${body.error.message} (${body.error.code})`);
    error.code = body.error.code;
    error.status = response.status;
    throw error;
  }
  return body.data;
}

function replaceRows(tbody, rows) {
  tbody.replaceChildren(...rows);
}

// ---- the daemon ----------------------------------------------------------------------------------------

async function loadDaemon() {
  try {
    const [health, runtime] = await Promise.all([api('/health'), api('/runtime/jobs')]);
    $('#daemon').textContent =
      `v${health.version} (${health.build_id}) · pid ${health.pid} · up since ${health.started_at}` +
      ` · ${runtime.claim_waiters} claim long poll(s) waiting`;
  } catch (error) {
    $('#daemon').textContent = `daemon unreachable: ${error.message}`;
  }
}

// ---- jobs ----------------------------------------------------------------------------------------------

function upsertJob(job) {
  const known = state.jobs.get(job.id);
  if (known && known.updated_at_ms > job.updated_at_ms) return;
  state.jobs.set(job.id, job);
  if (known && !TERMINAL.has(known.status) && TERMINAL.has(job.status)) scheduleRuns();
  if (state.selectedJob === job.id) showJobFields(job);
  scheduleJobsRender();
}

function scheduleJobsRender() {
  if (state.renderQueued) return;
  state.renderQueued = true;
  requestAnimationFrame(() => {
    state.renderQueued = false;
    renderJobs();
  });
}

function renderJobs() {
  const jobs = [...state.jobs.values()]
    .sort((a, b) => b.created_at_ms - a.created_at_ms || (a.id < b.id ? 1 : -1))
    .slice(0, MAX_JOBS);
  const rows = jobs.map((job) => {
    const cancellable = !TERMINAL.has(job.status);
    const cancel = cancellable
      ? el('button', { className: 'cancel', type: 'button', 'data-cancel': job.id, onclick: (e) => {
        e.stopPropagation();
        cancelJob(job.id, e.currentTarget);
      } }, 'Cancel')
      : null;
    return el('tr', {
      className: `clickable${state.selectedJob === job.id ? ' selected' : ''}`,
      'data-job-id': job.id,
      'data-status': job.status,
      onclick: () => selectJob(job.id),
    },
    el('td', {}, el('code', { title: job.id }, shortId(job.id))),
    el('td', {}, job.operation),
    el('td', { className: 'status-cell' }, statusBadge(job.status)),
    el('td', {}, job.executor),
    el('td', {}, `${job.attempt}/${job.max_attempts}`),
    el('td', {}, time(job.updated_at_ms)),
    el('td', {}, cancel));
  });
  replaceRows($('#jobs tbody'), rows);
  $('#jobs-empty').hidden = rows.length > 0;
}

async function loadJobs() {
  try {
    const page = await api('/jobs?limit=100');
    page.jobs.forEach(upsertJob);
    renderJobs();
  } catch (error) {
    notice(`Listing jobs failed: ${error.message}`);
  }
}

function setLive(live) {
  document.body.dataset.live = live;
  const badge = $('#live');
  badge.textContent = live === 'live' ? 'live' : live;
  badge.className = `badge ${live === 'live' ? 'live' : 'down'}`;
}

/** Every job's changes: `ready` (then list, missing nothing), then `job` per change. */
function followJobs() {
  const source = new EventSource('/jobs/events?follow=true');
  source.addEventListener('ready', () => {
    setLive('live');
    loadJobs();
  });
  source.addEventListener('job', (event) => upsertJob(JSON.parse(event.data)));
  source.addEventListener('error', () => setLive('reconnecting'));
}

async function cancelJob(id, button) {
  button.disabled = true;
  try {
    const answer = await api(`/jobs/${encodeURIComponent(id)}/cancel`, { method: 'POST' });
    upsertJob(answer.job);
    notice('');
  } catch (error) {
    notice(`Cancelling ${id} failed: ${error.message}`);
    button.disabled = false;
  }
}

function showJobFields(job) {
  $('#job-id').textContent = job.id;
  const badge = $('#job-status');
  badge.textContent = job.status;
  badge.className = `badge status-${job.status}`;
  const fields = [
    ['operation', job.operation], ['executor', job.executor], ['attempt', `${job.attempt}/${job.max_attempts}`],
    ['created', time(job.created_at_ms)], ['started', time(job.started_at_ms)],
    ['finished', time(job.finished_at_ms)], ['exit code', job.exit_code],
    ['runner', job.target_runner_id || job.claimed_by_runner_id], ['stale reason', job.stale_reason],
    ['events', `${job.event_count} (${job.events_dropped} dropped)`],
  ].filter(([, value]) => value !== undefined && value !== null && value !== '');
  $('#job-fields').replaceChildren(...fields.flatMap(([name, value]) => [el('dt', {}, name), el('dd', {}, value)]));
}

async function selectJob(id) {
  state.selectedJob = id;
  renderJobs();
  if (state.jobStream) state.jobStream.close();
  $('#job-detail').hidden = false;
  $('#job-output').textContent = '';
  $('#job-events').replaceChildren();
  const known = state.jobs.get(id);
  if (known) showJobFields(known);
  try {
    const detail = await api(`/jobs/${encodeURIComponent(id)}`);
    upsertJob(detail.job);
    showJobFields(detail.job);
    $('#job-request').textContent = JSON.stringify(detail.request, null, 2);
  } catch (error) {
    notice(`Reading job ${id} failed: ${error.message}`);
    return;
  }
  // The job's events: the whole log, then live ones until the job ends.
  const stream = new EventSource(`/jobs/${encodeURIComponent(id)}/events?follow=true`);
  state.jobStream = stream;
  for (const kind of JOB_EVENT_KINDS) {
    stream.addEventListener(kind, (event) => {
      if (state.jobStream !== stream) return;
      showJobEvent(JSON.parse(event.data));
    });
  }
  stream.addEventListener('end', () => stream.close());
  stream.addEventListener('stream_error', (event) => {
    stream.close();
    const envelope = JSON.parse(event.data);
    notice(`The event stream of ${id} ended: ${envelope.error.message}`);
  });
}

function showJobEvent(event) {
  if (event.kind === 'stdout' || event.kind === 'stderr') {
    const output = $('#job-output');
    const line = event.message === undefined ? '' : event.message;
    output.append(event.kind === 'stderr' ? `[stderr] ${line}\n` : `${line}\n`);
    output.scrollTop = output.scrollHeight;
  }
  const summary = event.message !== undefined ? event.message : (event.data !== undefined ? JSON.stringify(event.data) : '');
  $('#job-events').append(el('li', { 'data-kind': event.kind, 'data-sequence': event.sequence },
    el('code', {}, `#${event.sequence} ${event.kind}`), ' ', summary));
}

// ---- runs, findings, artifacts -------------------------------------------------------------------------

function scheduleRuns() {
  clearTimeout(state.runsTimer);
  state.runsTimer = setTimeout(loadRuns, 300);
}

function findingsCount(run) {
  const findings = run.metadata && run.metadata.findings;
  if (findings && typeof findings.total === 'number') return findings.total;
  return '';
}

async function loadRuns() {
  try {
    const page = await api('/runs?limit=50');
    const rows = page.runs.map((run) => el('tr', {
      className: `clickable${state.selectedRun === run.id ? ' selected' : ''}`,
      'data-run-id': run.id,
      onclick: () => selectRun(run.id),
    },
    el('td', {}, el('code', { title: run.id }, shortId(run.id))),
    el('td', {}, run.kind),
    el('td', {}, run.component_id),
    el('td', {}, statusBadge(run.status), run.status_note ? ` ${run.status_note}` : ''),
    el('td', {}, findingsCount(run)),
    el('td', {}, run.started_at)));
    replaceRows($('#runs tbody'), rows);
    $('#runs-empty').hidden = rows.length > 0;
  } catch (error) {
    notice(`Listing runs failed: ${error.message}`);
  }
}

async function selectRun(id) {
  state.selectedRun = id;
  for (const row of document.querySelectorAll('#runs tbody tr')) {
    row.classList.toggle('selected', row.dataset.runId === id);
  }
  $('#run-detail').hidden = false;
  $('#run-id').textContent = id;
  try {
    const encoded = encodeURIComponent(id);
    const [answer, findings, artifacts] = await Promise.all([
      api(`/runs/${encoded}`), api(`/runs/${encoded}/findings?limit=1000`), api(`/runs/${encoded}/artifacts`),
    ]);
    const badge = $('#run-status');
    badge.textContent = answer.run.status;
    badge.className = `badge status-${answer.run.status}`;
    $('#run-command').textContent = answer.run.command;
    $('#findings-count').textContent = `(${findings.findings.length}${findings.next_cursor !== null ? '+' : ''})`;
    $('#findings').replaceChildren(...findings.findings.map((finding) => el('li', {
      'data-fingerprint': finding.fingerprint,
    },
    el('span', { className: `severity severity-${finding.severity}` }, finding.severity),
    el('code', {}, finding.rule), ' ',
    finding.file ? el('code', {}, `${finding.file}${finding.line ? `:${finding.line}` : ''}`) : null,
    ' ', finding.message)));
    $('#artifacts').replaceChildren(...artifacts.artifacts.map((artifact) => el('li', {},
      artifact.content_available && artifact.content_url
        ? el('a', { href: artifact.content_url, 'data-artifact-id': artifact.id }, artifact.name)
        : el('span', {}, artifact.name),
      ` ${artifact.mime}, ${artifact.size_bytes} bytes (${artifact.retrieval.mode})`,
      artifact.note ? ` — ${artifact.note}` : '')));
  } catch (error) {
    notice(`Reading run ${id} failed: ${error.message}`);
  }
}

// ---- components, rigs, stacks, services, previews ------------------------------------------------------

async function loadComponents() {
  try {
    const [components, rigs, stacks] = await Promise.all([api('/components'), api('/rigs'), api('/stacks')]);
    replaceRows($('#components tbody'), components.components.map((item) => {
      if (item.error) {
        return el('tr', { 'data-component-id': item.id }, el('td', {}, item.id), el('td', { colspan: 5 }, item.error.message));
      }
      const status = item.status;
      const condition = status ? (status.clean ? 'clean' : `${status.dirty} dirty, ${status.untracked} untracked`) : item.status_error.message;
      return el('tr', { 'data-component-id': item.id },
        el('td', {}, item.id), el('td', {}, el('code', {}, item.path)), el('td', {}, item.tools.join(', ')),
        el('td', {}, status ? (status.branch || '(detached)') : ''),
        el('td', {}, status && status.head ? el('code', {}, status.head.slice(0, 10)) : ''),
        el('td', { className: status && status.clean ? 'status-clean' : '' }, condition));
    }));
    replaceRows($('#rigs tbody'), rigs.rigs.map((item) => item.error
      ? el('tr', {}, el('td', {}, item.id), el('td', { colspan: 2 }, item.error.message))
      : el('tr', {}, el('td', {}, item.id), el('td', {}, item.components.join(', ')), el('td', {}, item.check_steps))));
    replaceRows($('#stacks tbody'), stacks.stacks.map((item) => item.error
      ? el('tr', {}, el('td', {}, item.id), el('td', { colspan: 3 }, item.error.message))
      : el('tr', {}, el('td', {}, item.id), el('td', {}, item.component), el('td', {}, `${item.base} → ${item.target}`),
        el('td', {}, item.entries))));
  } catch (error) {
    notice(`Listing components failed: ${error.message}`);
  }
}

async function loadTunnel() {
  try {
    const [services, previews] = await Promise.all([api('/tunnel/services'), api('/tunnel/previews')]);
    replaceRows($('#services tbody'), services.services.map((item) => item.error
      ? el('tr', {}, el('td', {}, item.id), el('td', { colspan: 4 }, item.error.message))
      : el('tr', { 'data-service-id': item.service_id },
        el('td', {}, item.service_id), el('td', {}, statusBadge(item.state)),
        el('td', {}, item.local_url ? el('a', { href: item.local_url }, item.local_url) : ''),
        el('td', {}, item.public_url ? el('a', { href: item.public_url }, item.public_url) : ''),
        el('td', {}, item.ready === undefined ? '' : (item.ready ? 'ready' : `waiting: ${item.pending || ''}`)))));
    replaceRows($('#previews tbody'), previews.routes.map((route) => el('tr', { 'data-session-id': route.session_id },
      el('td', {}, el('code', {}, route.session_id)), el('td', {}, route.public_host), el('td', {}, statusBadge(route.state)),
      el('td', {}, route.transport), el('td', {}, route.expires_at || ''))));
  } catch (error) {
    if (error.code === 'not_found.route') {
      // homeboy-broker does not read managed services: the sections say so instead of failing.
      for (const id of ['#services', '#previews']) {
        replaceRows($(`${id} tbody`), [el('tr', {}, el('td', { colspan: 5 }, 'not served by this daemon'))]);
      }
      return;
    }
    notice(`Reading managed services failed: ${error.message}`);
  }
}

// ---- start ---------------------------------------------------------------------------------------------

function start() {
  followJobs();
  loadDaemon();
  loadRuns();
  loadComponents();
  loadTunnel();
  setInterval(loadDaemon, 5000);
  setInterval(loadTunnel, 15000);
  document.body.dataset.ready = 'true';
}

start();
