import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The repository root: children run from there so `--import tsx` resolves. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Flags every child gets: `gc()` for memory readings, tsx for TypeScript. */
export const CHILD_FLAGS = ['--expose-gc', '--import', 'tsx'];

/** Starts `bench/lib/<file>` in a fresh Node process with an IPC channel. */
export function startChild(file: string, args: readonly string[] = [], extraFlags: readonly string[] = []) {
  return fork(fileURLToPath(new URL(file, import.meta.url)), [...args], {
    cwd: ROOT,
    execArgv: [...CHILD_FLAGS, ...extraFlags],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
}

/** Sends one request and resolves with the child's next message. */
export function request<T>(child: ChildProcess, message: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (reply: unknown) => {
      cleanup();
      const error = (reply as { error?: string }).error;
      if (error !== undefined) reject(new Error(error));
      else resolve(reply as T);
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`child exited (${code}) before answering ${JSON.stringify(message)}`));
    };
    const cleanup = () => {
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.on('exit', onExit);
    child.send(message as object);
  });
}

/** Runs a child to completion and resolves with the one message it sends. */
export function runChild<T>(file: string, args: readonly string[] = []): Promise<T> {
  const child = startChild(file, args);
  return new Promise((resolve, reject) => {
    let result: T | undefined;
    child.on('message', (message) => {
      result = message as T;
    });
    child.on('exit', (code) => {
      const error = (result as { error?: string } | undefined)?.error;
      if (code === 0 && result !== undefined && error === undefined) resolve(result);
      else reject(new Error(`${file} ${args.join(' ')} failed (exit ${code}): ${error ?? 'no result'}`));
    });
  });
}
