/**
 * The project's logger (winston). Console output is human-readable and always goes to stderr,
 * so that `--json` output on stdout stays machine-readable. `--log-file` adds JSON lines.
 */
import winston from 'winston';

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
export const LOG_LEVELS: readonly LogLevel[] = ['error', 'warn', 'info', 'debug'];

const consoleFormat = winston.format.printf(({ level, message }) => {
  return level === 'info' ? `${String(message)}` : `${level}: ${String(message)}`;
});

export const log = winston.createLogger({
  level: 'info',
  transports: [
    new winston.transports.Console({
      stderrLevels: ['error', 'warn', 'info', 'debug', 'verbose', 'silly'],
      format: consoleFormat,
    }),
  ],
});

export function setLogLevel(level: LogLevel): void {
  log.level = level;
  for (const t of log.transports) if (t instanceof winston.transports.Console) t.level = level;
}

/** Adds a JSON-lines file transport (one object per log record, with timestamp). */
export function addLogFile(path: string, level: LogLevel = 'debug'): winston.transport {
  const transport = new winston.transports.File({
    filename: path,
    level,
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
  });
  log.add(transport);
  return transport;
}

export function removeLogTransport(t: winston.transport): void {
  log.remove(t);
}
