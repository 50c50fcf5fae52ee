// Matching labels against parsed label selectors, as upstream's Requirement.Matches and
// internalSelector.Matches do (k8s.io/apimachinery pkg/labels/selector.go): every requirement must
// hold. Each requirement is compiled once so that matching an object does not allocate.
//
// Pure: no I/O, no imports from other project folders.
import type { LabelRequirement, LabelSelector, Labels } from './label-selector.js';
import { compareMagnitudes, parseInt64Into, type ParsedInt } from './int64.js';

/** Beyond this many values, in/notin look values up in a Set rather than scanning the array. */
const SET_THRESHOLD = 8;

const OP_IN = 0;
const OP_NOT_IN = 1;
const OP_EXISTS = 2;
const OP_DOES_NOT_EXIST = 3;
const OP_GT = 4;
const OP_LT = 5;

const hasOwn = Object.prototype.hasOwnProperty;

/** labels[key] if it is an own property (label keys such as "constructor" are valid). */
function lookup(labels: Labels, key: string): string | undefined {
  const v = labels[key];
  if (v === undefined) return undefined;
  return hasOwn.call(labels, key) ? v : undefined;
}

class CompiledRequirement {
  readonly #key: string;
  readonly #op: number;
  readonly #values: readonly string[];
  readonly #set: ReadonlySet<string> | undefined;
  /** gt/lt: the requirement's integer, and where its significant digits start. */
  readonly #intDigits: string;
  readonly #intStart: number;

  constructor(r: LabelRequirement) {
    this.#key = r.key;
    this.#values = r.values;
    this.#set = r.values.length > SET_THRESHOLD ? new Set(r.values) : undefined;
    this.#intDigits = '';
    this.#intStart = 0;
    switch (r.operator) {
      case 'in':
      case 'equals':
        this.#op = OP_IN;
        break;
      case 'notin':
      case 'notequals':
        this.#op = OP_NOT_IN;
        break;
      case 'exists':
        this.#op = OP_EXISTS;
        break;
      case 'doesnotexist':
        this.#op = OP_DOES_NOT_EXIST;
        break;
      case 'gt':
      case 'lt': {
        this.#op = r.operator === 'gt' ? OP_GT : OP_LT;
        const v = r.values[0] ?? '';
        // Validated at parse time: a label value that parses as int64 is unsigned digits.
        const parsed: ParsedInt = { negative: false, start: 0 };
        parseInt64Into(v, parsed);
        this.#intDigits = v;
        this.#intStart = parsed.start;
        break;
      }
    }
  }

  #hasValue(v: string): boolean {
    if (this.#set !== undefined) return this.#set.has(v);
    const values = this.#values;
    for (let i = 0; i < values.length; i++) {
      if (values[i] === v) return true;
    }
    return false;
  }

  matches(labels: Labels | undefined, scratch: ParsedInt): boolean {
    const v = labels === undefined ? undefined : lookup(labels, this.#key);
    switch (this.#op) {
      case OP_IN:
        return v !== undefined && this.#hasValue(v);
      case OP_NOT_IN:
        return v === undefined || !this.#hasValue(v);
      case OP_EXISTS:
        return v !== undefined;
      case OP_DOES_NOT_EXIST:
        return v === undefined;
      default: {
        // gt/lt: the key must be present and its value must parse as an int64.
        if (v === undefined || !parseInt64Into(v, scratch)) return false;
        // The requirement's integer is never negative.
        const cmp = scratch.negative ? -1 : compareMagnitudes(v, scratch.start, this.#intDigits, this.#intStart);
        return this.#op === OP_GT ? cmp > 0 : cmp < 0;
      }
    }
  }
}

export class ParsedLabelSelector implements LabelSelector {
  readonly requirements: readonly LabelRequirement[];
  readonly empty: boolean;
  readonly #compiled: readonly CompiledRequirement[];
  readonly #scratch: ParsedInt = { negative: false, start: 0 };

  constructor(requirements: readonly LabelRequirement[]) {
    this.requirements = Object.freeze(requirements.slice());
    this.empty = requirements.length === 0;
    this.#compiled = requirements.map((r) => new CompiledRequirement(r));
  }

  matches(labels: Labels | undefined): boolean {
    const compiled = this.#compiled;
    for (let i = 0; i < compiled.length; i++) {
      const r = compiled[i];
      if (r !== undefined && !r.matches(labels, this.#scratch)) return false;
    }
    return true;
  }

  requiredValue(key: string): string | undefined {
    for (const r of this.requirements) {
      if (r.key !== key) continue;
      if ((r.operator === 'equals' || r.operator === 'in') && r.values.length === 1) return r.values[0];
    }
    return undefined;
  }
}
