// Gatehouse Manager front end: plain JS, no build step. Every call goes to a #[tauri::command]
// in src-gui/src/commands.rs, which runs one CLI command on the shared connection.
// Errors come back as {kind, message}: nopassword | down | login | unavailable | failed.
"use strict";

const $ = (sel) => document.querySelector(sel);

// ------------------------------------------------------------------ calls and progress

let pending = 0;
let progressTimer = null;

function showProgress(delta) {
  pending += delta;
  if (pending > 0 && !progressTimer && $("#progress").hidden) {
    // Only show the bar for calls that take a noticeable time.
    progressTimer = setTimeout(() => { progressTimer = null; if (pending > 0) $("#progress").hidden = false; }, 150);
  }
  if (pending === 0) {
    clearTimeout(progressTimer);
    progressTimer = null;
    $("#progress").hidden = true;
  }
}

function normError(e) {
  if (e && typeof e === "object" && e.kind) return e;
  return { kind: "failed", message: String(e) };
}

async function call(cmd, args = {}) {
  showProgress(1);
  try {
    const out = await window.__TAURI__.core.invoke(cmd, args);
    connectionOk();
    return out;
  } catch (raw) {
    const e = normError(raw);
    if (e.kind === "down" || e.kind === "login" || e.kind === "nopassword") connectionFailed(e);
    else connectionOk();
    throw e;
  } finally {
    showProgress(-1);
  }
}

// Runs `fn` with `button` disabled and labelled `busyText` meanwhile.
async function busy(button, busyText, fn) {
  const label = button ? button.textContent : "";
  if (button) { button.disabled = true; button.textContent = busyText; }
  try { return await fn(); } finally { if (button) { button.disabled = false; button.textContent = label; } }
}

function notice(id, text, kind = "ok") {
  const el = $(id);
  if (!el) return;
  if (!text) { el.hidden = true; return; }
  el.textContent = text;
  el.className = "notice " + kind;
  el.hidden = false;
}

// Shows a failed call in a view's notice line; connection problems are shown by the banner.
function showError(id, e) {
  if (e.kind === "down" || e.kind === "login" || e.kind === "nopassword") { notice(id, ""); return; }
  notice(id, e.message, e.kind === "unavailable" ? "unavailable" : "error");
}

// ------------------------------------------------------------------ small DOM helpers

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : String(c));
  return el;
}

function show(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "string") return v;
  if (Array.isArray(v)) return "(" + v.map(show).join(", ") + ")";
  return "{" + Object.entries(v).map(([k, x]) => `${k}=${show(x)};`).join("") + "}";
}

function duration(seconds) {
  const s = Number(seconds) || 0;
  const d = Math.floor(s / 86400), hh = Math.floor((s % 86400) / 3600), mm = Math.floor((s % 3600) / 60);
  if (d) return `up ${d} d ${hh} h`;
  if (hh) return `up ${hh} h ${mm} min`;
  return `up ${mm} min ${s % 60} s`;
}

// ------------------------------------------------------------------ connection state

let connState = "unknown";
// Set when the user closes the connect dialog without connecting: it then opens again only on request.
let connectDismissed = false;

function connectionOk() {
  if (connState === "up") return;
  connState = "up";
  $("#banner").hidden = true;
  $("#conn-dot").className = "dot up";
  refreshConnText();
}

function connectionFailed(e) {
  connState = e.kind;
  $("#conn-dot").className = "dot down";
  const banner = $("#banner");
  banner.className = "banner" + (e.kind === "down" ? "" : " login");
  $("#banner-text").textContent = e.kind === "down"
    ? e.message
    : e.kind === "login" ? e.message + ". Check the account name and password." : e.message;
  banner.hidden = false;
  refreshConnText();
  if ((e.kind === "login" || e.kind === "nopassword") && !$("#connect-dialog").open && !connectDismissed) openConnect(e.message);
}

async function refreshConnText() {
  try {
    const info = await window.__TAURI__.core.invoke("connection_info");
    const state = connState === "up" ? "" : connState === "down" ? " — service down" : connState === "unknown" ? "" : " — not logged in";
    $("#conn-text").textContent = `${info.user} @ ${info.server}${state}`;
  } catch (_) { /* the status line is cosmetic */ }
}

