// The query page of Metricstor's promql extension: /graph (query panels), /metadata (metric names
// and their metadata), /status (build, runtime and store status, the TSDB status). One bundle;
// the page to show is chosen by the last path segment, so the page works under any path prefix.

import 'uplot/dist/uPlot.min.css';
import './style.css';
import { APIError, get } from './api';
import { decodePanels, defaultState, encodePanels, Panel } from './panel';

const el = <K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: (Node | string)[]) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children);
  return e;
};

const page = () => window.location.pathname.slice(window.location.pathname.lastIndexOf('/') + 1);

function nav(current: string): HTMLElement {
  const link = (href: string, text: string) => el('a', { href, class: href === current ? 'active' : '' }, text);
  return el('nav', {}, el('span', { class: 'brand' }, 'Metricstor'), link('graph', 'Query'), link('metadata', 'Metrics'), link('status', 'Status'));
}

function graphPage(main: HTMLElement) {
  const panels: Panel[] = [];
  const box = el('div', { class: 'panels' });
  const sync = () => {
    const qs = encodePanels(panels.map((p) => p.current));
    window.history.replaceState(null, '', '?' + qs);
  };
  const add = (state = defaultState()) => {
    const p: Panel = new Panel(state, sync, () => {
      panels.splice(panels.indexOf(p), 1);
      p.root.remove();
      p.destroy();
      sync();
    });
    panels.push(p);
    box.append(p.root);
    return p;
  };
  const addButton = el('button', { class: 'add-panel' }, 'Add panel');
  addButton.onclick = () => {
    add().focus();
    sync();
  };
  main.append(box, addButton);
  const states = decodePanels(window.location.search);
  if (states.length === 0) {
    add().focus();
  } else {
    for (const s of states) add(s).execute();
  }
}

async function metricsPage(main: HTMLElement) {
  const filter = el('input', { class: 'filter', placeholder: 'Filter by name or help', size: '40' });
  const status = el('div', { class: 'messages' });
  const table = el('table', { class: 'metrics' });
  main.append(el('h2', {}, 'Metrics'), filter, status, table);
  try {
    const [names, md] = await Promise.all([
      get<string[]>('label/__name__/values'),
      get<Record<string, { type: string; help: string; unit: string }[]>>('metadata'),
    ]);
    const all = [...new Set([...names.data, ...Object.keys(md.data)])].sort();
    const rows = all.map((name) => {
      const m = md.data[name]?.[0];
      const href = 'graph?' + new URLSearchParams({ 'g0.expr': name, 'g0.tab': '1' }).toString();
      const tr = el('tr', {}, el('td', {}, el('a', { href }, name)), el('td', {}, m?.type ?? ''), el('td', {}, m?.unit ?? ''), el('td', {}, m?.help ?? ''));
      return { tr, text: (name + ' ' + (m?.help ?? '')).toLowerCase() };
    });
    table.append(el('tr', {}, el('th', {}, 'Name'), el('th', {}, 'Type'), el('th', {}, 'Unit'), el('th', {}, 'Help')), ...rows.map((r) => r.tr));
    status.replaceChildren(el('div', { class: 'info' }, `${all.length} metric names`));
    filter.oninput = () => {
      const f = filter.value.toLowerCase();
      for (const r of rows) r.tr.hidden = f !== '' && !r.text.includes(f);
    };
  } catch (e) {
    status.replaceChildren(el('div', { class: 'error' }, 'Error: ' + (e as Error).message));
  }
}

// A status section: the API's object as a key/value table, or the error it returned.
async function statusSection(main: HTMLElement, title: string, path: string) {
  const section = el('section', { class: 'status-section' }, el('h2', {}, title));
  main.append(section);
  try {
    const r = await get<Record<string, unknown>>(path);
    const table = el('table', { class: 'kv' });
    for (const [k, v] of Object.entries(r.data)) {
      table.append(el('tr', {}, el('th', {}, k), el('td', {}, typeof v === 'object' ? JSON.stringify(v, null, 1) : String(v))));
    }
    section.append(table);
  } catch (e) {
    const err = e as APIError;
    section.append(el('div', { class: 'error' }, `Error${err.errorType ? ` (${err.errorType})` : ''}: ${err.message}`));
  }
}

