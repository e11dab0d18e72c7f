import * as reference from 'structured-headers';
import { describe, expect, it } from 'vitest';
import { type BareItem, parseDictionary, parseItem, parseList, Token } from './structured-fields.js';

// The same inputs through this parser and the `structured-headers` package must agree: values,
// parameters, and which inputs are rejected.
const plain = (value: BareItem | unknown): unknown => {
  if (value instanceof Token) return { token: value.value };
  if (value instanceof reference.Token) return { token: value.toString() };
  if (value instanceof Uint8Array) return { bytes: [...value] };
  if (value instanceof ArrayBuffer) return { bytes: [...new Uint8Array(value)] };
  if (value instanceof reference.DisplayString) return value.toString();
  if (value instanceof Date) return { date: value.getTime() };
  return value;
};
const params = (map: Map<string, unknown>) => [...map].map(([k, v]) => [k, plain(v)]);
const member = (m: { value: unknown; params: Map<string, unknown> } | unknown[]): unknown => {
  if (Array.isArray(m)) {
    const [value, p] = m as [unknown, Map<string, unknown>];
    return Array.isArray(value)
      ? { inner: value.map((i) => member(i)), params: params(p) }
      : { value: plain(value), params: params(p) };
  }
  const { value, params: p } = m as { value: unknown; params: Map<string, unknown> };
  return Array.isArray(value)
    ? { inner: value.map((i) => member(i)), params: params(p) }
    : { value: plain(value), params: params(p) };
};
const attempt = (f: () => unknown) => {
  try {
    return f();
  } catch {
    return 'invalid';
  }
};

const LISTS = [
  '10;w=1, 1000;w=3600',
  '"10-per-1s";q=10;w=1, "1000-per-1h";q=1000;w=3600',
  '"p";r=9;t=2',
  'default;q=100;w=60;qu="requests";pk=:cHJvZmlsZQ==:',
  '(1 2);a, ?0, -3.5, %"caf%c3%a9"',
  '@1700000000',
  '1,',
  '1 ,2',
  '  10;w=1  ',
  '1;w=1.2345',
  '"unterminated',
  '1234567890123456',
  'a, ,b',
  'Token/x:y',
  '',
];
const DICTIONARIES = [
  'limit=10, remaining=9, reset=2',
  'a, b=?0, c;x=1',
  'limit=10,remaining=9',
  'A=1',
  'a=1,',
];
const ITEMS = ['9', ' 9 ', '9 9', '"s\\"x"', 'tok', '-0.5'];

describe('structured fields, against the structured-headers package', () => {
  it.each(LISTS)('list %j', (input) => {
    const ours = attempt(() => parseList(input).map(member));
    const theirs = attempt(() => reference.parseList(input).map(member));
    expect(ours).toEqual(theirs);
  });

  it.each(DICTIONARIES)('dictionary %j', (input) => {
    const ours = attempt(() => [...parseDictionary(input)].map(([k, v]) => [k, member(v)]));
    const theirs = attempt(() => [...reference.parseDictionary(input)].map(([k, v]) => [k, member(v)]));
    expect(ours).toEqual(theirs);
  });

  it.each(ITEMS)('item %j', (input) => {
    const ours = attempt(() => member(parseItem(input)));
    const theirs = attempt(() => member(reference.parseItem(input)));
    expect(ours).toEqual(theirs);
  });
});
