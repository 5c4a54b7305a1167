#!/usr/bin/env python3
"""Checks `iris convert` of SmolLM2-135M-Instruct (Q4_1 GGUF) against transformers' own GGUF loader.

Run after `bash scripts/fetch_smollm2.sh [OUT_DIR]` (CPU only, about a minute):

    pip install torch transformers gguf tokenizers safetensors numpy
    python3 scripts/check_gguf_conversion.py [OUT_DIR]      (default: models-cache/ at the root)

Reads OUT_DIR/gguf/SmolLM2-135M-Instruct.Q4_1.gguf and the converted folders
OUT_DIR/SmolLM2-135M-Instruct (f32) and OUT_DIR/SmolLM2-135M-Instruct-bf16, and checks:

  weights    every tensor of our f32 model.safetensors is bit-identical to the state_dict of
             AutoModelForCausalLM.from_pretrained(gguf folder, gguf_file=..., dtype=float32)
             (same names, shapes, dtypes; a tied lm_head is absent from ours, as in HF
             checkpoints); our bf16 file is bit-identical to that state_dict .to(bfloat16).
             Mismatches print the max abs difference.
  logits     the model loaded from our folder gives bit-identical logits to the GGUF-loaded one.
  config     our config.json, loaded with AutoConfig, agrees with the GGUF-derived config on
             every field that describes the model (floats compared as float32, which is how
             the file stores them).
  tokenizer  our tokenizer.json equals (as JSON) the backend transformers builds from the GGUF;
             ~20 varied strings encode to the same ids (tokenizers.Tokenizer.from_file vs
             AutoTokenizer with gguf_file) and decode to the same text; AutoTokenizer on our
             folder agrees too; chat template string and special tokens are equal, and the
             rendered chat prompt is the same.

  synthetic  a small llama GGUF written here with the `gguf` package (2 layers; Q4_0, Q4_1,
             Q8_0, F16, BF16 and F32 tensors, quantized by `gguf.quants.quantize`; a byte-level
             vocabulary with tokenizer edge cases: no <|endoftext|>, a user-defined token, a
             control token outside the byte alphabet, add_bos/add_eos, the llama-bpe and qwen2
             pre-tokenizers), converted with the iris binary (--iris, default
             target/release/iris), compared the same way. Skipped if the binary is missing.

Exit status 0 when everything matches, 1 otherwise.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TQDM_DISABLE", "1")  # transformers' progress bars

import numpy as np
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

TEXTS = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    " leading space and trailing space ",
    "   three leading spaces",
    "tabs\tand\nnewlines\n\n\nand\r\nCRLF",
    "Numbers: 0 7 42 1234567890 3.14159 -2e10 1,000,000",
    "Unicode: café naïve Zürich Ελληνικά Русский 中文 日本語 한국어",
    "Emoji: 😀🎉👍🏽 and ZWJ 👩‍👩‍👧",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    "fn main() { println!(\"{}\", 1 + 2); }",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|><|im_end|><|im_start|>",
    "text<|im_start|>glued<|im_end|>text",
    "<repo_name>iris<file_sep>src/main.rs",
    "It's, don't, we'll, they're, I'm, you've, he'd",
    "URL: https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct?x=1&y=2#frag",
    "mixed    whitespace \u00a0 nbsp \u2003 emspace",
    "ALLCAPS and CamelCaseIdentifiers and snake_case_names",
    "\x00\x01 control chars \x7f",
    "",
]

CONFIG_FIELDS = [
    "model_type",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "max_position_embeddings",
    "vocab_size",
    "tie_word_embeddings",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "hidden_act",
    "attention_bias",
    "mlp_bias",
]
CONFIG_FLOAT_FIELDS = ["rms_norm_eps", "rope_theta"]

failures = []


def check(ok, what):
    print(f"  [{'ok' if ok else 'FAIL'}] {what}")
    if not ok:
        failures.append(what)
    return ok


def bits(t):
    """The tensor's raw bits, for bit-exact comparison (NaN == NaN)."""
    view = {torch.float32: torch.int32, torch.bfloat16: torch.int16, torch.float16: torch.int16}
    return t.contiguous().view(view[t.dtype])


