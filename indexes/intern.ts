// One shared copy of strings that many cached objects repeat (node names, scheduler names, phases,
// namespaces): JSON.parse makes a new string for each occurrence longer than a few characters, and
// 30,000 pods on 1,000 nodes would keep 30,000 copies of the node names. The table is bounded: when
// full it starts over (strings already handed out stay shared by the objects that hold them), so
// values that do not repeat cost nothing lasting.

const MAX_ENTRIES = 1 << 16;

let table = new Map<string, string>();

export function intern(s: string): string {
  if (s.length === 0) return '';
  const seen = table.get(s);
  if (seen !== undefined) return seen;
  if (table.size >= MAX_ENTRIES) table = new Map();
  table.set(s, s);
  return s;
}