async function openConnect(message) {
  const info = await window.__TAURI__.core.invoke("connection_info");
  $("#connect-server").value = info.server;
  $("#connect-user").value = info.user;
  $("#connect-password").value = "";
  $("#connect-remember").checked = info.canSave && !info.fromArgs;
  $("#connect-remember").disabled = !info.canSave;
  const err = $("#connect-error");
  err.textContent = message || "";
  err.hidden = !message;
  const dlg = $("#connect-dialog");
  if (!dlg.open) dlg.showModal();
  (info.server ? $("#connect-password") : $("#connect-server")).focus();
}

$("#connect-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const btn = $("#connect-ok");
  try {
    await busy(btn, "Connecting…", () => call("connect", {
      server: $("#connect-server").value,
      user: $("#connect-user").value,
      password: $("#connect-password").value,
      remember: $("#connect-remember").checked,
    }));
    connectDismissed = false;
    $("#connect-dialog").close();
    connState = "unknown";
    connectionOk();
    refreshConnText();
    views[current].load();
  } catch (e) {
    const err = $("#connect-error");
    err.textContent = e.message;
    err.hidden = false;
    $("#connect-password").select();
  }
});
$("#connect-cancel").addEventListener("click", () => $("#connect-dialog").close());
// Cancel, Esc or the close button: do not pop the dialog up again at the next refresh.
$("#connect-dialog").addEventListener("cancel", () => { connectDismissed = true; });
$("#connect-cancel").addEventListener("click", () => { connectDismissed = true; });
$("#conn-change").addEventListener("click", () => openConnect(""));
$("#banner-connect").addEventListener("click", () => openConnect(""));
$("#banner-retry").addEventListener("click", () => views[current].load());

// A confirmation dialog; resolves to null (cancelled) or {checked}.
function confirmDialog(title, text, okLabel, checkLabel) {
  return new Promise((resolve) => {
    const dlg = $("#confirm-dialog");
    $("#confirm-title").textContent = title;
    $("#confirm-text").textContent = text;
    $("#confirm-ok").textContent = okLabel;
    $("#confirm-extra").hidden = !checkLabel;
    $("#confirm-check").checked = false;
    $("#confirm-check-label").textContent = checkLabel || "";
    const done = (v) => { cleanup(); if (dlg.open) dlg.close(); resolve(v); };
    const onSubmit = (ev) => { ev.preventDefault(); done({ checked: $("#confirm-check").checked }); };
    const onCancel = () => done(null);
    const onClose = () => { cleanup(); resolve(null); };
    function cleanup() {
      $("#confirm-form").removeEventListener("submit", onSubmit);
      $("#confirm-cancel").removeEventListener("click", onCancel);
      dlg.removeEventListener("close", onClose);
    }
    $("#confirm-form").addEventListener("submit", onSubmit);
    $("#confirm-cancel").addEventListener("click", onCancel);
    dlg.addEventListener("close", onClose);
    dlg.showModal();
    $("#confirm-cancel").focus();
  });
}

// ------------------------------------------------------------------ a settings editor

// Renders explicit settings over effective ones: each row edits the explicit value; an empty
// field means "inherit" (sent as `default`, which removes the explicit value).
function settingsEditor(data, onSave) {
  const own = data.settings || {};
  const eff = data.effective || {};
  const keys = [...new Set([...Object.keys(eff), ...Object.keys(own)])].sort();
  const tbody = h("tbody");
  const inputs = new Map();
  for (const k of keys) {
    const explicit = Object.prototype.hasOwnProperty.call(own, k);
    const input = h("input", { value: explicit ? show(own[k]) : "", placeholder: explicit ? "" : show(eff[k]), "aria-label": k });
    inputs.set(k, { input, before: explicit ? show(own[k]) : "" });
    tbody.append(h("tr", {}, h("td", { text: k }), h("td", { class: explicit ? "" : "inherited" }, input)));
  }
  if (!keys.length) tbody.append(h("tr", {}, h("td", { class: "empty", colspan: 2, text: "No settings." })));
  const newKey = h("input", { placeholder: "Setting name", "aria-label": "New setting name" });
  const newVal = h("input", { placeholder: "value", "aria-label": "New setting value" });
  const status = h("span", { class: "saved", role: "status" });
  const save = h("button", { type: "submit", class: "primary", text: "Save settings" });
  const form = h("form", { class: "stack" },
    h("table", { class: "grid settings" }, h("thead", {}, h("tr", {}, h("th", { text: "Setting" }), h("th", { text: "Value (empty: inherited default)" }))), tbody),
    h("div", { class: "inline" }, newKey, newVal),
    h("div", { class: "inline" }, save, status));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const changes = {};
    for (const [k, { input, before }] of inputs) {
      const v = input.value.trim();
      if (v !== before) changes[k] = v === "" ? "default" : v;
    }
    if (newKey.value.trim()) changes[newKey.value.trim()] = newVal.value;
    if (!Object.keys(changes).length) { status.textContent = "Nothing changed."; return; }
    status.textContent = "";
    await busy(save, "Saving…", async () => {
      try { await onSave(changes); status.textContent = "Saved."; } catch (e) { status.textContent = ""; throw e; }
    });
  });
  return form;
}

