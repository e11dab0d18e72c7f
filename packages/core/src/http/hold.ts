/** The part of Node's `ServerResponse` that `hold` needs. */
export interface Closable {
  readonly destroyed?: boolean;
  once(event: 'close', listener: () => void): unknown;
  off(event: 'close', listener: () => void): unknown;
}

/**
 * Holds a request admitted by a leaky bucket for its place in the queue. Resolves `true` when the
 * wait is over, `false` as soon as the response closes first (the client went away): then the
 * request must not go downstream.
 */
export function hold(ms: number, response: Closable): Promise<boolean> {
  if (response.destroyed) return Promise.resolve(false);
  return new Promise((resolve) => {
    const closed = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      response.off('close', closed);
      resolve(response.destroyed !== true);
    }, ms);
    response.once('close', closed);
  });
}
