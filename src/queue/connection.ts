/**
 * Where the queue lives: a Redis URL (`redis://HOST:PORT[/DB]`, `rediss://` for TLS), credentials from the
 * environment (never from the URL, never printed), and a key prefix so several runs or teams share one Redis.
 * `openQueueConnection` answers within a few seconds: a Redis that cannot be reached is a UserError, not a hang.
 */
import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { Redis, type RedisOptions } from 'ioredis';
import { UserError } from '../errors.js';
import { log } from '../log.js';

export const ENV_USERNAME = 'BITALLOC_REDIS_USERNAME';
export const ENV_PASSWORD = 'BITALLOC_REDIS_PASSWORD';
/** PEM file with the CA that signed the server certificate (rediss:// with a private CA). */
export const ENV_CA = 'BITALLOC_REDIS_CA';

export const DEFAULT_PREFIX = 'bitalloc';
/** BullMQ queue that holds the cells of every run under one prefix. */
export const CELLS_QUEUE = 'cells';

const URL_FORM =
  'redis://HOST:PORT[/DB] or rediss://HOST:PORT[/DB] (TLS); user and password go in ' +
  `${ENV_USERNAME} / ${ENV_PASSWORD}`;

export interface QueueTarget {
  /** The URL without credentials (safe to print). */
  display: string;
  host: string;
  port: number;
  db: number;
  tls: boolean;
  /** Key prefix of every key this run writes (BullMQ's prefix and ours). */
  prefix: string;
  /** ioredis options with credentials from the environment (do not log). */
  redis: RedisOptions;
}

