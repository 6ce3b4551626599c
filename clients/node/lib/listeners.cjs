'use strict';
// Listeners and their patterns: a pattern is a regular expression that
// must match the whole event name, as in the Go client ("log" hears
// "log" only, "nc-.*" the whole family). Patterns are JavaScript
// regular expressions; those the Go client takes (RE2 syntax) mostly
// read alike. What each listener declares to the server is patterns.cjs's
// business.

const { declared } = require('./patterns.cjs');

// meta are the characters that make a pattern more than a literal name.
const meta = /[\\.+*?()|[\]{}^$]/;

class Listener {
  constructor(set, pattern, fn, once) {
    this.set = set;
    this.pattern = pattern;
    this.fn = fn;
    this.once = once;
    this.literal = !meta.test(pattern);
    if (!this.literal) {
      try {
        new RegExp(pattern); // alone first: "a)|(b" must not pass anchored
        this.re = new RegExp(`^(?:${pattern})$`);
      } catch (err) {
        throw new SyntaxError(`netcluster: event pattern ${JSON.stringify(pattern)}: ${err.message}`);
      }
    }
    this.declared = declared(pattern); // null: All
  }

  matches(event) {
    return this.literal ? event === this.pattern : this.re.test(event);
  }

  // off removes the listener.
  off() {
    this.set.remove(this);
  }
}

class ListenerSet {
  // changed() is called after each change of the set.
  constructor(changed = () => {}) {
    this.all = [];
    this.changed = changed;
  }

  add(client, pattern, fn, once) {
    if (typeof pattern !== 'string') throw new TypeError('netcluster: an event pattern is a string');
    if (typeof fn !== 'function') throw new TypeError(`netcluster: the listener for ${JSON.stringify(pattern)} is not a function`);
    const l = new Listener(this, pattern, fn, once);
    this.all = [...this.all, l];
    this.changed();
    return l;
  }

  // remove drops a Listener, or every listener of a pattern (and of fn,
  // when given).
  remove(what, fn) {
    const drop = what instanceof Listener
      ? (l) => l === what
      : (l) => l.pattern === what && (fn === undefined || l.fn === fn);
    const before = this.all.length;
    this.all = this.all.filter((l) => !drop(l));
    if (this.all.length !== before) this.changed();
  }

  matchAny(event) {
    return this.all.some((l) => l.matches(event));
  }

  // matching returns the listeners event reaches now, taking the once
  // listeners out.
  matching(event) {
    const out = this.all.filter((l) => l.matches(event));
    if (out.some((l) => l.once)) {
      this.all = this.all.filter((l) => !(l.once && out.includes(l)));
      this.changed();
    }
    return out;
  }
}

module.exports = { Listener, ListenerSet };
