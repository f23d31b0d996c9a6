// The `finetune` command line on the Qwen3, Gemma 3 and SmolLM3 fixtures with their real tokenizers
// (vocabularies of 152k, 262k and 128k tokens): trains, evaluates with the adapter and generates. A
// file apart from cli-families.test.ts so that the two run side by side.
import { describeFamilyRuns } from '../cli-run';

describeFamilyRuns([
  ['qwen3', 'qwen3'],
  ['gemma3', 'gemma3'],
  ['smollm3', 'llama3'],
]);
