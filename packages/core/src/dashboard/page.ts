import { createHash } from 'node:crypto';

/**
 * The dashboard page: one HTML document with its CSS and script inline, shipped in this package as
 * strings (no CDN, no asset route, no build step at run time). The server embeds no data in it:
 * the script opens `events` next to the page (Server-Sent Events) and draws every snapshot with
 * `textContent` and SVG attributes only, so no name, label or error message is ever parsed as HTML.
 * The script avoids backticks and `${`, so that it can sit in this template literal as it is.
 */

const STYLE = `
:root { --bg: #f6f7f9; --card: #fff; --ink: #1c2430; --muted: #667085; --line: #e4e7ec;
  --allowed: #2e9e5b; --limited: #e5484d; --shadow_limited: #8e4ec6; --banned: #7a1f2b;
  --store_error: #f5a524; --fallback: #3e63dd; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  background: var(--bg); color: var(--ink); }
header { display: flex; align-items: baseline; gap: 12px; padding: 14px 24px; background: #101828; color: #fff; }
header h1 { margin: 0; font-size: 18px; letter-spacing: .02em; }
header .sub { color: #98a2b3; font-size: 13px; }
#conn { margin-left: auto; font-size: 13px; color: #98a2b3; }
#conn::before { content: ""; display: inline-block; width: 8px; height: 8px; border-radius: 50%;
  margin-right: 6px; background: #98a2b3; }
#conn.live::before { background: #47cd89; }
#conn.down::before { background: #f04438; }
main { padding: 18px 24px 28px; display: grid; gap: 16px; max-width: 1280px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 14px 16px; }
h2 { margin: 0 0 10px; font-size: 14px; font-weight: 600; }
h2 small { font-weight: 400; color: var(--muted); margin-left: 6px; }
.cards { display: grid; grid-template-columns: repeat(6, minmax(0, 1fr)); gap: 10px; }
.card { border: 1px solid var(--line); border-left: 4px solid var(--c); border-radius: 8px; padding: 8px 10px; background: var(--card); }
.card .name { color: var(--muted); font-size: 12px; }
.card .rate { font-size: 22px; font-weight: 650; font-variant-numeric: tabular-nums; }
.card .rate small { font-size: 12px; font-weight: 400; color: var(--muted); }
.card .more { font-size: 12px; color: var(--muted); font-variant-numeric: tabular-nums; }
#chart { width: 100%; height: 170px; display: block; }
.legend { display: flex; flex-wrap: wrap; gap: 14px; font-size: 12px; color: var(--muted); margin-top: 6px; }
.legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 5px; vertical-align: -1px; }
.two { display: grid; grid-template-columns: 3fr 2fr; gap: 16px; }
table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: 12px; color: var(--muted); font-weight: 500; }
td.num, th.num { text-align: right; white-space: nowrap; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; background: #f2f4f7; padding: 1px 5px; border-radius: 4px; }
.badge { display: inline-block; font-size: 12px; padding: 1px 8px; border-radius: 10px; background: #ecfdf3; color: #067647; }
.badge.failing { background: #fef3f2; color: #b42318; }
.badge.fallback { background: #eef4ff; color: #3538cd; }
.err { color: #b42318; font-size: 12px; word-break: break-word; }
.policy { margin: 2px 0 8px; font-size: 13px; min-width: 200px; }
.policy .head { display: flex; justify-content: space-between; gap: 10px; margin-bottom: 3px; }
.bar { height: 6px; background: #eaecf0; border-radius: 3px; overflow: hidden; }
.bar span { display: block; height: 100%; background: var(--allowed); }
.bar span.hot { background: var(--store_error); }
.bar span.full { background: var(--limited); }
.muted { color: var(--muted); }
.empty { color: var(--muted); font-size: 13px; padding: 6px 0; }
@media (max-width: 900px) { .cards { grid-template-columns: repeat(3, 1fr); } .two { grid-template-columns: 1fr; } }
`;