function aliasEditor(aliases, onSave) {
  const input = h("input", { value: (aliases || []).join(", "), placeholder: "alias1, alias2", "aria-label": "Aliases" });
  input.classList.add("grow");
  const status = h("span", { class: "saved", role: "status" });
  const save = h("button", { type: "submit", text: "Save aliases" });
  const form = h("form", { class: "inline" }, input, save, status);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const list = input.value.split(/[,\s]+/).map((s) => s.trim()).filter(Boolean);
    await busy(save, "Saving…", async () => { await onSave(list); status.textContent = "Saved."; });
  });
  return form;
}

// Keyboard use of a listbox: arrows move, Enter selects.
function listKeys(ul, pick) {
  ul.addEventListener("keydown", (ev) => {
    const items = [...ul.querySelectorAll("li[data-name]")];
    if (!items.length) return;
    let i = items.findIndex((li) => li.classList.contains("selected"));
    if (ev.key === "ArrowDown") i = Math.min(items.length - 1, i + 1);
    else if (ev.key === "ArrowUp") i = Math.max(0, i - 1);
    else if (ev.key === "Home") i = 0;
    else if (ev.key === "End") i = items.length - 1;
    else return;
    ev.preventDefault();
    pick(items[i].dataset.name);
    items[i].scrollIntoView({ block: "nearest" });
  });
}

// ------------------------------------------------------------------ Dashboard

const dashboard = {
  timer: null,
  async load() {
    try {
      const st = await call("server_status");
      $("#dash-service").textContent = "Running";
      $("#dash-service").className = "value up";
      $("#dash-version").textContent = st.Version || "";
      $("#dash-domain").textContent = st.MainDomain || "—";
      $("#dash-uptime").textContent = st.Uptime ? duration(st.Uptime) : "";
      $("#dash-connections").textContent = st.Connections ?? "—";
      $("#dash-queue").textContent = st.QueueSize ?? "—";
      const tb = $("#dash-listeners tbody");
      tb.replaceChildren();
      for (const [mod, l] of Object.entries(st.Listeners || {})) {
        const socks = l.Sockets && l.Sockets.length ? l.Sockets : [{}];
        socks.forEach((s, i) => tb.append(h("tr", {},
          h("td", { text: i ? "" : mod }), h("td", { text: s.Port || "" }), h("td", { text: s.TLS || "" }),
          h("td", { class: "state-" + (s.State || ""), text: s.State || "" }), h("td", { text: s.Address || "" }),
          h("td", { text: i ? "" : (l.Connections ?? "") }))));
      }
      if (!tb.children.length) tb.append(h("tr", {}, h("td", { class: "empty", colspan: 6, text: "No listeners." })));
    } catch (e) {
      $("#dash-service").textContent = e.kind === "down" ? "Down" : "Unknown";
      $("#dash-service").className = "value down";
      for (const id of ["#dash-connections", "#dash-queue"]) $(id).textContent = "—";
      const why = e.kind === "down" ? "No data while the service is down." : e.message;
      $("#dash-listeners tbody").replaceChildren(h("tr", {}, h("td", { class: "empty", colspan: 6, text: why })));
      $("#dash-problems tbody").replaceChildren();
      return;
    }
    try {
      const recs = await call("recent_problems");
      const tb = $("#dash-problems tbody");
      tb.replaceChildren(...recs.slice().reverse().map(logRow));
      if (!recs.length) tb.append(h("tr", {}, h("td", { class: "empty", colspan: 4, text: "No problems logged today." })));
    } catch (e) {
      $("#dash-problems tbody").replaceChildren(h("tr", {}, h("td", { class: "empty", colspan: 4, text: e.message })));
    }
  },
  enter() { this.load(); this.timer = setInterval(() => this.load(), 5000); },
  leave() { clearInterval(this.timer); },
};
$("#dash-refresh").addEventListener("click", () => dashboard.load());

