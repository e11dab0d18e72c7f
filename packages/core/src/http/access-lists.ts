import { openDecision } from '../decision.js';
import { configError } from '../errors.js';
import { MAX_LIMIT, resolvePolicy } from '../policy.js';
import type { Decision, PolicySet, ResolvedPolicy } from '../types.js';
import { WARNINGS, type Warner } from '../warnings.js';
import { MAX_ADDRESS_LENGTH, readAddress } from './ip-address.js';
import { firstOverlap, type IpRange, isPrivateAddress, parseRange, RangeSet } from './ip-ranges.js';
import { defaultKey } from './keys.js';
import type { RequestView } from './request-view.js';
import { type Step, andThen as then } from './step.js';

/**
 * One entry of `allow` or `deny`: an IPv4 or IPv6 address or CIDR range (`'203.0.113.7'`,
 * `'10.0.0.0/8'`, `'2001:db8::/48'`), matched against the client address the framework trusts (the
 * one `byIp()` counts), or a predicate of the framework's request.
 */
export type AccessEntry<Req> = string | ((req: Req) => boolean | Promise<boolean>);

/** What the lists say of a request: refuse it, let it through uncounted, or nothing (count it). */
export type Verdict = 'deny' | 'allow' | undefined;

/** The range lists' verdicts by client address, per limiter: clients come back. */
const MAX_REMEMBERED = 4096;
const NONE = 0;
const ALLOW = 1;
const DENY = 2;

/**
 * The policy an allowed request's decision shows: no limit applies to it (the largest limit a
 * header could state, all of it remaining). It never reaches a store. Built from a resolved policy,
 * so it has every field a policy has.
 */
const ALLOW_LIST_POLICY: ResolvedPolicy = Object.freeze({
  ...resolvePolicy({ algorithm: 'fixed-window', limit: 1, window: '1s' }),
  name: 'allow-list',
  limit: MAX_LIMIT,
  burst: MAX_LIMIT,
  id: 'allow-list',
});

/** One list, validated: its ranges merged for lookup, its predicates in order. */
interface List<Req> {
  readonly ranges: RangeSet | undefined;
  readonly predicates: readonly ((req: Req) => boolean | Promise<boolean>)[];
  /** Each entry's range, by index (`undefined` for a predicate): for the overlap warning. */
  readonly entries: readonly (IpRange | undefined)[];
}

function resolveList<Req>(value: unknown, option: 'allow' | 'deny'): List<Req> | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value)) {
    throw configError(
      option,
      "an array of addresses, CIDR ranges and functions, e.g. `['10.0.0.0/8', '2001:db8::/48']`",
      value,
      typeof value === 'string' || typeof value === 'function' ? 'Wrap the entry in an array.' : '',
    );
  }
  const entries: (IpRange | undefined)[] = [];
  const predicates: ((req: Req) => boolean | Promise<boolean>)[] = [];
  value.forEach((entry: unknown, i) => {
    if (typeof entry === 'function') {
      predicates.push(entry as (req: Req) => boolean | Promise<boolean>);
      entries.push(undefined);
      return;
    }
    const range = typeof entry === 'string' ? parseRange(entry) : undefined;
    if (typeof range !== 'object') {
      throw configError(
        `${option}[${i}]`,
        "an IPv4 or IPv6 address or CIDR range ('203.0.113.7', '10.0.0.0/8', '2001:db8::/48') or a function `(req) => boolean`",
        entry,
        range ?? '',
      );
    }
    entries.push(range);
  });
  const ranges = entries.filter((r): r is IpRange => r !== undefined);
  return { ranges: ranges.length === 0 ? undefined : new RangeSet(ranges), predicates, entries };
}

/**
 * The `allow` and `deny` options of `rateLimit()`, checked per request before anything else: a
 * request the deny list matches is refused (403), whatever the allow list says; one the allow list
 * matches goes through uncounted, with no store call. Ranges are looked up first (a binary search
 * over merged ranges, whatever the list's size), then predicates, in order, the first true one
 * deciding.
 */
export class AccessLists<Req> {
  private readonly allow: List<Req> | undefined;
  private readonly deny: List<Req> | undefined;
  private readonly rangeVerdicts = new Map<string, number>();
  /** An IPv6 address's groups while it is looked up. */
  private readonly scratch: number[] = new Array<number>(8).fill(0);
  private readonly allowedSet: PolicySet;

  /** `undefined` when neither list is given: nothing to check per request. */
  static resolve<Req>(
    allow: unknown,
    deny: unknown,
    warner: Warner,
    limiterName: string,
  ): AccessLists<Req> | undefined {
    const lists = [resolveList<Req>(allow, 'allow'), resolveList<Req>(deny, 'deny')] as const;
    if (lists[0] === undefined && lists[1] === undefined) return undefined;
    return new AccessLists(lists[0], lists[1], warner, limiterName);
  }

