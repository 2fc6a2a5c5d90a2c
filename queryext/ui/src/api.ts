// The Prometheus HTTP API as the page uses it. Every path is relative to the page's directory, so
// the page works behind a reverse proxy that serves it under a path prefix.

export const apiBase = (): string => {
  const p = window.location.pathname;
  return p.slice(0, p.lastIndexOf('/') + 1);
};

export interface APIResult<T> {
  data: T;
  warnings: string[];
  infos: string[];
}

// APIError carries the API's own error text (and errorType) so that the page shows it as given.
export class APIError extends Error {
  constructor(message: string, readonly errorType: string, readonly status: number) {
    super(message);
  }
}

// get calls an API endpoint and resolves to its data, warnings and infos, or rejects with an
// APIError holding the error the API returned (or the HTTP status and body when the answer is
// not the API's JSON, such as a 503 before the store is ready).
export async function get<T>(path: string, params: Record<string, string> = {}, signal?: AbortSignal): Promise<APIResult<T>> {
  const qs = new URLSearchParams(params).toString();
  const url = apiBase() + 'api/v1/' + path + (qs ? '?' + qs : '');
  let resp: Response;
  try {
    resp = await fetch(url, { signal, headers: { Accept: 'application/json' } });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new APIError('request failed: ' + (e as Error).message, 'network', 0);
  }
  const text = await resp.text();
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    throw new APIError(`HTTP ${resp.status}: ${text.trim() || resp.statusText}`, 'http', resp.status);
  }
  if (body.status !== 'success') {
    throw new APIError(body.error ?? `HTTP ${resp.status}`, body.errorType ?? 'unknown', resp.status);
  }
  return { data: body.data as T, warnings: body.warnings ?? [], infos: body.infos ?? [] };
}

export type Labels = Record<string, string>;
export type FloatPoint = [number, string];
export interface Histogram {
  count: string;
  sum: string;
  buckets?: [number, string, string, string][]; // boundary rule, lower, upper, count
}
export type HistogramPoint = [number, Histogram];

export interface VectorSample { metric: Labels; value?: FloatPoint; histogram?: HistogramPoint }
export interface MatrixSeries { metric: Labels; values?: FloatPoint[]; histograms?: HistogramPoint[] }

export type QueryData =
  | { resultType: 'vector'; result: VectorSample[] }
  | { resultType: 'matrix'; result: MatrixSeries[] }
  | { resultType: 'scalar'; result: FloatPoint }
  | { resultType: 'string'; result: [number, string] };

// formatLabels renders a label set as PromQL writes a series: name{a="b", c="d"}.
export function formatLabels(m: Labels): string {
  const name = m.__name__ ?? '';
  const rest = Object.keys(m)
    .filter((k) => k !== '__name__')
    .sort()
    .map((k) => `${k}=${JSON.stringify(m[k])}`);
  if (rest.length === 0) return name || '{}';
  return `${name}{${rest.join(', ')}}`;
}
