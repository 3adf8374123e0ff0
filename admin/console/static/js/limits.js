// Form fields and body of a subject's limits (the admin API's `limits` object of keys and
// tenants): empty fields are unset, all empty means no limits of its own.

export const limitKeys = [
  ['rpm', 'Requests per minute', 'number'],
  ['tpm', 'Tokens per minute', 'number'],
  ['tokens_per_day', 'Tokens per day', 'number'],
  ['concurrent', 'Concurrent requests', 'number'],
  ['budget_usd_per_day', 'Budget per day (USD)', 'text'],
  ['budget_usd_per_month', 'Budget per month (USD)', 'text'],
];

/** limitFields are form fields named 'limits.<key>', filled from a limits view (or null). */
export function limitFields(limits) {
  return limitKeys.map(([k, label, type]) => ({
    name: 'limits.' + k, label, type, min: type === 'number' ? '0' : undefined,
    value: limits && limits[k] !== null && limits[k] !== undefined ? limits[k] : '',
    placeholder: 'no limit',
  }));
}

/** limitsBody is the `limits` object from form values, or null when every field is empty. */
export function limitsBody(values) {
  const out = {};
  let any = false;
  for (const [k, , type] of limitKeys) {
    const v = values['limits.' + k];
    if (v === null || v === undefined || v === '') continue;
    out[k] = type === 'number' ? v : String(v);
    any = true;
  }
  return any ? out : null;
}

/** limitsText is a compact one-line summary of a limits view: "60 rpm · $25/month". */
export function limitsText(limits) {
  if (!limits) return '';
  const short = { rpm: (v) => v + ' rpm', tpm: (v) => v + ' tpm', tokens_per_day: (v) => v + ' tokens/day',
    concurrent: (v) => v + ' concurrent', budget_usd_per_day: (v) => '$' + v + '/day', budget_usd_per_month: (v) => '$' + v + '/month' };
  const parts = [];
  for (const [k] of limitKeys) {
    if (limits[k] !== null && limits[k] !== undefined) parts.push(short[k](limits[k]));
  }
  return parts.join(' · ');
}
