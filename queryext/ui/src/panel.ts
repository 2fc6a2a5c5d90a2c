// A query panel: editor, Graph and Table tabs, their settings, errors and warnings. Its state is
// what the URL holds in Prometheus's classic format (g<i>.expr, g<i>.tab, ...).

import type { EditorView } from '@codemirror/view';
import type uPlot from 'uplot';
import { APIError, formatLabels, get, Histogram, QueryData } from './api';
import { newEditor } from './editor';
import { drawGraph } from './graph';
import { formatDuration, formatTime, parseDuration, parseTime } from './time';

export interface PanelState {
  expr: string;
  tab: 0 | 1; // 0 graph, 1 table, as in the classic UI
  range: number; // seconds
  end: number | null; // seconds; null: now
  step: number | null; // seconds; null: automatic
  stacked: boolean;
}

export const defaultState = (): PanelState => ({ expr: '', tab: 0, range: 3600, end: null, step: null, stacked: false });

// decodePanels reads the panels from a query string in the classic UI's format; the keys of
// Prometheus 3's UI (tab=graph|table, display_mode, res_step) are read as well.
export function decodePanels(search: string): PanelState[] {
  const p = new URLSearchParams(search);
  const out: PanelState[] = [];
  for (let i = 0; p.has(`g${i}.expr`); i++) {
    const g = (k: string) => p.get(`g${i}.${k}`);
    const s = defaultState();
    s.expr = g('expr') ?? '';
    const tab = g('tab');
    if (tab === '1' || tab === 'table') s.tab = 1;
    s.range = parseDuration(g('range_input') ?? '') ?? s.range;
    for (const k of ['end_input', 'moment_input']) {
      const v = g(k);
      if (v) {
        try {
          s.end = parseTime(v);
        } catch {
          // An unreadable time means now, as in Prometheus's UI.
        }
      }
    }
    const step = parseFloat(g('step_input') ?? g('res_step') ?? '');
    if (step > 0) s.step = step;
    s.stacked = g('stacked') === '1' || g('display_mode') === 'stacked';
    out.push(s);
  }
  return out;
}

export function encodePanels(panels: PanelState[]): string {
  const p = new URLSearchParams();
  panels.forEach((s, i) => {
    const a = (k: string, v: string) => p.append(`g${i}.${k}`, v);
    a('expr', s.expr);
    a('tab', String(s.tab));
    a('stacked', s.stacked ? '1' : '0');
    a('range_input', formatDuration(s.range));
    if (s.end !== null) {
      a('end_input', formatTime(s.end));
      a('moment_input', formatTime(s.end));
    }
    if (s.step !== null) a('step_input', String(s.step));
  });
  return p.toString();
}

const el = <K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: (Node | string)[]) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children);
  return e;
};

const rangeSteps = [60, 300, 900, 1800, 3600, 7200, 21600, 43200, 86400, 172800, 604800, 1209600, 2419200, 7776000, 31536000];

export class Panel {
  readonly root: HTMLElement;
  private editor: EditorView;
  private messages = el('div', { class: 'messages' });
  private stats = el('span', { class: 'stats' });
  private graphBox = el('div', { class: 'graph' });
  private tableBox = el('div', { class: 'table-box' });
  private rangeInput = el('input', { class: 'range-input', size: '6', title: 'Range' });
  private endInput = el('input', { class: 'end-input', size: '19', placeholder: 'End time (now)', title: 'End time, UTC' });
  private stepInput = el('input', { class: 'step-input', size: '8', placeholder: 'Res. (s)', title: 'Resolution in seconds; empty: automatic' });
  private stackedInput = el('input', { type: 'checkbox', class: 'stacked-input' });
  private momentInput = el('input', { class: 'moment-input', size: '19', placeholder: 'Evaluation time (now)', title: 'Evaluation time, UTC' });
  private plot: uPlot | null = null;
  private abort: AbortController | null = null;

