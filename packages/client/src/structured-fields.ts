// An RFC 9651 (Structured Field Values) parser for the three top-level types the RateLimit drafts
// use: List, Dictionary and Item. Zero dependencies is a promise of this package, so it carries its
// own; `structured-fields.test.ts` ties it to the `structured-headers` package on the same inputs.

/** A bare item. Tokens are kept apart from strings: draft-8 names a policy with either. */
export type BareItem = number | string | boolean | Token | Uint8Array | Date;
export type Parameters = Map<string, BareItem>;
export interface Item {
  value: BareItem;
  params: Parameters;
}
export interface InnerList {
  value: Item[];
  params: Parameters;
}
export type Member = Item | InnerList;

export class Token {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

/** Thrown for a field that is not valid; callers treat the field as absent (RFC 9651 §4.2). */
export class FieldSyntaxError extends Error {
  override name = 'FieldSyntaxError';
}

class Parser {
  private i = 0;
  constructor(private readonly s: string) {}

  list(): Member[] {
    const out: Member[] = [];
    this.ows(true);
    while (this.i < this.s.length) {
      out.push(this.member());
      if (!this.next()) break;
    }
    return out;
  }

  dictionary(): Map<string, Member> {
    const out = new Map<string, Member>();
    this.ows(true);
    while (this.i < this.s.length) {
      const key = this.key();
      if (this.s[this.i] === '=') {
        this.i++;
        out.set(key, this.member());
      } else {
        out.set(key, { value: true, params: this.params() });
      }
      if (!this.next()) break;
    }
    return out;
  }

  item(): Item {
    this.ows(true);
    const item = this.singleItem();
    this.ows(true);
    if (this.i !== this.s.length) this.fail('trailing characters');
    return item;
  }

  /** After a member: end of input, or a comma followed by another member. */
  private next(): boolean {
    this.ows(false);
    if (this.i >= this.s.length) return false;
    if (this.s[this.i] !== ',') this.fail('expected a comma');
    this.i++;
    this.ows(false);
    if (this.i >= this.s.length) this.fail('trailing comma');
    return true;
  }

  private member(): Member {
    if (this.s[this.i] !== '(') return this.singleItem();
    this.i++;
    const value: Item[] = [];
    for (;;) {
      while (this.s[this.i] === ' ') this.i++;
      if (this.s[this.i] === ')') {
        this.i++;
        return { value, params: this.params() };
      }
      value.push(this.singleItem());
      const c = this.s[this.i];
      if (c !== ' ' && c !== ')') this.fail('malformed inner list');
    }
  }

  private singleItem(): Item {
    const value = this.bare();
    return { value, params: this.params() };
  }

  private params(): Parameters {
    const params: Parameters = new Map();
    while (this.s[this.i] === ';') {
      this.i++;
      while (this.s[this.i] === ' ') this.i++;
      const key = this.key();
      let value: BareItem = true;
      if (this.s[this.i] === '=') {
        this.i++;
        value = this.bare();
      }
      params.set(key, value);
    }
    return params;
  }

  private key(): string {
    const m = /^[a-z*][a-z0-9_\-.*]*/.exec(this.s.slice(this.i));
    if (!m) this.fail('expected a key');
    this.i += m[0].length;
    return m[0];
  }

  private bare(): BareItem {
    const c = this.s[this.i];
    if (c === undefined) this.fail('expected an item');
    if (c === '-' || (c >= '0' && c <= '9')) return this.number();
    if (c === '"') return this.string();
    if (c === ':') return this.bytes();
    if (c === '?') return this.boolean();
    if (c === '@') {
      this.i++;
      const seconds = this.number();
      if (!Number.isInteger(seconds)) this.fail('a date must be an integer');
      return new Date(seconds * 1000);
    }
    if (c === '%') return this.displayString();
    if (c === '*' || /[A-Za-z]/.test(c)) return this.token();
    return this.fail('unexpected character');
  }

