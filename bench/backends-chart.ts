// The rolling-restart chart, as hand-written SVG (no dependency; the storm chart's helpers): one row
// per run (reshuffling on, off), a panel for watches and one for short requests, each apiserver's
// share over time as a line of its colour (solid: counted by the apiserver itself; dotted: the
// proxy's metrics), the band of ±10% around a third, and each apiserver's restart (SIGTERM to
// ready) shaded.
import type { ShareKind } from './backends-analysis.js';
import type { BackendsDocument } from './backends-report.js';
import { esc, n, niceMax } from './storm-chart.js';

const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd', '#8c564b'];

export interface SharesPanel {
  readonly title: string;
  readonly solid: ShareKind;
  readonly dotted: ShareKind;
}

export interface SharesRow {
  readonly label: string;
  readonly series: readonly { readonly t: number; readonly shares: Readonly<Record<ShareKind, readonly (number | null)[]>> }[];
  readonly restarts: readonly { readonly apiserver: number; readonly from: number; readonly to: number }[];
  readonly durationSeconds: number;
}

export interface SharesChart {
  readonly title: string;
  readonly subtitle: string;
  readonly apiservers: number;
  readonly panels: readonly SharesPanel[];
  readonly rows: readonly SharesRow[];
}

export function sharesChart(doc: BackendsDocument): SharesChart {
  const o = doc.options;
  return {
    title: `Share of each apiserver through a rolling restart (${doc.apiservers.length} apiservers behind one proxy)`,
    subtitle: `${o.rate} short requests/s and ${o.watchers} forwarded watches through the proxy; each apiserver SIGTERMed, started, ready, then ${o.pauseSeconds} s pause. ` +
      `Commit ${doc.source.commit}, ${doc.date}; a shared ${doc.machine.cores}-core machine.\n` +
      `Solid: counted by the apiservers (open podtemplates WATCHes; podtemplates GET+LIST over 3 s). Dotted: the proxy's metrics (long requests in flight incl. its cache's watches; all answers over 3 s).`,
    apiservers: doc.apiservers.length,
    panels: [
      { title: 'watches (long-running)', solid: 'watches', dotted: 'proxyWatches' },
      { title: 'short requests', solid: 'short', dotted: 'proxyShort' },
    ],
    rows: doc.restart.map((r) => ({
      label: r.run.reshuffle === 'on' ? `reshuffling on, max ages ${o.maxAgeSeconds} s` : 'reshuffling off, max ages 0',
      series: r.analysis.series,
      restarts: r.run.restarts.map((e) => ({ apiserver: e.apiserver, from: (e.stopAt - r.run.from) / 1000, to: (e.readyAt - r.run.from) / 1000 })),
      durationSeconds: (r.run.to - r.run.from) / 1000,
    })),
  };
}

export function renderSharesChart(c: SharesChart): string {
  const W = 620;
  const H = 230;
  const M = { l: 44, r: 14, t: 26, b: 34 };
  const labelW = 120;
  const top = 96;
  const width = labelW + c.panels.length * W + 10;
  const height = top + c.rows.length * H + 10;
  const dur = Math.max(10, ...c.rows.map((r) => r.durationSeconds));
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="${width}" height="${height}" fill="#fff"/>`);
  out.push(`<text x="10" y="20" font-size="15" font-weight="bold">${esc(c.title)}</text>`);
  c.subtitle.split('\n').forEach((line, k) => out.push(`<text x="10" y="${36 + k * 13}" fill="#444">${esc(line)}</text>`));
  let lx = 10;
  for (let i = 0; i < c.apiservers; i++) {
    const color = COLORS[i % COLORS.length];
    out.push(`<line x1="${lx}" y1="77" x2="${lx + 16}" y2="77" stroke="${color}" stroke-width="2"/>`);
    out.push(`<text x="${lx + 20}" y="81">apiserver a${i}</text>`);
    lx += 100;
  }
  out.push(`<rect x="${lx}" y="71" width="14" height="10" fill="#d62728" fill-opacity="0.15"/><text x="${lx + 18}" y="81">restart (SIGTERM → ready)</text>`);
  lx += 170;
  out.push(`<rect x="${lx}" y="71" width="14" height="10" fill="#888" fill-opacity="0.18"/><text x="${lx + 18}" y="81">a third ±10%</text>`);
  c.rows.forEach((row, ri) => {
    const y0 = top + ri * H;
    row.label.split(', ').forEach((part, k) => out.push(`<text x="10" y="${y0 + H / 2 + k * 14}" font-weight="bold">${esc(part)}</text>`));
    c.panels.forEach((p, pi) => {
      const x0 = labelW + pi * W;
      const pw = W - M.l - M.r;
      const ph = H - M.t - M.b;
      const px = x0 + M.l;
      const py = y0 + M.t;
      const X = (t: number) => px + (Math.max(0, Math.min(t, dur)) / dur) * pw;
      const Y = (v: number) => py + ph - v * ph;
      out.push(`<text x="${px}" y="${y0 + 16}" font-weight="bold">${esc(p.title)}</text>`);
      out.push(`<rect x="${px}" y="${py}" width="${pw}" height="${ph}" fill="none" stroke="#ccc"/>`);
      out.push(`<rect x="${px}" y="${n(Y(1.1 / 3))}" width="${pw}" height="${n(Y(0.9 / 3) - Y(1.1 / 3))}" fill="#888" fill-opacity="0.18"/>`);
      for (const v of [0, 0.25, 0.5, 0.75, 1]) {
        out.push(`<line x1="${px}" y1="${n(Y(v))}" x2="${px + pw}" y2="${n(Y(v))}" stroke="#eee"/>`);
        out.push(`<text x="${px - 4}" y="${n(Y(v) + 4)}" text-anchor="end">${v * 100}%</text>`);
      }
      const xStep = niceMax(dur / 10);
      for (let t = 0; t <= dur + 1e-9; t += xStep) out.push(`<text x="${n(X(t))}" y="${py + ph + 14}" text-anchor="middle">${n(t)}</text>`);
      out.push(`<text x="${px + pw / 2}" y="${py + ph + 28}" text-anchor="middle" fill="#444">seconds since the load began</text>`);
      for (const r of row.restarts) {
        out.push(`<rect x="${n(X(r.from))}" y="${py}" width="${n(Math.max(1, X(r.to) - X(r.from)))}" height="${ph}" fill="#d62728" fill-opacity="0.15"/>`);
        out.push(`<text x="${n(X(r.from) + 2)}" y="${py + 11}" fill="#a00">a${r.apiserver}</text>`);
      }
      for (let i = 0; i < c.apiservers; i++) {
        const color = COLORS[i % COLORS.length];
        for (const [kind, dash, w] of [[p.dotted, ' stroke-dasharray="2 2"', 1], [p.solid, '', 1.6]] as const) {
          let run: string[] = [];
          const flush = () => {
            if (run.length > 1) out.push(`<polyline points="${run.join(' ')}" fill="none" stroke="${color}" stroke-width="${w}"${dash}/>`);
            run = [];
          };
          for (const s of row.series) {
            const v = s.shares[kind][i];
            if (v === null || v === undefined) {
              flush();
              continue;
            }
            run.push(`${n(X(s.t))},${n(Y(v))}`);
          }
          flush();
        }
      }
    });
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
