#!/usr/bin/env node
// The `finetune` command line (src/cli/finetune.ts); `finetune --help` for its commands.
import { runMain } from './ts.mjs';

process.exitCode = await runMain('src/cli/finetune.ts', process.argv.slice(2));
