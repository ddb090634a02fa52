"""A tiny Llama-architecture model with random weights, for a real vLLM server on a CPU.

Why: the `vllm` backend must be exercised against the real engine (scheduler, OpenAI
server, streaming, usage, Prometheus counters), and nothing may be downloaded. So the test
model is made here: a byte-level BPE tokenizer trained on text the package bundles (the
validator's passages plus a deterministic sample of its own task prompts and answers, so
the vocabulary covers what miners are asked), and a LlamaConfig small enough (about 0.5 M
parameters) to generate about a thousand tokens a second on two cores. Its answers are
noise: it measures the plumbing and the accounting, never quality.

This file has two halves. `ensure_model` runs in subnetlab's environment: it writes the
corpus and the recipe, and runs this same file as a script under the vLLM environment's
Python, where tokenizers, transformers and torch live (they are not dependencies of
subnetlab, hence the imports inside `build_in_vllm_env`; the module level imports the
standard library only). The result is cached under a folder named by a hash of the recipe,
the corpus and the library versions: a change builds a new one, a warm call reuses it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from subnetlab.local.vllm_env import VllmEnv

BUILDER_VERSION = 1  # bump when build_in_vllm_env changes what it writes
SERVED_NAME = "subnetlab-tiny-llama"
MARKER = "subnetlab-model.json"
SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>")
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|{{ message['role'] }}|>\n"
    "{{ message['content'] }}{{ eos_token }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
TASKS_PER_KIND = 400


class TinyModelError(RuntimeError):
    """The tiny model cannot be built; the message names the field or the step."""


@dataclass(frozen=True)
class TinyModelRecipe:
    """The model's shape (defaults: the configuration measured to serve on two cores)."""

    vocab_size: int = 1024
    hidden_size: int = 128
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    intermediate_size: int = 256
    max_positions: int = 512
    seed: int = 0

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name != "seed" and value < 1:
                raise TinyModelError(f"recipe.{item.name}: must be at least 1, got {value}")
        if self.vocab_size < 256 + len(SPECIAL_TOKENS):
            raise TinyModelError(f"recipe.vocab_size: must be at least "
                                 f"{256 + len(SPECIAL_TOKENS)} (256 bytes plus the special "
                                 f"tokens), got {self.vocab_size}")
        if self.hidden_size % self.heads:
            raise TinyModelError(f"recipe.heads: {self.heads} does not divide hidden_size "
                                 f"{self.hidden_size}")
        if self.heads % self.kv_heads:
            raise TinyModelError(f"recipe.kv_heads: {self.kv_heads} does not divide heads "
                                 f"{self.heads}")
        if self.max_positions < 64:
            raise TinyModelError(f"recipe.max_positions: must be at least 64, got "
                                 f"{self.max_positions}")


@dataclass(frozen=True)
class BuiltModel:
    """A model folder vLLM can serve, and what it holds."""

    path: Path
    parameters: int
    vocab_size: int
    served_name: str = SERVED_NAME


# --- pure logic (subnetlab's side) --------------------------------------------------------


def training_corpus(tasks_per_kind: int = TASKS_PER_KIND) -> str:
    """The tokenizer's training text: the bundled passages, then task prompts and answers."""
    from importlib import resources

    from subnetlab.tasks import KINDS, generate

    passages = resources.files("subnetlab.data").joinpath("passages.txt").read_text()
    lines = [passages.strip()]
    for kind in KINDS:
        for seed in range(tasks_per_kind):
            task = generate(kind, seed)
            lines.append(f"{task.prompt}\n{task.expected}")
    return "\n\n".join(lines) + "\n"


def model_key(recipe: TinyModelRecipe, corpus: str, versions: dict[str, Any]) -> str:
    """A short hash of everything the model depends on (a change: a new folder)."""
    material = json.dumps({"builder": BUILDER_VERSION, "recipe": asdict(recipe),
                           "versions": versions,
                           "corpus": hashlib.sha256(corpus.encode()).hexdigest()},
                          sort_keys=True)
    return hashlib.sha256(material.encode()).hexdigest()[:12]


