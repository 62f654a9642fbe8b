// quantserve dashboard: plain JavaScript over the public REST API, charts with Plotly.js.
// The API key, when the server wants one, lives in this closure only: never in storage.
"use strict";

(() => {
  const $ = (selector, root = document) => root.querySelector(selector);
  const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));
  const body = document.body;
  const MODEL = body.dataset.model;
  const KEYS_REQUIRED = body.dataset.keysRequired === "true";
  const STRATEGIES = [
    ["min_variance", "Minimum variance (trailing covariance)", true],
    ["risk_parity", "Risk parity", true],
    ["max_sharpe", "Maximum Sharpe (trailing means)", false],
    ["hrp", "Hierarchical risk parity", false],
    ["forecast_min_variance", "Minimum variance on the model's forecasts", false],
    ["forecast_mean_variance", "Mean-variance on the model's forecasts", false],
  ];
  const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
  const PLOT_CONFIG = { displaylogo: false, responsive: true };
  const state = { key: null, tickers: [], forecasts: null, backtestId: null, poll: null };

  // ---- the API ------------------------------------------------------------------------
  class ApiProblem extends Error {
    constructor(status, problem) {
      super(problem.detail || problem.title || `HTTP ${status}`);
      this.status = status;
      this.problem = problem;
    }
  }

  async function api(method, path, payload) {
    const headers = { Accept: "application/json, application/problem+json" };
    if (state.key) headers["X-API-Key"] = state.key;
    if (payload !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: payload === undefined ? undefined : JSON.stringify(payload),
      });
    } catch (error) {
      throw new ApiProblem(0, { detail: `The server did not answer (${error.message}); is it running?` });
    }
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = { detail: text.slice(0, 300) };
    }
    if (!response.ok) {
      const problem = data && typeof data === "object" ? data : {};
      if (!problem.detail) problem.detail = `${response.status} ${response.statusText}`;
      throw new ApiProblem(response.status, problem);
    }
    return data;
  }

  // ---- problems next to the controls they are about -----------------------------------
  function clearProblems(form) {
    $$("[aria-invalid]", form).forEach((el) => el.removeAttribute("aria-invalid"));
    $$(".problem", form).forEach((el) => { el.textContent = ""; });
  }

  // The controls a problem names, those the user filled in first.
  function controlsFor(form, names) {
    const wanted = new Set(names);
    const found = $$("[data-fields]", form).filter((el) =>
      !el.closest("[hidden]") && el.dataset.fields.split(" ").some((field) => wanted.has(field)));
    const filled = (el) => (el.type === "checkbox" ? el.checked : String(el.value || "").trim() !== "");
    return [...found.filter(filled), ...found.filter((el) => !filled(el))];
  }

  function fieldProblem(control) {
    const field = control.closest(".field") || control;
    return $(".problem", field);
  }

  // Shows ``error`` in ``form``: each validation error beside its control, an optimizer
  // problem's detail beside the first control of a constraint it names, else at the end.
  function showProblem(form, error, fallback) {
    if (handleAccessProblem(error)) return;
    const problem = error.problem || { detail: String(error.message || error) };
    let placed = false;
    for (const item of problem.errors || []) {
      const location = String(item.location || "").replace(/^body\./, "");
      const parts = location.split(".");
      const candidates = [location, parts.slice(0, 2).join("."), parts[0]];
      const [control] = controlsFor(form, candidates);
      if (control) {
        markInvalid(control, item.message);
        placed = true;
      }
    }
    if (!placed && Array.isArray(problem.constraints)) {
      const [control] = controlsFor(form, problem.constraints);
      if (control) {
        markInvalid(control, problem.detail);
        placed = true;
      }
    }
    const target = fallback || $(".form-problem", form);
    if (!placed || !problem.errors) target.textContent = problem.detail;
    else target.textContent = `${problem.title || "The request was refused"}: see the fields marked above.`;
  }

  function markInvalid(control, message) {
    control.setAttribute("aria-invalid", "true");
    const slot = fieldProblem(control);
    if (slot) slot.textContent = message;
  }

  // Screen readers read a control's problem with it: each slot is in aria-describedby.
  function describeProblems() {
    for (const control of $$("[data-fields]")) {
      const slot = fieldProblem(control);
      if (!slot || !control.id) continue;
      slot.id = slot.id || `${control.id}-problem`;
      const described = (control.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
      if (!described.includes(slot.id)) control.setAttribute("aria-describedby", [...described, slot.id].join(" "));
    }
  }

  function handleAccessProblem(error) {
    if (!(error instanceof ApiProblem) || (error.status !== 401 && error.status !== 403)) return false;
    const form = $("#key-form");
    form.hidden = false;
    $("#api-key-error").textContent = error.problem.detail;
    $("#api-key").setAttribute("aria-invalid", "true");
    $("#status").textContent = "The server refused the key.";
    $("#api-key").focus();
    return true;
  }

  async function busy(button, work) {
    button.disabled = true;
    try {
      return await work();
    } finally {
      button.disabled = false;
    }
  }

  // ---- formatting ---------------------------------------------------------------------
  const pct = (x, digits = 1) => (x === null || x === undefined ? "–" : `${(100 * x).toFixed(digits)}%`);
  const num = (x, digits = 3) => (x === null || x === undefined ? "–" : Number(x).toFixed(digits));
  function cells(row, values) {
    for (const value of values) {
      const cell = document.createElement("td");
      cell.textContent = value;
      row.appendChild(cell);
    }
    return row;
  }
  function fillTable(table, rows) {
    const tbody = $("tbody", table);
    tbody.replaceChildren(...rows.map((values) => cells(document.createElement("tr"), values)));
    table.hidden = false;
  }
  function plot(id, traces, layout) {
    const base = {
      margin: { t: 40, r: 20, b: 50, l: 60 },
      font: { family: "system-ui, sans-serif", size: 13, color: "#1f2933" },
      paper_bgcolor: "#ffffff",
      plot_bgcolor: "#ffffff",
    };
    window.Plotly.react(id, traces, { ...base, ...layout }, PLOT_CONFIG);
  }

  // ---- tabs (arrow keys move between them, as the ARIA tabs pattern says) --------------
  function selectTab(tab) {
    for (const other of $$("[role=tab]")) {
      const selected = other === tab;
      other.setAttribute("aria-selected", String(selected));
      other.tabIndex = selected ? 0 : -1;
      $(`#${other.getAttribute("aria-controls")}`).hidden = !selected;
    }
    window.dispatchEvent(new Event("resize")); // charts drawn while hidden take their size
    if (tab.id === "tab-models") loadModels();
    if (tab.id === "tab-backtests") loadBacktestList();
  }
  function setUpTabs() {
    const tabs = $$("[role=tab]");
    tabs.forEach((tab, index) => {
      tab.addEventListener("click", () => selectTab(tab));
      tab.addEventListener("keydown", (event) => {
        const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
        if (step === undefined) return;
        const next = tabs[(index + step + tabs.length) % tabs.length];
        next.focus();
        selectTab(next);
      });
    });
  }

  // ---- start: the key, the model, the universe ----------------------------------------
  async function start() {
    try {
      const ready = await api("GET", "/readyz");
      $("#status").textContent = `Model ${ready.model.name} v${ready.model.version} is serving.`;
    } catch (error) {
      $("#status").textContent = `Not ready: ${error.problem?.reason || error.message}`;
    }
    if (KEYS_REQUIRED && !state.key) {
      $("#status").textContent += " Enter an API key to start.";
      return;
    }
    await loadUniverse();
  }

  async function loadUniverse() {
    let models;
    try {
      models = await api("GET", "/v1/models");
    } catch (error) {
      if (!handleAccessProblem(error)) $("#tickers-error").textContent = error.message;
      return;
    }
    $("#api-key-error").textContent = "";
    $("#api-key").removeAttribute("aria-invalid");
    const model = models.models.find((m) => m.name === MODEL) || models.models[0];
    const tickers = model?.metadata?.samples?.tickers || [];
    if (!tickers.length) {
      $("#tickers-error").textContent = "The serving model lists no tickers: is a model loaded? See /readyz.";
      return;
    }
    state.tickers = tickers;
    $("#ticker-list").replaceChildren(...tickers.map((ticker) => checkbox("ticker", ticker, ticker, true)));
    if (KEYS_REQUIRED) $("#status").textContent = `${$("#status").textContent.replace(" Enter an API key to start.", "")} Key accepted.`;
    await showForecasts();
  }

  function checkbox(name, value, text, checked) {
    const label = document.createElement("label");
    const input = document.createElement("input");
    input.type = "checkbox";
    input.name = name;
    input.value = value;
    input.checked = checked;
    label.append(input, ` ${text}`);
    return label;
  }

  function selectedTickers() {
    return $$("#ticker-list input:checked").map((input) => input.value);
  }

  // ---- forecasts ----------------------------------------------------------------------
  async function showForecasts() {
    const tickers = selectedTickers();
    const problemSlot = $("#forecast-error");
    problemSlot.textContent = "";
    if (!tickers.length) {
      problemSlot.textContent = "Pick at least one ticker above.";
      return;
    }
    let answer;
    try {
      answer = await api("POST", "/v1/forecasts", { tickers });
    } catch (error) {
      if (!handleAccessProblem(error)) problemSlot.textContent = error.message;
      return;
    }
    state.forecasts = answer;
    const rows = answer.forecasts;
    $("#forecast-caption").textContent =
      `Model ${answer.model.name} version ${answer.model.version}, features as of ${answer.as_of}. ` +
      `Returns are ${answer.horizons.expected_return_days}-day log returns; volatility is over ` +
      `${answer.horizons.volatility_days} days, annualised.`;
    const names = rows.map((r) => r.ticker);
    plot("forecast-chart", [{
      type: "scatter",
      mode: "markers",
      name: "expected",
      x: names,
      y: rows.map((r) => 100 * r.expected_log_return),
      error_y: {
        type: "data",
        symmetric: false,
        array: rows.map((r) => 100 * (r.log_return_quantiles.q95 - r.expected_log_return)),
        arrayminus: rows.map((r) => 100 * (r.expected_log_return - r.log_return_quantiles.q05)),
        color: "#7b8794",
      },
      marker: { size: 9, color: "#0b5cad" },
      hovertemplate: "%{x}: %{y:.2f}%<extra></extra>",
    }], {
      title: { text: "Expected 5-day log return, with its 5–95% interval" },
      yaxis: { title: { text: "%" }, zeroline: true },
    });
    plot("volatility-chart", [{
      type: "bar",
      x: names,
      y: rows.map((r) => 100 * r.annualized_volatility),
      marker: { color: "#c2410c" },
      hovertemplate: "%{x}: %{y:.1f}%<extra></extra>",
    }], { title: { text: "Forecast volatility, annualised" }, yaxis: { title: { text: "%" } } });
    fillTable($("#forecast-table"), rows.map((r) => [
      r.ticker, r.as_of, pct(r.expected_log_return, 2), pct(r.log_return_quantiles.q05, 2),
      pct(r.log_return_quantiles.q95, 2), pct(r.annualized_volatility), pct(r.annualized_expected_return),
    ]));
    $("#forecast-unavailable").textContent = answer.unavailable.length
      ? `No forecast for ${answer.unavailable.map((u) => `${u.ticker} (${u.reason})`).join("; ")}.`
      : "";
  }

  // ---- allocations --------------------------------------------------------------------
  function numberOf(id) {
    const raw = $(`#${id}`).value.trim();
    return raw === "" ? undefined : Number(raw);
  }

  function parseWeights(text) {
    const weights = {};
    for (const part of text.split(/[,\n]/).map((p) => p.trim()).filter(Boolean)) {
      const match = part.match(/^([A-Za-z0-9_.-]+)\s*[=:]\s*(-?[0-9.eE+-]+)$/);
      if (!match) throw new Error(`"${part}" is not TICKER=weight, e.g. AAPL=0.25`);
      weights[match[1]] = Number(match[2]);
    }
    return Object.keys(weights).length ? weights : undefined;
  }

  function parseGroups(text) {
    const groups = {};
    for (const line of text.split("\n").map((l) => l.trim()).filter(Boolean)) {
      const match = line.match(/^([^:]+):\s*(.*)$/);
      if (!match) throw new Error(`"${line}" is not name: TICKER, TICKER min 0.1 max 0.4`);
      const group = { tickers: [] };
      const tokens = match[2].split(/[\s,]+/).filter(Boolean);
      for (let i = 0; i < tokens.length; i += 1) {
        const token = tokens[i];
        if (token === "min" || token === "max") {
          const value = Number(tokens[i + 1]);
          if (Number.isNaN(value)) throw new Error(`"${line}": ${token} needs a number after it`);
          group[`${token}_weight`] = value;
          i += 1;
        } else {
          group.tickers.push(token);
        }
      }
      groups[match[1].trim()] = group;
    }
    return Object.keys(groups).length ? groups : undefined;
  }

  function portfolioInputs(form) {
    const constraints = { long_only: $("#long_only").checked };
    for (const id of ["min_weight", "max_weight", "max_volatility", "max_turnover"]) {
      const value = numberOf(id);
      if (value !== undefined) constraints[id] = value;
    }
    const inputs = { tickers: selectedTickers(), constraints };
    const parsers = [["groups", parseGroups, constraints], ["current_weights", parseWeights, inputs]];
    for (const [id, parse, into] of parsers) {
      try {
        const value = parse($(`#${id}`).value);
        if (value !== undefined) into[id] = value;
      } catch (error) {
        markInvalid($(`#${id}`), error.message);
        throw error;
      }
    }
    return inputs;
  }

  function showObjectiveFields() {
    const objective = $("#objective").value;
    for (const field of $$("[data-objective]")) field.hidden = field.dataset.objective !== objective;
  }

  async function optimize(event) {
    event.preventDefault();
    const form = event.currentTarget;
    clearProblems(form);
    let inputs;
    try {
      inputs = portfolioInputs(form);
    } catch (error) {
      $("#optimize-error").textContent = "Fix the field marked above.";
      return;
    }
    const objective = $("#objective").value;
    const request = { ...inputs, objective };
    const extra = { mean_variance: "risk_aversion", efficient_return: "target_return", efficient_risk: "target_volatility" }[objective];
    if (extra) request[extra] = numberOf(extra);
    await busy($("button[type=submit]", form), async () => {
      let result;
      try {
        result = await api("POST", "/v1/portfolios/optimize", request);
      } catch (error) {
        showProblem(form, error);
        return;
      }
      showAllocation(result);
      await showFrontier(inputs, result);
    });
  }

  function showAllocation(result) {
    $("#allocation-results").hidden = false;
    const tickers = Object.keys(result.weights);
    const report = [
      ["Expected return", pct(result.expected_return)], ["Volatility", pct(result.volatility)],
      ["Sharpe", num(result.sharpe, 2)], ["Turnover", num(result.turnover, 3)],
      ["Trading cost", pct(result.transaction_cost, 3)], ["Diversification", num(result.diversification_ratio, 2)],
      ["Solver", result.solver.name], ["Status", result.solver.status],
      ["Solve time", `${num(result.solver.solve_time_ms, 1)} ms`], ["Iterations", String(result.solver.iterations ?? "–")],
      ["Model", result.model ? `${result.model.name} v${result.model.version}` : "request"], ["As of", result.as_of || "–"],
    ];
    $("#solver-report").replaceChildren(...report.flatMap(([term, value]) => {
      const dt = document.createElement("dt");
      const dd = document.createElement("dd");
      dt.textContent = term;
      dd.textContent = value;
      return [dt, dd];
    }));
    const risk = result.risk_contributions || {};
    plot("weights-chart", [
      { type: "bar", name: "weight", x: tickers, y: tickers.map((t) => 100 * result.weights[t]), marker: { color: "#0b5cad" } },
      { type: "bar", name: "share of risk", x: tickers, y: tickers.map((t) => 100 * (risk[t] ?? 0) / result.volatility), marker: { color: "#c2410c" } },
    ], { title: { text: "Weights and risk contributions" }, barmode: "group", yaxis: { title: { text: "%" } }, legend: { orientation: "h" } });
    fillTable($("#weights-table"), tickers.map((t) => [
      t, pct(result.weights[t]), pct(risk[t], 2), pct((risk[t] ?? 0) / result.volatility),
    ]));
  }

  async function showFrontier(inputs, result) {
    const note = $("#frontier-note");
    note.textContent = "";
    let frontier;
    try {
      frontier = await api("POST", "/v1/portfolios/frontier", { ...inputs, n_points: 20 });
    } catch (error) {
      if (!handleAccessProblem(error)) note.textContent = `No frontier under these constraints: ${error.message}`;
      frontier = { points: [] };
    }
    const traces = [{
      type: "scatter", mode: "lines+markers", name: "efficient frontier",
      x: frontier.points.map((p) => 100 * p.volatility), y: frontier.points.map((p) => 100 * p.expected_return),
      line: { color: "#0b5cad" }, marker: { size: 5 },
    }];
    const forecasts = state.forecasts?.forecasts || [];
    const chosen = new Set(inputs.tickers);
    const assets = forecasts.filter((f) => chosen.has(f.ticker));
    if (assets.length) {
      traces.push({
        type: "scatter", mode: "markers+text", name: "assets", text: assets.map((f) => f.ticker), textposition: "top center",
        x: assets.map((f) => 100 * f.annualized_volatility), y: assets.map((f) => 100 * f.annualized_expected_return),
        marker: { color: "#7b8794", size: 7 },
      });
    }
    traces.push({
      type: "scatter", mode: "markers", name: "this portfolio", x: [100 * result.volatility], y: [100 * result.expected_return],
      marker: { symbol: "star", size: 16, color: "#c2410c" },
    });
    plot("frontier-chart", traces, {
      title: { text: "The portfolio on its efficient frontier (annual)" },
      xaxis: { title: { text: "volatility, %" } }, yaxis: { title: { text: "expected return, %" } },
      legend: { orientation: "h" },
    });
  }

  // ---- back-tests ---------------------------------------------------------------------
  async function startBacktest(event) {
    event.preventDefault();
    const form = event.currentTarget;
    clearProblems(form);
    const names = $$("#strategy-list input:checked").map((i) => i.value);
    const strategies = $("#vol_target").checked ? [...names, ...names.map((n) => `${n}+vol_target`)] : names;
    const request = { strategies, rebalance: $("#rebalance").value, cost_bps: numberOf("cost_bps") ?? 10 };
    if ($("#bt_start").value) request.start = $("#bt_start").value;
    if ($("#bt_end").value) request.end = $("#bt_end").value;
    const tickers = selectedTickers();
    if (tickers.length) request.tickers = tickers; // the universe picked above
    let accepted;
    try {
      accepted = await api("POST", "/v1/backtests", request);
    } catch (error) {
      showProblem(form, error);
      return;
    }
    followBacktest(accepted.id);
  }

  function followBacktest(id) {
    clearTimeout(state.poll);
    state.backtestId = id;
    $("#backtest-results").hidden = true;
    $("#backtest-progress-box").hidden = false;
    $("#backtest-cancel").hidden = false;
    poll(id);
  }

  async function poll(id) {
    if (state.backtestId !== id) return;
    let job;
    try {
      job = await api("GET", `/v1/backtests/${encodeURIComponent(id)}`);
    } catch (error) {
      if (!handleAccessProblem(error)) $("#backtest-error").textContent = error.message;
      return;
    }
    const fraction = job.progress.fraction ?? 0;
    $("#backtest-progress").value = fraction;
    $("#backtest-status").textContent = `${job.status}: ${job.progress.done} of ${job.progress.total ?? "?"} rebalances decided`;
    if (!FINISHED.has(job.status)) {
      state.poll = setTimeout(() => poll(id), 1000);
      return;
    }
    $("#backtest-cancel").hidden = true;
    loadBacktestList();
    if (job.status === "succeeded") await showBacktest(job);
    else $("#backtest-error").textContent = job.error?.detail || `The back-test was ${job.status}.`;
  }

  async function cancelBacktest() {
    if (!state.backtestId) return;
    try {
      await api("DELETE", `/v1/backtests/${encodeURIComponent(state.backtestId)}`);
    } catch (error) {
      if (!handleAccessProblem(error)) $("#backtest-error").textContent = error.message;
    }
  }

  async function showBacktest(job) {
    const equity = await api("GET", `/v1/backtests/${encodeURIComponent(job.id)}/equity?points=1000`);
    const names = Object.keys(equity.equity);
    plot("equity-chart", names.map((name) => ({
      type: "scatter", mode: "lines", name, x: equity.dates, y: equity.equity[name],
    })), { title: { text: "Growth of 1, net of costs (log scale)" }, yaxis: { type: "log" }, legend: { orientation: "h" } });
    plot("drawdown-chart", names.map((name) => ({
      type: "scatter", mode: "lines", name, x: equity.dates, y: equity.drawdown[name].map((d) => 100 * d),
    })), { title: { text: "Drawdown from the running peak" }, yaxis: { title: { text: "%" } }, legend: { orientation: "h" } });
    const strategies = job.metrics.strategies;
    fillTable($("#backtest-table"), Object.entries(strategies).map(([name, m]) => {
      const versus = m.vs_equal_weight;
      return [
        name, pct(m.cagr), pct(m.volatility),
        `${num(m.sharpe, 2)} (${num(m.sharpe_ci?.[0], 2)} to ${num(m.sharpe_ci?.[1], 2)})`,
        pct(m.max_drawdown), num(m.turnover, 2),
        versus ? `${versus.sharpe_difference >= 0 ? "+" : ""}${num(versus.sharpe_difference, 2)} (p = ${num(versus.p_value, 2)})` : "reference",
      ];
    }));
    $("#backtest-verdict").textContent = verdict(strategies);
    const link = $("#backtest-report");
    link.href = job.report;
    link.dataset.url = job.report;
    $("#backtest-results").hidden = false;
  }

  function verdict(strategies) {
    const compared = Object.entries(strategies).filter(([, m]) => m.vs_equal_weight);
    if (!compared.length) return "Only the references ran: nothing to compare with 1/N.";
    const winners = compared.filter(([, m]) => m.vs_equal_weight.sharpe_difference > 0 && m.vs_equal_weight.p_value < 0.05);
    if (winners.length) {
      return `Beats 1/N on Sharpe at the 5% level: ${winners.map(([n]) => n).join(", ")}.`;
    }
    const best = compared.reduce((a, b) => (a[1].vs_equal_weight.p_value <= b[1].vs_equal_weight.p_value ? a : b));
    return `No strategy beats 1/N significantly (lowest p-value ${num(best[1].vs_equal_weight.p_value, 2)}, ${best[0]}).`;
  }

  async function openReport(event) {
    if (!state.key) return; // without keys the link opens as it is
    event.preventDefault();
    try {
      const response = await fetch(event.currentTarget.dataset.url, { headers: { "X-API-Key": state.key } });
      if (!response.ok) throw new ApiProblem(response.status, await response.json());
      const url = URL.createObjectURL(new Blob([await response.text()], { type: "text/html" }));
      window.open(url, "_blank", "noopener");
    } catch (error) {
      if (!handleAccessProblem(error)) $("#backtest-error").textContent = error.message;
    }
  }

  async function loadBacktestList() {
    if (KEYS_REQUIRED && !state.key) return;
    let page;
    try {
      page = await api("GET", "/v1/backtests?limit=10");
    } catch (error) {
      if (!handleAccessProblem(error)) $("#backtest-error").textContent = error.message;
      return;
    }
    $("#backtest-list").replaceChildren(...page.backtests.map((job) => {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = "Show";
      button.disabled = job.status !== "succeeded";
      button.setAttribute("aria-label", `Show back-test ${job.id}`);
      button.addEventListener("click", () => followBacktest(job.id));
      item.append(button, ` ${job.created_at.slice(0, 16).replace("T", " ")}: ${job.strategies.join(", ")} (${job.status})`);
      return item;
    }));
  }

  // ---- models -------------------------------------------------------------------------
  async function loadModels() {
    if (KEYS_REQUIRED && !state.key) return;
    const slot = $("#models-error");
    slot.textContent = "";
    let model;
    try {
      const models = await api("GET", "/v1/models");
      model = models.models.find((m) => m.name === MODEL) || models.models[0];
    } catch (error) {
      if (!handleAccessProblem(error)) slot.textContent = error.message;
      return;
    }
    if (!model) {
      slot.textContent = "No model in the store yet: run `quantserve pipeline`.";
      return;
    }
    const stages = Object.fromEntries(model.stages.map((s) => [s.version, s]));
    // /v1/models carries the serving version's metadata.json (its validation split).
    const serving = model.metadata?.validation_metrics;
    fillTable($("#versions-table"), model.versions.map((version) => {
      const validation = version === model.serving_version ? serving : null;
      return [
        `v${version}`, stages[version]?.stage ?? "–", stages[version]?.changed_at?.slice(0, 10) ?? "–",
        version === model.serving_version ? "serving" : "",
        validation ? `${num(validation.volatility.model.qlike, 3)} / ${num(validation.volatility.trailing_21d.qlike, 3)}` : "–",
        validation ? num(validation.returns.model.ic_mean, 3) : "–",
      ];
    }).reverse());
    await loadEvaluation(model);
  }

  async function loadEvaluation(model) {
    const note = $("#evaluation-note");
    const version = model.serving_version;
    if (version === null || version === undefined) {
      note.textContent = "No version is serving.";
      return;
    }
    let evaluation;
    try {
      evaluation = await api("GET", `/v1/models/${model.name}/versions/${version}/evaluation`);
    } catch (error) {
      $("#evaluation-table").hidden = true;
      if (!handleAccessProblem(error)) note.textContent = error.message;
      return;
    }
    const { volatility, returns } = evaluation.metrics;
    const context = evaluation.context || {};
    note.textContent = `Version ${version}, out of sample ${context.test_start ?? "?"} to ${context.test_end ?? "?"}.`;
    const names = Array.from(new Set([...Object.keys(volatility), ...Object.keys(returns)]));
    names.sort((a, b) => (volatility[a]?.qlike ?? Infinity) - (volatility[b]?.qlike ?? Infinity));
    fillTable($("#evaluation-table"), names.map((name) => [
      name, num(volatility[name]?.qlike, 3), num(returns[name]?.ic_mean, 3), num(returns[name]?.ic_t, 2),
    ]));
  }

  // ---- wiring -------------------------------------------------------------------------
  function setUp() {
    setUpTabs();
    describeProblems();
    $("#strategy-list").replaceChildren(...STRATEGIES.map(([name, text, checked]) => checkbox("strategy", name, text, checked)));
    $("#key-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      state.key = $("#api-key").value.trim() || null;
      $("#api-key-error").textContent = "";
      $("#api-key").removeAttribute("aria-invalid");
      await loadUniverse();
    });
    $("#tickers-all").addEventListener("click", () => $$("#ticker-list input").forEach((i) => { i.checked = true; }));
    $("#tickers-none").addEventListener("click", () => $$("#ticker-list input").forEach((i) => { i.checked = false; }));
    $("#forecast-form").addEventListener("submit", (event) => {
      event.preventDefault();
      busy($("button", event.currentTarget), showForecasts);
    });
    $("#objective").addEventListener("change", showObjectiveFields);
    showObjectiveFields();
    $("#optimize-form").addEventListener("submit", optimize);
    $("#backtest-form").addEventListener("submit", startBacktest);
    $("#backtest-cancel").addEventListener("click", cancelBacktest);
    $("#backtest-report").addEventListener("click", openReport);
    start();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setUp);
  else setUp();
})();