async function statusPage(main: HTMLElement) {
  // The store's size: its series and metric names, counted through the API.
  const store = el('section', { class: 'status-section' }, el('h2', {}, 'Store'));
  main.append(store);
  const sizes = el('table', { class: 'kv' });
  store.append(sizes);
  const count = async (label: string, f: () => Promise<string>) => {
    const td = el('td', {}, '…');
    sizes.append(el('tr', {}, el('th', {}, label), td));
    try {
      td.textContent = await f();
    } catch (e) {
      td.textContent = 'Error: ' + (e as Error).message;
      td.className = 'error-text';
    }
  };
  await Promise.all([
    count('Metric names', async () => String((await get<string[]>('label/__name__/values')).data.length)),
    count('Label names', async () => String((await get<string[]>('labels')).data.length)),
    count('Series with a sample in the last 5 minutes', async () => {
      const r = await get<{ resultType: string; result: { value: [number, string] }[] }>('query', { query: 'count({__name__!=""})' });
      return r.data.result.length ? r.data.result[0].value[1] : '0';
    }),
    count('Storage retention', async () => (await get<{ storageRetention: string }>('status/runtimeinfo')).data.storageRetention || 'unlimited'),
  ]);
  await statusSection(main, 'Build information', 'status/buildinfo');
  await statusSection(main, 'Runtime information', 'status/runtimeinfo');
  await tsdbSection(main);
}

interface TSDBStat {
  name: string;
  value: number;
}

interface TSDBStatus {
  headStats: { numSeries: number; numLabelPairs: number; chunkCount: number; minTime: number; maxTime: number };
  seriesCountByMetricName: TSDBStat[];
  labelValueCountByLabelName: TSDBStat[];
  memoryInBytesByLabelName: TSDBStat[];
  seriesCountByLabelValuePair: TSDBStat[];
}

// A head time in milliseconds; an empty head has minTime > maxTime (Prometheus's MaxInt64 and
// MinInt64, which no Date can hold).
const headTime = (ms: number, empty: boolean) => (empty ? 'no samples' : `${new Date(ms).toISOString()} (${ms})`);

// The TSDB status, as Prometheus's /tsdb-status: the head's statistics and the four top-10
// cardinality tables of /api/v1/status/tsdb.
async function tsdbSection(main: HTMLElement) {
  const section = el('section', { class: 'status-section tsdb-status' }, el('h2', {}, 'TSDB status'));
  main.append(section);
  try {
    const st = (await get<TSDBStatus>('status/tsdb')).data;
    const h = st.headStats;
    const empty = h.minTime > h.maxTime;
    const head = el('table', { class: 'kv head-stats' });
    for (const [k, v] of [
      ['Number of series', String(h.numSeries)],
      ['Number of chunks', String(h.chunkCount)],
      ['Number of label pairs', String(h.numLabelPairs)],
      ['Current min time', headTime(h.minTime, empty)],
      ['Current max time', headTime(h.maxTime, empty)],
    ]) {
      head.append(el('tr', {}, el('th', {}, k), el('td', {}, v)));
    }
    section.append(
      el('h3', {}, 'Head stats'),
      el('p', { class: 'hint' }, 'The head: the series the store holds in memory, those appended to within about an hour of the newest sample.'),
      head,
    );
    const stats = (key: keyof Omit<TSDBStatus, 'headStats'>, title: string, what: string) => {
      const table = el('table', { class: 'tsdb-stats', 'data-stat': key }, el('tr', {}, el('th', {}, 'Name'), el('th', {}, what)));
      for (const s of st[key]) table.append(el('tr', {}, el('td', {}, s.name), el('td', {}, String(s.value))));
      if (st[key].length === 0) table.append(el('tr', {}, el('td', { class: 'empty', colspan: '2' }, 'none')));
      section.append(el('h3', {}, title), table);
    };
    stats('seriesCountByMetricName', 'Top 10 series count by metric names', 'Count');
    stats('labelValueCountByLabelName', 'Top 10 label names with value count', 'Count');
    stats('memoryInBytesByLabelName', 'Top 10 label names with high memory usage', 'Bytes');
    stats('seriesCountByLabelValuePair', 'Top 10 series count by label value pairs', 'Count');
  } catch (e) {
    const err = e as APIError;
    section.append(el('div', { class: 'error' }, `Error${err.errorType ? ` (${err.errorType})` : ''}: ${err.message}`));
  }
}

function main() {
  const current = page();
  const mainEl = el('main', {});
  document.body.replaceChildren(nav(current === 'tsdb-status' ? 'status' : current), mainEl);
  switch (current) {
    case 'metadata':
      document.title = 'Metrics - Metricstor';
      void metricsPage(mainEl);
      break;
    case 'status':
    case 'tsdb-status':
      document.title = 'Status - Metricstor';
      void statusPage(mainEl);
      break;
    default:
      document.title = 'Query - Metricstor';
      graphPage(mainEl);
  }
}

main();
