/**
 * Per-second rows of a few numbers over the last `length` seconds, in one fixed array: the row of a
 * new second is cleared when time reaches it, so nothing needs a timer and memory never grows.
 */
export class SecondRing {
  readonly data: Float64Array;
  /** The newest second (epoch seconds) with a row; rows older than `length` seconds are gone. */
  private head = Number.NEGATIVE_INFINITY;
  /** `offset(head)`, kept: `row` runs for every decision. */
  private headOffset = 0;

  constructor(
    readonly columns: number,
    readonly length = 60,
  ) {
    this.data = new Float64Array(columns * length);
  }

  /**
   * The offset in `data` of the row of `second`, after clearing the rows skipped since the last
   * call. A second before the newest (a wall clock stepped back) counts in the newest row.
   */
  row(second: number): number {
    if (second > this.head) {
      const skipped = Math.min(this.length, second - this.head);
      for (let s = second - skipped + 1; s <= second; s++) {
        this.data.fill(0, this.offset(s), this.offset(s) + this.columns);
      }
      this.head = second;
      this.headOffset = this.offset(second);
    }
    return this.headOffset;
  }

  /** The value of `column` over the `seconds` rows ending at `second` (summed or the maximum). */
  over(column: number, second: number, seconds: number, max = false): number {
    this.row(second);
    let total = 0;
    for (let s = this.head - Math.min(seconds, this.length) + 1; s <= this.head; s++) {
      const value = this.data[this.offset(s) + column]!;
      total = max ? Math.max(total, value) : total + value;
    }
    return total;
  }

  /** The rows of the last `length` seconds ending at `second`, oldest first. */
  rows(second: number): number[][] {
    this.row(second);
    const rows: number[][] = [];
    for (let s = this.head - this.length + 1; s <= this.head; s++) {
      const offset = this.offset(s);
      rows.push(Array.from(this.data.subarray(offset, offset + this.columns)));
    }
    return rows;
  }

  private offset(second: number): number {
    return (((second % this.length) + this.length) % this.length) * this.columns;
  }
}
