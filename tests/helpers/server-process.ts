import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';

export const projectRoot = path.resolve(import.meta.dirname, '../..');

export interface ServerProcess {
  child: ChildProcess;
  /** The GraphQL URL the server printed (127.0.0.1 rather than localhost, which may resolve to ::1). */
  url: string;
  /** Everything the server wrote to stdout and stderr so far. */
  output(): string;
  /** Resolves with the exit code once the process has exited. */
  exited: Promise<number | null>;
  /** Sends the signal and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Runs the exact command of package.json's `start` script, without npm in between so that signals
 * and the exit code are the server's own (npm re-raises SIGTERM on itself). Resolves once the server
 * says where it listens and `until` (if given) holds for its output.
 */
export async function startServer(
  env: NodeJS.ProcessEnv,
  { until, timeoutMs = 90_000, nodeArgs = [] }: { until?: (output: string) => boolean; timeoutMs?: number; /** Before the script's own (a test's `--import` preload). */ nodeArgs?: string[] } = {},
): Promise<ServerProcess> {
  const start: string = JSON.parse(readFileSync(path.join(projectRoot, 'package.json'), 'utf8')).scripts.start;
  // `exec` makes the shell npm runs the script in become node, so signals sent to npm reach the server.
  const [command, ...args] = start.replace(/^exec /, '').split(' ');
  if (command !== 'node') throw new Error(`the start script must run node directly, not ${command}`);
  const child = spawn(process.execPath, [...nodeArgs, ...args], { cwd: projectRoot, env });
  let output = '';
  child.stdout!.on('data', (c) => (output += c));
  child.stderr!.on('data', (c) => (output += c));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const check = () => {
      const match = /ready at (http:\/\/localhost:\d+\/graphql)/.exec(output);
      if (match && (!until || until(output))) {
        clearInterval(poll);
        clearTimeout(timer);
        resolve(match[1]!.replace('localhost', '127.0.0.1'));
      }
    };
    const poll = setInterval(check, 20);
    const timer = setTimeout(() => {
      clearInterval(poll);
      child.kill('SIGKILL');
      reject(new Error(`server not ready in ${timeoutMs} ms:\n${output}`));
    }, timeoutMs);
    void exited.then((code) => {
      clearInterval(poll);
      clearTimeout(timer);
      reject(new Error(`server exited early with ${code}:\n${output}`));
    });
  });
  return {
    child,
    url,
    output: () => output,
    exited,
    stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Posts a GraphQL operation over real HTTP. */
export async function postGraphql(url: string, query: string, token?: string): Promise<{ status: number; body: any }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query }),
  });
  return { status: res.status, body: await res.json() };
}
