// The restart-storm benchmark's chart, as hand-written SVG (no dependency): one panel per run and
// storm, answers per second seen by the kubelets (200 green, 429 red, other failures grey, as bars
// side by side) on the left axis, the apiserver's in-flight read-only requests (its own per-second
// watermark) as a blue line on the right axis with its --max-requests-inflight as a dashed line, and
// markers (apiserver stopped, ready, everyone synced).

export interface PanelSecond {
  /** Whole seconds since the panel's start. */
  readonly t: number;
  readonly ok: number;
  readonly r429: number;
  readonly other: number;
}

export interface ChartPanel {
  readonly title: string;
  readonly seconds: readonly PanelSecond[];
  /** Apiserver in-flight read-only samples: seconds since the panel's start, value. */
  readonly inflight: readonly { readonly t: number; readonly v: number }[];
  readonly markers: readonly { readonly t: number; readonly label: string }[];
  readonly durationSeconds: number;
}

export interface Chart {
  readonly title: string;
  readonly subtitle: string;
  /** Rows (runs) × columns (storms); a missing panel leaves its cell empty. */
  readonly rows: readonly (readonly (ChartPanel | undefined)[])[];
  readonly rowLabels: readonly string[];
  readonly limit: number;
}

export const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
export const n = (v: number): string => (Math.round(v * 10) / 10).toString();

/** A "nice" upper bound for an axis (1, 2, 5 × 10^k). */
export function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function ticks(max: number, count = 4): number[] {
  const step = max / count;
  return Array.from({ length: count + 1 }, (_, i) => i * step);
}

