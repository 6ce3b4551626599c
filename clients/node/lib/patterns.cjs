'use strict';
// What a listener's pattern declares to the server (PROTOCOL.md section
// 5.4). The server matches the declared patterns with Go's RE2, the
// client its listeners with JavaScript's RegExp, and the two do not read
// every pattern alike. A declared pattern must match at least every name
// the listener matches: the server drops what matches none, while the
// client drops locally whatever the server sends in excess. So:
//
// - a pattern without a metacharacter is an exact name, declared
//   escaped;
// - a pattern in a portable subset of the syntax is declared as an RE2
//   pattern that matches at least what the JavaScript one does;
// - any other pattern declares All (declared returns null).
//
// The portable subset: literal characters of the Basic Multilingual
// Plane; a backslash before ASCII punctuation, \d, \w, \D, \W; the dot;
// classes [...] and [^...] of literals, ranges of literals and those
// escapes; groups (...) and (?:...); alternation; ^ and $; the
// quantifiers *, +, ? and one {n}, {n,} or {n,m} with n, m at most 100,
// each of them greedy or lazy; groups nested at most 100 deep. Outside
// it: lookaround, backreferences, named groups, \s (Unicode-wide in
// JavaScript, ASCII in RE2), \b, \u and other letter escapes, characters
// beyond the Basic Multilingual Plane.
//
// One difference remains inside the subset: JavaScript matches UTF-16
// code units, RE2 code points, so two "any character" atoms of a
// JavaScript pattern (., [^...], \D, \W) may together match the two
// halves of one character beyond the Basic Multilingual Plane in a name,
// where RE2 needs two characters. Each such atom is declared optional,
// (?:.|), so that the declared pattern still matches every such name;
// one followed by * needs no change.

// META are the characters of a pattern that make it more than a literal
// name; escaped, a name reads as itself in RE2 (as Go's
// regexp.QuoteMeta escapes it).
const META = /[\\.+*?()|[\]{}^$]/g;

const MAX_COUNT = 100; // the largest n, m of a {n,m}
const MAX_DEPTH = 100; // groups nested in groups

function isLiteral(pattern) {
  META.lastIndex = 0;
  return !META.test(pattern);
}

function escapeName(name) {
  return name.replace(META, '\\$&');
}

const punct = /[!-/:-@[-`{-~]/; // ASCII punctuation: escaped, it is itself in both
const counted = /^\{(\d{1,3})(,(\d{0,3}))?\}/;

// escape reads the escape at p[i] (a backslash) outside or inside a
// class: its source and whether it matches "any" character, or null.
function escape(p, i) {
  const c = p[i + 1];
  if (c === 'd' || c === 'w') return { src: '\\' + c, any: false };
  if (c === 'D' || c === 'W') return { src: '\\' + c, any: true };
  if (c !== undefined && punct.test(c)) return { src: '\\' + c, any: false };
  return null;
}

// classAt reads the class that opens at p[i]: its source, its length and
// whether it may match half of a surrogate pair, or null when it is not
// in the subset.
function classAt(p, i) {
  let j = i + 1;
  let any = false;
  if (p[j] === '^') {
    any = true;
    j++;
  }
  if (p[j] === ']') return null; // [] and [^] are not read alike
  let last = null; // the last item: 'lit', 'esc', 'range', or null at the start
  for (; j < p.length && p[j] !== ']'; j++) {
    const c = p[j];
    if (c === '[' || p.codePointAt(j) > 0xffff) return null;
    if (c === '\\') {
      const e = escape(p, j);
      if (!e || p[j + 2] === '-') return null; // an escape ends no range
      any = any || e.any;
      last = 'esc';
      j++;
    } else if (c === '-' && last !== null && p[j + 1] !== ']') {
      const hi = p[j + 1];
      if (last !== 'lit' || hi === '\\' || hi === '[' || p.codePointAt(j + 1) > 0xffff || hi < p[j - 1]) return null;
      last = 'range';
      j++;
    } else {
      last = 'lit';
    }
  }
  if (j >= p.length) return null;
  return { src: p.slice(i, j + 1), len: j + 1 - i, any };
}

// quantifierAt reads a quantifier at p[i] with its lazy '?': its
// source, or '' when there is none, or null when it is not in the
// subset.
function quantifierAt(p, i, state) {
  let src;
  if (p[i] === '*' || p[i] === '+' || p[i] === '?') {
    src = p[i];
  } else if (p[i] === '{') {
    const m = counted.exec(p.slice(i));
    if (!m) return null; // a literal brace: not read alike everywhere
    const n = Number(m[1]);
    const hi = m[3] ? Number(m[3]) : n;
    if (n > MAX_COUNT || hi > MAX_COUNT || hi < n || ++state.counted > 1) return null;
    src = m[0];
  } else {
    return '';
  }
  return p[i + src.length] === '?' ? src + '?' : src;
}

// atomAt reads the atom at p[i]: its source, length and whether it may
// match half of a surrogate pair, or null when it is not in the subset.
function atomAt(p, i) {
  const c = p[i];
  if (c === '.') return { src: '.', len: 1, any: true };
  if (c === '[') return classAt(p, i);
  if (c === '\\') {
    const e = escape(p, i);
    return e && { src: e.src, len: 2, any: e.any };
  }
  if (c === ']' || c === '}') return { src: '\\' + c, len: 1, any: false };
  if (p.codePointAt(i) > 0xffff) return null;
  return { src: c, len: 1, any: false };
}

// translate is the RE2 pattern declared for a JavaScript pattern, or
// null for one outside the subset.
function translate(p) {
  const state = { counted: 0 };
  let out = '';
  let depth = 0;
  let quantifiable = false; // the last item takes a quantifier
  for (let i = 0; i < p.length;) {
    const c = p[i];
    if (c === '(') {
      if (p[i + 1] === '?' && p.slice(i, i + 3) !== '(?:') return null;
      if (++depth > MAX_DEPTH) return null;
      const n = p[i + 1] === '?' ? 3 : 1;
      out += p.slice(i, i + n);
      i += n;
      quantifiable = false;
      continue;
    }
    if (c === ')' || c === '|' || c === '^' || c === '$') {
      if (c === ')' && --depth < 0) return null;
      out += c;
      i++;
      quantifiable = c === ')';
    } else if ('*+?{'.includes(c)) {
      return null; // a quantifier with nothing to repeat
    } else {
      const a = atomAt(p, i);
      if (!a) return null;
      i += a.len;
      out += a.any && p[i] !== '*' ? `(?:${a.src}|)` : a.src;
      quantifiable = true;
    }
    const q = quantifierAt(p, i, state);
    if (q === null) return null;
    if (q !== '') {
      if (!quantifiable) return null;
      out += q;
      i += q.length;
      if (i < p.length && '*+?{'.includes(p[i])) return null; // a quantifier of a quantifier
    }
  }
  return depth === 0 ? out : null;
}

// declared is what a listener of pattern declares: an RE2 pattern, or
// null for All.
function declared(pattern) {
  if (isLiteral(pattern)) return escapeName(pattern);
  if (pattern === '.*') return null;
  return translate(pattern);
}

module.exports = { declared, escapeName, isLiteral };
