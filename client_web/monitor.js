// The operators' monitor (docs/operations.md): polls GET /admin/state once a second with the admin token and
// offers the admin actions (end a match, kick a player, drain). Plots are drawn by uPlot.
import uPlot from "uplot";

const POLL_MS = 1000;
const TOKEN_KEY = "arena.adminToken";
const $ = (selector) => document.querySelector(selector);

let token = sessionStorage.getItem(TOKEN_KEY) ?? "";
let timer = null;

function setStatus(text, { error = false } = {}) {
  const status = $("#status");
  status.textContent = text;
  status.classList.toggle("error", error);
}

async function api(method, path) {
  const response = await fetch(path, { method, headers: { Authorization: `Bearer ${token}` } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error ?? `${method} ${path}: HTTP ${response.status}`);
  return body;
}

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

function actionButton(label, title, onClick, { danger = false } = {}) {
  const button = document.createElement("button");
  button.textContent = label;
  button.title = title;
  if (danger) button.className = "danger";
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await onClick();
      await refresh();
    } catch (error) {
      setStatus(String(error.message ?? error), { error: true });
    }
  });
  return button;
}

function renderSummary(server) {
  const sessions = Object.entries(server.sessions).map(([state, count]) => `${state} ${count}`).join(", ");
  const queues = Object.entries(server.queues).map(([mode, count]) => `${mode} ${count}`).join(", ");
  const items = [
    ["status", server.status],
    ["uptime", `${Math.round(server.uptime_seconds)} s`],
    ["TCP connections", server.tcp_connections],
    ["sessions", sessions],
    ["queues", queues || "none"],
    ["tick lateness p50 / p99", `${server.tick.lateness_ms_p50} / ${server.tick.lateness_ms_p99} ms`],
    ["tick duration p99", `${server.tick.duration_ms_p99} ms`],
  ];
  $("#summary").replaceChildren(
    ...items.map(([label, value]) => {
      const div = document.createElement("div");
      div.dataset.item = label;
      div.append(label);
      const strong = document.createElement("b");
      strong.textContent = value;
      div.append(strong);
      return div;
    }),
  );
}

function renderMatches(matches) {
  const rows = matches.map((match) => {
    const row = document.createElement("tr");
    row.dataset.match = match.id;
    row.append(cell(match.id), cell(match.mode), cell(match.state), cell(`${match.time_left} s`));
    row.append(cell(`${match.tick_cost_ms} ms`));
    const seats = document.createElement("td");
    const list = document.createElement("ul");
    for (const seat of match.seats) {
      const item = document.createElement("li");
      item.dataset.player = seat.subject ?? `bot-${seat.id}`;
      const name = document.createElement("span");
      name.textContent = `${seat.name} (${seat.kills}/${seat.deaths})`;
      const status = document.createElement("span");
      status.className = `status-${seat.status}`;
      status.textContent = seat.status + (seat.ping_ms !== null ? `, ${seat.ping_ms} ms` : "");
      item.append(name, status);
      if (seat.subject && seat.status === "playing") {
        item.append(
          actionButton("Kick", `close ${seat.subject}'s connection (4003)`, () =>
            api("POST", `/admin/players/${encodeURIComponent(seat.subject)}/kick`),
          ),
        );
      }
      list.append(item);
    }
    seats.append(list);
    row.append(seats);
    const actions = document.createElement("td");
    if (match.state !== "over") {
      actions.append(
        actionButton("End match", "stop it now; players are told it closed", () =>
          api("POST", `/admin/matches/${encodeURIComponent(match.id)}/end`),
          { danger: true },
        ),
      );
    }
    row.append(actions);
    return row;
  });
  $("#matches tbody").replaceChildren(...rows);
}

function renderQueue(queue) {
  const rows = queue.map((entry) => {
    const row = document.createElement("tr");
    row.append(cell(entry.name ?? entry.subject), cell(entry.mode), cell(`${entry.waiting_seconds} s`));
    const actions = document.createElement("td");
    actions.append(
      actionButton("Kick", "close this player's connection (4003)", () =>
        api("POST", `/admin/players/${encodeURIComponent(entry.subject)}/kick`),
      ),
    );
    row.append(actions);
    return row;
  });
  $("#queue tbody").replaceChildren(...rows);
}

function plotOptions(title, series, unit) {
  return {
    title,
    width: 520,
    height: 200,
    scales: { x: { time: false } },
    axes: [
      { label: "server uptime (s)", stroke: "#a9b2c6", grid: { stroke: "#2a3146" } },
      { label: unit, stroke: "#a9b2c6", grid: { stroke: "#2a3146" } },
    ],
    series: [{ label: "uptime (s)" }, ...series],
  };
}

const PLOTS = [
  {
    selector: "#lateness-plot",
    unit: "ms",
    series: [
      { label: "p50 (ms)", stroke: "#6fd08c", spanGaps: false, value: (p) => p.lateness_ms_p50 },
      { label: "p99 (ms)", stroke: "#f3a25f", spanGaps: false, value: (p) => p.lateness_ms_p99 },
    ],
  },
  {
    selector: "#load-plot",
    unit: "count",
    series: [
      { label: "connections", stroke: "#7fb2ff", value: (p) => p.connections },
      { label: "queued", stroke: "#e38adf", value: (p) => p.queued },
    ],
  },
  {
    selector: "#cpu-plot",
    unit: "share of a core",
    series: [
      { label: "server", stroke: "#f3a25f", value: (p) => p.cpu },
      { label: "ticks", stroke: "#6fd08c", value: (p) => p.ticks },
    ],
  },
];
const plots = new Map();

function renderPlots(history) {
  const t = history.map((point) => point.t);
  for (const plot of PLOTS) {
    const data = [t, ...plot.series.map((series) => history.map(series.value))];
    const drawn = plots.get(plot.selector);
    if (drawn) {
      drawn.setData(data);
    } else {
      const series = plot.series.map(({ value, ...style }) => style);
      plots.set(plot.selector, new uPlot(plotOptions("", series, plot.unit), data, $(plot.selector)));
    }
  }
}

async function refresh() {
  try {
    const state = await api("GET", "/admin/state");
    document.body.dataset.state = state.server.status === "draining" ? "draining" : "live";
    renderSummary(state.server);
    renderMatches(state.matches);
    renderQueue(state.queue);
    renderPlots(state.history);
    $("#drain").disabled = state.server.status === "draining";
    setStatus(`Live: updated ${new Date().toLocaleTimeString()}`);
  } catch (error) {
    document.body.dataset.state = "error";
    setStatus(`${error.message ?? error}`, { error: true });
  }
}

function start() {
  clearInterval(timer);
  refresh();
  timer = setInterval(refresh, POLL_MS);
}

$("#sign-in").addEventListener("submit", (event) => {
  event.preventDefault();
  token = $("#token").value.trim();
  sessionStorage.setItem(TOKEN_KEY, token);
  start();
});

$("#drain").addEventListener("click", async () => {
  if (!window.confirm("Drain the server? It stops taking players, closes every connection (1001) and exits.")) return;
  try {
    await api("POST", "/admin/drain");
    setStatus("Draining: the server closes every connection and exits.");
  } catch (error) {
    setStatus(String(error.message ?? error), { error: true });
  }
});

if (token) start();