// ------------------------------------------------------------------ Domains

const domains = {
  list: [],
  selected: null,
  async load() {
    try {
      this.list = await call("list_domains") || [];
      notice("#domains-notice", "");
    } catch (e) { showError("#domains-notice", e); this.list = []; }
    const ul = $("#domain-list");
    ul.replaceChildren(...this.list.map((d, i) => h("li", {
      "data-name": d, role: "option", class: d === this.selected ? "selected" : "",
      onclick: () => this.select(d),
    }, h("span", { text: d }), i === 0 ? h("span", { class: "tag", text: "main" }) : null)));
    if (this.selected && !this.list.includes(this.selected)) this.selected = null;
    if (this.selected) this.select(this.selected);
    else $("#domain-detail").replaceChildren(h("p", { class: "empty", text: this.list.length ? "Select a domain." : "" }));
  },
  async select(d) {
    this.selected = d;
    for (const li of $("#domain-list").children) li.classList.toggle("selected", li.dataset.name === d);
    const pane = $("#domain-detail");
    const isMain = d === this.list[0];
    let settings, aliases;
    try {
      [settings, aliases] = await Promise.all([call("domain_settings", { name: d }), call("domain_aliases", { name: d })]);
    } catch (e) { showError("#domains-notice", e); return; }
    if (this.selected !== d) return;
    const rename = h("input", { value: d, "aria-label": "New domain name", id: "domain-rename-name" });
    const renameBtn = h("button", { type: "submit", text: "Rename" });
    const renameForm = h("form", { class: "inline" }, rename, renameBtn);
    renameForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const to = rename.value.trim();
      if (!to || to === d) return;
      await busy(renameBtn, "Renaming…", async () => {
        try { await call("rename_domain", { old: d, new: to }); this.selected = to; notice("#domains-notice", `Renamed ${d} to ${to}.`); this.load(); }
        catch (e) { showError("#domains-notice", e); }
      });
    });
    const del = h("button", { class: "danger", text: "Delete domain…", disabled: isMain, title: isMain ? "The main domain cannot be deleted" : "" });
    del.addEventListener("click", async () => {
      const ok = await confirmDialog(`Delete ${d}?`, "The domain's settings are removed. A domain that still has accounts is only removed with its accounts.", "Delete", "Also delete all its accounts and their mail");
      if (!ok) return;
      await busy(del, "Deleting…", async () => {
        try { await call("delete_domain", { name: d, force: ok.checked }); this.selected = null; notice("#domains-notice", `Deleted ${d}.`); this.load(); }
        catch (e) { showError("#domains-notice", e); }
      });
    });
    const wrap = (fn) => async (...a) => { try { await fn(...a); notice("#domains-notice", ""); } catch (e) { showError("#domains-notice", e); throw e; } };
    pane.replaceChildren(
      h("h3", { text: d + (isMain ? " (main domain)" : "") }),
      h("div", { class: "section" }, h("h3", { text: "Name" }), h("div", { class: "inline" }, renameForm, del)),
      h("div", { class: "section" }, h("h3", { text: "Aliases" }), aliasEditor(aliases, wrap((list) => call("set_domain_aliases", { name: d, aliases: list })))),
      h("div", { class: "section" }, h("h3", { text: "Settings" }),
        settingsEditor(settings, wrap(async (changes) => { await call("update_domain_settings", { name: d, settings: changes }); this.select(d); }))),
    );
  },
  enter() { this.load(); },
  leave() {},
};
$("#domain-create-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const name = $("#domain-new").value.trim();
  if (!name) return;
  await busy($("#domain-create"), "Creating…", async () => {
    try {
      await call("create_domain", { name });
      $("#domain-new").value = "";
      notice("#domains-notice", `Created ${name}.`);
      domains.selected = name;
      await domains.load();
    } catch (e) { showError("#domains-notice", e); }
  });
});
listKeys($("#domain-list"), (d) => domains.select(d));

// ------------------------------------------------------------------ Accounts