export interface QueueSettings {
  /** Milliseconds to wait for the first connection and PING. */
  connectTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

/** Parses and checks `--queue` and `--prefix`; errors name the flag and the expected form, never a password. */
export function parseQueueTarget(
  urlText: unknown,
  prefixText: unknown = DEFAULT_PREFIX,
  settings: QueueSettings = {},
  flag = '--queue',
): QueueTarget {
  const env = settings.env ?? process.env;
  if (typeof urlText !== 'string' || urlText.trim() === '')
    throw new UserError('needs a Redis URL', { field: flag, expected: URL_FORM });
  let url: URL;
  try {
    url = new URL(urlText.trim());
  } catch {
    throw new UserError(`not a URL: '${maskCredentials(urlText)}'`, { field: flag, expected: URL_FORM });
  }
  const shown = maskCredentials(urlText.trim());
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new UserError(`unsupported scheme '${url.protocol.replace(/:$/, '')}' in '${shown}'`, {
      field: flag,
      expected: URL_FORM,
    });
  }
  if (url.username !== '' || url.password !== '') {
    throw new UserError(`'${shown}' carries credentials; they would show in shell history and process lists`, {
      field: flag,
      expected: `a URL without user:password@, with the credentials in ${ENV_USERNAME} and ${ENV_PASSWORD}`,
    });
  }
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (host === '') throw new UserError(`no host in '${shown}'`, { field: flag, expected: URL_FORM });
  let port = 6379;
  if (url.port !== '') {
    port = Number(url.port);
    if (!Number.isInteger(port) || port < 1 || port > 65535)
      throw new UserError(`bad port in '${shown}'`, { field: flag, expected: 'a port 1..65535' });
  }
  let db = 0;
  const path = url.pathname.replace(/^\//, '');
  if (path !== '') {
    if (!/^\d{1,2}$/.test(path))
      throw new UserError(`bad database '${path}' in '${shown}'`, {
        field: flag,
        expected: `${URL_FORM}; DB a number 0..15`,
      });
    db = Number(path);
  }
  if (url.search !== '' || url.hash !== '')
    throw new UserError(`no ?query or #fragment allowed in '${shown}'`, { field: flag, expected: URL_FORM });
  const prefix = String(prefixText ?? DEFAULT_PREFIX);
  if (!/^[A-Za-z0-9_-]{1,40}$/.test(prefix)) {
    throw new UserError(`bad prefix '${prefix}'`, {
      field: '--prefix',
      expected: 'letters, digits, _ and -, at most 40 characters',
    });
  }
  const tls = url.protocol === 'rediss:';
  const username = env[ENV_USERNAME];
  const password = env[ENV_PASSWORD];
  const caFile = env[ENV_CA];
  let ca: Buffer | undefined;
  if (caFile) {
    if (!tls)
      throw new UserError(`${ENV_CA} is set but the URL is not rediss://`, {
        field: flag,
        expected: 'rediss://HOST:PORT for TLS',
      });
    if (!existsSync(caFile))
      throw new UserError('CA file not found', { file: caFile, field: ENV_CA, expected: 'a PEM file' });
    ca = readFileSync(caFile);
  }
  const redis: RedisOptions = {
    host,
    port,
    db,
    connectTimeout: settings.connectTimeoutMs ?? 5000,
    ...(username ? { username } : {}),
    ...(password ? { password } : {}),
    // (the certificate is checked against HOST either way; SNI carries host names only, not addresses)
    ...(tls ? { tls: { ...(isIP(host) === 0 ? { servername: host } : {}), ...(ca ? { ca } : {}) } } : {}),
  };
  return { display: `${url.protocol}//${url.host}${db ? `/${db}` : ''}`, host, port, db, tls, prefix, redis };
}

/** The URL with any user:password replaced by ***. */
function maskCredentials(text: string): string {
  return text.replace(/\/\/[^/@]*@/, '//***@');
}

/** A client for commands that waits for Redis to come back instead of failing (long-running loops). */
export function redisClient(target: QueueTarget, name: string): Redis {
  return new Redis({
    ...target.redis,
    connectionName: name,
    maxRetriesPerRequest: null,
    retryStrategy: (n) => Math.min(250 * n, 5000),
  });
}

/**
 * Logs the errors of a long-lived connection: the first one of an outage as a warning that says what happens
 * (the client reconnects with back-off; work waits), later ones at debug level, and the reconnection at info
 * level. Messages never carry the credentials.
 */
export function connectionErrorLogger(target: QueueTarget, what: string): { error(e: Error): void; ready(): void } {
  let lost = false;
  const secret = target.redis.password;
  const clean = (text: string): string => (secret ? text.split(secret).join('***') : text);
  return {
    error(e: Error) {
      const text = clean((e as Error & { code?: string }).code ?? e.message);
      if (lost) {
        log.debug(`${what}: redis: ${clean(e.message)}`);
        return;
      }
      lost = true;
      log.warn(
        `${what}: lost the connection to Redis at ${target.display} (${text}); reconnecting every few seconds, ` +
          'work waits meanwhile (this is logged once per outage)',
      );
    },
    ready() {
      if (!lost) return;
      lost = false;
      log.info(`${what}: connected to Redis at ${target.display} again`);
    },
  };
}

export type ConnectionErrorLogger = ReturnType<typeof connectionErrorLogger>;

/** Wires a connectionErrorLogger to ioredis clients; returns it for the errors BullMQ reports. */
export function warnOnLostConnection(
  clients: Redis | Redis[],
  target: QueueTarget,
  what: string,
): ConnectionErrorLogger {
  const logger = connectionErrorLogger(target, what);
  for (const client of Array.isArray(clients) ? clients : [clients]) {
    client.on('error', (e: Error) => logger.error(e));
    client.on('ready', () => logger.ready());
  }
  return logger;
}

/** Whether an error (of ioredis or BullMQ) means the connection is down rather than a failed command. */
export function isConnectionError(e: Error): boolean {
  const code = (e as Error & { code?: string }).code ?? '';
  return (
    /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|ENOTFOUND|EHOSTUNREACH|ENETUNREACH|EAI_AGAIN)$/.test(code) ||
    /Connection is closed|connect ETIMEDOUT|Stream isn't writeable/i.test(e.message)
  );
}

/** ioredis options for BullMQ's Queue and Worker (which need maxRetriesPerRequest: null). */
export function bullConnection(target: QueueTarget): RedisOptions {
  return { ...target.redis, maxRetriesPerRequest: null, retryStrategy: (n) => Math.min(250 * n, 5000) };
}

/**
 * Connects once and PINGs, within `connectTimeoutMs` (default 5 s). An unreachable server, a refused
 * connection, bad credentials or a TLS failure are UserErrors naming the flag; the password is never shown.
 */
