// The `finetune` command line on the Phi-3 and Gemma 2 fixtures: trains, evaluates with the adapter
// and generates (cli.test.ts has the Llama, Qwen2 and Falcon runs; cli-real-tokenizers.test.ts the
// newest families with their real tokenizers).
import { describeFamilyRuns } from '../cli-run';

describeFamilyRuns([
  ['phi3', undefined],
  ['gemma2', undefined],
]);
