/**
 * A client process for test/client-acceptance-fleet.test.ts, forked with `node --import tsx` like
 * client-worker.ts. Each `go` names a tollgate server and a Redis key prefix: the process builds a
 * paced fetch whose learned pacing is shared through a RedisStore on the test's throwaway Redis
 * (`shareLearned`), runs `callers` callers in a loop until `end` (epoch ms), and replies `done`
 * with the case's id. Several cases may run at once.
 */
import { pace } from '@tollgate/client';
import { RedisStore } from '@tollgate/redis';
import { Redis } from 'ioredis';

interface Go {
  type: 'go';
  id: string;
  url: string;
  prefix: string;
  callers: number;
  end: number;
}

const port = Number(process.argv[2]);
const client = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 0 });
client.on('error', () => undefined);
await new Promise((resolve) => client.once('ready', resolve));

process.on('message', async (message: Go | { type: 'stop' }) => {
  if (message.type === 'stop') {
    await client.quit();
    process.disconnect();
    return;
  }
  const { id, url, prefix, callers, end } = message;
  const api = pace(fetch, { store: new RedisStore({ client, prefix }), shareLearned: true });
  const caller = async () => {
    while (Date.now() < end) {
      // Calls still waiting at the end are dropped unsent (DeadlineError).
      const response = await api(`${url}/`, { pace: { deadline: end } }).catch(() => undefined);
      await response?.arrayBuffer();
    }
  };
  await Promise.all(Array.from({ length: callers }, caller));
  process.send?.({ type: 'done', id });
});
process.send?.({ type: 'ready' });
