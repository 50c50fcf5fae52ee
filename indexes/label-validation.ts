// Label keys and values, validated as upstream validates them (k8s.io/apimachinery
// pkg/api/validate/content: IsLabelKey, IsLabelValue, IsDNS1123Subdomain). Lengths are checked
// before the regular expressions, which therefore only ever see short strings.
//
// Pure: no I/O, no imports from other project folders.

const LABEL_NAME_MAX_LENGTH = 63;
const LABEL_VALUE_MAX_LENGTH = 63;
const DNS1123_SUBDOMAIN_MAX_LENGTH = 253;
const LABEL_NAME_RE = /^(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE_RE = /^(?:(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const DNS1123_SUBDOMAIN_RE = /^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$/;

/** Why `key` is not a valid label key (upstream content.IsLabelKey), or undefined if it is. */
export function labelKeyError(key: string): string | undefined {
  const parts = key.split('/');
  let name: string;
  if (parts.length === 1) {
    name = key;
  } else if (parts.length === 2) {
    const prefix = parts[0] ?? '';
    name = parts[1] ?? '';
    if (prefix.length === 0) return `invalid label key '${key}': prefix part must be non-empty`;
    if (prefix.length > DNS1123_SUBDOMAIN_MAX_LENGTH) {
      return `invalid label key '${key}': prefix part must be no more than ${DNS1123_SUBDOMAIN_MAX_LENGTH} characters`;
    }
    if (!DNS1123_SUBDOMAIN_RE.test(prefix)) {
      return `invalid label key '${key}': prefix part must be a lowercase RFC 1123 subdomain`;
    }
  } else {
    return `invalid label key '${key}': at most one '/' is allowed`;
  }
  if (name.length === 0) return `invalid label key '${key}': name part must be non-empty`;
  if (name.length > LABEL_NAME_MAX_LENGTH) {
    return `invalid label key '${key}': name part must be no more than ${LABEL_NAME_MAX_LENGTH} characters`;
  }
  if (!LABEL_NAME_RE.test(name)) {
    return `invalid label key '${key}': name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`;
  }
  return undefined;
}

/** Why `value` is not a valid label value (upstream content.IsLabelValue), or undefined if it is. */
export function labelValueError(value: string): string | undefined {
  if (value.length > LABEL_VALUE_MAX_LENGTH) {
    return `invalid label value '${value}': must be no more than ${LABEL_VALUE_MAX_LENGTH} characters`;
  }
  if (!LABEL_VALUE_RE.test(value)) {
    return `invalid label value '${value}': must be empty or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`;
  }
  return undefined;
}