  private constructor(
    allow: List<Req> | undefined,
    deny: List<Req> | undefined,
    private readonly warner: Warner,
    private readonly limiterName: string,
  ) {
    this.allow = allow;
    this.deny = deny;
    this.allowedSet = Object.freeze({
      namespace: limiterName,
      policies: Object.freeze([ALLOW_LIST_POLICY]),
      id: `${limiterName}|allow-list`,
      holder: -1,
    });
    const overlap = allow && deny && firstOverlap(allow.entries, deny.entries);
    if (overlap) {
      warner.warn(
        WARNINGS.LIST_OVERLAP,
        `Limiter '${limiterName}': \`allow[${overlap[0]}]\` and \`deny[${overlap[1]}]\` share addresses; the deny list wins, so those addresses are refused. Narrow the deny entry if they are meant to get through.`,
      );
    }
  }

  /** The verdict for a request: synchronous unless a predicate answers with a promise. */
  check(view: RequestView, req: Req): Step<Verdict> {
    const byRange = this.rangeVerdict(view);
    if (byRange === DENY) return 'deny';
    return then(anyTrue(this.deny?.predicates, req), (denied): Step<Verdict> => {
      if (denied) return 'deny';
      if (byRange === ALLOW) return 'allow';
      return then(anyTrue(this.allow?.predicates, req), (allowed) => (allowed ? 'allow' : undefined));
    });
  }

  /** The decision an allowed request carries: not counted, no limit applies (see README). */
  allowed(view: RequestView): Decision {
    return openDecision(defaultKey(view) ?? 'ip:unknown', this.allowedSet, 'allowed');
  }

  /** What the range lists say of the client address (the one byIp() counts: never a raw header). */
  private rangeVerdict(view: RequestView): number {
    const allow = this.allow?.ranges;
    const deny = this.deny?.ranges;
    const ip = view.ip;
    if ((allow === undefined && deny === undefined) || !ip || ip.length > MAX_ADDRESS_LENGTH) return NONE;
    let verdict = this.rangeVerdicts.get(ip);
    if (verdict === undefined) {
      const address = readAddress(ip, this.scratch);
      verdict = NONE;
      if (address !== undefined) {
        if (deny?.has(address)) verdict = DENY;
        else if (allow?.has(address)) verdict = ALLOW;
        if (verdict !== NONE) this.checkSetup(view, ip, address, verdict);
      }
      if (this.rangeVerdicts.size >= MAX_REMEMBERED) this.rangeVerdicts.clear();
      this.rangeVerdicts.set(ip, verdict);
    }
    return verdict;
  }

  /** The proxy mistakes that make a range list match the wrong clients, told once each. */
  private checkSetup(view: RequestView, ip: string, address: number | number[], verdict: number): void {
    const list = verdict === DENY ? 'deny' : 'allow';
    if (!view.trustProxy && isPrivateAddress(address)) {
      this.warner.warn(
        WARNINGS.LIST_PRIVATE_ADDRESS,
        `Limiter '${this.limiterName}': a request from ${JSON.stringify(ip)}, a private address, matched the ${list} list while the app trusts no proxy. Behind a proxy or load balancer every client arrives from its private address, so the ${list} list would match them all. Trust the proxy (Express: app.set('trust proxy', 1); Koa: app.proxy = true and app.maxIpsCount = 1), or if clients connect directly, turn this warning off with validate: { ${WARNINGS.LIST_PRIVATE_ADDRESS}: false }.`,
      );
    }
    if (verdict === ALLOW && view.trustAnyProxy === true && view.header('x-forwarded-for') !== undefined) {
      this.warner.warn(
        WARNINGS.PERMISSIVE_TRUST_PROXY,
        `Limiter '${this.limiterName}': the app trusts every X-Forwarded-For hop, so a client can claim an address on the allow list and go uncounted. Trust only your proxies: Express app.set('trust proxy', 1); Koa app.maxIpsCount = 1.`,
      );
    }
  }
}

/** Whether any predicate says true for `req`, asking them in order and stopping at the first. */
function anyTrue<Req>(
  predicates: readonly ((req: Req) => boolean | Promise<boolean>)[] | undefined,
  req: Req,
  from = 0,
): Step<boolean> {
  if (predicates === undefined) return false;
  for (let i = from; i < predicates.length; i++) {
    const answer = predicates[i]!(req);
    if (typeof (answer as PromiseLike<boolean> | null)?.then === 'function') {
      return then(answer, (yes) => yes || anyTrue(predicates, req, i + 1));
    }
    if (answer) return true;
  }
  return false;
}
