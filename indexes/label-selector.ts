// Label selectors, parsed and matched exactly as kube-apiserver does (k8s.io/apimachinery
// pkg/labels/selector.go: Parse, its Lexer and Parser, NewRequirement, Requirement.Matches).
// This is the entry point; the work is done in:
//  - label-selector-lexer.ts and label-selector-parser.ts: a transliteration of upstream's lexer
//    and parser, quirks included, so that every string upstream accepts is accepted here with the
//    same meaning and every string it rejects is rejected;
//  - label-validation.ts and int64.ts: the key, value and integer rules requirements must obey;
//  - label-matcher.ts: matching labels against the requirements, without allocating.
// Requirements are sorted by key (duplicates allowed, all must hold). Any identifier holding a
// non-ASCII character is rejected by key or value validation, so working on UTF-16 code units here
// agrees with upstream's UTF-8 bytes.
//
// Pure: no I/O, no imports from other project folders.
import { ParseError, Parser } from './label-selector-parser.js';
import { ParsedLabelSelector } from './label-matcher.js';

export { labelKeyError, labelValueError } from './label-validation.js';

export type LabelOperator = 'in' | 'notin' | 'exists' | 'doesnotexist' | 'equals' | 'notequals' | 'gt' | 'lt';

export interface LabelRequirement {
  readonly key: string;
  readonly operator: LabelOperator;
  /**
   * Sorted and deduplicated. One value for equals/notequals/gt/lt, at least one for in/notin, none
   * for exists/doesnotexist. For gt/lt it is the literal as written (digits only, e.g. "007"): upstream
   * also requires it to be a valid label value, so it is never signed.
   */
  readonly values: readonly string[];
}

/** The name the rest of the project may use for a label requirement. */
export type Requirement = LabelRequirement;

export type Labels = Readonly<Record<string, string>>;

export interface LabelSelector {
  /** Sorted by key (stable), as upstream sorts them. */
  readonly requirements: readonly LabelRequirement[];
  /** True when there are no requirements: the selector matches everything. */
  readonly empty: boolean;
  /** Upstream Selector.Matches; undefined labels behave as an empty set. Does not allocate. */
  matches(labels: Labels | undefined): boolean;
  /**
   * For index planners: a value every matching object must have for `key` (from an equals
   * requirement or an in requirement with one value), or undefined. Unlike upstream's
   * RequiresExactMatch, which only looks at the first requirement on the key, any such requirement
   * is used; the answer is sound either way.
   */
  requiredValue(key: string): string | undefined;
}

export interface LabelSelectorError {
  readonly error: string;
}

const EVERYTHING: LabelSelector = new ParsedLabelSelector([]);

/**
 * Parses a label selector as upstream labels.Parse does. Returns `{ error }` for any input upstream
 * rejects (the wording is not upstream's; callers should let the apiserver answer those requests).
 */
export function parseLabelSelector(s: string): LabelSelector | LabelSelectorError {
  const parsed = new Parser(s).parse();
  if (parsed instanceof ParseError) return { error: parsed.message };
  if (parsed.length === 0) return EVERYTHING;
  const requirements: LabelRequirement[] = parsed.map((r) =>
    Object.freeze({
      key: r.key,
      operator: r.operator === 'doubleequals' ? 'equals' : r.operator,
      values: Object.freeze(r.values.slice()),
    }),
  );
  // Upstream sorts by key with sort.Sort (not stable); equal keys keep input order here.
  requirements.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return new ParsedLabelSelector(requirements);
}

/** Type guard for the error side of parseLabelSelector's result. */
export function isLabelSelectorError(r: LabelSelector | LabelSelectorError): r is LabelSelectorError {
  return 'error' in r;
}
