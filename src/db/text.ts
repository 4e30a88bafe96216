// PostgreSQL text and jsonb cannot hold U+0000, and jsonb refuses unpaired UTF-16 surrogates. A caller's text may
// contain either; it is made storable here, at the boundary, so one tenant's bytes cannot fail a shared statement.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching U+0000 is the point.
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const UNSTORABLE_ALL = new RegExp(UNSTORABLE.source, "g");

/** The text with NUL and unpaired surrogates replaced by U+FFFD (unchanged, and not copied, when already fine). */
export function storableText(text: string): string {
  return UNSTORABLE.test(text) ? text.replace(UNSTORABLE_ALL, "\uFFFD") : text;
}

// JSON.stringify writes NUL and unpaired surrogates (only those) as \u0000 and \udXXX escapes, so JSON without such an
// escape needs no cleaning (an escaped backslash before "u0000" is a false alarm, cleaned the slow way, harmlessly).
const UNSTORABLE_ESCAPE = /\\u(?:0000|d[89a-f])/i;

/** JSON for a jsonb parameter, every string in it made storable. */
export function storableJson(value: unknown): string {
  const json = JSON.stringify(value);
  if (json === undefined || !UNSTORABLE_ESCAPE.test(json)) return json;
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === "string" ? storableText(v) : v));
}

/** Statement parameters with every string made storable (JSON built with storableJson is already safe). */
export function storableParams(params: readonly unknown[] | undefined): unknown[] | undefined {
  if (!params) return undefined;
  return params.map((p) => (typeof p === "string" ? storableText(p) : p));
}
