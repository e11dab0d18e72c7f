/** A waiting call: higher `priority` first, then first come first served (`order`). */
export interface Waiter {
  priority: number;
  order: number;
}

/** A sorted array: the queues are short (bounded by `maxQueue`) and read from the front. */
export class WaitQueue<T extends Waiter> {
  private readonly items: T[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): T | undefined {
    return this.items[0];
  }

  shift(): T | undefined {
    return this.items.shift();
  }

  push(item: T): void {
    let lo = 0;
    let hi = this.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const other = this.items[mid]!;
      if (other.priority > item.priority || (other.priority === item.priority && other.order < item.order)) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    this.items.splice(lo, 0, item);
  }

  remove(item: T): boolean {
    const at = this.items.indexOf(item);
    if (at < 0) return false;
    this.items.splice(at, 1);
    return true;
  }
}