def compare_state(name, ours, reference, tied):
    expected = {k: v for k, v in reference.items() if not (tied and k == "lm_head.weight")}
    check(set(ours) == set(expected), f"{name}: same tensor names ({len(ours)} ours, {len(expected)} expected)")
    for extra in sorted(set(ours) - set(expected)):
        print(f"      only in ours: {extra}")
    for missing in sorted(set(expected) - set(ours)):
        print(f"      missing from ours: {missing}")
    mismatched = 0
    for key in sorted(set(ours) & set(expected)):
        a, b = ours[key], expected[key]
        if a.dtype != b.dtype or a.shape != b.shape:
            print(f"      {key}: ours {a.dtype} {tuple(a.shape)}, expected {b.dtype} {tuple(b.shape)}")
            mismatched += 1
        elif not torch.equal(bits(a), bits(b)):
            diff = (a.float() - b.float()).abs().max().item()
            print(f"      {key}: max abs diff {diff:.3e}")
            mismatched += 1
    check(mismatched == 0, f"{name}: {len(set(ours) & set(expected)) - mismatched} tensors bit-identical, {mismatched} differ")


def config_value(config, field):
    if field == "rope_theta":
        params = getattr(config, "rope_parameters", None) or {}
        return params.get("rope_theta", getattr(config, "rope_theta", None))
    return getattr(config, field, None)