  constructor(
    private state: PanelState,
    private onChange: () => void,
    onRemove: () => void,
  ) {
    const editorBox = el('div', { class: 'editor' });
    this.editor = newEditor(editorBox, state.expr, () => this.execute());
    const execute = el('button', { class: 'execute' }, 'Execute');
    execute.onclick = () => this.execute();
    const remove = el('button', { class: 'remove', title: 'Remove this panel' }, '✕');
    remove.onclick = onRemove;

    const tabGraph = el('button', { class: 'tab tab-graph' }, 'Graph');
    const tabTable = el('button', { class: 'tab tab-table' }, 'Table');
    tabGraph.onclick = () => this.setTab(0);
    tabTable.onclick = () => this.setTab(1);

    const minus = el('button', { title: 'Shorter range' }, '−');
    const plus = el('button', { title: 'Longer range' }, '+');
    minus.onclick = () => this.stepRange(-1);
    plus.onclick = () => this.stepRange(1);
    for (const i of [this.rangeInput, this.endInput, this.stepInput, this.momentInput]) {
      i.onchange = () => this.readInputs() && this.execute();
    }
    this.stackedInput.onchange = () => this.readInputs() && this.execute();

    const graphControls = el('div', { class: 'controls graph-controls' },
      minus, this.rangeInput, plus, this.endInput, this.stepInput,
      el('label', {}, this.stackedInput, ' stacked'));
    const tableControls = el('div', { class: 'controls table-controls' }, this.momentInput);

    this.root = el('section', { class: 'panel' },
      el('div', { class: 'query-row' }, editorBox, execute, remove),
      this.messages,
      el('div', { class: 'tabs' }, tabGraph, tabTable, this.stats),
      graphControls, tableControls, this.graphBox, this.tableBox);
    this.writeInputs();
    this.showTab();
  }

  get current(): PanelState {
    return this.state;
  }

  private writeInputs() {
    this.rangeInput.value = formatDuration(this.state.range);
    this.endInput.value = this.state.end === null ? '' : formatTime(this.state.end);
    this.momentInput.value = this.endInput.value;
    this.stepInput.value = this.state.step === null ? '' : String(this.state.step);
    this.stackedInput.checked = this.state.stacked;
  }

  // readInputs takes the settings from the inputs; on an unreadable one it shows why and
  // returns false.
  private readInputs(): boolean {
    const s = this.state;
    try {
      const range = parseDuration(this.rangeInput.value);
      if (range === null) throw new Error(`range: cannot parse "${this.rangeInput.value}" (use e.g. 1h, 30m, 2d)`);
      const timeText = s.tab === 0 ? this.endInput.value : this.momentInput.value;
      const end = parseTime(timeText);
      let step: number | null = null;
      if (this.stepInput.value.trim() !== '') {
        step = parseFloat(this.stepInput.value);
        if (!(step > 0)) throw new Error(`resolution: "${this.stepInput.value}" is not a positive number of seconds`);
      }
      Object.assign(s, { range, end, step, stacked: this.stackedInput.checked });
    } catch (e) {
      this.showMessages([(e as Error).message], []);
      return false;
    }
    this.writeInputs();
    this.onChange();
    return true;
  }

  private stepRange(dir: number) {
    const r = this.state.range;
    const next = dir < 0 ? [...rangeSteps].reverse().find((x) => x < r) : rangeSteps.find((x) => x > r);
    if (next) {
      this.state.range = next;
      this.writeInputs();
      this.onChange();
      this.execute();
    }
  }

  private setTab(tab: 0 | 1) {
    this.state.tab = tab;
    this.showTab();
    this.onChange();
    this.execute();
  }

  private showTab() {
    this.root.classList.toggle('show-graph', this.state.tab === 0);
    this.root.classList.toggle('show-table', this.state.tab === 1);
  }

  private showMessages(errors: string[], warnings: string[], infos: string[] = []) {
    this.messages.replaceChildren(
      ...errors.map((m) => el('div', { class: 'error' }, m)),
      ...warnings.map((m) => el('div', { class: 'warning' }, 'Warning: ' + m)),
      ...infos.map((m) => el('div', { class: 'info' }, 'Info: ' + m)),
    );
  }

