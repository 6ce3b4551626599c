// The package's three faces agree: CommonJS, the ES module and the
// TypeScript declarations export the same names.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as esm from '../index.mjs';

const require = createRequire(import.meta.url);

test('index.cjs, index.mjs and index.d.ts export the same names', () => {
  const cjs = Object.keys(require('../index.cjs')).sort();
  const mjs = Object.keys(esm).filter((k) => k !== 'default').sort();
  const dts = [...readFileSync(new URL('../index.d.ts', import.meta.url), 'utf8')
    .matchAll(/^export (?:const|function|class) (\w+)/gm)].map((m) => m[1]).sort();
  assert.deepEqual(mjs, cjs);
  assert.deepEqual(dts, cjs);
});
