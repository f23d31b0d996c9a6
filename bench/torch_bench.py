"""The step a user would otherwise run, timed on the same GPU as our bench (bench/device-run.sh).

transformers + peft LoRA on the cases of bench/model-bench.ts, with random weights made on the
GPU: the base in bf16, LoRA (r 16, alpha 32, dropout 0.05, every linear) in f32 under bf16
autocast, gradient checkpointing on (we recompute each layer too), AdamW, one sequence of
`tokens` random ids per step. Decoding: greedy generate() with a KV cache, the time per new token
after the prompt. Prints a JSON line per model and writes them to $OUT/torch-bench.json.
(No bitsandbytes on the lent machines: the base is bf16, not NF4, which favours PyTorch.)
"""

import json
import os
import sys
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoConfig, AutoModelForCausalLM

# The cases of bench/model-bench.ts (config.json fields, tokens per step, prompt and new tokens),
# written beside this script by bench/device-run.sh: `node-bench.ts --print-cases`.
CASES_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench-cases.json")


def bench(case):
    name, tokens, steps = case["name"], case["tokens"], case["steps"]
    prompt_len, new_tokens = case["prompt"], case["newTokens"]
    fields = dict(case["config"])
    if case.get("gradient_checkpointing") is False:
        return {"model": name, "skipped": "the PyTorch side runs with gradient checkpointing only"}
    config = AutoConfig.for_model(fields.pop("model_type"), **fields)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, torch_dtype=torch.bfloat16)
    model.config.use_cache = False
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    ids = torch.randint(0, config.vocab_size, (1, tokens), device="cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    model.train()
    for _ in range(2):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    step_ms = (time.perf_counter() - t0) / steps * 1000
    peak = torch.cuda.max_memory_allocated()

    model.eval()
    model.config.use_cache = True
    prompt = ids[:, :prompt_len]

    def gen(n):
        torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            model.generate(input_ids=prompt, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                           pad_token_id=0, eos_token_id=None)
        torch.cuda.synchronize()
        return time.perf_counter() - t

    gen(4)
    token_ms = (gen(new_tokens) - gen(1)) / (new_tokens - 1) * 1000
    del model, optimizer
    torch.cuda.empty_cache()
    return {
        "model": name,
        "tokens": tokens,
        "train_step_ms": step_ms,
        "train_tokens_per_s": tokens / step_ms * 1000,
        "peak_bytes": peak,
        "decode_ms_per_token": token_ms,
        "decode_tokens_per_s": 1000 / token_ms,
    }


def main():
    with open(CASES_FILE) as f:
        cases = json.load(f)
    only = sys.argv[1].split(",") if len(sys.argv) > 1 else None
    rows = []
    for case in cases:
        if only and case["name"] not in only:
            continue
        try:
            rows.append(bench(case))
        except Exception as e:  # one shape failing (memory, a missing model type) keeps the others
            rows.append({"model": case["name"], "error": f"{type(e).__name__}: {e}"})
        print(json.dumps(rows[-1]), flush=True)
    result = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "device": torch.cuda.get_device_name(),
              "torch": torch.__version__, "rows": rows}
    out = os.environ.get("OUT", "/tmp/out")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "torch-bench.json"), "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
