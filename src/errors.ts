/**
 * Errors a user can cause (bad profile, experiment, model file, dataset path, CLI flag).
 * The CLI prints `error: <message>` without a stack trace and exits with code 1.
 */
export interface UserErrorDetails {
  /** The file the problem is in, if any. */
  file?: string;
  /** JSON path or flag name of the offending field, e.g. `$.memory.offChip.bandwidthGBps` or `--wbits`. */
  field?: string;
  /** What would have been valid. */
  expected?: string;
  /** Extra lines (e.g. every problem found by a validator). */
  problems?: string[];
}

export class UserError extends Error {
  readonly details: UserErrorDetails;
  constructor(message: string, details: UserErrorDetails = {}) {
    super(UserError.compose(message, details));
    this.name = 'UserError';
    this.details = details;
  }

  private static compose(message: string, d: UserErrorDetails): string {
    const where = [d.file, d.field].filter(Boolean).join(' ');
    let text = where ? `${where}: ${message}` : message;
    if (d.expected) text += ` (expected ${d.expected})`;
    if (d.problems && d.problems.length > 0) text += '\n' + d.problems.map((p) => `  - ${p}`).join('\n');
    return text;
  }
}

export function isUserError(e: unknown): e is UserError {
  return e instanceof UserError;
}