export async function checkQueueReachable(target: QueueTarget, flag = '--queue'): Promise<void> {
  const timeoutMs = Number(target.redis.connectTimeout ?? 5000);
  const probe = new Redis({
    ...target.redis,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  });
  let lastError: Error | null = null;
  probe.on('error', (e: Error) => (lastError = e));
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      (async () => {
        await probe.connect();
        await probe.ping();
      })(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer within ${(timeoutMs / 1000).toFixed(1)} s`)),
          timeoutMs + 500,
        );
      }),
    ]);
  } catch (e) {
    const err = (lastError ?? e) as Error & { code?: string };
    const text = String(err.message ?? err);
    const auth = /NOAUTH|WRONGPASS|invalid password|invalid username|AUTH/i.test(text);
    const certificate =
      target.tls && /CERT|SIGNATURE|VERIFY|certificate|SSL|TLS|altnames/i.test(`${err.code ?? ''} ${text}`);
    throw new UserError(
      `cannot use Redis at ${target.display}: ${auth ? 'authentication failed' : (err.code ?? text)}`,
      {
        field: flag,
        expected: auth
          ? `valid credentials in ${ENV_USERNAME} / ${ENV_PASSWORD}`
          : certificate
            ? `a server certificate for ${target.host} signed by a trusted CA (a private CA's PEM file in ${ENV_CA})`
            : `a reachable Redis server (start one with \`redis-server --port ${target.port}\`), URL of the form ${URL_FORM}`,
      },
    );
  } finally {
    if (timer) clearTimeout(timer);
    probe.disconnect();
  }
}

/** Redis keys of one run (besides BullMQ's own under `<prefix>:cells:`). */
export function runKeys(prefix: string, runKey: string) {
  const base = `${prefix}:run:${runKey}`;
  return {
    runs: `${prefix}:runs`,
    meta: `${base}:meta`,
    records: `${base}:records`,
    cursor: `${base}:cursor`,
    tokens: `${base}:tokens`,
    checkpoint: (cellId: string) => `${base}:ckpt:${cellId}`,
    /** A record too large for the stream (a checkpoint, result files), written next to it; the stream holds its key. */
    payload: (cellId: string, id: string) => `${base}:payload:${cellId}:${id}`,
    /** Pattern of every payload key of the run (for clean-up when the run is complete). */
    payloads: `${base}:payload:*`,
  };
}

/** Records up to this many characters of JSON travel inline in the stream; larger ones as a payload key. */
export const INLINE_RECORD_CHARS = 16 * 1024;
/** Payload keys of records nobody applied (a run given up) expire after this many seconds. */
export const PAYLOAD_TTL_SECONDS = 7 * 24 * 3600;
/**
 * Large values are read in slices of this many bytes. ioredis' reply parser grows a shared buffer for every
 * reply that spans socket reads and shrinks it on a 50 ms timer that keeps the process alive until it is back
 * under 50 kB: about 2 s after a 1 MB reply, but one tick after replies of a few kB.
 */
export const READ_SLICE_BYTES = 4096;

/** The value of a (possibly large) string key, read atomically in small slices; null when the key is absent. */
export async function getLarge(redis: Redis, key: string): Promise<string | null> {
  for (let attempt = 0; ; attempt++) {
    const size = await redis.strlen(key);
    if (size <= READ_SLICE_BYTES) {
      const small = await redis.getBuffer(key);
      return small === null ? null : small.toString('utf8');
    }
    const tx = redis.multi().strlen(key);
    for (let at = 0; at < size; at += READ_SLICE_BYTES)
      tx.getrangeBuffer(key, at, Math.min(size, at + READ_SLICE_BYTES) - 1);
    const replies = (await tx.exec()) ?? [];
    for (const [err] of replies) if (err) throw err;
    // the key changed between STRLEN and the transaction: read again
    if (replies[0]?.[1] !== size) {
      if (attempt < 5) continue;
      throw new Error(`${key} keeps changing while it is read`);
    }
    return Buffer.concat(replies.slice(1).map(([, b]) => b as Buffer)).toString('utf8');
  }
}

/** BullMQ job id of a cell of a run (no ':' allowed). */
export function jobIdOf(runKey: string, cellId: string): string {
  return `${runKey}.${cellId}`;
}
