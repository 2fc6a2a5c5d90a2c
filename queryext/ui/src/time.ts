// Durations and times in the formats of Prometheus's classic UI, whose URLs we accept.

const units: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800, y: 31536000 };

// parseDuration reads a Prometheus duration (1h, 30m, 1h30m, 2d, 1w) into seconds, or null.
export function parseDuration(s: string): number | null {
  s = s.trim();
  if (s === '') return null;
  if (/^\d+(\.\d+)?$/.test(s)) return parseFloat(s); // bare seconds
  const re = /(\d+)(ms|s|m|h|d|w|y)/y;
  let total = 0;
  let pos = 0;
  while (pos < s.length) {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (!m) return null;
    total += parseInt(m[1], 10) * units[m[2]];
    pos = re.lastIndex;
  }
  return total > 0 ? total : null;
}

// formatDuration writes seconds as the shortest Prometheus duration (3600 -> 1h, 5400 -> 1h30m).
export function formatDuration(sec: number): string {
  if (sec <= 0) return '0s';
  let ms = Math.round(sec * 1000);
  let out = '';
  for (const [u, f] of [['y', 31536000], ['w', 604800], ['d', 86400], ['h', 3600], ['m', 60], ['s', 1]] as [string, number][]) {
    const n = Math.floor(ms / (f * 1000));
    if (n > 0) {
      out += n + u;
      ms -= n * f * 1000;
    }
  }
  if (ms > 0) out += ms + 'ms';
  return out;
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

// formatTime writes a Unix time (seconds) as the classic UI does in end_input and moment_input:
// "YYYY-MM-DD HH:mm:ss" in UTC.
export function formatTime(sec: number): string {
  const d = new Date(sec * 1000);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}

// parseTime reads "YYYY-MM-DD HH:mm[:ss]" (UTC, the classic UI's format), an RFC 3339 time or a
// Unix time in seconds; empty means now (null). It throws on anything else.
export function parseTime(s: string): number | null {
  s = s.trim();
  if (s === '') return null;
  if (/^\d+(\.\d+)?$/.test(s)) return parseFloat(s);
  const m = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?$/.exec(s);
  if (m) {
    return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], m[6] ? +m[6] : 0) / 1000 + (m[7] ? parseFloat(m[7]) : 0);
  }
  const t = Date.parse(s);
  if (!isNaN(t)) return t / 1000;
  throw new Error(`cannot parse time "${s}": use YYYY-MM-DD HH:mm:ss (UTC), RFC 3339 or Unix seconds`);
}