const accounts = {
  domain: null,
  all: {},
  selected: null,
  async load() {
    let list = [];
    try { list = await call("list_domains") || []; } catch (e) { showError("#accounts-notice", e); return; }
    const sel = $("#account-domain");
    if (!this.domain || !list.includes(this.domain)) this.domain = list[0] || null;
    sel.replaceChildren(...list.map((d) => h("option", { value: d, text: d, selected: d === this.domain })));
    await this.loadAccounts();
  },
  async loadAccounts() {
    if (!this.domain) return;
    try { this.all = await call("list_accounts", { domain: this.domain }) || {}; notice("#accounts-notice", ""); }
    catch (e) { showError("#accounts-notice", e); this.all = {}; }
    this.render();
    if (this.selected && this.all[this.selected] !== undefined) this.select(this.selected);
    else { this.selected = null; $("#account-detail").replaceChildren(h("p", { class: "empty", text: "Select an account." })); }
  },
  render() {
    const q = $("#account-search").value.trim().toLowerCase();
    const names = Object.keys(this.all).sort().filter((n) => n.toLowerCase().includes(q));
    $("#account-list").replaceChildren(...names.map((n) => h("li", {
      "data-name": n, role: "option", class: n === this.selected ? "selected" : "", onclick: () => this.select(n),
    }, h("span", { text: n }), h("span", { class: "tag", text: show(this.all[n]) }))));
    if (!names.length) $("#account-list").append(h("li", { class: "empty", text: q ? "No account matches." : "No accounts." }));
  },
  async select(n) {
    const d = this.domain;
    this.selected = n;
    for (const li of $("#account-list").children) li.classList.toggle("selected", li.dataset.name === n);
    let settings, aliases;
    try {
      [settings, aliases] = await Promise.all([call("account_settings", { domain: d, name: n }), call("account_aliases", { domain: d, name: n })]);
    } catch (e) { showError("#accounts-notice", e); return; }
    if (this.selected !== n || this.domain !== d) return;
    const wrap = (fn) => async (...a) => { try { await fn(...a); notice("#accounts-notice", ""); } catch (e) { showError("#accounts-notice", e); throw e; } };
    const pw = h("input", { type: "password", placeholder: "new password", "aria-label": "New password", autocomplete: "new-password", id: "account-password" });
    const pwBtn = h("button", { type: "submit", text: "Set password" });
    const pwStatus = h("span", { class: "saved", role: "status" });
    const pwForm = h("form", { class: "inline" }, pw, pwBtn, pwStatus);
    pwForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (!pw.value) { pw.focus(); return; }
      await busy(pwBtn, "Setting…", async () => {
        try { await call("set_account_password", { domain: d, name: n, password: pw.value }); pw.value = ""; pwStatus.textContent = "Password set."; }
        catch (e) { showError("#accounts-notice", e); }
      });
    });
    const rename = h("input", { value: n, "aria-label": "New account name", id: "account-rename-name" });
    const renameBtn = h("button", { type: "submit", text: "Rename" });
    const renameForm = h("form", { class: "inline" }, rename, renameBtn);
    renameForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const to = rename.value.trim();
      if (!to || to === n) return;
      await busy(renameBtn, "Renaming…", async () => {
        try { await call("rename_account", { domain: d, old: n, new: to }); this.selected = to; notice("#accounts-notice", `Renamed ${n} to ${to}.`); this.loadAccounts(); }
        catch (e) { showError("#accounts-notice", e); }
      });
    });
    const del = h("button", { class: "danger", text: "Delete account…" });
    del.addEventListener("click", async () => {
      const ok = await confirmDialog(`Delete ${n}@${d}?`, "The account and all its mailboxes are removed. This cannot be undone.", "Delete");
      if (!ok) return;
      await busy(del, "Deleting…", async () => {
        try { await call("delete_account", { domain: d, name: n }); this.selected = null; notice("#accounts-notice", `Deleted ${n}@${d}.`); this.loadAccounts(); }
        catch (e) { showError("#accounts-notice", e); }
      });
    });
    $("#account-detail").replaceChildren(
      h("h3", { text: `${n}@${d}` }),
      h("div", { class: "section" }, h("h3", { text: "Name" }), h("div", { class: "inline" }, renameForm, del)),
      h("div", { class: "section" }, h("h3", { text: "Password" }), pwForm),
      h("div", { class: "section" }, h("h3", { text: "Aliases" }), aliasEditor(aliases, wrap((list) => call("set_account_aliases", { domain: d, name: n, aliases: list })))),
      h("div", { class: "section" }, h("h3", { text: "Settings" }),
        settingsEditor(settings, wrap(async (changes) => { await call("update_account_settings", { domain: d, name: n, settings: changes }); this.select(n); }))),
    );
  },
  enter() { this.load(); },
  leave() {},
};
$("#account-domain").addEventListener("change", (ev) => { accounts.domain = ev.target.value; accounts.selected = null; accounts.loadAccounts(); });
$("#account-search").addEventListener("input", () => accounts.render());
$("#account-create-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const name = $("#account-new-name").value.trim();
  if (!name || !accounts.domain) return;
  await busy($("#account-create"), "Creating…", async () => {
    try {
      await call("create_account", { domain: accounts.domain, name, kind: $("#account-new-type").value, password: $("#account-new-password").value });
      $("#account-new-name").value = "";
      $("#account-new-password").value = "";
      notice("#accounts-notice", `Created ${name}@${accounts.domain}.`);
      accounts.selected = name;
      await accounts.loadAccounts();
    } catch (e) { showError("#accounts-notice", e); }
  });
});
listKeys($("#account-list"), (n) => accounts.select(n));

