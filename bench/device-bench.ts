// The bench as one ES module for a GPU machine without npm (../shared/device/README.md):
//   npx vite build --ssr bench/device-bench.ts --outDir .device-build   (see bench/device-run.sh)
// then `node device-bench.mjs [node-bench flags]` there. It imports nothing but `webgpu`.
import { main } from './node-bench';

process.exitCode = await main(process.argv.slice(2));