# --- I/O (subnetlab's side) -----------------------------------------------------------------


def ensure_model(
    env: VllmEnv, root: Path, recipe: TinyModelRecipe | None = None, rebuild: bool = False
) -> BuiltModel:
    """The cached tiny model for `env` under `root/models`, built if missing or stale."""
    from subnetlab.local.file_lock import file_lock

    recipe = recipe or TinyModelRecipe()
    corpus = training_corpus()
    versions = {k: env.info.get(k) for k in ("transformers", "tokenizers", "torch")}
    models = root / "models"
    final = models / f"tiny-llama-{model_key(recipe, corpus, versions)}"
    with file_lock(models / "models.lock"):
        if not rebuild and (final / MARKER).is_file():
            return _read_built(final)
        work = models / f"{final.name}.partial"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        (work / "corpus.txt").write_text(corpus)
        (work / "recipe.json").write_text(json.dumps(asdict(recipe)))
        out = work / "model"
        proc = subprocess.run(
            [str(env.python), "-I", __file__, "--recipe", str(work / "recipe.json"),
             "--corpus", str(work / "corpus.txt"), "--out", str(out)],
            capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise TinyModelError(f"building the tiny model failed (exit {proc.returncode}): "
                                 f"{(proc.stderr or proc.stdout)[-2000:]}")
        stats = json.loads(proc.stdout.strip().splitlines()[-1])
        (out / MARKER).write_text(json.dumps({
            "builder": BUILDER_VERSION, "recipe": asdict(recipe), "versions": versions,
            "corpus_sha256": hashlib.sha256(corpus.encode()).hexdigest(), **stats},
            indent=2) + "\n")
        for stale in models.glob("tiny-llama-*"):
            if stale.is_dir() and stale.name != work.name:
                shutil.rmtree(stale, ignore_errors=True)
        out.rename(final)
        shutil.rmtree(work, ignore_errors=True)
        return _read_built(final)


def _read_built(path: Path) -> BuiltModel:
    info = json.loads((path / MARKER).read_text())
    return BuiltModel(path, int(info["parameters"]), int(info["vocab_size"]))


# --- the builder (runs under the vLLM environment's Python) -------------------------------


def build_in_vllm_env(recipe: TinyModelRecipe, corpus: Path, out: Path) -> dict[str, int]:
    """Train the tokenizer, make the random-weight model, save both with save_pretrained."""
    import torch  # type: ignore[import-not-found,unused-ignore]
    from tokenizers import (  # type: ignore[import-not-found,unused-ignore]
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        trainers,
    )
    from transformers import (  # type: ignore[import-not-found,unused-ignore]
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,
    )

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=recipe.vocab_size,
                                  special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tokenizer.train([str(corpus)], trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>",
                                   bos_token="<s>", eos_token="</s>",
                                   model_max_length=recipe.max_positions)
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(str(out))
    vocab = len(fast)
    torch.manual_seed(recipe.seed)
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=recipe.hidden_size,
        intermediate_size=recipe.intermediate_size, num_hidden_layers=recipe.layers,
        num_attention_heads=recipe.heads, num_key_value_heads=recipe.kv_heads,
        max_position_embeddings=recipe.max_positions, pad_token_id=fast.pad_token_id,
        bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id)
    model = LlamaForCausalLM(config)
    model.save_pretrained(str(out))
    parameters = int(sum(p.numel() for p in model.parameters()))
    return {"parameters": parameters, "vocab_size": vocab}


def _main() -> None:
    parser = argparse.ArgumentParser(description=build_in_vllm_env.__doc__)
    parser.add_argument("--recipe", type=Path, required=True)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    recipe = TinyModelRecipe(**json.loads(args.recipe.read_text()))
    print(json.dumps(build_in_vllm_env(recipe, args.corpus, args.out)))


if __name__ == "__main__":
    _main()
