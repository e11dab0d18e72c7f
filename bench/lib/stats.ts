export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export interface Summary {
  median: number;
  min: number;
  max: number;
  /** (max - min) / median: how much the rounds disagree. */
  spread: number;
}

export function summarize(values: readonly number[]): Summary {
  const m = median(values);
  const min = Math.min(...values);
  const max = Math.max(...values);
  return { median: m, min, max, spread: (max - min) / m };
}

/** 7_512_345 -> '7.51M', 812_000 -> '812k'. */
export function formatRate(opsPerSecond: number): string {
  if (!Number.isFinite(opsPerSecond)) return 'n/a';
  if (opsPerSecond >= 1e6) return `${(opsPerSecond / 1e6).toFixed(2)}M`;
  if (opsPerSecond >= 1e3) return `${(opsPerSecond / 1e3).toFixed(0)}k`;
  return opsPerSecond.toFixed(0);
}

export function formatRatio(ratio: number): string {
  return Number.isFinite(ratio) ? `${ratio.toFixed(2)}x` : 'n/a';
}

export function formatBytes(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
  if (bytes >= 10 * 1024) return `${(bytes / 1024).toFixed(0)} KiB`;
  return `${Math.round(bytes)} B`;
}

export const percent = (fraction: number): string => `${(fraction * 100).toFixed(0)}%`;
