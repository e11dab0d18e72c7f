import type { RequestView } from './request-view.js';

/** The parts of a `node:http` `IncomingMessage` the view reads. */
export interface NodeRequestLike {
  method?: string | undefined;
  url?: string | undefined;
  headers: Record<string, string | string[] | undefined>;
  socket: { remoteAddress?: string | undefined };
}

/** The part of a `node:http` `ServerResponse` the view reads. */
export interface NodeResponseLike {
  readonly headersSent: boolean;
}

/**
 * The request view of a plain `node:http` request, for servers without an adapter:
 * `limit.decide(new NodeRequestView(req, res), req)`. The client address is the socket's and no
 * proxy is trusted: behind a proxy, write a view whose `ip` is the address your proxy vouches for
 * (tollgate never reads `X-Forwarded-For` itself). A class, so that making one per request costs
 * one small object.
 */
export class NodeRequestView implements RequestView {
  constructor(
    private readonly req: NodeRequestLike,
    private readonly res?: NodeResponseLike,
  ) {}
  get method(): string {
    return this.req.method ?? 'GET';
  }
  get path(): string {
    const url = this.req.url ?? '/';
    const query = url.indexOf('?');
    return query === -1 ? url : url.slice(0, query);
  }
  header(name: string): string | undefined {
    const value = this.req.headers[name];
    return Array.isArray(value) ? value.join(', ') : value;
  }
  get ip(): string | undefined {
    return this.req.socket.remoteAddress;
  }
  get trustProxy(): boolean {
    return false;
  }
  headersSent(): boolean {
    return this.res?.headersSent === true;
  }
}