const SCRIPT = String.raw`
(function () {
  'use strict';
  var LABELS = { allowed: 'allowed', limited: 'limited', shadow_limited: 'shadow limited', banned: 'banned',
    store_error: 'store error', fallback: 'fallback' };
  var SVG = 'http://www.w3.org/2000/svg';
  var byId = function (id) { return document.getElementById(id); };
  var fmt = new Intl.NumberFormat('en');
  var built = false;

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    for (var name in attrs || {}) {
      // Styles through the CSSOM: the Content-Security-Policy refuses style attributes.
      if (name === 'style') for (var prop in attrs.style) node.style.setProperty(prop, attrs.style[prop]);
      else node.setAttribute(name, attrs[name]);
    }
    if (text !== undefined) node.textContent = String(text);
    return node;
  }
  function sum(list) { var t = 0; for (var i = 0; i < list.length; i++) t += list[i]; return t; }
  function ago(ms) {
    var s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.floor(s / 60) + ' min ago';
    return Math.floor(s / 3600) + ' h ago';
  }
  function duration(ms) {
    if (ms % 86400000 === 0) return ms / 86400000 + 'd';
    if (ms % 3600000 === 0) return ms / 3600000 + 'h';
    if (ms % 60000 === 0) return ms / 60000 + 'm';
    if (ms % 1000 === 0) return ms / 1000 + 's';
    return ms + 'ms';
  }

  function buildCards(results) {
    var cards = byId('cards'), legend = byId('legend');
    results.forEach(function (r) {
      var card = el('div', { class: 'card', 'data-result': r, style: { '--c': 'var(--' + r + ')' } });
      card.appendChild(el('div', { class: 'name' }, LABELS[r] || r));
      var rate = el('div', { class: 'rate' });
      rate.appendChild(el('span', { 'data-rate': r }, '0'));
      rate.appendChild(el('small', {}, ' /s'));
      card.appendChild(rate);
      var more = el('div', { class: 'more' });
      more.appendChild(el('span', { 'data-minute': r }, '0'));
      more.appendChild(document.createTextNode(' in 60 s · '));
      more.appendChild(el('span', { 'data-total': r }, '0'));
      more.appendChild(document.createTextNode(' total'));
      card.appendChild(more);
      cards.appendChild(card);
      var item = el('span');
      item.appendChild(el('i', { style: { background: 'var(--' + r + ')' } }));
      item.appendChild(document.createTextNode(LABELS[r] || r));
      legend.appendChild(item);
    });
  }

  function drawCards(snap) {
    var rows = snap.series, last = rows[rows.length - 2] || [];
    snap.results.forEach(function (r, i) {
      document.querySelector('[data-rate="' + r + '"]').textContent = fmt.format(last[i] || 0);
      document.querySelector('[data-minute="' + r + '"]').textContent =
        fmt.format(sum(rows.map(function (row) { return row[i]; })));
      document.querySelector('[data-total="' + r + '"]').textContent = fmt.format(snap.total[i]);
    });
  }

  function drawChart(snap) {
    var svg = byId('chart'), width = svg.clientWidth || 800, height = 170, pad = 22;
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    svg.setAttribute('viewBox', '0 0 ' + width + ' ' + height);
    var rows = snap.series, top = Math.max(1, Math.max.apply(null, rows.map(sum)));
    var step = (width - 40) / rows.length, scale = (height - pad - 6) / top;
    function line(y, label) {
      var l = document.createElementNS(SVG, 'line');
      l.setAttribute('x1', '40'); l.setAttribute('x2', String(width)); l.setAttribute('y1', String(y)); l.setAttribute('y2', String(y));
      l.setAttribute('stroke', '#e4e7ec');
      svg.appendChild(l);
      var t = document.createElementNS(SVG, 'text');
      t.setAttribute('x', '34'); t.setAttribute('y', String(y + 4)); t.setAttribute('text-anchor', 'end');
      t.setAttribute('font-size', '11'); t.setAttribute('fill', '#667085');
      t.textContent = label;
      svg.appendChild(t);
    }
    line(height - pad, '0');
    line(height - pad - top * scale, fmt.format(top));
    rows.forEach(function (row, x) {
      var y = height - pad;
      row.forEach(function (count, i) {
        if (count <= 0) return;
        var h = count * scale, r = document.createElementNS(SVG, 'rect');
        y -= h;
        r.setAttribute('x', String(40 + x * step + 1)); r.setAttribute('y', String(y));
        r.setAttribute('width', String(Math.max(1, step - 2))); r.setAttribute('height', String(h));
        r.style.fill = 'var(--' + snap.results[i] + ')';
        var title = document.createElementNS(SVG, 'title');
        title.textContent = (rows.length - 1 - x) + ' s ago: ' + count + ' ' + (LABELS[snap.results[i]] || '');
        r.appendChild(title);
        svg.appendChild(r);
      });
    });
    var t = document.createElementNS(SVG, 'text');
    t.setAttribute('x', String(width)); t.setAttribute('y', String(height - 4)); t.setAttribute('text-anchor', 'end');
    t.setAttribute('font-size', '11'); t.setAttribute('fill', '#667085');
    t.textContent = 'now';
    svg.appendChild(t);
    t = t.cloneNode(false);
    t.setAttribute('x', '40'); t.setAttribute('text-anchor', 'start');
    t.textContent = '60 s ago';
    svg.appendChild(t);
  }

  function storeCell(store, now) {
    var cell = el('td');
    if (store.state === 'failing') {
      cell.appendChild(el('span', { class: 'badge failing' }, 'failing ' + ago(now - store.since).replace(' ago', '')));
      if (store.fallback) { cell.appendChild(document.createTextNode(' ')); cell.appendChild(el('span', { class: 'badge fallback' }, 'on fallback store')); }
    } else {
      cell.appendChild(el('span', { class: 'badge' }, 'healthy'));
      if (store.recoveredAt) cell.appendChild(el('div', { class: 'muted' }, 'recovered ' + ago(now - store.recoveredAt) + ' after ' + duration(Math.round(store.lastDownMs)) + ' down'));
    }
    if (store.errors > 0) {
      cell.appendChild(el('div', { class: 'err' }, store.errors + ' store error' + (store.errors === 1 ? '' : 's') +
        ' (' + store.scope + '), last ' + ago(now - store.lastErrorAt) + ': ' + store.lastError));
    }
    return cell;
  }

  function drawLimiters(snap) {
    var body = byId('limiters');
    while (body.firstChild) body.removeChild(body.firstChild);
    if (snap.limiters.length === 0) {
      var row = el('tr'); row.appendChild(el('td', { colspan: '4', class: 'empty' }, 'No decision yet.'));
      body.appendChild(row);
      return;
    }
    snap.limiters.forEach(function (l) {
      var tr = el('tr', { 'data-limiter': l.name });
      var name = el('td'); name.appendChild(el('code', {}, l.name)); tr.appendChild(name);
      var minute = sum(l.lastMinute);
      var counts = el('td', { class: 'num' });
      counts.appendChild(el('div', {}, fmt.format(minute) + ' / min'));
      counts.appendChild(el('div', { class: 'muted' }, fmt.format(l.lastMinute[1] + l.lastMinute[3]) + ' denied'));
      tr.appendChild(counts);
      var policies = el('td');
      if (l.policies.length === 0) policies.appendChild(el('span', { class: 'muted' }, 'policies come with each request'));
      l.policies.forEach(function (p) {
        var line = el('div', { class: 'policy', 'data-policy': p.name,
          title: 'used by the hottest key over the last 10 s; share of decisions this policy limited over 60 s' });
        var head = el('div', { class: 'head' });
        var shadow = p.mode === 'shadow';
        head.appendChild(el('span', {}, p.name + (shadow ? ' (shadow)' : '')));
        head.appendChild(el('span', { class: 'muted' }, Math.round(p.peak * p.limit) + '/' + p.limit + ' per ' +
          (p.calendar ? 'calendar ' + p.calendar : duration(p.windowMs)) + ' · ' + Math.round(p.limitedShare * 100) + (shadow ? '% would be limited' : '% limited')));
        line.appendChild(head);
        var bar = el('div', { class: 'bar' });
        bar.appendChild(el('span', { class: p.peak >= 1 ? 'full' : p.peak >= 0.8 ? 'hot' : '', style: { width: Math.round(p.peak * 100) + '%' } }));
        line.appendChild(bar);
        policies.appendChild(line);
      });
      tr.appendChild(policies);
      tr.appendChild(storeCell(l.store, snap.now));
      body.appendChild(tr);
    });
  }

  function drawKeys(snap) {
    var body = byId('keys');
    while (body.firstChild) body.removeChild(body.firstChild);
    if (snap.topKeys.length === 0) {
      var row = el('tr'); row.appendChild(el('td', { colspan: '4', class: 'empty' }, 'No key denied in the last 10 minutes.'));
      body.appendChild(row);
      return;
    }
    snap.topKeys.forEach(function (k) {
      var tr = el('tr', { 'data-key': k.label });
      var key = el('td'); key.appendChild(el('span', { class: 'muted' }, k.kind + ' ')); key.appendChild(el('code', {}, k.label)); tr.appendChild(key);
      var lim = el('td'); lim.appendChild(el('code', {}, k.limiter)); tr.appendChild(lim);
      var parts = [];
      if (k.limited) parts.push(fmt.format(k.limited) + ' limited');
      if (k.banned) parts.push(fmt.format(k.banned) + ' banned');
      if (k.shadowLimited) parts.push(fmt.format(k.shadowLimited) + ' shadow limited');
      // Past the table's capacity a key inherits the count of the one it replaced: at most that many are others'.
      tr.appendChild(el('td', { class: 'num', title: k.count > k.limited + k.banned + k.shadowLimited ? 'may include up to ' +
        (k.count - k.limited - k.banned - k.shadowLimited) + ' denials of keys it replaced' : '' }, parts.join(', ')));
      tr.appendChild(el('td', { class: 'num muted' }, ago(snap.now - k.lastSeen)));
      body.appendChild(tr);
    });
  }

  function drawUsage(snap) {
    var section = byId('usage');
    if (!snap.usage) { section.hidden = true; return; }
    section.hidden = false;
    var u = snap.usage, body = byId('usage-rows');
    byId('usage-period').textContent = 'last hour, read ' + ago(snap.now - u.at) + (u.error ? ' (last read failed: ' + u.error + ')' : '');
    while (body.firstChild) body.removeChild(body.firstChild);
    u.routes.forEach(function (r) {
      var tr = el('tr', { 'data-route': r.route });
      var route = el('td'); route.appendChild(el('code', {}, r.route)); tr.appendChild(route);
      tr.appendChild(el('td', { class: 'num' }, fmt.format(r.requests)));
      tr.appendChild(el('td', { class: 'num' }, fmt.format(r.limited)));
      body.appendChild(tr);
    });
    if (u.routes.length === 0) {
      var row = el('tr'); row.appendChild(el('td', { colspan: '3', class: 'empty' }, 'No request recorded yet.'));
      body.appendChild(row);
    }
  }

  function draw(snap) {
    if (!built) { buildCards(snap.results); built = true; }
    drawCards(snap);
    drawChart(snap);
    drawLimiters(snap);
    drawKeys(snap);
    drawUsage(snap);
    byId('updated').textContent = new Date(snap.now).toLocaleTimeString();
  }

  var base = location.pathname.replace(/\/?$/, '/');
  var conn = byId('conn');
  var source = new EventSource(base + 'events');
  source.addEventListener('snapshot', function (event) {
    conn.className = 'live';
    conn.firstChild.textContent = 'live';
    draw(JSON.parse(event.data));
  });
  source.addEventListener('error', function () {
    conn.className = 'down';
    conn.firstChild.textContent = 'reconnecting';
  });
})();
`;

