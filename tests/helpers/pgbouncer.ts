import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../../src/db/embedded.js';

const run = promisify(execFile);

/** The pgbouncer binary (Debian's package puts it in /usr/sbin), or null where it is not installed. */
export function findPgbouncer(): string | null {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/usr/local/sbin'])) {
    const candidate = path.join(dir, 'pgbouncer');
    if (dir && existsSync(candidate)) return candidate;
  }
  return null;
}

/**
 * A real PgBouncer in transaction pooling mode in front of a PostgreSQL server, for one test file: its
 * own config in a temporary directory, a free port, trust auth for `postgres`, every database passed
 * through. As root it runs as the `postgres` OS user (PgBouncer refuses root).
 */
export class Pgbouncer {
  private constructor(
    private readonly child: ChildProcess,
    private readonly dir: string,
    readonly port: number,
  ) {}

  /** The same database as `serverUrl` names, through the pooler. */
  url(serverUrl: string): string {
    const url = new URL(serverUrl);
    url.host = `127.0.0.1:${this.port}`;
    return url.toString();
  }

  /** In front of the server `serverUrl` names (its password, if any, is what PgBouncer logs in with). */
  static async start(serverUrl: string, options: { poolSize?: number } = {}): Promise<Pgbouncer> {
    const server = new URL(serverUrl);
    const password = decodeURIComponent(server.password);
    const binary = findPgbouncer();
    if (!binary) throw new Error('pgbouncer is not installed (Debian package pgbouncer; .ci/run installs it)');
    const dir = await mkdtemp(path.join(tmpdir(), 'paygraph-pgbouncer-'));
    const port = await freePort();
    // Clients are trusted; the list holds the password PgBouncer logs in to the server with (if any).
    await writeFile(path.join(dir, 'userlist.txt'), `"${decodeURIComponent(server.username) || 'postgres'}" "${password.replace(/"/g, '""')}"\n`);
    await writeFile(
      path.join(dir, 'pgbouncer.ini'),
      [
        '[databases]',
        `* = host=${server.hostname} port=${server.port || 5432}`,
        '[pgbouncer]',
        'listen_addr = 127.0.0.1',
        `listen_port = ${port}`,
        'unix_socket_dir =',
        'auth_type = trust',
        `auth_file = ${path.join(dir, 'userlist.txt')}`,
        'pool_mode = transaction',
        `default_pool_size = ${options.poolSize ?? 10}`,
        'max_client_conn = 500',
        // What node-postgres may send at startup that PgBouncer does not track itself.
        'ignore_startup_parameters = extra_float_digits',
        `pidfile = ${path.join(dir, 'pgbouncer.pid')}`,
        `logfile = ${path.join(dir, 'pgbouncer.log')}`,
        'admin_users = postgres',
        '',
      ].join('\n'),
    );
    const asUser = userInfo().uid === 0 ? 'postgres' : null;
    if (asUser) {
      const uid = Number((await run('id', ['-u', asUser])).stdout.trim());
      const gid = Number((await run('id', ['-g', asUser])).stdout.trim());
      await chown(dir, uid, gid);
      for (const f of ['userlist.txt', 'pgbouncer.ini']) await chown(path.join(dir, f), uid, gid);
    }
    await chmod(dir, 0o700);
    const args = [path.join(dir, 'pgbouncer.ini')];
    const child = asUser ? spawn('runuser', ['-u', asUser, '--', binary, ...args], { stdio: 'ignore' }) : spawn(binary, args, { stdio: 'ignore' });
    const bouncer = new Pgbouncer(child, dir, port);
    const deadline = Date.now() + 10_000;
    while (!(await canConnect(port))) {
      if (Date.now() > deadline || child.exitCode !== null) {
        await bouncer.stop();
        throw new Error(`pgbouncer did not start on ${port} (exit ${child.exitCode})`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return bouncer;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill('SIGTERM');
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 3000))]);
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
