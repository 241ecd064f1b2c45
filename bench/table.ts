/** One benchmark table: every row a measurement, with its anchor and the ratio when there is one. */
export interface Row {
  name: string;
  value: number;
  unit: string;
  /** the same measurement on the anchor (kernel bridge, C forwarder, C switch) */
  anchor?: number;
  anchorName?: string;
  /** value / anchor (or as `note` says for latencies) */
  ratio?: number;
  note?: string;
}

const fmt = (v: number | undefined, digits = 2): string => (v === undefined ? '' : Number.isInteger(v) && v > 1000 ? String(v) : v.toFixed(digits));

export function renderTable(rows: Row[]): string {
  const out: string[][] = [['benchmark', 'usernet', 'unit', 'anchor', 'anchor value', 'ratio', 'note']];
  for (const r of rows) out.push([r.name, fmt(r.value), r.unit, r.anchorName ?? '', fmt(r.anchor), r.ratio === undefined ? '' : `${r.ratio.toFixed(2)}×`, r.note ?? '']);
  const w = out[0].map((_, i) => Math.max(...out.map((r) => r[i].length)));
  const line = (r: string[]) => '| ' + r.map((c, i) => c.padEnd(w[i])).join(' | ') + ' |';
  return [line(out[0]), '|' + w.map((n) => '-'.repeat(n + 2)).join('|') + '|', ...out.slice(1).map(line)].join('\n') + '\n';
}
