/**
 * A real redis-server for the queue tests and the queue bench: on 127.0.0.1 only, on a free port, with no
 * persistence, in a temp folder, plain or TLS-only (with a throwaway CA made by openssl); stopped (and the
 * folder removed) by stop(). Plus small helpers to run the CLI as child processes.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const REDIS_SERVER = '/usr/bin/redis-server';
export const ROOT = join(import.meta.dirname, '..', '..');
export const BIN = join(ROOT, 'bin', 'bitalloc.js');

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface RedisFixture {
  port: number;
  /** redis://127.0.0.1:PORT, or rediss:// for a TLS server. */
  url: string;
  /** The server's pid (for CPU readings in the bench). */
  pid: number;
  stop(): Promise<void>;
}

/** PEM files of a throwaway CA and a server certificate for 127.0.0.1 / localhost signed by it. */
export interface TlsFiles {
  caCert: string;
  serverCert: string;
  serverKey: string;
}

/** Why TLS tests cannot run here (no openssl, or a redis-server built without TLS), or null when they can. */
export function tlsUnavailable(): string | null {
  const ssl = spawnSync('openssl', ['version'], { encoding: 'utf8' });
  if (ssl.error || ssl.status !== 0) return 'openssl is not installed';
  // listening nowhere, it exits at once; a build without TLS rejects the directive instead
  const probe = spawnSync(REDIS_SERVER, ['--port', '0', '--tls-port', '0'], { encoding: 'utf8', timeout: 10_000 });
  if (probe.error) return `${REDIS_SERVER} cannot be run: ${probe.error.message}`;
  if (/Bad directive|not built with TLS/i.test(`${probe.stdout}${probe.stderr}`))
    return `${REDIS_SERVER} is built without TLS`;
  return null;
}

/** Makes a CA and a server certificate (SAN IP:127.0.0.1, DNS:localhost) with openssl in `dir`. */
export function makeTlsFiles(dir: string): TlsFiles {
  const f = (name: string): string => join(dir, name);
  const run = (args: string[]): void => {
    const r = spawnSync('openssl', args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
  };
  writeFileSync(f('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  run(
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=bitalloc test CA'].concat([
      '-keyout',
      f('ca.key'),
      '-out',
      f('ca.crt'),
    ]),
  );
  run(
    ['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', f('server.key')].concat([
      '-out',
      f('server.csr'),
    ]),
  );
  run(
    ['x509', '-req', '-in', f('server.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial'].concat([
      '-days',
      '2',
      '-extfile',
      f('server.ext'),
      '-out',
      f('server.crt'),
    ]),
  );
  return { caCert: f('ca.crt'), serverCert: f('server.crt'), serverKey: f('server.key') };
}

/** Starts redis-server on 127.0.0.1; with `tls`, it listens for TLS only (plain port disabled). */
export async function startRedis(
  extraArgs: string[] = [],
  opts: { tls?: TlsFiles; /** default: a free port */ port?: number } = {},
): Promise<RedisFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'bitalloc-redis-'));
  const port = opts.port ?? (await freePort());
  const listen = opts.tls
    ? ['--port', '0', '--tls-port', String(port), '--tls-cert-file', opts.tls.serverCert]
        .concat(['--tls-key-file', opts.tls.serverKey, '--tls-ca-cert-file', opts.tls.caCert])
        .concat(['--tls-auth-clients', 'no'])
    : ['--port', String(port)];
  const child = spawn(
    REDIS_SERVER,
    [...listen, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...extraArgs],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis-server did not start: ${out}`)), 10_000);
    const onData = (d: Buffer): void => {
      out += d.toString();
      if (/Ready to accept connections/i.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited with ${code}: ${out}`));
    });
  });
  return {
    port,
    url: `${opts.tls ? 'rediss' : 'redis'}://127.0.0.1:${port}`,
    pid: child.pid ?? 0,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Proc {
  child: ChildProcess;
  stderr: () => string;
  stdout: () => string;
  exited: Promise<number | null>;
}

/** Runs `bitalloc ARGS` in the background, collecting its output. */
export function bitalloc(args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  const child = spawn(process.execPath, [BIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let stderr = '';
  let stdout = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, stderr: () => stderr, stdout: () => stdout, exited };
}

/** Resolves with the exit code, or rejects after `ms`. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what}: no result within ${ms / 1000} s`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

export interface EpisodeLine {
  episode: number;
  bits: unknown;
  accuracy: number | null;
  loss: number | null;
  reward: number;
  latencyMs: number;
  wallMs: number;
}

export function readEpisodeLines(file: string): EpisodeLine[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as EpisodeLine);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Resolves when `proc`'s stderr matches `pattern`; rejects after `ms` or when it exits first. */
export async function waitForStderr(proc: Proc, pattern: RegExp, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pattern.test(proc.stderr())) {
    if (proc.child.exitCode !== null) throw new Error(`exited before ${pattern}: ${proc.stderr()}`);
    if (Date.now() > deadline) throw new Error(`no ${pattern} within ${ms / 1000} s: ${proc.stderr()}`);
    await sleep(100);
  }
}