  private number(): number {
    const m = /^-?(\d+)(?:\.(\d+))?/.exec(this.s.slice(this.i));
    if (!m) this.fail('expected a number');
    const [text, int, frac] = m;
    if (frac === undefined ? int!.length > 15 : int!.length > 12 || frac.length > 3) {
      this.fail('number out of range');
    }
    this.i += text.length;
    return Number(text);
  }

  private string(): string {
    let out = '';
    this.i++;
    for (;;) {
      const c = this.s[this.i++];
      if (c === undefined) this.fail('unterminated string');
      if (c === '"') return out;
      if (c === '\\') {
        const e = this.s[this.i++];
        if (e !== '"' && e !== '\\') this.fail('bad escape');
        out += e;
      } else {
        const code = c.charCodeAt(0);
        if (code < 0x20 || code > 0x7e) this.fail('bad string character');
        out += c;
      }
    }
  }

  private displayString(): string {
    if (this.s[this.i + 1] !== '"') this.fail('expected a display string');
    this.i += 2;
    const bytes: number[] = [];
    for (;;) {
      const c = this.s[this.i++];
      if (c === undefined) this.fail('unterminated display string');
      if (c === '"') return new TextDecoder('utf-8', { fatal: true }).decode(new Uint8Array(bytes));
      if (c === '%') {
        const hex = this.s.slice(this.i, this.i + 2);
        if (!/^[0-9a-f]{2}$/.test(hex)) this.fail('bad percent escape');
        bytes.push(Number.parseInt(hex, 16));
        this.i += 2;
      } else {
        bytes.push(c.charCodeAt(0));
      }
    }
  }

  private token(): Token {
    const m = /^[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*/.exec(this.s.slice(this.i));
    this.i += m![0].length;
    return new Token(m![0]);
  }

  private bytes(): Uint8Array {
    const end = this.s.indexOf(':', this.i + 1);
    if (end < 0) this.fail('unterminated byte sequence');
    const b64 = this.s.slice(this.i + 1, end);
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) this.fail('bad base64');
    this.i = end + 1;
    return Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
  }

  private boolean(): boolean {
    const c = this.s[this.i + 1];
    if (c !== '0' && c !== '1') this.fail('bad boolean');
    this.i += 2;
    return c === '1';
  }

  /** Optional whitespace; leading spaces only (`sp`), or spaces and tabs between members. */
  private ows(sp: boolean): void {
    while (this.s[this.i] === ' ' || (!sp && this.s[this.i] === '\t')) this.i++;
  }

  private fail(why: string): never {
    throw new FieldSyntaxError(`${why} at ${this.i} in ${JSON.stringify(this.s)}`);
  }
}

export const parseList = (value: string): Member[] => new Parser(value).list();
export const parseDictionary = (value: string): Map<string, Member> => new Parser(value).dictionary();
export const parseItem = (value: string): Item => new Parser(value).item();

/** A list, or `undefined` when the field is absent or malformed. */
export function tryList(value: string | null): Member[] | undefined {
  if (value === null) return undefined;
  try {
    return parseList(value);
  } catch {
    return undefined;
  }
}

export function tryDictionary(value: string | null): Map<string, Member> | undefined {
  if (value === null) return undefined;
  try {
    return parseDictionary(value);
  } catch {
    return undefined;
  }
}

export function tryItem(value: string | null): Item | undefined {
  if (value === null) return undefined;
  try {
    return parseItem(value);
  } catch {
    return undefined;
  }
}

/** A finite number from a bare item, or `undefined`. */
export const numberOf = (value: BareItem | undefined): number | undefined =>
  typeof value === 'number' && Number.isFinite(value) ? value : undefined;

/** The name a draft-8 policy item carries (a String or a Token). */
export const nameOf = (value: BareItem): string | undefined =>
  typeof value === 'string' ? value : value instanceof Token ? value.value : undefined;

export const isItem = (member: Member | undefined): member is Item =>
  member !== undefined && !Array.isArray(member.value);