// ------------------------------------------------------------------ Dial-up

const DAYS = ["Every Day", "Mon-Fri", "Sat-Sun", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

const dialup = {
  addRow(r = { Days: "Every Day", When: "08:00-18:00", Pause: "900" }) {
    const days = h("select", { class: "days", "aria-label": "Days" }, ...DAYS.map((d) => h("option", { value: d, text: d, selected: d.toLowerCase() === String(r.Days || "").toLowerCase() })));
    const when = h("input", { class: "when", value: r.When || "", placeholder: "08:00-18:00", "aria-label": "When" });
    const pause = h("input", { class: "pause", value: r.Pause || "", placeholder: "900", inputmode: "numeric", "aria-label": "Pause in seconds" });
    const tr = h("tr", { class: "sched-row" });
    const remove = h("button", { type: "button", class: "small", text: "Remove", "aria-label": "Remove row", onclick: () => { tr.remove(); this.empty(); } });
    tr.append(h("td", {}, days), h("td", {}, when), h("td", {}, pause), h("td", { class: "err" }, remove, h("div", { class: "row-error" })));
    $("#sched-table tbody").append(tr);
    this.empty();
    return tr;
  },
  empty() {
    const tb = $("#sched-table tbody");
    const rows = tb.querySelectorAll("tr.sched-row").length;
    const marker = tb.querySelector("tr.none");
    if (!rows && !marker) tb.append(h("tr", { class: "none" }, h("td", { class: "empty", colspan: 4, text: "No restriction: the server may connect at any time." })));
    if (rows && marker) marker.remove();
  },
  async load() {
    schedStatus("");
    try {
      const rows = await call("get_schedule") || [];
      $("#sched-table tbody").replaceChildren();
      rows.forEach((r) => this.addRow(r));
      this.empty();
      notice("#dialup-notice", "");
    } catch (e) { showError("#dialup-notice", e); }
    // RPOP: show the panel only when the server has the commands.
    try {
      await call("account_rpop", { domain: "", name: "" }).catch((e) => { if (e.kind === "unavailable") throw e; });
      $("#rpop-panel").hidden = false;
      $("#rpop-missing").hidden = true;
    } catch (e) {
      $("#rpop-panel").hidden = true;
      $("#rpop-missing").hidden = e.kind !== "unavailable";
    }
  },
  enter() { this.load(); },
  leave() {},
};
function schedStatus(text, saved) {
  $("#sched-status").textContent = text;
  $("#sched-status").className = saved ? "saved" : "muted";
}
$("#sched-add").addEventListener("click", () => {
  dialup.addRow({ Days: "Every Day", When: "", Pause: "" }).querySelector("input.when").focus();
  schedStatus("Unsaved changes.");
});
$("#sched-form").addEventListener("input", () => schedStatus("Unsaved changes."));
$("#sched-form").addEventListener("change", () => schedStatus("Unsaved changes."));
$("#sched-table").addEventListener("click", (ev) => { if (ev.target.matches("button")) schedStatus("Unsaved changes."); });
$("#sched-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const trs = [...document.querySelectorAll("#sched-table tr.sched-row")];
  for (const tr of trs) { tr.classList.remove("bad"); tr.querySelector(".row-error").textContent = ""; }
  const rows = trs.map((tr) => ({ Days: tr.querySelector(".days").value, When: tr.querySelector(".when").value, Pause: tr.querySelector(".pause").value }));
  schedStatus("");
  await busy($("#sched-save"), "Saving…", async () => {
    try {
      await call("set_schedule", { rows });
      schedStatus("Schedule saved.", true);
      notice("#dialup-notice", "");
    } catch (e) {
      // The server names the faulty row: "element N: ...".
      const m = /^element (\d+): (.*)$/.exec(e.message || "");
      const tr = m && trs[Number(m[1]) - 1];
      if (tr) {
        tr.classList.add("bad");
        tr.querySelector(".row-error").textContent = m[2];
        tr.querySelector("input.when").focus();
        notice("#dialup-notice", "");
      } else showError("#dialup-notice", e);
    }
  });
});
$("#wake-now").addEventListener("click", async () => {
  await busy($("#wake-now"), "Waking up…", async () => {
    try { await call("wake_up_now"); notice("#dialup-notice", "Wake-up started: the server connects now."); }
    catch (e) {
      if (e.kind === "unavailable") notice("#dialup-notice", "Wake up now is not available on this server.", "unavailable");
      else showError("#dialup-notice", e);
    }
  });
});
function splitAccount(v) {
  const at = v.lastIndexOf("@");
  return at < 0 ? { name: v, domain: accounts.domain || "" } : { name: v.slice(0, at), domain: v.slice(at + 1) };
}
$("#rpop-load").addEventListener("click", async () => {
  try { $("#rpop-records").value = show(await call("account_rpop", splitAccount($("#rpop-account").value.trim()))); }
  catch (e) { showError("#dialup-notice", e); }
});
$("#rpop-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    await call("set_account_rpop", { ...splitAccount($("#rpop-account").value.trim()), records: $("#rpop-records").value });
    notice("#dialup-notice", "RPOP records saved.");
  } catch (e) { showError("#dialup-notice", e); }
});