def write_synthetic_gguf(path, pre, add_bos, add_eos, seed):
    """A 2-layer llama with every supported tensor type and a byte-level vocabulary."""
    import gguf
    from gguf.quants import quantize
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    T = gguf.GGMLQuantizationType
    hidden, heads, kv_heads, head_dim, layers, inter = 64, 4, 2, 16, 2, 96
    alphabet = list(bytes_to_unicode().values())
    merges = ["Ġ t", "h e", "Ġt he", "i n", "Ġ a", "e r", "Ġ w", "o r", "Ġw or", "l d", "Ġwor ld", "1 2", "12 3"]
    tokens = ["<s>", "</s>", "<|im_start|>", "<|im_end|>", "<think>", "<ctl é>", "not byte level é"] + alphabet
    tokens += ["".join(m.split(" ")) for m in merges]
    types = [3, 3, 3, 3, 4, 3, 4] + [1] * (len(tokens) - 7)
    vocab = len(tokens)

    w = gguf.GGUFWriter(path, "llama")
    w.add_name("synthetic")
    w.add_context_length(512)
    w.add_embedding_length(hidden)
    w.add_block_count(layers)
    w.add_feed_forward_length(inter)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(500000.0)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_vocab_size(vocab)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(0)
    w.add_eos_token_id(1)
    w.add_add_bos_token(add_bos)
    w.add_add_eos_token(add_eos)
    w.add_chat_template("{% for m in messages %}<|im_start|>{{ m['content'] }}<|im_end|>{% endfor %}")

    rng = np.random.default_rng(seed)
    kinds = [T.Q4_0, T.Q4_1, T.Q8_0, T.F16, T.BF16, T.F32]
    counter = [0]

    def add(name, shape, kind=None):
        values = rng.standard_normal(shape).astype(np.float32) * 0.1
        if kind is None:
            kind = kinds[counter[0] % len(kinds)]
            counter[0] += 1
        if kind == T.F32:
            w.add_tensor(name, values)
        elif kind == T.F16:
            w.add_tensor(name, values.astype(np.float16))
        else:
            w.add_tensor(name, quantize(values, kind), raw_dtype=kind)

    add("token_embd.weight", (vocab, hidden), T.Q8_0)
    for i in range(layers):
        add(f"blk.{i}.attn_norm.weight", (hidden,), T.F32)
        add(f"blk.{i}.attn_q.weight", (heads * head_dim, hidden))
        add(f"blk.{i}.attn_k.weight", (kv_heads * head_dim, hidden))
        add(f"blk.{i}.attn_v.weight", (kv_heads * head_dim, hidden))
        add(f"blk.{i}.attn_output.weight", (hidden, heads * head_dim))
        add(f"blk.{i}.ffn_norm.weight", (hidden,), T.F32)
        add(f"blk.{i}.ffn_gate.weight", (inter, hidden))
        add(f"blk.{i}.ffn_up.weight", (inter, hidden))
        add(f"blk.{i}.ffn_down.weight", (hidden, inter))
    add("output_norm.weight", (hidden,), T.F32)
    add("output.weight", (vocab, hidden), T.Q4_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def check_synthetic(iris):
    variants = [
        ("llama-bpe", True, True, 1),
        ("qwen2", False, False, 2),
        ("smollm", True, False, 3),
    ]
    texts = TEXTS + ["the theory in the world 123123", "<think> x </s><s>", "not byte level é"]
    with tempfile.TemporaryDirectory() as tmp:
        for pre, add_bos, add_eos, seed in variants:
            label = f"synthetic ({pre}, add_bos={add_bos}, add_eos={add_eos})"
            gguf_path = os.path.join(tmp, f"{pre}.gguf")
            out = os.path.join(tmp, f"{pre}-out")
            write_synthetic_gguf(gguf_path, pre, add_bos, add_eos, seed)
            run = subprocess.run([iris, "convert", "--gguf", gguf_path, "--out", out], capture_output=True, text=True)
            if not check(run.returncode == 0, f"{label}: iris convert succeeds"):
                print(run.stderr)
                continue
            reference = AutoModelForCausalLM.from_pretrained(tmp, gguf_file=os.path.basename(gguf_path), dtype=torch.float32)
            state = {k: v.detach() for k, v in reference.state_dict().items()}
            compare_state(label, load_file(os.path.join(out, "model.safetensors")), state, reference.config.tie_word_embeddings)
            reference_tokenizer = AutoTokenizer.from_pretrained(tmp, gguf_file=os.path.basename(gguf_path))
            with open(os.path.join(out, "tokenizer.json")) as f:
                ours_json = json.load(f)
            theirs_json = json.loads(reference_tokenizer.backend_tokenizer.to_str())
            differing = [k for k in set(ours_json) | set(theirs_json) if ours_json.get(k) != theirs_json.get(k)]
            check(not differing, f"{label}: tokenizer.json equal as JSON (differs in: {differing or 'nothing'})")
            ours_tokenizer = Tokenizer.from_file(os.path.join(out, "tokenizer.json"))
            agree = sum(ours_tokenizer.encode(t).ids == reference_tokenizer(t)["input_ids"] for t in texts)
            check(agree == len(texts), f"{label}: {agree}/{len(texts)} strings encode identically")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("out_dir", nargs="?", default=os.path.join(root, "models-cache"))
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target"))
    parser.add_argument("--iris", default=os.path.join(target, "release", "iris"), help="the iris binary")
    args = parser.parse_args()
    gguf_dir = os.path.join(args.out_dir, "gguf")
    f32_dir = os.path.join(args.out_dir, "SmolLM2-135M-Instruct")
    bf16_dir = os.path.join(args.out_dir, "SmolLM2-135M-Instruct-bf16")
    for path in [os.path.join(gguf_dir, GGUF_NAME), f32_dir, bf16_dir]:
        if not os.path.exists(path):
            sys.exit(f"missing {path}: run `bash scripts/fetch_smollm2.sh {args.out_dir}` first")
    torch.set_num_threads(min(4, os.cpu_count() or 1))
    import transformers

    print(f"transformers {transformers.__version__}, torch {torch.__version__}")

    print("weights")
    start = time.time()
    reference_model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=GGUF_NAME, dtype=torch.float32)
    reference_model.eval()
    print(f"  (transformers loaded the GGUF in {time.time() - start:.1f} s)")
    reference = {k: v.detach() for k, v in reference_model.state_dict().items()}
    tied = bool(reference_model.config.tie_word_embeddings)
    compare_state("f32", load_file(os.path.join(f32_dir, "model.safetensors")), reference, tied)
    reference_bf16 = {k: v.to(torch.bfloat16) for k, v in reference.items()}
    compare_state("bf16", load_file(os.path.join(bf16_dir, "model.safetensors")), reference_bf16, tied)

    print("logits")
    ours_model = AutoModelForCausalLM.from_pretrained(f32_dir, dtype=torch.float32)
    ours_model.eval()
    tf_tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=GGUF_NAME)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = tf_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = torch.tensor([tf_tokenizer(prompt)["input_ids"]])
    with torch.no_grad():
        a = reference_model(ids).logits
        b = ours_model(ids).logits
        check(torch.equal(bits(a), bits(b)), f"logits of a {ids.shape[1]}-token chat prompt bit-identical")
        generated = ours_model.generate(ids, max_new_tokens=12, do_sample=False)
    answer = tf_tokenizer.decode(generated[0, ids.shape[1]:])
    print(f"  (our folder, greedy: {answer!r})")

    print("config")
    reference_config = AutoConfig.from_pretrained(gguf_dir, gguf_file=GGUF_NAME)
    ours_config = AutoConfig.from_pretrained(f32_dir)
    for field in CONFIG_FIELDS:
        a, b = config_value(ours_config, field), config_value(reference_config, field)
        check(a == b, f"{field}: ours {a!r}, transformers {b!r}")
    for field in CONFIG_FLOAT_FIELDS:
        a, b = config_value(ours_config, field), config_value(reference_config, field)
        same = a is not None and b is not None and np.float32(a) == np.float32(b)
        check(same, f"{field}: ours {a!r}, transformers {b!r} (as float32)")
    with open(os.path.join(bf16_dir, "config.json")) as f:
        check(json.load(f).get("torch_dtype") == "bfloat16", "bf16 folder: torch_dtype bfloat16")

    print("tokenizer")
    ours_tokenizer = Tokenizer.from_file(os.path.join(f32_dir, "tokenizer.json"))
    with open(os.path.join(f32_dir, "tokenizer.json")) as f:
        ours_json = json.load(f)
    reference_json = json.loads(tf_tokenizer.backend_tokenizer.to_str())
    differing = [k for k in set(ours_json) | set(reference_json) if ours_json.get(k) != reference_json.get(k)]
    check(not differing, f"tokenizer.json equal to transformers' backend as JSON (differs in: {differing or 'nothing'})")
    agree = 0
    for text in TEXTS:
        a = ours_tokenizer.encode(text).ids
        b = tf_tokenizer(text)["input_ids"]
        da = ours_tokenizer.decode(a, skip_special_tokens=False)
        db = tf_tokenizer.decode(b, skip_special_tokens=False)
        if a == b and da == db:
            agree += 1
        else:
            print(f"      {text!r}: ours {a} -> {da!r}; transformers {b} -> {db!r}")
    check(agree == len(TEXTS), f"{agree}/{len(TEXTS)} strings encode and decode identically (tokenizers vs transformers)")
    folder_tokenizer = AutoTokenizer.from_pretrained(f32_dir)
    agree = sum(folder_tokenizer(t)["input_ids"] == tf_tokenizer(t)["input_ids"] for t in TEXTS)
    check(agree == len(TEXTS), f"{agree}/{len(TEXTS)} strings identical with AutoTokenizer on our folder")
    with open(os.path.join(f32_dir, "tokenizer_config.json")) as f:
        ours_tokenizer_config = json.load(f)
    check(ours_tokenizer_config.get("chat_template") == tf_tokenizer.chat_template, "chat template string identical")
    for name in ["bos_token", "eos_token", "unk_token", "pad_token"]:
        a, b = getattr(folder_tokenizer, name), getattr(tf_tokenizer, name)
        check(a == b, f"{name}: ours {a!r}, transformers {b!r}")
    check(
        bool(folder_tokenizer.add_bos_token) == bool(tf_tokenizer.add_bos_token),
        f"add_bos_token: ours {folder_tokenizer.add_bos_token}, transformers {tf_tokenizer.add_bos_token}",
    )
    conversation = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi there!"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Count to 3."},
    ]
    for convo in [messages, conversation]:
        a = folder_tokenizer.apply_chat_template(convo, tokenize=False, add_generation_prompt=True)
        b = tf_tokenizer.apply_chat_template(convo, tokenize=False, add_generation_prompt=True)
        check(a == b, f"rendered chat prompt identical ({len(convo)} messages)")

    print("synthetic")
    if os.path.exists(args.iris):
        check_synthetic(args.iris)
    else:
        print(f"  (skipped: no iris binary at {args.iris}; build it with cargo build --release -p iris-cli)")

    if failures:
        print(f"\n{len(failures)} check(s) failed")
        return 1
    print("\nall checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
