// The tokenizer's own worker in the page, started by the engine's worker (a nested Worker) so
// that a hostile tokenizer file can be stopped there: see src/engine/tokenizer-client.ts.
import { serveTokenizer, type Reply, type Request } from '../engine/tokenizer-worker';

type Scope = { postMessage(m: Reply): void; onmessage: ((e: MessageEvent<Request>) => void) | null };
const scope = self as unknown as Scope;
serveTokenizer({
  postMessage: (m) => scope.postMessage(m),
  onMessage: (handle) => (scope.onmessage = (e) => handle(e.data)),
});