// ------------------------------------------------------------------ Logs

function logRow(r) {
  return h("tr", { class: "lvl-" + r.Level, "data-id": r.Id },
    h("td", { text: (r.Time || "").replace(/^\d{4}-\d\d-\d\d /, "") }), h("td", { text: r.Level }), h("td", { text: r.Tag }), h("td", { text: r.Text }));
}

const MAX_LOG_ROWS = 2000;

const logs = {
  timer: null,
  last: null,
  paused: false,
  busy: false,
  filter() {
    return {
      day: $("#log-day").value || null,
      level: Number($("#log-level").value),
      tag: $("#log-tag").value.trim() || null,
      text: $("#log-text").value.trim() || null,
    };
  },
  live() { return !$("#log-day").value || $("#log-day").value === today(); },
  async load() {
    this.last = null;
    $("#log-table tbody").replaceChildren();
    await this.fetch();
  },
  // Appends the records after the last one shown; pages until the server has no more.
  async fetch() {
    if (this.busy) return;
    this.busy = true;
    try {
      for (;;) {
        const f = { ...this.filter(), after: this.last, limit: 1000 };
        const recs = await call("read_log", { filter: f }) || [];
        notice("#logs-notice", "");
        if (recs.length) this.append(recs);
        if (recs.length < 1000) break;
      }
      const tb = $("#log-table tbody");
      if (!tb.children.length) tb.append(h("tr", { class: "none" }, h("td", { class: "empty", colspan: 4, text: "No records match." })));
    } catch (e) { showError("#logs-notice", e); } finally { this.busy = false; }
  },
  append(recs) {
    const box = $("#log-scroll");
    const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 8;
    const tb = $("#log-table tbody");
    tb.querySelector("tr.none")?.remove();
    tb.append(...recs.map(logRow));
    while (tb.children.length > MAX_LOG_ROWS) tb.firstChild.remove();
    this.last = recs[recs.length - 1].Id;
    if (atBottom) box.scrollTop = box.scrollHeight;
  },
  tick() {
    const on = this.live() && !this.paused;
    $("#log-live").textContent = this.paused ? "paused" : this.live() ? "live" : "earlier day";
    $("#log-live").className = "live" + (on ? "" : " off");
    if (on) this.fetch();
  },
  enter() { this.load(); this.timer = setInterval(() => this.tick(), 1000); this.tick(); },
  leave() { clearInterval(this.timer); },
};
function today() {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}
$("#log-filters").addEventListener("submit", (ev) => { ev.preventDefault(); logs.load(); });
$("#log-level").addEventListener("change", () => logs.load());
$("#log-day").addEventListener("change", () => logs.load());
$("#log-pause").addEventListener("click", () => {
  logs.paused = !logs.paused;
  $("#log-pause").textContent = logs.paused ? "Resume" : "Pause";
  logs.tick();
});

