// What a listener declares, checked against Go's regexp (gopeer
// -patterns): for thousands of generated JavaScript patterns, every
// declared one compiles in RE2 as the server compiles it (a pattern that
// does not compile closes the client), and matches every name the
// JavaScript pattern matches (the server must not drop what a listener
// takes). The generator is seeded: a failure names its pattern.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { build } from './harness.mjs';

const require = createRequire(import.meta.url);
const { declared } = require('../lib/patterns.cjs');

const pieces = ['a', 'b', '.', '*', '+', '?', '|', '(', ')', '(?:', '[', ']', '^', '$', '-', '\\.', '\\d', '\\D', '\\w',
  '\\W', '{2}', '{1,3}', '{', '}', 'é', '😀', '[^a]', '[a-c]', '[-a]', '\\s', '\\b', '\\-', '_', '(?=a)', '\\1'];
const names = ['', 'a', 'b', 'ab', 'aa', 'aaa', 'ba', 'bb', 'abc', 'a.b', 'a-b', '-', '.', '_', '1', 'a1', 'é', 'éé',
  '😀', 'a😀', '😀😀', '😀a', 'a\nb', '{', '}', ']', 'c', 'x_', 'aé'];

// random is a small seeded generator (mulberry32).
function random(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('every declared pattern compiles in RE2 and matches at least what the JavaScript one does', () => {
  const next = random(20261205);
  const cases = [];
  const seen = new Set();
  for (let k = 0; k < 30000 && cases.length < 4000; k++) {
    let p = '';
    for (let i = 1 + Math.floor(next() * 9); i > 0; i--) p += pieces[Math.floor(next() * pieces.length)];
    if (seen.has(p)) continue;
    seen.add(p);
    let re;
    try {
      new RegExp(p);
      re = new RegExp(`^(?:${p})$`);
    } catch {
      continue; // on() refuses it
    }
    const d = declared(p);
    if (d !== null) cases.push({ p, d, js: names.map((n) => re.test(n)) });
  }
  assert.ok(cases.length > 1000, `only ${cases.length} patterns declared`);
  const input = cases.map((c) => JSON.stringify({ pattern: c.d, names })).join('\n') + '\n';
  const out = execFileSync(build().gopeer, ['-patterns'], { input, maxBuffer: 1 << 26 }).toString().trim().split('\n');
  assert.equal(out.length, cases.length);
  out.forEach((line, i) => {
    const got = JSON.parse(line);
    const c = cases[i];
    assert.equal(got.error, undefined, `${JSON.stringify(c.p)} declared as ${JSON.stringify(c.d)}`);
    names.forEach((n, j) => {
      if (c.js[j]) assert.ok(got.matches[j], `${JSON.stringify(c.p)} declared as ${JSON.stringify(c.d)} misses ${JSON.stringify(n)}`);
    });
  });
});

test('what some patterns declare', () => {
  const want = {
    log: 'log',
    'a😀': 'a😀',
    'log\\..*': 'log\\..*',
    'nc-.*': 'nc-.*',
    'get|set': 'get|set',
    'user\\.[0-9]+': 'user\\.[0-9]+',
    'a.b': 'a(?:.|)b', // an "any" atom may take half of a surrogate pair in JavaScript
    '(get|set)-.+': '(get|set)-(?:.|)+',
    '.*': null,
    '(?=a)a': null,
    'a\\sb': null,
    '\\bx': null,
    '(?<n>a)\\k<n>': null,
    'a{2,1000}': null,
    '[[:alpha:]]': null,
    '\\u0041': null,
  };
  for (const [p, d] of Object.entries(want)) assert.equal(declared(p), d, p);
  assert.equal(declared('x\\.y\\+z\\(1\\)'), 'x\\.y\\+z\\(1\\)', 'a name with metacharacters, escaped, is declared as written');
});
