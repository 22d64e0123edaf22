// The dashboard: reads the JSON extracts in data/ (written next to this bundle by the analytics DAG)
// and draws them with Apache ECharts. URL parameters ?country=NAME&date=YYYY-MM-DD select a country
// and a day; the "Selected day" table shows the values read back from the rendered charts, and
// <body data-ready="true"> marks a finished render (used by the browser test).
import * as echarts from "echarts/core";
import { BarChart, LineChart, ScatterChart } from "echarts/charts";
import {
  DataZoomComponent, GridComponent, LegendComponent, MarkLineComponent, TooltipComponent,
} from "echarts/components";
import { CanvasRenderer } from "echarts/renderers";

echarts.use([BarChart, LineChart, ScatterChart, DataZoomComponent, GridComponent, LegendComponent,
  MarkLineComponent, TooltipComponent, CanvasRenderer]);

const COLORS = { cases: "#2f6db5", deaths: "#5b4a8b", average: "#e08a1e", correction: "#c0392b", tweets: "#4a9d6f" };
const charts = {};
const state = { countries: [], country: null, date: null, doc: null, locations: null };

const fmt = (v, digits = 0) => (v === null || v === undefined ? "–"
  : Number(v).toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits }));

async function getJSON(path) {
  const response = await fetch(path, { cache: "no-store" });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

function chart(id) {
  if (!charts[id]) charts[id] = echarts.init(document.getElementById(id), null, { renderer: "canvas" });
  return charts[id];
}

// Bars of daily changes (corrections in red, kept as negative bars) and the 7-day average line.
function dailyOption(dates, values, averages, corrected, label, color, selectedDate) {
  return {
    animation: false,
    tooltip: { trigger: "axis" },
    legend: { top: 0, data: [label, "7-day average"] },
    grid: { left: 64, right: 16, top: 32, bottom: 56 },
    xAxis: { type: "category", data: dates },
    yAxis: { type: "value" },
    dataZoom: [{ type: "inside" }, { type: "slider", height: 18, bottom: 6 }],
    series: [
      {
        name: label, type: "bar", barCategoryGap: "10%",
        data: values.map((v, i) => (corrected && corrected[i]
          ? { value: v, itemStyle: { color: COLORS.correction } } : v)),
        itemStyle: { color },
        markLine: selectedDate ? {
          symbol: "none", silent: true, label: { formatter: selectedDate },
          lineStyle: { color: "#333", type: "dashed" }, data: [{ xAxis: selectedDate }],
        } : undefined,
      },
      { name: "7-day average", type: "line", data: averages, showSymbol: false,
        lineStyle: { width: 2, color: COLORS.average }, itemStyle: { color: COLORS.average } },
    ],
  };
}

function valueAt(instance, date, seriesIndex) {
  const option = instance.getOption();
  const index = option.xAxis[0].data.indexOf(date);
  if (index < 0) return undefined;
  const item = option.series[seriesIndex].data[index];
  return item !== null && typeof item === "object" ? item.value : item;
}

function renderGlobal(global) {
  chart("global-cases").setOption(dailyOption(global.dates, global.new_cases, global.new_cases_avg_7d,
    null, "New cases", COLORS.cases, null));
  chart("global-deaths").setOption(dailyOption(global.dates, global.new_deaths, global.new_deaths_avg_7d,
    null, "New deaths", COLORS.deaths, null));
  const el = document.getElementById("global-cases");
  el.dataset.points = String(global.dates.length);
  el.dataset.lastDate = global.dates[global.dates.length - 1] || "";
}

function setCell(field, value, text) {
  const cell = document.querySelector(`#day-detail [data-field="${field}"]`);
  cell.dataset.value = value === undefined || value === null ? "" : String(value);
  cell.textContent = text;
}

function renderDetail() {
  const { doc, date } = state;
  const daily = doc.daily;
  const i = daily.dates.indexOf(date);
  const cases = chart("country-cases");
  const deaths = chart("country-deaths");
  const table = document.getElementById("day-detail");
  table.dataset.country = doc.country;
  table.dataset.date = date;
  setCell("country", doc.country, doc.country);
  setCell("date", date, i < 0 ? `${date} (no report)` : date);
  // Daily values are read back from the charts' own data, so the table shows what is drawn.
  const drawn = {
    new_cases: valueAt(cases, date, 0), new_cases_avg_7d: valueAt(cases, date, 1),
    new_deaths: valueAt(deaths, date, 0), new_deaths_avg_7d: valueAt(deaths, date, 1),
  };
  for (const [field, value] of Object.entries(drawn)) {
    setCell(field, value, fmt(value, field.endsWith("avg_7d") ? 2 : 0));
  }
  const pick = (column) => (i < 0 ? undefined : daily[column][i]);
  setCell("confirmed", pick("confirmed"), fmt(pick("confirmed")));
  setCell("deaths", pick("deaths"), fmt(pick("deaths")));
  setCell("case_fatality_ratio", pick("case_fatality_ratio"), fmt(pick("case_fatality_ratio"), 2));
  // Per 100,000 people, from JHU's population; "–" where JHU has none (ships, Olympics, Antarctica).
  setCell("population", doc.population, fmt(doc.population));
  for (const column of ["confirmed_per_100k", "deaths_per_100k", "new_cases_7d_per_100k"]) {
    const value = daily[column] ? pick(column) : undefined;
    setCell(column, value, fmt(value, 2));
  }
  const corrected = i >= 0 && (daily.cases_corrected[i] || daily.deaths_corrected[i]);
  setCell("corrected", corrected, i < 0 ? "–" : (corrected ? "yes" : "no"));
}

function renderCountryCharts() {
  const { doc, date } = state;
  const d = doc.daily;
  document.getElementById("country-title").textContent = `${doc.country}: new cases and deaths per day`;
  chart("country-cases").setOption(dailyOption(d.dates, d.new_cases, d.new_cases_avg_7d, d.cases_corrected,
    "New cases", COLORS.cases, date), true);
  chart("country-deaths").setOption(dailyOption(d.dates, d.new_deaths, d.new_deaths_avg_7d, d.deaths_corrected,
    "New deaths", COLORS.deaths, date), true);
  const weeks = doc.weekly;
  chart("weekly-chart").setOption({
    animation: false,
    tooltip: { trigger: "axis" },
    legend: { top: 0, data: ["Tweets", "New cases"] },
    grid: { left: 56, right: 64, top: 32, bottom: 32 },
    xAxis: { type: "category", data: weeks.map((w) => w.week_start) },
    yAxis: [{ type: "value", name: "tweets" }, { type: "value", name: "new cases" }],
    series: [
      { name: "Tweets", type: "bar", data: weeks.map((w) => w.tweet_count), itemStyle: { color: COLORS.tweets } },
      { name: "New cases", type: "line", yAxisIndex: 1, data: weeks.map((w) => w.new_cases), showSymbol: false,
        itemStyle: { color: COLORS.cases } },
    ],
  }, true);
  const days = Object.keys(doc.top_hashtags).sort();
  const list = document.getElementById("hashtags");
  list.replaceChildren();
  const caption = document.getElementById("hashtags-day");
  if (!days.length) {
    caption.textContent = `No tweets with hashtags for ${doc.country} in the lake.`;
  } else {
    const day = days.includes(date) ? date : days[days.length - 1];
    caption.textContent = `${doc.country}, ${day}`;
    for (const { hashtag, count } of doc.top_hashtags[day]) {
      const item = document.createElement("li");
      item.textContent = `#${hashtag} (${fmt(count)})`;
      list.append(item);
    }
  }
}

function renderLocations() {
  const loc = state.locations;
  const cols = Object.fromEntries(loc.columns.map((c, i) => [c, i]));
  const inCountry = (r) => r[cols.country_region] === state.doc.country;
  const point = (r) => [r[cols.longitude], r[cols.latitude], r[cols.confirmed], r[cols.combined_key]];
  const size = (v) => Math.max(3, Math.sqrt(v[2] || 0) / 40);
  chart("location-map").setOption({
    animation: false,
    tooltip: { formatter: (p) => `${p.value[3]}<br>confirmed ${fmt(p.value[2])}` },
    legend: { top: 0, data: ["All locations", state.doc.country] },
    grid: { left: 48, right: 16, top: 32, bottom: 32 },
    xAxis: { type: "value", min: -180, max: 180, name: "longitude" },
    yAxis: { type: "value", min: -60, max: 80, name: "latitude" },
    series: [
      { name: "All locations", type: "scatter", data: loc.rows.filter((r) => !inCountry(r)).map(point),
        symbolSize: size, itemStyle: { color: "rgba(47,109,181,0.35)" } },
      { name: state.doc.country, type: "scatter", data: loc.rows.filter(inCountry).map(point),
        symbolSize: size, itemStyle: { color: "rgba(192,57,43,0.75)" } },
    ],
  }, true);
  const rows = loc.rows.filter(inCountry).slice(0, 15);
  const body = document.querySelector("#location-table tbody");
  body.replaceChildren(...rows.map((r) => {
    const tr = document.createElement("tr");
    const cells = [r[cols.combined_key], fmt(r[cols.latitude], 3), fmt(r[cols.longitude], 3),
      fmt(r[cols.confirmed]), fmt(r[cols.deaths]), fmt(r[cols.case_fatality_ratio], 2)];
    for (const text of cells) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    return tr;
  }));
  document.getElementById("location-table").dataset.reportDate = loc.report_date || "";
}

async function selectCountry(name, date) {
  document.body.dataset.ready = "false";
  const entry = state.countries.find((c) => c.country === name) || state.countries[0];
  state.country = entry.country;
  state.doc = await getJSON(`data/${entry.file}`);
  const dates = state.doc.daily.dates;
  state.date = date && date >= dates[0] && date <= dates[dates.length - 1] ? date : dates[dates.length - 1];
  document.getElementById("country-picker").value = entry.country;
  const picker = document.getElementById("day-picker");
  picker.min = dates[0];
  picker.max = dates[dates.length - 1];
  picker.value = state.date;
  renderCountryCharts();
  renderDetail();
  renderLocations();
  const url = new URL(window.location.href);
  url.searchParams.set("country", state.country);
  url.searchParams.set("date", state.date);
  window.history.replaceState(null, "", url);
  document.body.dataset.ready = "true";
}

async function main() {
  const params = new URLSearchParams(window.location.search);
  const [meta, global, countries, locations] = await Promise.all([
    getJSON("data/meta.json"), getJSON("data/global.json"), getJSON("data/countries.json"),
    getJSON("data/locations.json"),
  ]);
  state.countries = countries;
  state.locations = locations;
  document.getElementById("as-of").textContent =
    `Report days ${meta.first_report_date} to ${meta.latest_report_date}, built ${meta.generated_at}.`;
  if (meta.engine === "duckdb") {
    // The local lake (make demo, the local stack): its tweets come from the X API stand-in's corpus.
    for (const note of document.querySelectorAll(".tweets-source")) {
      note.textContent = "Synthetic tweets: the local stack's X API stand-in serves a generated corpus "
        + "(local/tweets_synth.py); real tweets cannot be redistributed.";
      note.hidden = false;
    }
  }
  const picker = document.getElementById("country-picker");
  picker.replaceChildren(...countries.map((c) => new Option(c.country, c.country)));
  picker.addEventListener("change", () => selectCountry(picker.value, state.date));
  document.getElementById("day-picker").addEventListener("change", (event) => {
    state.date = event.target.value;
    renderCountryCharts();
    renderDetail();
  });
  renderGlobal(global);
  const largest = [...countries].sort((a, b) => (b.confirmed || 0) - (a.confirmed || 0))[0];
  await selectCountry(params.get("country") || largest.country, params.get("date"));
  window.addEventListener("resize", () => Object.values(charts).forEach((c) => c.resize()));
}

main().catch((error) => {
  document.body.dataset.ready = "error";
  document.body.dataset.error = String(error);
  const banner = document.createElement("p");
  banner.className = "error";
  banner.textContent = `The dashboard could not load its data: ${error}`;
  document.querySelector("header").append(banner);
});
