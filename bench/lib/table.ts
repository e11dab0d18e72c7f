/**
 * A plain-text table. `align` has one letter per column, `l` or `r`; by default the first column is
 * left-aligned and the rest (numbers) right-aligned.
 */
export function table(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  align = `l${'r'.repeat(header.length - 1)}`,
): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, c) => (align[c] === 'l' ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!)))
      .join('  ')
      .trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(header), rule, ...rows.map(line)].join('\n');
}