export function renderChart(c: Chart): string {
  const W = 560;
  const H = 210;
  const M = { l: 52, r: 48, t: 26, b: 34 };
  const labelW = 110;
  const cols = Math.max(1, ...c.rows.map((r) => r.length));
  const width = labelW + cols * W + 10;
  const top = 84;
  const height = top + c.rows.length * H + 10;
  const panels = c.rows.flat().filter((p): p is ChartPanel => p !== undefined);
  const yMax = niceMax(Math.max(1, ...panels.flatMap((p) => p.seconds.map((s) => Math.max(s.ok, s.r429, s.other)))));
  const iMax = niceMax(Math.max(c.limit * 1.1, ...panels.flatMap((p) => p.inflight.map((s) => s.v))));
  const colDur = Array.from({ length: cols }, (_, j) => Math.max(5, ...c.rows.map((r) => r[j]?.durationSeconds ?? 0)));
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="${width}" height="${height}" fill="#fff"/>`);
  out.push(`<text x="10" y="20" font-size="15" font-weight="bold">${esc(c.title)}</text>`);
  c.subtitle.split('\n').forEach((line, k) => out.push(`<text x="10" y="${36 + k * 13}" fill="#444">${esc(line)}</text>`));
  // Legend.
  const lg = [
    ['#2e9d3a', 'rect', '200 / s (LIST + WATCH)'],
    ['#d62728', 'rect', '429 / s'],
    ['#999', 'rect', 'other failures / s'],
    ['#1f5fbf', 'line', 'apiserver in-flight read-only (right axis, per-second peak)'],
    ['#d62728', 'dash', `--max-requests-inflight = ${c.limit}`],
  ] as const;
  let lx = 10;
  for (const [color, kind, label] of lg) {
    if (kind === 'rect') out.push(`<rect x="${lx}" y="62" width="10" height="10" fill="${color}"/>`);
    else out.push(`<line x1="${lx}" y1="67" x2="${lx + 14}" y2="67" stroke="${color}" stroke-width="2"${kind === 'dash' ? ' stroke-dasharray="4 3"' : ''}/>`);
    out.push(`<text x="${lx + 18}" y="71">${esc(label)}</text>`);
    lx += 28 + label.length * 6;
  }
  c.rows.forEach((row, i) => {
    const y0 = top + i * H;
    (c.rowLabels[i] ?? '').split(', ').forEach((part, k) => out.push(`<text x="10" y="${y0 + H / 2 + k * 14}" font-weight="bold">${esc(part)}</text>`));
    row.forEach((p, j) => {
      if (!p) return;
      const x0 = labelW + j * W;
      const pw = W - M.l - M.r;
      const ph = H - M.t - M.b;
      const px = x0 + M.l;
      const py = y0 + M.t;
      const dur = colDur[j] ?? 5;
      const X = (t: number) => px + (Math.min(t, dur) / dur) * pw;
      const Y = (v: number) => py + ph - (v / yMax) * ph;
      const YI = (v: number) => py + ph - (v / iMax) * ph;
      out.push(`<text x="${px}" y="${y0 + 16}" font-weight="bold">${esc(p.title)}</text>`);
      out.push(`<rect x="${px}" y="${py}" width="${pw}" height="${ph}" fill="none" stroke="#ccc"/>`);
      for (const v of ticks(yMax)) {
        out.push(`<line x1="${px}" y1="${n(Y(v))}" x2="${px + pw}" y2="${n(Y(v))}" stroke="#eee"/>`);
        out.push(`<text x="${px - 4}" y="${n(Y(v) + 4)}" text-anchor="end">${n(v)}</text>`);
      }
      for (const v of ticks(iMax)) out.push(`<text x="${px + pw + 4}" y="${n(YI(v) + 4)}" fill="#1f5fbf">${n(v)}</text>`);
      const xStep = niceMax(dur / 8);
      for (let t = 0; t <= dur + 1e-9; t += xStep) out.push(`<text x="${n(X(t))}" y="${py + ph + 14}" text-anchor="middle">${n(t)}</text>`);
      out.push(`<text x="${px + pw / 2}" y="${py + ph + 28}" text-anchor="middle" fill="#444">seconds since the storm began</text>`);
      const slot = pw / dur;
      const bw = Math.max(0.6, slot / 3 - 0.3);
      for (const s of p.seconds) {
        if (s.t < 0 || s.t >= dur) continue;
        const bx = X(s.t);
        const bars: [number, string][] = [[s.ok, '#2e9d3a'], [s.r429, '#d62728'], [s.other, '#999']];
        bars.forEach(([v, color], k) => {
          if (v <= 0) return;
          out.push(`<rect x="${n(bx + k * (slot / 3))}" y="${n(Y(v))}" width="${n(bw)}" height="${n(py + ph - Y(v))}" fill="${color}"><title>${n(s.t)} s: ${v}</title></rect>`);
        });
      }
      out.push(`<line x1="${px}" y1="${n(YI(c.limit))}" x2="${px + pw}" y2="${n(YI(c.limit))}" stroke="#d62728" stroke-width="1" stroke-dasharray="4 3"/>`);
      // One polyline per stretch of samples: a gap (the apiserver down) breaks the line.
      let run: string[] = [];
      let prevT = Number.NEGATIVE_INFINITY;
      const flush = () => {
        if (run.length > 1) out.push(`<polyline points="${run.join(' ')}" fill="none" stroke="#1f5fbf" stroke-width="1.3"/>`);
        else if (run.length === 1) out.push(`<circle cx="${run[0]?.split(',')[0]}" cy="${run[0]?.split(',')[1]}" r="1.5" fill="#1f5fbf"/>`);
        run = [];
      };
      for (const s of p.inflight) {
        if (s.t < 0 || s.t > dur) continue;
        if (s.t - prevT > 1.6) flush();
        run.push(`${n(X(s.t))},${n(YI(s.v))}`);
        prevT = s.t;
      }
      flush();
      p.markers.forEach((m, k) => {
        if (m.t < 0 || m.t > dur) return;
        out.push(`<line x1="${n(X(m.t))}" y1="${py}" x2="${n(X(m.t))}" y2="${py + ph}" stroke="#555" stroke-dasharray="2 2"/>`);
        out.push(`<text x="${n(X(m.t) + 3)}" y="${py + 11 + k * 12}" fill="#555">${esc(m.label)}</text>`);
      });
    });
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
