/** The results table, as plain text for the terminal (and pasteable as Markdown). */

/** One line of the table. `ratio` is null where the figure is not a ratio; `met` null for a figure with no goal. */
export interface Row {
  id: string;
  what: string;
  product: string;
  baseline: string;
  ratio: number | null;
  goal: string;
  met: boolean | null;
  note: string;
}

/** A Markdown table of `rows`. */
export function formatTable(rows: readonly Row[]): string {
  const header = ['', 'measure', 'Expose server', 'baseline', 'ratio', 'goal', 'met', 'notes'];
  const lines = rows.map((r) => [r.id, r.what, r.product, r.baseline, r.ratio === null ? '' : r.ratio.toFixed(2), r.goal, r.met === null ? '' : r.met ? 'yes' : 'NO', r.note]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const format = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [format(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...lines.map(format)].join('\n');
}