const BODY = `
<header><h1>tollgate</h1><span class="sub">rate limiter, live</span><span id="conn"><span>connecting</span> · updated <span id="updated">never</span></span></header>
<main>
<section><h2>Decisions per second <small>by result, last 60 s</small></h2>
<div class="cards" id="cards"></div>
<svg id="chart" role="img" aria-label="decisions per second, last 60 seconds"></svg>
<div class="legend" id="legend"></div></section>
<div class="two">
<section><h2>Limiters <small>policy use by the hottest key (10 s), store health</small></h2>
<table><thead><tr><th>limiter</th><th class="num">decisions</th><th>policies</th><th>store</th></tr></thead><tbody id="limiters"></tbody></table></section>
<section><h2>Most-denied keys <small>keys shown as HMAC labels, never in clear</small></h2>
<table><thead><tr><th>key</th><th>limiter</th><th class="num">denials</th><th class="num">last</th></tr></thead><tbody id="keys"></tbody></table></section>
</div>
<section id="usage" hidden><h2>Usage by route <small id="usage-period"></small></h2>
<table><thead><tr><th>route</th><th class="num">requests</th><th class="num">limited</th></tr></thead><tbody id="usage-rows"></tbody></table></section>
</main>`;

// Inline, so that the browser asks the server for no /favicon.ico.
const ICON = `data:image/svg+xml,${encodeURIComponent('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#101828"/><path d="M3 12V6h10v6M3 8h10" stroke="#47cd89" stroke-width="1.6" fill="none"/></svg>')}`;

const sha256 = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

/** The page and the headers it is served with; built once per dashboard. */
export interface Page {
  readonly html: string;
  readonly headers: Readonly<Record<string, string>>;
}

export function buildPage(): Page {
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>tollgate dashboard</title>
<link rel="icon" href="${ICON}">
<style>${STYLE}</style></head>
<body>${BODY}
<script>${SCRIPT}</script></body></html>
`;
  return {
    html,
    headers: {
      'Content-Type': 'text/html; charset=utf-8',
      'Cache-Control': 'no-store',
      // Only this page's own inline style and script run, and it talks to its own origin only:
      // no CDN can be reached even by mistake, and injected markup could run nothing.
      'Content-Security-Policy': `default-src 'none'; style-src ${sha256(STYLE)}; script-src ${sha256(SCRIPT)}; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
      'X-Frame-Options': 'DENY',
    },
  };
}
