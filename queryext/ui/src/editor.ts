// The PromQL editor: CodeMirror 6 with Prometheus's own PromQL language support
// (@prometheus-io/codemirror-promql), which completes metric names, label names and values and
// functions from our API (/api/v1/labels, /api/v1/label/<name>/values, /api/v1/metadata,
// /api/v1/series) and lints the expression as it is typed.

import { EditorState, Prec } from '@codemirror/state';
import { EditorView, keymap, placeholder, highlightSpecialChars, drawSelection } from '@codemirror/view';
import { defaultKeymap, history, historyKeymap, insertNewlineAndIndent } from '@codemirror/commands';
import { bracketMatching, HighlightStyle, syntaxHighlighting, indentOnInput } from '@codemirror/language';
import { autocompletion, closeBrackets, closeBracketsKeymap } from '@codemirror/autocomplete';
import { lintKeymap } from '@codemirror/lint';
import { tags } from '@lezer/highlight';
import { PromQLExtension } from '@prometheus-io/codemirror-promql';
import { apiBase } from './api';

const highlight = HighlightStyle.define([
  { tag: tags.number, color: '#09885a' },
  { tag: tags.string, color: '#a31515' },
  { tag: tags.keyword, color: '#008080', fontWeight: 'bold' },
  { tag: tags.function(tags.variableName), color: '#008080' },
  { tag: tags.labelName, color: '#800000' },
  { tag: tags.operator, color: '#7a3e9d' },
  { tag: tags.operatorKeyword, color: '#7a3e9d', fontWeight: 'bold' },
  { tag: tags.modifier, color: '#7a3e9d', fontWeight: 'bold' },
  { tag: tags.logicOperator, color: '#7a3e9d', fontWeight: 'bold' },
  { tag: tags.comment, color: '#888', fontStyle: 'italic' },
  { tag: tags.invalid, color: 'red' },
]);

// One completion source for every editor of the page: codemirror-promql caches what it fetched.
let promql: PromQLExtension | null = null;

function promqlExtension(): PromQLExtension {
  if (!promql) {
    const url = window.location.origin + apiBase().replace(/\/$/, '');
    promql = new PromQLExtension().setComplete({
      // GET: every one of these endpoints accepts it, and our /api/v1/metadata only GET.
      remote: { url, httpMethod: 'GET', cache: { maxAge: 60_000 } },
      maxMetricsMetadata: 10000,
    });
  }
  return promql;
}

// newEditor puts an editor into parent. Enter runs onExecute (as in Prometheus's UI); Shift+Enter
// inserts a new line.
export function newEditor(parent: HTMLElement, doc: string, onExecute: () => void): EditorView {
  const run = () => {
    onExecute();
    return true;
  };
  return new EditorView({
    parent,
    state: EditorState.create({
      doc,
      extensions: [
        highlightSpecialChars(),
        history(),
        drawSelection(),
        indentOnInput(),
        bracketMatching(),
        closeBrackets(),
        autocompletion(),
        syntaxHighlighting(highlight),
        placeholder('Expression (press Shift+Enter for newlines)'),
        EditorView.lineWrapping,
        promqlExtension().asExtension(),
        // autocompletion() binds its own keys (Enter accepts an open completion) at the highest
        // precedence, so Enter executes only when no completion is open; it comes before
        // defaultKeymap's Enter (new line).
        Prec.highest(keymap.of([{ key: 'Shift-Enter', run: insertNewlineAndIndent }])),
        keymap.of([{ key: 'Enter', run }, ...closeBracketsKeymap, ...defaultKeymap, ...historyKeymap, ...lintKeymap]),
      ],
    }),
  });
}
