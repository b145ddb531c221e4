// tilewatch tile page. No build step, no other origin, never markup from data: every name that came from a
// producer (model, segment, region, feature) is written with textContent or as an attribute value.
"use strict";

const VIRIDIS = ["#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962",
  "#addc30", "#fde725"];
// ColorBrewer PuOr, colour-blind safe: purple = lower, light grey = no change, orange = higher.
const DIVERGING = ["#542788", "#8073ac", "#b2abd2", "#d8daeb", "#f7f7f7", "#fee0b6", "#fdb863",
  "#e08214", "#b35806"];
// The dashboards' status colours (Grafana's green, orange, red), always with their text.
const STATUS = { 0: ["OK", "#73BF69"], 1: ["WARN", "#FF9830"], 2: ["CRIT", "#F2495C"] };
const GREY = "#c8c8c8";
const ALL = "__all__";
const Z_LIMIT = 3;

const state = {
  meta: null, model: null, statistic: "health", norm: "raw",
  rowPage: 0, colPage: 0, grid: null, selected: null, timelinePages: [0, 0],
};
const tileData = new WeakMap();

function $(id) { return document.getElementById(id); }

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  if (cls === "row-label" || cls === "col-label") node.title = String(text);
  return node;
}

function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

async function getJSON(path, params) {
  const query = new URLSearchParams(params || {}).toString();
  const response = await fetch(path + (query ? "?" + query : ""), { credentials: "same-origin" });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function statInfo() {
  return state.meta.statistics.find((s) => s.key === state.statistic);
}

function fmt(x, unit) {
  if (x === null || x === undefined) return "none";
  if (unit === "percentunit") return (100 * x).toFixed(1) + "%";
  if (unit === "s") return x.toPrecision(3) + " s";
  if (Math.abs(x) >= 1000 || (Math.abs(x) < 0.001 && x !== 0)) return x.toExponential(2);
  return x.toFixed(3);
}

function ramp(colours, t) {
  const u = Math.min(1, Math.max(0, t)) * (colours.length - 1);
  return colours[Math.round(u)];
}

function scaleSpan(stat) {
  return state.norm === "z" ? Z_LIMIT : (stat.high - stat.low) / 2;
}

// The colour of a tile: status colours for the health view; the statistic's fixed Viridis scale
// (reversed when lower is worse, as on the dashboards) for raw values; the diverging palette
// centred on "no change" for z and change.
function colour(tile) {
  if (!tile || tile.grey) return GREY;
  const stat = statInfo();
  if (stat.kind === "status") return STATUS[tile.status] ? STATUS[tile.status][1] : GREY;
  if (state.norm === "raw") {
    let t = (tile.value - stat.low) / (stat.high - stat.low);
    if (stat.reverse) t = 1 - t;
    return ramp(VIRIDIS, t);
  }
  const span = scaleSpan(stat);
  return ramp(DIVERGING, 0.5 + tile.norm / (2 * span));
}

function keyText(key) {
  const dims = state.meta.dimensions;
  return key.map((v, i) => dims[i] + " = " + v).join(", ");
}

function describe(tile) {
  const stat = statInfo();
  const lines = [keyText(tile.key)];
  if (stat.kind === "status") {
    lines.push("health: " + (STATUS[tile.status] ? STATUS[tile.status][0] : "no verdict"));
    lines.push("n = " + tile.n + " events in the window");
  } else {
    lines.push(stat.title + ": " + fmt(tile.value, stat.unit));
    if (state.norm !== "raw") lines.push(state.norm + ": " + (tile.norm === null ? "none" : tile.norm.toFixed(2)));
    lines.push("n = " + tile.n);
    lines.push(tile.lower === null ? "95% bounds: none for this statistic"
      : "95% bounds: " + fmt(tile.lower, stat.unit) + " .. " + fmt(tile.upper, stat.unit));
    lines.push("health: " + (STATUS[tile.status] ? STATUS[tile.status][0] : "no verdict"));
  }
  if (tile.grey) lines.push("grey: " + tile.grey);
  for (const flag of tile.flags) lines.push("flag: " + flag);
  return lines.join("\n");
}

function makeTile(tile, onClick) {
  const node = el("div", null, "tile");
  node.style.backgroundColor = colour(tile);
  if (!tile) { node.classList.add("empty"); return node; }
  if (tile.grey) node.classList.add("grey");
  if (tile.flags.length) node.textContent = "\u2691";
  node.title = describe(tile);
  node.dataset.key = JSON.stringify(tile.key);
  node.dataset.status = String(tile.status);
  tileData.set(node, tile);
  if (onClick) node.addEventListener("click", () => onClick(tile));
  return node;
}

function transformText() {
  const stat = statInfo();
  if (stat.kind === "status") return stat.meaning;
  const scale = "fixed scale " + fmt(stat.low, stat.unit) + " .. " + fmt(stat.high, stat.unit);
  const n = state.meta.history_depth;
  const base = {
    raw: "Raw " + stat.title + " of the latest closed window. Colour: Viridis on the " + scale
      + (stat.reverse ? " (reversed: lower is worse)" : "") + ", the same as the Grafana dashboards.",
    z: "z = (value \u2212 mean of the cell's earlier windows) / their standard deviation, over the "
      + "up to " + (n ? n - 1 : 0) + " earlier windows kept (at least 3 with a value). Colour: "
      + "diverging purple (lower) \u2013 grey (no change) \u2013 orange (higher), clamped at \u00b1" + Z_LIMIT + ".",
    change: "change = value \u2212 the previous window's value. Colour: diverging purple (lower) "
      + "\u2013 grey (no change) \u2013 orange (higher), clamped at \u00b1" + fmt(scaleSpan(stat), stat.unit) + ".",
  }[state.norm];
  return base + " Grey tiles: below min_samples (" + stat.min_samples + " "
    + (stat.count.includes("labeled") ? "labeled events" : "events") + ") or no value; hover says why.";
}

function drawLegend() {
  const box = $("legend");
  clear(box);
  const stat = statInfo();
  if (stat.kind === "status") {
    for (const code of [0, 1, 2]) {
      const item = el("span", STATUS[code][0], "legend-item");
      item.style.backgroundColor = STATUS[code][1];
      box.appendChild(item);
    }
    const none = el("span", "no verdict", "legend-item");
    none.style.backgroundColor = GREY;
    box.appendChild(none);
    return;
  }
  const colours = state.norm === "raw" ? (stat.reverse ? [...VIRIDIS].reverse() : VIRIDIS) : DIVERGING;
  const low = state.norm === "raw" ? fmt(stat.low, stat.unit) : "\u2212" + fmt(scaleSpan(stat), state.norm === "z" ? "" : stat.unit);
  const high = state.norm === "raw" ? fmt(stat.high, stat.unit) : "+" + fmt(scaleSpan(stat), state.norm === "z" ? "" : stat.unit);
  box.appendChild(el("span", low, "legend-end"));
  for (const c of colours) {
    const sw = el("span", null, "swatch");
    sw.style.backgroundColor = c;
    box.appendChild(sw);
  }
  box.appendChild(el("span", high, "legend-end"));
}

function params(extra) {
  return Object.assign({ model: state.model, statistic: state.statistic, norm: state.norm }, extra);
}

async function loadGrid() {
  const dims = state.meta.dimensions;
  const grid = $("grid");
  if (dims.length < 2) { $("grid-title").textContent = "The grid needs two dimensions."; return; }
  const data = await getJSON("/api/grid", params({ row_page: state.rowPage, col_page: state.colPage }));
  state.grid = data;
  const when = data.window.end ? new Date(data.window.end * 1000).toLocaleTimeString() : "none yet";
  $("grid-title").textContent = data.rows_dimension + " \u00d7 " + data.cols_dimension
    + " of " + data.model + ", latest closed window (ends " + when + ")";
  const rowPages = Math.max(1, Math.ceil(data.row_total / data.page_size));
  const colPages = Math.max(1, Math.ceil(data.col_total / data.page_size));
  $("row-info").textContent = data.rows_dimension + " page " + (data.row_page + 1) + " / " + rowPages + " (" + data.row_total + ")";
  $("col-info").textContent = data.cols_dimension + " page " + (data.col_page + 1) + " / " + colPages + " (" + data.col_total + ")";
  $("row-prev").disabled = data.row_page === 0;
  $("row-next").disabled = data.row_page + 1 >= rowPages;
  $("col-prev").disabled = data.col_page === 0;
  $("col-next").disabled = data.col_page + 1 >= colPages;
  const fragment = document.createDocumentFragment();
  const cols = [...data.cols, ALL];
  grid.style.gridTemplateColumns = "max-content repeat(" + cols.length + ", var(--tile))";
  fragment.appendChild(el("div", data.rows_dimension + " \\ " + data.cols_dimension, "corner"));
  for (const c of cols) fragment.appendChild(el("div", c === ALL ? "all" : c, "col-label"));
  [...data.rows, ALL].forEach((r, i) => {
    fragment.appendChild(el("div", r === ALL ? "all " + data.rows_dimension + "s" : r, "row-label"));
    data.tiles[i].forEach((tile) => fragment.appendChild(makeTile(tile, selectCell)));
  });
  clear(grid);
  grid.appendChild(fragment);
}

function stripTile(w, stat) {
  const node = el("div", null, "tile");
  const value = state.norm === "raw" ? w.value : w.norm;
  const fake = { value: w.value, norm: w.norm, status: -1, grey: value === null ? "none" : null };
  node.style.backgroundColor = colour(fake);
  if (value === null) node.classList.add("grey");
  const when = w.start === null ? "not recorded" : new Date(w.start * 1000).toLocaleTimeString();
  node.title = "window from " + when + "\n" + stat.title + ": " + fmt(w.value, stat.unit)
    + (state.norm === "raw" ? "" : "\n" + state.norm + ": " + (w.norm === null ? "none" : w.norm.toFixed(2)))
    + "\nn = " + (w.n === null ? 0 : w.n);
  return node;
}

function forecastTile(f, stat) {
  // A forecast, not an observation: dashed outline, no grey pattern, its own tooltip.
  const node = el("div", null, "tile forecast");
  node.style.backgroundColor = state.norm === "raw" ? colour({ value: f.value, status: -1 }) : GREY;
  node.title = "FORECAST, " + f.horizon + " window" + (f.horizon > 1 ? "s" : "") + " ahead\n"
    + stat.title + ": " + fmt(f.value, stat.unit) + "\n90% interval: " + fmt(f.lower, stat.unit)
    + " .. " + fmt(f.upper, stat.unit) + (state.norm === "raw" ? "" : "\n(coloured in raw mode only)");
  return node;
}

async function selectCell(tile) {
  state.selected = tile.key;
  await loadCell();
}

async function loadCell() {
  if (!state.selected) return;
  const dims = state.meta.dimensions;
  const query = params({});
  dims.forEach((d, i) => { query[d] = state.selected[i]; });
  const data = await getJSON("/api/cell", query);
  $("cell-title").textContent = data.model + ": " + keyText(data.key);
  $("cell-tile").textContent = describe(data.tile).split("\n").slice(1).join(" \u00b7 ");
  const strip = $("strip");
  clear(strip);
  const ahead = $("forecast-strip");  // forecast tiles apart from the observed ones
  clear(ahead);
  const stat = statInfo();
  if (data.history && stat.kind !== "status") {
    $("strip-title").textContent = "Last " + data.history.windows.length + " windows of " + stat.title
      + " (oldest left)";
    for (const w of data.history.windows) strip.appendChild(stripTile(w, stat));
    const values = data.history.windows.filter((w) => w.value !== null).length;
    let info = values + " of " + data.history.windows.length + " windows have a value.";
    if (data.forecast && data.forecast.length) {
      ahead.appendChild(el("span", "\u25b8 forecast", "forecast-sep"));
      for (const f of data.forecast) ahead.appendChild(forecastTile(f, stat));
      info += " Dashed, after \u25b8 forecast: the next " + data.forecast.length
        + " windows (90% interval in the tooltip).";
    }
    $("strip-info").textContent = info;
  } else {
    $("strip-title").textContent = "Last windows: pick a statistic to see them";
    $("strip-info").textContent = "";
  }
  const body = $("components").tBodies[0];
  clear(body);
  for (const comp of data.components) {
    const row = el("tr");
    row.appendChild(el("td", comp.name));
    const status = el("td", STATUS[comp.status] ? STATUS[comp.status][0] : "no verdict", "status");
    status.style.backgroundColor = STATUS[comp.status] ? STATUS[comp.status][1] : GREY;
    row.appendChild(status);
    row.appendChild(el("td", comp.score === null ? "none" : comp.score.toFixed(2)));
    row.appendChild(el("td", comp.driver ? comp.driver.metric + " (" + comp.driver.statistic + ")" : ""));
    body.appendChild(row);
  }
}

async function loadTimeline(k) {
  const dims = state.meta.dimensions;
  const box = $("timeline-" + k);
  const stat = statInfo();
  if (k >= dims.length || stat.kind === "status" || !state.meta.history_depth) {
    $("timeline-" + k + "-title").textContent = k < dims.length
      ? dims[k] + " \u00d7 time: pick a statistic" : "";
    $("timeline-" + k + "-info").textContent = "";
    clear(box);
    return;
  }
  const data = await getJSON("/api/timeline", params({ dimension: dims[k], page: state.timelinePages[k] }));
  $("timeline-" + k + "-title").textContent = dims[k] + " \u00d7 time: " + stat.title
    + " of each " + dims[k] + " (all other dimensions together), last " + state.meta.history_depth + " windows";
  $("timeline-" + k + "-info").textContent = "page " + (data.page + 1) + " / " + data.pages + " (" + data.total + ")";
  $("timeline-" + k + "-prev").disabled = data.page === 0;
  $("timeline-" + k + "-next").disabled = data.page + 1 >= data.pages;
  const fragment = document.createDocumentFragment();
  const depth = state.meta.history_depth;
  box.style.gridTemplateColumns = "max-content repeat(" + depth + ", var(--small))";
  for (const row of data.rows) {
    fragment.appendChild(el("div", row.value, "row-label"));
    const windows = row.history ? row.history.windows : [];
    for (const w of windows) fragment.appendChild(stripTile(w, stat));
  }
  clear(box);
  box.appendChild(fragment);
}

function driverText(driver) {
  if (!driver) return "";
  const dims = state.meta.dimensions;
  const cell = driver.key.slice(1).map((v, i) => dims[i] + " = " + v).join(", ");
  return driver.metric + " (" + driver.statistic + ")" + (cell ? " in " + cell : "")
    + (driver.component ? " via " + driver.component : "");
}

async function loadHealth() {
  const data = await getJSON("/api/health", { model: state.model });
  const body = $("health").tBodies[0];
  clear(body);
  const rows = data.components.map((c) => ["component", c.name, c.status, c.score, c.driver])
    .concat(data.indicators.map((i) => ["business", i.name, i.status, i.value, i.driver]));
  for (const [level, name, status, value, driver] of rows) {
    const row = el("tr");
    row.appendChild(el("td", level));
    row.appendChild(el("td", name));
    const cell = el("td", STATUS[status] ? STATUS[status][0] : "no verdict", "status");
    cell.style.backgroundColor = STATUS[status] ? STATUS[status][1] : GREY;
    row.appendChild(cell);
    row.appendChild(el("td", value === null ? "none" : value.toFixed(3)));
    row.appendChild(el("td", driverText(driver)));
    body.appendChild(row);
  }
}

async function refresh() {
  try {
    $("transform").textContent = transformText();
    drawLegend();
    await loadGrid();
    await Promise.all([loadTimeline(0), loadTimeline(1), loadHealth(), loadCell()]);
    $("status").textContent = "updated " + new Date().toLocaleTimeString();
    document.body.dataset.ready = String(Date.now());
  } catch (err) {
    $("status").textContent = "error: " + err.message;
  }
}

function fillSelect(select, options, value) {
  clear(select);
  for (const [key, text] of options) {
    const option = el("option", text);
    option.value = key;
    select.appendChild(option);
  }
  select.value = value;
}

async function start() {
  state.meta = await getJSON("/api/meta");
  if (!state.meta.models.length) {
    $("status").textContent = "no cells yet: waiting for events";
    setTimeout(start, 3000);
    return;
  }
  state.model = state.model || state.meta.models[0].name;
  fillSelect($("model"), state.meta.models.map((m) => [m.name, m.name]), state.model);
  fillSelect($("statistic"), state.meta.statistics.map((s) => [s.key, s.title]), state.statistic);
  $("model").addEventListener("change", (e) => { state.model = e.target.value; state.rowPage = state.colPage = 0; state.selected = null; refresh(); });
  $("statistic").addEventListener("change", (e) => { state.statistic = e.target.value; syncNorm(); refresh(); });
  for (const radio of document.querySelectorAll("input[name=norm]")) {
    radio.addEventListener("change", (e) => { state.norm = e.target.value; refresh(); });
  }
  const pages = { "row-prev": ["rowPage", -1], "row-next": ["rowPage", 1], "col-prev": ["colPage", -1], "col-next": ["colPage", 1] };
  for (const [id, [field, step]] of Object.entries(pages)) {
    $(id).addEventListener("click", () => { state[field] = Math.max(0, state[field] + step); refresh(); });
  }
  for (const k of [0, 1]) {
    $("timeline-" + k + "-prev").addEventListener("click", () => { state.timelinePages[k] = Math.max(0, state.timelinePages[k] - 1); loadTimeline(k); });
    $("timeline-" + k + "-next").addEventListener("click", () => { state.timelinePages[k] += 1; loadTimeline(k); });
  }
  $("grid").addEventListener("mouseover", (e) => {
    const tile = tileData.get(e.target);
    if (tile) $("hover").textContent = describe(tile).split("\n").join(" \u00b7 ");
  });
  syncNorm();
  await refresh();
  setInterval(refresh, 10000);
}

// The health status has no normalisation: the switch is disabled while it is shown.
function syncNorm() {
  const status = statInfo().kind === "status";
  for (const radio of document.querySelectorAll("input[name=norm]")) {
    radio.disabled = status;
    if (status) radio.checked = radio.value === "raw";
  }
  if (status) state.norm = "raw";
}

document.addEventListener("DOMContentLoaded", () => {
  start().catch((err) => { $("status").textContent = "error: " + err.message; });
});
