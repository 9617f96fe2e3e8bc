/** Number formatting shared by the HTML and Markdown reports. */
import type { MeanStd } from './stats.js';

export function pct(v: number | null | undefined, digits = 2): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '–' : `${(v * 100).toFixed(digits)}%`;
}

/** Three significant digits, no exponent for ordinary magnitudes. */
export function sig(v: number | null | undefined, digits = 3): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e7 || a < 1e-4)) return v.toExponential(digits - 1);
  if (a >= 10 ** digits) return Math.round(v).toString();
  return Number(v.toPrecision(digits)).toString();
}

export function kb(bytes: number | null | undefined): string {
  return bytes === null || bytes === undefined || !Number.isFinite(bytes) ? '–' : `${(bytes / 1024).toFixed(1)}`;
}

/** `mean ± std` with a formatter; `–` when there is nothing. */
export function pm(m: MeanStd | null, f: (v: number) => string): string {
  if (!m) return '–';
  return m.n > 1 ? `${f(m.mean)} ± ${f(m.std)}` : f(m.mean);
}

/** `mean ± std` with the std shown to the decimals of the mean's three significant digits. */
export function pmSig(m: MeanStd | null, scale = 1, maxDecimals = 6): string {
  if (!m || !Number.isFinite(m.mean)) return '–';
  const mean = m.mean / scale;
  const a = Math.abs(mean);
  if (a !== 0 && (a >= 1e7 || a < 1e-4))
    return m.n > 1 ? `${mean.toExponential(2)} ± ${(m.std / scale).toExponential(1)}` : mean.toExponential(2);
  const decimals = Math.min(maxDecimals, a === 0 ? 2 : Math.max(0, 2 - Math.floor(Math.log10(a))));
  return m.n > 1
    ? `${mean.toFixed(decimals)} ± ${(m.std / scale).toFixed(decimals)}`
    : Number(mean.toFixed(decimals)).toString();
}

export function pctAxis(v: number): string {
  return `${Number((v * 100).toPrecision(4))}%`;
}

export function bitsText(bits: readonly { wBits: number; aBits: number }[]): string {
  return bits.map((b) => `${b.wBits}/${b.aBits}`).join(';');
}
