/**
 * JSON text -> JavaScript values, keeping integers exact: an integer literal
 * beyond Number.MAX_SAFE_INTEGER (2^53 - 1) comes back as a BigInt instead of
 * being rounded to the nearest double. Every other value is what JSON.parse
 * gives (numbers with a fraction or an exponent are numbers).
 *
 * Used for the daemon's `input_json` / `result_json` (the stored JSON text of
 * an operation's input and result), so 2**53 + 1 in a step result reaches a
 * Node program as 9007199254740993n, not 9007199254740992.
 */

const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;
const STRING = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y;
const WHITESPACE = /[ \t\n\r]*/y;

/** Parses JSON text like JSON.parse, with integers beyond ±(2^53 - 1) as BigInt. */
export function parseJson(text) {
  // An unsafe integer has at least 16 digits; without such a run of digits anywhere, JSON.parse is exact.
  if (!/\d{16}/.test(text)) return JSON.parse(text);
  return new ExactParser(String(text)).parse();
}

/** A recursive-descent JSON parser; only numbers differ from JSON.parse (strings are decoded by it). */
class ExactParser {
  constructor(text) {
    this.text = text;
    this.at = 0;
  }

  parse() {
    const value = this.value();
    this.skip();
    if (this.at !== this.text.length) this.fail('Unexpected text after the JSON value');
    return value;
  }

  fail(what) {
    throw new SyntaxError(`${what} at position ${this.at} of the JSON text`);
  }

  skip() {
    WHITESPACE.lastIndex = this.at;
    WHITESPACE.exec(this.text);
    this.at = WHITESPACE.lastIndex;
  }

  match(pattern) {
    pattern.lastIndex = this.at;
    const found = pattern.exec(this.text);
    if (!found) return null;
    this.at = pattern.lastIndex;
    return found;
  }

  value() {
    this.skip();
    const char = this.text[this.at];
    if (char === '{') return this.object();
    if (char === '[') return this.array();
    if (char === '"') return this.string();
    for (const [word, value] of [['true', true], ['false', false], ['null', null]]) {
      if (this.text.startsWith(word, this.at)) {
        this.at += word.length;
        return value;
      }
    }
    const number = this.match(NUMBER);
    if (!number) this.fail(char === undefined ? 'Unexpected end of the JSON text' : `Unexpected ${JSON.stringify(char)}`);
    const [literal, fraction, exponent] = number;
    if (fraction !== undefined || exponent !== undefined) return Number(literal);
    const value = Number(literal);
    return Number.isSafeInteger(value) ? value : BigInt(literal);
  }

  string() {
    const token = this.match(STRING);
    if (!token) this.fail('Bad string');
    return JSON.parse(token[0]);
  }

  object() {
    this.at += 1; // {
    const object = {};
    this.skip();
    if (this.text[this.at] === '}') {
      this.at += 1;
      return object;
    }
    for (;;) {
      this.skip();
      if (this.text[this.at] !== '"') this.fail('Expected a string key');
      const key = this.string();
      this.skip();
      if (this.text[this.at] !== ':') this.fail("Expected ':'");
      this.at += 1;
      // An own property even for "__proto__", as JSON.parse makes it.
      Object.defineProperty(object, key, { value: this.value(), writable: true, enumerable: true, configurable: true });
      this.skip();
      const next = this.text[this.at++];
      if (next === '}') return object;
      if (next !== ',') this.fail("Expected ',' or '}'");
    }
  }

  array() {
    this.at += 1; // [
    const array = [];
    this.skip();
    if (this.text[this.at] === ']') {
      this.at += 1;
      return array;
    }
    for (;;) {
      array.push(this.value());
      this.skip();
      const next = this.text[this.at++];
      if (next === ']') return array;
      if (next !== ',') this.fail("Expected ',' or ']'");
    }
  }
}