// ------------------------------------------------------------------ Queue

const queue = {
  async load() {
    const thead = $("#queue-table thead"), tbody = $("#queue-table tbody");
    let items;
    try {
      items = await call("list_queue") || [];
      notice("#queue-notice", "");
      $("#queue-retry-all").disabled = false;
    } catch (e) {
      thead.replaceChildren(); tbody.replaceChildren();
      $("#queue-empty").hidden = true;
      $("#queue-table").hidden = true;
      $("#queue-retry-all").disabled = e.kind === "unavailable";
      if (e.kind === "unavailable") notice("#queue-notice", "The queue commands (ListQueue) are not available on this server.", "unavailable");
      else showError("#queue-notice", e);
      return;
    }
    if (!Array.isArray(items)) items = Object.entries(items).map(([id, v]) => ({ Id: id, ...(typeof v === "object" ? v : { Info: v }) }));
    const idKey = (it) => it.Id ?? it.ID ?? it.id ?? "";
    const cols = [...new Set(items.flatMap((it) => Object.keys(it)))];
    $("#queue-table").hidden = !items.length;
    $("#queue-empty").hidden = !!items.length;
    thead.replaceChildren(h("tr", {}, ...cols.map((c) => h("th", { text: c })), h("th", { text: "" })));
    tbody.replaceChildren(...items.map((it) => {
      const id = idKey(it);
      const act = (label, cmd, args, after) => {
        const b = h("button", { class: "small", text: label });
        b.addEventListener("click", async () => {
          if (cmd === "delete_queued_message") {
            const ok = await confirmDialog(`Delete message ${id}?`, "The message is removed from the queue without a delivery report.", "Delete");
            if (!ok) return;
          }
          await busy(b, label + "…", async () => {
            try { await call(cmd, args); notice("#queue-notice", after); this.load(); } catch (e) { showError("#queue-notice", e); }
          });
        });
        return b;
      };
      const held = it.Queue ?? it.HoldQueue;
      return h("tr", {}, ...cols.map((c) => h("td", { text: show(it[c]) })),
        h("td", { class: "inline" },
          act("Retry", "retry_queue", { id: String(id) }, `Retrying ${id}.`),
          held ? act("Release", "release_queue", { name: String(held) }, `Released ${held}.`) : null,
          act("Delete", "delete_queued_message", { id: String(id) }, `Deleted ${id}.`)));
    }));
  },
  enter() { this.load(); },
  leave() {},
};
$("#queue-refresh").addEventListener("click", () => queue.load());
$("#queue-retry-all").addEventListener("click", async () => {
  await busy($("#queue-retry-all"), "Retrying…", async () => {
    try { await call("retry_queue", { id: null }); notice("#queue-notice", "Retrying every waiting message."); queue.load(); }
    catch (e) { showError("#queue-notice", e); }
  });
});

// ------------------------------------------------------------------ navigation

const views = { dashboard, domains, accounts, dialup, logs, queue };
let current = null;

function go(name) {
  if (!views[name] || name === current) return;
  if (current) { views[current].leave(); $("#view-" + current).hidden = true; }
  current = name;
  for (const b of document.querySelectorAll("button.nav")) {
    const on = b.dataset.view === name;
    b.classList.toggle("active", on);
    if (on) b.setAttribute("aria-current", "page"); else b.removeAttribute("aria-current");
  }
  $("#view-" + name).hidden = false;
  views[name].enter();
}

for (const b of document.querySelectorAll("button.nav")) b.addEventListener("click", () => go(b.dataset.view));
document.addEventListener("keydown", (ev) => {
  // Alt+1…6 switch views.
  if (ev.altKey && !ev.ctrlKey && /^[1-6]$/.test(ev.key)) {
    ev.preventDefault();
    const name = Object.keys(views)[Number(ev.key) - 1];
    go(name);
    $("#nav-" + name).focus();
  }
});

go("dashboard");
refreshConnText();