  // execute runs the panel's query (a range query for the graph, an instant one for the table)
  // and shows the answer, or the API's error as it was returned.
  async execute() {
    this.state.expr = this.editor.state.doc.toString();
    this.onChange();
    if (this.state.expr.trim() === '') {
      this.showMessages([], []);
      return;
    }
    this.abort?.abort();
    const abort = (this.abort = new AbortController());
    const s = this.state;
    const end = s.end ?? Date.now() / 1000;
    const started = performance.now();
    this.stats.textContent = 'Loading…';
    try {
      if (s.tab === 0) {
        const start = end - s.range;
        const step = s.step ?? Math.max(Math.floor(s.range / 250), 1);
        const r = await get<QueryData>('query_range', { query: s.expr, start: String(start), end: String(end), step: String(step) }, abort.signal);
        if (abort.signal.aborted) return;
        this.showMessages([], r.warnings, r.infos);
        this.plot?.destroy();
        this.plot = null;
        if (r.data.resultType !== 'matrix') throw new APIError(`unexpected result type ${r.data.resultType} of a range query`, 'page', 0);
        const { plot, note } = drawGraph(this.graphBox, { series: r.data.result, start, end, step, stacked: s.stacked });
        this.plot = plot;
        if (note) this.messages.append(el('div', { class: 'info' }, note));
        this.stats.textContent = `${r.data.result.length} series, step ${formatDuration(step)}, ${Math.round(performance.now() - started)} ms`;
        this.root.dataset.series = String(r.data.result.length);
      } else {
        const params: Record<string, string> = { query: s.expr };
        if (s.end !== null) params.time = String(s.end);
        const r = await get<QueryData>('query', params, abort.signal);
        if (abort.signal.aborted) return;
        this.showMessages([], r.warnings, r.infos);
        this.tableBox.replaceChildren(renderTable(r.data));
        const n = r.data.resultType === 'vector' || r.data.resultType === 'matrix' ? r.data.result.length : 1;
        this.stats.textContent = `${n} result${n === 1 ? '' : 's'}, ${Math.round(performance.now() - started)} ms`;
        this.root.dataset.series = String(n);
      }
      this.root.dataset.state = 'done';
    } catch (e) {
      if ((e as Error).name === 'AbortError') return;
      const err = e as APIError;
      this.showMessages([err.errorType && err.errorType !== 'http' && err.errorType !== 'network' ? `Error (${err.errorType}): ${err.message}` : `Error: ${err.message}`], []);
      this.stats.textContent = '';
      if (s.tab === 0) {
        this.plot?.destroy();
        this.plot = null;
        this.graphBox.replaceChildren();
      } else {
        this.tableBox.replaceChildren();
      }
      this.root.dataset.state = 'error';
    }
  }

  focus() {
    this.editor.focus();
  }

  destroy() {
    this.abort?.abort();
    this.plot?.destroy();
    this.editor.destroy();
  }
}

function formatHistogram(h: Histogram): HTMLElement {
  const buckets = (h.buckets ?? []).map(([rule, lo, hi, c]) => {
    // The API's boundary rules: 0 open left, 1 open right, 2 open both, 3 closed both.
    const open = rule === 0 || rule === 2 ? '(' : '[';
    const close = rule === 0 || rule === 3 ? ']' : ')';
    return `${open}${lo}, ${hi}${close}: ${c}`;
  });
  return el('div', { class: 'histogram' },
    el('div', {}, `count: ${h.count}, sum: ${h.sum}`),
    el('div', { class: 'buckets' }, buckets.join('\n')));
}

// renderTable shows an instant query's answer: one row per series (vector, matrix), or the scalar
// or string with its time.
export function renderTable(d: QueryData): HTMLElement {
  const table = el('table', { class: 'result' });
  const row = (...cells: (Node | string)[]) => table.append(el('tr', {}, ...cells.map((c) => el('td', {}, c))));
  switch (d.resultType) {
    case 'vector':
      for (const s of d.result) {
        row(el('span', { class: 'labels' }, formatLabels(s.metric)), s.histogram ? formatHistogram(s.histogram[1]) : el('span', { class: 'value' }, s.value![1]));
      }
      break;
    case 'matrix':
      for (const s of d.result) {
        const lines = [
          ...(s.values ?? []).map(([t, v]) => `${v} @${t}`),
          ...(s.histograms ?? []).map(([t, h]) => `count ${h.count}, sum ${h.sum} @${t}`),
        ];
        row(el('span', { class: 'labels' }, formatLabels(s.metric)), el('span', { class: 'value' }, lines.join('\n')));
      }
      break;
    case 'scalar':
      row('scalar', el('span', { class: 'value' }, d.result[1]));
      break;
    case 'string':
      row('string', el('span', { class: 'value' }, d.result[1]));
      break;
  }
  if (table.rows.length === 0) return el('div', { class: 'empty' }, 'Empty query result');
  return table;
}
