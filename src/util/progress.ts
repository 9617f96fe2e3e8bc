/**
 * Progress for long work: a redrawn bar on a TTY (stderr), plain log lines otherwise
 * (at most one every `minIntervalMs`, plus the last).
 */
import { log } from '../log.js';

export interface ProgressOptions {
  label: string;
  total: number;
  minIntervalMs?: number;
  /** Force plain lines even on a TTY (e.g. with --json). */
  plain?: boolean;
}

export class Progress {
  private readonly start = Date.now();
  private lastPrint = 0;
  private readonly tty: boolean;
  private done = 0;
  constructor(private readonly opts: ProgressOptions) {
    this.tty = !opts.plain && Boolean(process.stderr.isTTY) && log.level !== 'error' && log.level !== 'warn';
  }

  /** Advance to `done` items; `extra` is shown after the bar (e.g. "loss 0.31 best 97.1%"). */
  update(done: number, extra = ''): void {
    this.done = done;
    const now = Date.now();
    const finished = done >= this.opts.total;
    const interval = this.opts.minIntervalMs ?? (this.tty ? 100 : 5000);
    if (!finished && now - this.lastPrint < interval) return;
    this.lastPrint = now;
    const elapsed = (now - this.start) / 1000;
    const rate = done > 0 ? elapsed / done : 0;
    const eta = done > 0 ? Math.max(0, (this.opts.total - done) * rate) : NaN;
    const pct = this.opts.total > 0 ? Math.min(1, done / this.opts.total) : 1;
    const etaText = Number.isFinite(eta) ? `ETA ${formatDuration(eta)}` : 'ETA --';
    if (this.tty) {
      const width = 24;
      const filled = Math.round(pct * width);
      const bar = '#'.repeat(filled) + '-'.repeat(width - filled);
      process.stderr.write(
        `\r${this.opts.label} [${bar}] ${done}/${this.opts.total} ${etaText} ${extra}`.padEnd(100).slice(0, 160),
      );
      if (finished) process.stderr.write('\n');
    } else {
      log.info(
        `${this.opts.label} ${done}/${this.opts.total} (${(pct * 100).toFixed(0)}%) ${etaText}${extra ? ' ' + extra : ''}`,
      );
    }
  }

  finish(extra = ''): void {
    if (this.done < this.opts.total) this.update(this.opts.total, extra);
  }

  /** Ends the bar where it stands (work stopped early), without claiming it finished. */
  abandon(): void {
    if (this.tty && this.lastPrint > 0 && this.done < this.opts.total) process.stderr.write('\n');
  }
}

export function formatDuration(seconds: number): string {
  if (seconds < 59.5) return `${seconds.toFixed(0)}s`;
  const whole = Math.round(seconds);
  const m = Math.floor(whole / 60);
  const s = whole % 60;
  if (m < 60) return `${m}m${String(s).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}
